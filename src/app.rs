//! Wiring of one running roster: source → membership → published snapshot → DNS. `main` and the
//! tests both start roster through [`serve`].

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::{Config, SourceConfig};
use crate::dns::{Handler, listen};
use crate::membership::{Membership, Published};
use crate::source::file;

/// Why roster could not run. `Startup` errors are the operator's input (exit status 2);
/// the others happen at run time (exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Startup(#[from] file::FileError),
    #[error(transparent)]
    Serve(#[from] listen::ServeError),
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
    tokio::spawn(Membership::new(config.identity).run(receiver, published.clone()));
    tokio::spawn(file::watch(path, initial, events, shutdown.clone()));

    let handler = Handler::new(config.zone.clone(), config.max_udp_payload, published);
    listen::serve(listeners, handler, config.tcp_idle_timeout, shutdown).await?;
    info!("stopped");
    Ok(())
}
