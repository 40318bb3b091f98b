//! A histogram series' distribution as the aggregator keeps it: written by
//! the drain, lent to snapshots without a copy.
//!
//! A snapshot takes the live distribution itself, moved into an `Arc`
//! (no bucket is copied), and the series remembers that `Arc`. The next
//! snapshot of a series that has not changed since hands out the same
//! `Arc` again. The first sample after a snapshot takes the distribution
//! back: for nothing if no snapshot holds it any more (the usual case once
//! exporters moved on), by one copy if one still does. So a snapshot costs
//! one small allocation per changed series and none per unchanged one, and
//! a series is copied at most once per snapshot, by the drain, only while
//! someone still reads the previous one.

use std::sync::Arc;

use crate::report::distribution::Distribution;

/// The live distribution of one histogram series.
#[derive(Debug)]
pub(crate) struct LiveDistribution {
    /// Written by `record_n`; an empty placeholder (no allocation) while
    /// `lent`.
    live: Distribution,
    /// The distribution the last snapshot holds.
    published: Option<Arc<Distribution>>,
    /// `live` was moved into `published` and comes back before a write:
    /// nothing was recorded since the last snapshot.
    lent: bool,
}

impl LiveDistribution {
    pub(crate) fn new(bits: u8, resolution: f64) -> Self {
        Self {
            live: Distribution::new(bits, resolution),
            published: None,
            lent: false,
        }
    }

    /// Adds `value` `n` times.
    #[inline]
    pub(crate) fn record_n(&mut self, value: f64, n: u64) {
        // A lent distribution's placeholder has no window: every value
        // takes the slow path, which takes the distribution back first.
        if !self.live.try_record(value, n) {
            self.record_slow(value, n);
        }
    }

    #[cold]
    #[inline(never)]
    fn record_slow(&mut self, value: f64, n: u64) {
        if self.lent {
            self.reclaim();
        }
        self.live.record_n(value, n);
    }

    /// Takes the lent distribution back: without a copy if no snapshot
    /// holds it any more.
    fn reclaim(&mut self) {
        debug_assert!(self.lent && self.published.is_some());
        if let Some(published) = self.published.take() {
            match Arc::try_unwrap(published) {
                Ok(distribution) => self.live = distribution,
                Err(shared) => {
                    self.live = (*shared).clone();
                    self.published = Some(shared);
                }
            }
        }
        // The deprecated HDR view a snapshot may have built goes stale with
        // the first write.
        self.live.forget_legacy();
        self.lent = false;
    }

    /// The distribution as it is now, for a snapshot: the previous
    /// snapshot's `Arc` if nothing changed since, else the live one, lent.
    pub(crate) fn snapshot(&mut self) -> Arc<Distribution> {
        match &self.published {
            Some(published) if self.lent => published.clone(),
            _ => {
                let empty = self.live.empty_like();
                let published = Arc::new(std::mem::replace(&mut self.live, empty));
                self.published = Some(published.clone());
                self.lent = true;
                published
            }
        }
    }

    /// Bytes held: the live distribution and, when it is a separate copy,
    /// the published one (which snapshots and exporters share).
    pub(crate) fn bytes(&self) -> usize {
        let arc_header = 2 * std::mem::size_of::<usize>();
        let published = self
            .published
            .as_ref()
            .map_or(0, |published| published.bytes() + arc_header);
        if self.lent {
            published
        } else {
            self.live.bytes() + published
        }
    }
}
