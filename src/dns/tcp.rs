//! TCP (RFC 7766): a task per connection, queries answered in order (pipelining allowed). A
//! connection is closed after `idle` without a query; at shutdown, a connection waiting for a
//! query closes at once and one in the middle of a query is answered first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::Handler;
use crate::metrics::Transport;

pub(super) async fn accept(
    listener: TcpListener,
    handler: Arc<Handler>,
    idle: Duration,
    shutdown: CancellationToken,
    connections: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, src)) => {
                let _ = stream.set_nodelay(true);
                connections.spawn(connection(
                    stream,
                    src,
                    handler.clone(),
                    idle,
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                // Out of file descriptors, say: wait a little rather than spin.
                warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(
    mut stream: TcpStream,
    src: SocketAddr,
    handler: Arc<Handler>,
    idle: Duration,
    shutdown: CancellationToken,
) {
    let mut query = Vec::new();
    let mut out = Vec::with_capacity(4096);
    let mut framed = Vec::with_capacity(4098);
    loop {
        let mut len = [0u8; 2];
        let waited = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            read = timeout(idle, stream.read_exact(&mut len)) => read,
        };
        if !matches!(waited, Ok(Ok(_))) {
            return; // idle, closed by the client, or broken
        }
        query.resize(u16::from_be_bytes(len) as usize, 0);
        // A query that has begun is read and answered, even during shutdown.
        if !matches!(
            timeout(idle, stream.read_exact(&mut query)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let arrived = std::time::Instant::now();
        if handler
            .answer(&query, src, Transport::Tcp, &mut out)
            .is_none()
        {
            debug!(%src, "unanswerable message on TCP; closing");
            return;
        }
        framed.clear();
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        if !matches!(timeout(idle, stream.write_all(&framed)).await, Ok(Ok(()))) {
            return;
        }
        handler
            .metrics
            .answered(Transport::Tcp, arrived.elapsed(), 1);
    }
}
