//! Wiring of one running roster: source → membership → published snapshot → DNS, with the admin
//! listener beside them. `main` and the tests both start roster through [`serve`].
//!
//! Shutdown (the `shutdown` token): readiness drops at once; while an admin listener exists,
//! DNS keeps answering for [`DRAIN`] so that a Kubernetes Service stops sending traffic first;
//! then the listeners close, TCP connections finish the query in flight, and `serve` returns.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::admin::{self, Admin};
use crate::config::{Config, SourceConfig};
use crate::dns::{Handler, listen};
use crate::membership::{Membership, Published};
use crate::metrics::Metrics;
use crate::source::{Health, Received, Scope, file, kubernetes};

/// Time between readiness dropping and the DNS listeners closing, when readiness is probed.
pub const DRAIN: Duration = Duration::from_secs(1);

/// Why roster could not run. Errors in what the operator gave it are exit status 2
/// ([`RunError::is_startup`]); the others happen at run time (exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    File(#[from] file::FileError),
    #[error(transparent)]
    Kubernetes(#[from] kubernetes::KubeError),
    #[error(transparent)]
    Serve(#[from] listen::ServeError),
    #[error("cannot listen on {addr} (admin): {source}")]
    Admin {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// A task that must run as long as the server stopped early: serving on would answer from a
    /// zone that no longer follows the pods.
    #[error("the {0} stopped unexpectedly; exiting rather than serve a frozen zone")]
    TaskStopped(&'static str),
}

impl RunError {
    pub fn is_startup(&self) -> bool {
        matches!(self, RunError::File(_) | RunError::Kubernetes(_))
    }
}

type Start = Box<dyn FnOnce(mpsc::Sender<Received>) -> JoinHandle<()> + Send>;

/// A source, ready to run: its lists' scopes and the task that feeds events.
struct Source {
    scopes: Vec<Scope>,
    name: &'static str,
    start: Start,
}

/// Prepares the configured source: reads the pods file, or builds the Kubernetes client. Fails
/// on the operator's input; an unreachable API server is not a failure (roster retries).
async fn prepare(
    config: &Config,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Result<Source, RunError> {
    match &config.source {
        SourceConfig::File { path } => {
            let path = path.clone();
            let p = path.clone();
            let initial = tokio::task::spawn_blocking(move || file::load(&p))
                .await
                .expect("loader panicked")?;
            info!(path = %path.display(), pods = initial.pods.len(), "pods file loaded");
            Ok(Source {
                scopes: vec![Scope::Cluster],
                name: "pods file watcher",
                start: Box::new(move |events| {
                    tokio::spawn(file::watch(path, initial, events, metrics, stop))
                }),
            })
        }
        SourceConfig::Kubernetes(settings) => {
            let client = kubernetes::client(settings).await?;
            let scopes = settings.scopes();
            let scope_names: Vec<String> = scopes.iter().map(ToString::to_string).collect();
            info!(
                scopes = ?scope_names,
                label_selector = settings.label_selector.as_deref().unwrap_or(""),
                "watching pods through the Kubernetes API"
            );
            let settings = settings.clone();
            Ok(Source {
                scopes,
                name: "Kubernetes watcher",
                start: Box::new(move |events| {
                    tokio::spawn(kubernetes::watch(client, settings, events, metrics, stop))
                }),
            })
        }
    }
}

/// Checks what `prepare` checks, without serving (`roster check-config`). Returns a summary.
pub async fn check(config: &Config) -> Result<String, RunError> {
    match &config.source {
        SourceConfig::File { path } => {
            let loaded = file::load(path)?;
            Ok(format!("{} pods in {}", loaded.pods.len(), path.display()))
        }
        SourceConfig::Kubernetes(settings) => {
            kubernetes::client(settings).await?;
            Ok("Kubernetes credentials found (the API server is not contacted)".into())
        }
    }
}

/// Runs roster until `shutdown` is cancelled.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new(Arc::new(Health::default())));
    // Everything but readiness stops on `stop`, which follows `shutdown` after the drain.
    let stop = CancellationToken::new();
    let source = prepare(&config, metrics.clone(), stop.clone()).await?;
    let listeners = listen::bind(&config.listen, config.workers)?;
    let admin_listener = match config.admin_listen {
        Some(addr) => Some(admin::bind(addr).map_err(|source| RunError::Admin { addr, source })?),
        None => None,
    };

    let published = Arc::new(Published::empty());
    let (events, receiver) = mpsc::channel(4096);
    let membership = Membership::new(config.identity, source.scopes).with_metrics(metrics.clone());
    let mut membership = tokio::spawn(membership.run(receiver, published.clone()));
    let mut watcher = (source.start)(events);

    let state = Arc::new(Admin::new(published.clone(), metrics.clone()));
    let drain = if admin_listener.is_some() {
        DRAIN
    } else {
        Duration::ZERO
    };
    if let Some(listener) = admin_listener {
        tokio::spawn(admin::serve(listener, state.clone(), stop.clone()));
    }
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            state.stopping();
            if !drain.is_zero() {
                info!(
                    seconds = drain.as_secs_f64(),
                    "not ready; answering a little longer before closing"
                );
                tokio::time::sleep(drain).await;
            }
            stop.cancel();
        });
    }

    let handler = Arc::new(Handler::new(
        config.zone.clone(),
        config.max_udp_payload,
        published,
        metrics,
    ));
    let server = listen::serve(listeners, handler, config.tcp_idle_timeout, stop.clone());
    tokio::pin!(server);
    let (mut membership_done, mut watcher_done) = (false, false);
    // The background tasks end by themselves at shutdown; before it, their end is a failure.
    let result = loop {
        tokio::select! {
            r = &mut server => break r.map_err(RunError::from),
            _ = &mut membership, if !membership_done => {
                membership_done = true;
                if !stop.is_cancelled() {
                    break Err(RunError::TaskStopped("membership task"));
                }
            }
            _ = &mut watcher, if !watcher_done => {
                watcher_done = true;
                if !stop.is_cancelled() {
                    break Err(RunError::TaskStopped(source.name));
                }
            }
        }
    };
    stop.cancel();
    if result.is_ok() {
        info!("stopped");
    }
    result
}
