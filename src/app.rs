//! Wiring of one running roster: source → membership → published snapshot → DNS. `main` and the
//! tests both start roster through [`serve`].

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::{Config, SourceConfig};
use crate::dns::{Handler, listen};
use crate::membership::{Membership, Published};
use crate::source::{Health, PodEvent, Scope, file, kubernetes};

/// Why roster could not run. `Startup` errors are the operator's input (exit status 2);
/// the others happen at run time (exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    File(#[from] file::FileError),
    #[error(transparent)]
    Kubernetes(#[from] kubernetes::KubeError),
    #[error(transparent)]
    Serve(#[from] listen::ServeError),
    /// A task that must run as long as the server stopped early: serving on would answer from a
    /// zone that no longer follows the pods.
    #[error("the {0} stopped unexpectedly; exiting rather than serve a frozen zone")]
    TaskStopped(&'static str),
}

impl RunError {
    /// Errors in what the operator gave roster (exit status 2), as opposed to run-time failures.
    pub fn is_startup(&self) -> bool {
        matches!(self, RunError::File(_) | RunError::Kubernetes(_))
    }
}

/// A source, ready to run: its lists' scopes and the task that feeds events.
type Start = Box<dyn FnOnce(mpsc::Sender<PodEvent>) -> JoinHandle<()> + Send>;

struct Source {
    scopes: Vec<Scope>,
    name: &'static str,
    start: Start,
}

/// Prepares the configured source: reads the pods file, or builds the Kubernetes client. Fails
/// on the operator's input; an unreachable API server is not a failure (roster retries).
async fn prepare(
    config: &Config,
    health: Arc<Health>,
    shutdown: CancellationToken,
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
                    tokio::spawn(file::watch(path, initial, events, health, shutdown))
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
                    tokio::spawn(kubernetes::watch(
                        client, settings, events, health, shutdown,
                    ))
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
    let health = Arc::new(Health::default());
    let source = prepare(&config, health, shutdown.clone()).await?;
    let listeners = listen::bind(&config.listen)?;
    let published = Arc::new(Published::empty());
    let (events, receiver) = mpsc::channel(4096);
    let mut membership = tokio::spawn(
        Membership::new(config.identity, source.scopes).run(receiver, published.clone()),
    );
    let mut watcher = (source.start)(events);

    let handler = Handler::new(config.zone.clone(), config.max_udp_payload, published);
    let stop = shutdown.clone();
    let server = listen::serve(listeners, handler, config.tcp_idle_timeout, shutdown);
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
