//! The last body served in each format, shared by every scrape of the same
//! snapshot.
//!
//! A response holds its body until the client has read it all. Were each
//! rendered anew, N scrapers reading slowly would hold N copies; sharing
//! one per snapshot and format keeps that memory at one body (or a few,
//! across snapshots, for as long as a response may take), and renders a
//! snapshot once however often it is scraped.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::render::PrometheusFormat;
use crate::report::snapshot::Snapshot;

/// The last body served in each format (text, OpenMetrics).
#[derive(Default)]
pub(super) struct ServedBodies {
    last: Mutex<[Option<Served>; 2]>,
}

/// A body, and the snapshot it was rendered from (`None`: before the
/// first).
struct Served {
    /// Weak, so that an old snapshot is not kept for it; it keeps the
    /// allocation, so the address cannot become a newer snapshot's.
    snapshot: Option<Weak<Snapshot>>,
    body: Arc<str>,
}

impl ServedBodies {
    /// The body last served in `format` if it was rendered from `latest`,
    /// else `render()`, kept for the next scrape.
    pub(super) fn get_or_render(
        &self,
        latest: Option<&Arc<Snapshot>>,
        format: PrometheusFormat,
        render: impl FnOnce() -> String,
    ) -> Arc<str> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut last[usize::from(format == PrometheusFormat::OpenMetrics)];
        if let Some(served) = slot.as_ref() {
            let same = match (&served.snapshot, latest) {
                (None, None) => true,
                (Some(served), Some(latest)) => std::ptr::eq(served.as_ptr(), Arc::as_ptr(latest)),
                _ => false,
            };
            if same {
                return served.body.clone();
            }
        }
        let body: Arc<str> = render().into();
        *slot = Some(Served {
            snapshot: latest.map(Arc::downgrade),
            body: body.clone(),
        });
        body
    }
}
