//! UDP: one loop per socket, receiving and answering in place: no task, no channel and no lock
//! per packet. Several sockets share a port (SO_REUSEPORT) so that the kernel spreads clients
//! over the worker threads.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Handler;
use crate::metrics::Transport;

pub(super) async fn run(socket: UdpSocket, handler: Arc<Handler>, shutdown: CancellationToken) {
    // Large enough for any datagram, so that nothing is silently cut.
    let mut buf = vec![0u8; 65_535];
    let mut out = Vec::with_capacity(4096);
    loop {
        let (n, src) = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(r) => r,
                Err(e) => {
                    debug!(error = %e, "UDP receive failed");
                    continue;
                }
            },
        };
        // An answer to port 0 cannot arrive; such a source is spoofed or broken.
        if src.port() == 0 {
            continue;
        }
        if handler
            .answer(&buf[..n], src, Transport::Udp, &mut out)
            .is_some()
            && let Err(e) = socket.send_to(&out, src).await
        {
            debug!(%src, error = %e, "UDP send failed");
        }
    }
}
