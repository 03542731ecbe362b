//! Wiring of one running roster: source → membership → published snapshot → DNS. `main` and the
//! tests both start roster through [`serve`].

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::{Config, SourceConfig};
use crate::dns::{Handler, listen};
use crate::membership::{Membership, Published};
use crate::source::{Scope, file};

/// Why roster could not run. `Startup` errors are the operator's input (exit status 2);
/// the others happen at run time (exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Startup(#[from] file::FileError),
    #[error(transparent)]
    Serve(#[from] listen::ServeError),
    /// A task that must run as long as the server stopped early: serving on would answer from a
    /// zone that no longer follows the pods.
    #[error("the {0} stopped unexpectedly; exiting rather than serve a frozen zone")]
    TaskStopped(&'static str),
}

impl RunError {
    pub fn is_startup(&self) -> bool {
        matches!(self, RunError::Startup(_))
    }
}

/// Runs roster until `shutdown` is cancelled.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let SourceConfig::File { path } = &config.source;
    let path = path.clone();
    let initial = {
        let p = path.clone();
        tokio::task::spawn_blocking(move || file::load(&p))
            .await
            .expect("loader panicked")?
    };
    info!(path = %path.display(), pods = initial.pods.len(), "pods file loaded");

    let listeners = listen::bind(&config.listen)?;
    let published = Arc::new(Published::empty());
    let (events, receiver) = mpsc::channel(4096);
    let mut membership = tokio::spawn(
        Membership::new(config.identity, [Scope::Cluster]).run(receiver, published.clone()),
    );
    let mut watcher = tokio::spawn(file::watch(path, initial, events, shutdown.clone()));

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
                    break Err(RunError::TaskStopped("pods file watcher"));
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
