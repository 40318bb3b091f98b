//! Prometheus pull endpoint: text exposition format (OpenMetrics when the
//! scraper asks for it) served from the latest snapshot.
//!
//! `export` only keeps the snapshot (an `Arc` swap under a short lock); the
//! text is rendered when a scrape comes, on the server's own thread, once
//! per snapshot and format: scrapes of the same snapshot share that body.
//! No sample is ever stored: memory is one snapshot and the last body
//! served in each format. See `render.rs` for the mapping and the naming
//! rules, `server.rs` for how slow clients are kept from the scrapes.

mod connection;
mod render;
mod served;
mod server;
#[cfg(test)]
mod tests;
mod unit;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard};

pub use render::PrometheusFormat;

use crate::error::{ConfigError, ExportError};
use crate::export::env::{EnvSource, Resource};
use crate::export::exporter::Exporter;
use crate::export::rebucket::DEFAULT_BOUNDARIES;
use crate::export::variance;
use crate::report::snapshot::Snapshot;
use render::RenderOptions;
use served::ServedBodies;
use server::Server;

/// Serves the latest snapshot for Prometheus to scrape, and renders it for
/// users who serve it themselves.
///
/// Clones share the same state: keep one to call [`render`](Self::render)
/// after handing another to the engine.
///
/// ```
/// use hotmetrics::export::Prometheus;
///
/// // Render only: serve `render()` from your own HTTP server.
/// let prometheus = Prometheus::builder().without_server().build().unwrap();
/// let engine = hotmetrics::Engine::builder()
///     .exporter(prometheus.clone())
///     .install()
///     .unwrap();
/// hotmetrics::record!(critical counter: "doc.prometheus.requests", 2);
/// engine.shutdown().unwrap();
/// assert!(prometheus.render().contains("doc_prometheus_requests_total 2"));
/// ```
#[derive(Clone)]
pub struct Prometheus {
    shared: Arc<Shared>,
}

struct Shared {
    latest: Mutex<Option<Arc<Snapshot>>>,
    options: RenderOptions,
    server: Mutex<Option<Server>>,
    addr: Option<SocketAddr>,
    /// Metric names already reported as colliding.
    warned: Mutex<HashSet<String>>,
    /// The last body served in each format.
    served: ServedBodies,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn render(&self, format: PrometheusFormat) -> String {
        let latest = lock(&self.latest).clone();
        self.render_snapshot(latest.as_deref(), format)
    }

    /// The body of a scrape: rendered once per snapshot and format, and
    /// shared by the responses that send it.
    fn serve(&self, format: PrometheusFormat) -> Arc<str> {
        let latest = lock(&self.latest).clone();
        self.served.get_or_render(latest.as_ref(), format, || {
            self.render_snapshot(latest.as_deref(), format)
        })
    }

    fn render_snapshot(&self, latest: Option<&Snapshot>, format: PrometheusFormat) -> String {
        let (text, collisions) = render::render(latest, &self.options, format);
        if !collisions.is_empty() {
            let mut warned = lock(&self.warned);
            for name in collisions {
                if warned.insert(name.clone()) {
                    log::warn!(
                        target: "hotmetrics",
                        "metric {name:?} left out of the Prometheus output: its sanitised name is taken by another metric"
                    );
                }
            }
        }
        text
    }
}

impl fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prometheus")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

impl Prometheus {
    /// A builder.
    pub fn builder() -> PrometheusBuilder {
        PrometheusBuilder::default()
    }

    /// Serves `/metrics` on `OTEL_EXPORTER_PROMETHEUS_HOST`:
    /// `OTEL_EXPORTER_PROMETHEUS_PORT` (default `localhost:9464`, bound as
    /// `127.0.0.1:9464`), with variance series unless
    /// `HOTMETRICS_EXPORT_VARIANCE=false`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a port that does not parse, an address that
    /// cannot be listened on (in use, not local), or a
    /// `HOTMETRICS_EXPORT_VARIANCE` that is not a boolean.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::builder().build()
    }

    /// The address the scrape endpoint listens on (`None` without server).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.addr
    }

    /// The latest snapshot in the text exposition format.
    pub fn render(&self) -> String {
        self.shared.render(PrometheusFormat::Text)
    }

    /// The latest snapshot in `format`.
    pub fn render_as(&self, format: PrometheusFormat) -> String {
        self.shared.render(format)
    }
}

impl Exporter for Prometheus {
    fn export(&mut self, snapshot: &Snapshot) -> Result<(), ExportError> {
        *lock(&self.shared.latest) = Some(Arc::new(snapshot.clone()));
        Ok(())
    }

    /// Stops the scrape endpoint (the engine is gone); `render` still works.
    fn shutdown(&mut self) -> Result<(), ExportError> {
        if let Some(mut server) = lock(&self.shared.server).take() {
            server.stop();
        }
        Ok(())
    }

    fn name(&self) -> &str {
        "prometheus"
    }
}

/// Builds a [`Prometheus`] exporter.
///
/// ```
/// use hotmetrics::export::Prometheus;
///
/// let prometheus = Prometheus::builder()
///     .address("127.0.0.1:0") // a free port; default localhost:9464
///     .bucket_boundaries("http.latency_ms", [1.0, 10.0, 100.0])
///     .build()
///     .expect("a free local port");
/// let addr = prometheus.local_addr().unwrap();
/// println!("scrape http://{addr}/metrics");
/// ```
#[derive(Debug, Default)]
pub struct PrometheusBuilder {
    address: Option<String>,
    without_server: bool,
    boundaries: HashMap<String, Vec<f64>>,
    default_boundaries: Option<Vec<f64>>,
    variance: Option<bool>,
    no_target_info: bool,
    service_name: Option<String>,
    env: EnvSource,
}

impl PrometheusBuilder {
    /// Where to listen, `host:port` (port 0 picks a free one). Default from
    /// `OTEL_EXPORTER_PROMETHEUS_HOST` and `…_PORT`, else `localhost:9464`.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// No scrape endpoint: only [`Prometheus::render`].
    pub fn without_server(mut self) -> Self {
        self.without_server = true;
        self
    }

    /// Bucket boundaries for the histogram `metric` (finite, increasing).
    pub fn bucket_boundaries(
        mut self,
        metric: impl Into<String>,
        boundaries: impl IntoIterator<Item = f64>,
    ) -> Self {
        self.boundaries
            .insert(metric.into(), boundaries.into_iter().collect());
        self
    }

    /// Boundaries of histograms without their own (default:
    /// [`DEFAULT_BOUNDARIES`]).
    pub fn default_bucket_boundaries(mut self, boundaries: impl IntoIterator<Item = f64>) -> Self {
        self.default_boundaries = Some(boundaries.into_iter().collect());
        self
    }

    /// Whether each estimated (sampled) series is exposed with its
    /// cumulative variance estimate, a counter `<name>_variance_total`
    /// (histograms: `<name>_count_variance_total` and
    /// `<name>_sum_variance_total`) with the series' labels. On by
    /// default; unset, `HOTMETRICS_EXPORT_VARIANCE` (`true`/`false`)
    /// decides.
    ///
    /// `sqrt(sum(increase(x_variance_total[5m])))` is the standard error of
    /// `sum(increase(x_total[5m]))`: variances add across instances and
    /// over time. Exact series have none.
    ///
    /// ```
    /// let builder = hotmetrics::export::Prometheus::builder().export_variance(false);
    /// assert!(!builder.without_server().build().unwrap().render().contains("_variance"));
    /// ```
    pub fn export_variance(mut self, on: bool) -> Self {
        self.variance = Some(on);
        self
    }

    /// Now the same as [`export_variance`](Self::export_variance): the
    /// variance, which can be summed, replaced the standard-error gauges.
    #[deprecated(
        note = "standard-error gauges are replaced by variance series, on by default: use `export_variance`"
    )]
    pub fn std_error_gauges(self, on: bool) -> Self {
        self.export_variance(on)
    }

    /// Leaves out `target_info` (the resource: `service.name` and
    /// `OTEL_RESOURCE_ATTRIBUTES`), which is on by default.
    pub fn without_target_info(mut self) -> Self {
        self.no_target_info = true;
        self
    }

    /// `service.name` in `target_info` (wins over `OTEL_SERVICE_NAME`).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Reads `OTEL_*` (and `HOTMETRICS_EXPORT_VARIANCE`) from `vars`
    /// instead of the process environment.
    pub fn env_vars<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.env = EnvSource::from_vars(vars);
        self
    }

    pub(crate) fn env_source(mut self, env: EnvSource) -> Self {
        self.env = env;
        self
    }

    /// Validates, binds the listener and starts the scrape threads.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for boundaries that are not finite and increasing, a
    /// port that does not parse, an address that cannot be listened on, or
    /// a `HOTMETRICS_EXPORT_VARIANCE` that is not a boolean.
    pub fn build(self) -> Result<Prometheus, ConfigError> {
        let default_boundaries = self
            .default_boundaries
            .clone()
            .unwrap_or_else(|| DEFAULT_BOUNDARIES.to_vec());
        let valid = |bounds: &[f64]| {
            bounds.iter().all(|b| b.is_finite()) && bounds.windows(2).all(|w| w[0] < w[1])
        };
        if !valid(&default_boundaries) {
            return Err(ConfigError::new(
                "default_bucket_boundaries",
                format!("{default_boundaries:?}"),
                "finite, strictly increasing boundaries",
            ));
        }
        for (metric, bounds) in &self.boundaries {
            if !valid(bounds) {
                return Err(ConfigError::new(
                    &format!("bucket_boundaries({metric})"),
                    format!("{bounds:?}"),
                    "finite, strictly increasing boundaries",
                ));
            }
        }
        let variance = variance::enabled(self.variance, &self.env)?;
        let target_info = if self.no_target_info {
            Vec::new()
        } else {
            Resource::resolve(&self.env, self.service_name.as_deref(), &[]).attributes
        };
        let listener = if self.without_server {
            None
        } else {
            Some(self.listen()?)
        };
        let shared = Arc::new(Shared {
            latest: Mutex::new(None),
            options: RenderOptions {
                boundaries: self.boundaries,
                default_boundaries,
                variance,
                target_info,
            },
            server: Mutex::new(None),
            addr: listener.as_ref().and_then(|(l, _)| l.local_addr().ok()),
            warned: Mutex::new(HashSet::new()),
            served: ServedBodies::default(),
        });
        if let Some((listener, setting)) = listener {
            // The server holds a weak reference: dropping the last
            // `Prometheus` stops it.
            let weak = Arc::downgrade(&shared);
            let renderer = Arc::new(move |format| {
                weak.upgrade()
                    .map_or_else(|| Arc::from(""), |shared| shared.serve(format))
            });
            let server = Server::spawn(listener, renderer).map_err(|error| {
                ConfigError::new(
                    &setting,
                    "",
                    &format!("the scrape threads (one could not start: {error})"),
                )
            })?;
            log::info!(target: "hotmetrics", "Prometheus metrics served at http://{}/metrics", server.addr());
            *lock(&shared.server) = Some(server);
        }
        Ok(Prometheus { shared })
    }

    /// Binds the listener; returns it with the setting that named it.
    fn listen(&self) -> Result<(TcpListener, String), ConfigError> {
        let (setting, address) = match &self.address {
            Some(address) => ("address".to_string(), address.clone()),
            None => {
                let host = self
                    .env
                    .get("OTEL_EXPORTER_PROMETHEUS_HOST")
                    .unwrap_or_else(|| "localhost".into());
                let port = match self.env.get("OTEL_EXPORTER_PROMETHEUS_PORT") {
                    None => 9464,
                    Some(raw) => raw.parse::<u16>().map_err(|_| {
                        ConfigError::new("OTEL_EXPORTER_PROMETHEUS_PORT", &raw, "a port, 0–65535")
                    })?,
                };
                let host = if host.eq_ignore_ascii_case("localhost") {
                    // One predictable socket: `localhost` may resolve to ::1
                    // first, which a scraper of 127.0.0.1 would not reach.
                    "127.0.0.1".to_string()
                } else if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]")
                } else {
                    host
                };
                (
                    "OTEL_EXPORTER_PROMETHEUS_HOST/PORT".to_string(),
                    format!("{host}:{port}"),
                )
            }
        };
        TcpListener::bind(address.as_str())
            .map(|listener| (listener, setting.clone()))
            .map_err(|error| {
                ConfigError::new(
                    &setting,
                    &address,
                    &format!("an address this process can listen on ({error})"),
                )
            })
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let server = self
            .server
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(mut server) = server.take() {
            server.stop();
        }
    }
}
