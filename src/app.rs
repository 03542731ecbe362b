//! Wiring of one running roster: source → membership → published snapshot → DNS, with the admin
//! listener beside them. `main` and the tests both start roster through [`serve`].
//!
//! Shutdown (the `shutdown` token): readiness drops at once; while an admin listener exists,
//! DNS keeps answering for [`DRAIN`] so that a Kubernetes Service stops sending traffic first;
//! then the listeners close, TCP connections finish the query in flight, and `serve` returns.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin::{self, Admin};
use crate::config::{Config, Nsid, SourceConfig};
use crate::dns::rrl::RateLimit;
use crate::dns::{Handler, MAX_NSID, listen};
use crate::membership::{Membership, Published};
use crate::metrics::Metrics;
use crate::source::{Health, ReadAgain, Received, Scope, file, kubernetes};

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
    #[error("cannot start the pod pipeline thread: {0}")]
    Pipeline(String),
}

impl RunError {
    pub fn is_startup(&self) -> bool {
        matches!(self, RunError::File(_) | RunError::Kubernetes(_))
    }
}

type Start = Box<dyn FnOnce(mpsc::Sender<Received>) -> JoinHandle<()> + Send>;

/// A source, ready to run: the task that feeds events.
struct Source {
    name: &'static str,
    start: Start,
}

/// The scopes the source lists pods in.
fn scopes(source: &SourceConfig) -> Vec<Scope> {
    match source {
        SourceConfig::File { .. } => vec![Scope::Cluster],
        SourceConfig::Kubernetes(settings) => settings.scopes(),
    }
}

/// Prepares the configured source: reads the pods file (its pods go to `events` as they are
/// read), or builds the Kubernetes client. Fails on the operator's input; an unreachable API
/// server is not a failure (roster retries). The source reads its pods again at each change of
/// `reread`.
async fn prepare(
    config: &Config,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    reread: ReadAgain,
    events: &mpsc::Sender<Received>,
) -> Result<Source, RunError> {
    match &config.source {
        SourceConfig::File { path, selection } => {
            let (path, selection) = (path.clone(), selection.clone());
            let first = file::load_into(path.clone(), selection.clone(), events).await?;
            info!(path = %path.display(), pods = first.pods(), "pods file loaded");
            Ok(Source {
                name: "pods file watcher",
                start: Box::new(move |events| {
                    let watch = file::Watch {
                        path,
                        selection,
                        reread,
                    };
                    tokio::spawn(file::watch(watch, first, events, metrics, stop))
                }),
            })
        }
        SourceConfig::Kubernetes(settings) => {
            let client = kubernetes::client(settings, &metrics).await?;
            let scope_names: Vec<String> =
                settings.scopes().iter().map(ToString::to_string).collect();
            info!(
                scopes = ?scope_names,
                label_selector = settings.selection.labels.as_ref().map_or("", |s| s.as_str()),
                "watching pods through the Kubernetes API"
            );
            let settings = settings.clone();
            Ok(Source {
                name: "Kubernetes watcher",
                start: Box::new(move |events| {
                    tokio::spawn(kubernetes::watch(
                        client, settings, events, metrics, stop, reread,
                    ))
                }),
            })
        }
    }
}

/// Checks what `prepare` checks, without serving (`roster check-config`). Returns a summary.
pub async fn check(config: &Config) -> Result<String, RunError> {
    match &config.source {
        SourceConfig::File { path, selection } => {
            let loaded = file::load(path, selection, |_| {})?;
            Ok(format!("{} pods in {}", loaded.pods(), path.display()))
        }
        SourceConfig::Kubernetes(settings) => {
            let metrics = Arc::new(Metrics::new(Arc::default()));
            kubernetes::client(settings, &metrics).await?;
            Ok("Kubernetes credentials found (the API server is not contacted)".into())
        }
    }
}

/// Runs roster until `shutdown` is cancelled. Each change of `reread` (SIGHUP) makes the source
/// read its pods again: the file at once, or a new list from the API server.
pub async fn serve(
    config: Config,
    shutdown: CancellationToken,
    reread: ReadAgain,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new(Arc::new(Health::default())));
    // Everything but readiness stops on `stop`, which follows `shutdown` after the drain.
    let stop = CancellationToken::new();
    let published = Arc::new(Published::empty());
    let start = Pipeline::start(
        &config,
        metrics.clone(),
        published.clone(),
        stop.clone(),
        reread,
    );
    let mut pipeline = tokio::select! {
        pipeline = start => pipeline?,
        // Nothing is served before the source's first version, so there is nothing to drain: a
        // large pods file or a hung filesystem must not hold the exit. The pipeline's thread
        // is left to the process's end.
        () = shutdown.cancelled() => {
            info!("stopped before serving: the source was still being prepared");
            return Ok(());
        }
    };
    let bound = listen::bind(&config.listen, config.workers, config.udp_receive_buffer)
        .map_err(RunError::from)
        .and_then(|listeners| match config.admin_listen {
            Some(addr) => admin::bind(addr)
                .map(|admin| (listeners, Some(admin)))
                .map_err(|source| RunError::Admin { addr, source }),
            None => Ok((listeners, None)),
        });
    let (listeners, admin_listener) = match bound {
        Ok(bound) => bound,
        Err(e) => {
            stop.cancel();
            pipeline.join().await;
            return Err(e);
        }
    };

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

    let nsid = nsid(&config.nsid);
    if let Some(id) = &nsid {
        info!(nsid = %String::from_utf8_lossy(id), "answering NSID queries");
    }
    let handler = Arc::new(
        Handler::new(
            config.zone.clone(),
            config.max_udp_payload,
            published,
            metrics,
        )
        .with_nsid(nsid),
    );
    let rate_limit = RateLimit::new(
        config.rate_limit,
        config.rate_limit_slip,
        config.rate_limit_exempt.clone(),
    )
    .map(Arc::new);
    let server = listen::serve(listeners, handler, config.tcp, rate_limit, stop.clone());
    tokio::pin!(server);
    let mut pipeline_done = false;
    // The pipeline ends by itself at shutdown; before it, its end is a failure.
    let result = loop {
        tokio::select! {
            r = &mut server => break r.map_err(RunError::from),
            ended = &mut pipeline.ended, if !pipeline_done => {
                pipeline_done = true;
                if !stop.is_cancelled() {
                    break Err(RunError::TaskStopped(ended.unwrap_or("pod pipeline")));
                }
            }
        }
    };
    stop.cancel();
    pipeline.join().await;
    if result.is_ok() {
        info!("stopped");
    }
    result
}

/// The identifier sent to NSID queries: the configured text, or the host's name.
fn nsid(nsid: &Nsid) -> Option<Box<[u8]>> {
    match nsid {
        Nsid::Off => None,
        Nsid::Text(text) => Some(text.as_bytes().into()),
        Nsid::Hostname => {
            let mut name = [0u8; 256];
            // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
            let r = unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) };
            if r != 0 {
                warn!(
                    error = %std::io::Error::last_os_error(),
                    "dns.nsid = true, but the host's name cannot be read; NSID queries go unanswered"
                );
                return None;
            }
            let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            if !(1..=MAX_NSID).contains(&len) {
                warn!(
                    length = len,
                    "dns.nsid = true, but the host's name is empty or longer than {MAX_NSID} \
                     bytes; NSID queries go unanswered"
                );
                return None;
            }
            Some(name[..len].into())
        }
    }
}

/// The pod pipeline (source → membership → published snapshot) on a thread and runtime of its
/// own. DNS load then never holds pod events back, nor does a 100,000-pod list hold answers
/// back: the kernel shares the CPU between the two instead of tokio's cooperative scheduling,
/// in which either can keep the other waiting for milliseconds.
struct Pipeline {
    thread: Option<std::thread::JoinHandle<()>>,
    /// The name of the task that ended first.
    ended: oneshot::Receiver<&'static str>,
    /// Stops the pipeline when `serve` ends, however it ends.
    stop: CancellationToken,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Pipeline {
    /// Prepares the source on the pipeline's thread (the Kubernetes client belongs to the
    /// runtime it is made on) and starts it; fails as `prepare` does.
    async fn start(
        config: &Config,
        metrics: Arc<Metrics>,
        published: Arc<Published>,
        stop: CancellationToken,
        reread: ReadAgain,
    ) -> Result<Pipeline, RunError> {
        let (prepared, prepared_rx) = oneshot::channel();
        let (ended_tx, ended) = oneshot::channel();
        let config = config.clone();
        let thread_stop = stop.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("roster-pods")
            .build()
            .map_err(|e| RunError::Pipeline(e.to_string()))?;
        let thread = std::thread::Builder::new()
            .name("roster-pods".into())
            .spawn(move || {
                let stop = thread_stop;
                runtime.block_on(async move {
                    // Membership runs while the source prepares: a pods file's first version
                    // reaches it pod by pod as it is read.
                    let (events, receiver) = mpsc::channel(4096);
                    let membership = Membership::new(config.identity, scopes(&config.source))
                        .with_metrics(metrics.clone());
                    let membership = tokio::spawn(membership.run(receiver, published));
                    let prepared_source =
                        prepare(&config, metrics, stop.clone(), reread, &events).await;
                    let source = match prepared_source {
                        Ok(source) => {
                            let _ = prepared.send(Ok(()));
                            source
                        }
                        Err(e) => {
                            let _ = prepared.send(Err(e));
                            return;
                        }
                    };
                    let watcher = (source.start)(events);
                    let first = tokio::select! {
                        _ = membership => "membership task",
                        _ = watcher => source.name,
                    };
                    let _ = ended_tx.send(first);
                });
            })
            .map_err(|e| RunError::Pipeline(e.to_string()))?;
        let mut pipeline = Pipeline {
            thread: Some(thread),
            ended,
            stop,
        };
        match prepared_rx.await {
            Ok(Ok(())) => Ok(pipeline),
            Ok(Err(e)) => {
                pipeline.join().await;
                Err(e)
            }
            Err(_) => {
                pipeline.join().await;
                Err(RunError::TaskStopped("pod pipeline"))
            }
        }
    }

    /// Waits for the thread to end (after `stop`), at most a second: a source stuck in a
    /// system call must not hold up the exit.
    async fn join(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let joined = tokio::task::spawn_blocking(move || thread.join());
        let _ = tokio::time::timeout(Duration::from_secs(1), joined).await;
    }
}
