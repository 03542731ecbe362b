//! Sockets: UDP and TCP on every listen address, bound before anything is served so that a bad
//! address fails start-up, and run by hickory's server loop until shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::Server;
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::Handler;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr} ({transport}): {source}")]
    Bind {
        addr: SocketAddr,
        transport: &'static str,
        source: std::io::Error,
    },
    #[error("the DNS server stopped: {0}")]
    Server(String),
}

/// Bound sockets, ready to serve.
pub struct Listeners {
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
}

impl Listeners {
    /// The addresses actually bound (a port of 0 becomes a free port, the same for UDP and TCP).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }
}

fn socket(addr: SocketAddr, kind: Type) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, None)?;
    if addr.is_ipv6() {
        // Lets `[::]:53` and `0.0.0.0:53` be listed side by side.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket(addr, Type::DGRAM)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket(addr, Type::STREAM)?;
    // A restarted roster can bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Binds UDP and TCP on each address. For port 0 the same free port is taken for both.
pub fn bind(addrs: &[SocketAddr]) -> Result<Listeners, ServeError> {
    let mut listeners = Listeners {
        udp: Vec::new(),
        tcp: Vec::new(),
    };
    for &addr in addrs {
        let bind_err = |transport, source| ServeError::Bind {
            addr,
            transport,
            source,
        };
        let mut attempts = 0;
        let (udp, tcp) = loop {
            let udp = bind_udp(addr).map_err(|e| bind_err("udp", e))?;
            let local = udp.local_addr().map_err(|e| bind_err("udp", e))?;
            match bind_tcp(local) {
                Ok(tcp) => break (udp, tcp),
                Err(e) if addr.port() == 0 && attempts < 20 => {
                    attempts += 1;
                    tracing::debug!(%local, error = %e, "TCP port taken; trying another");
                }
                Err(e) => return Err(bind_err("tcp", e)),
            }
        };
        listeners.udp.push(udp);
        listeners.tcp.push(tcp);
    }
    Ok(listeners)
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(
    listeners: Listeners,
    handler: Handler,
    tcp_idle_timeout: Duration,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let addrs = listeners.local_addrs();
    let mut server = Server::new(handler);
    for socket in listeners.udp {
        server.register_socket(socket);
    }
    for listener in listeners.tcp {
        server.register_listener(listener, tcp_idle_timeout, 64);
    }
    for addr in &addrs {
        info!(%addr, "listening for DNS on UDP and TCP");
    }
    let token = server.shutdown_token().clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        token.cancel();
    });
    server
        .block_until_done()
        .await
        .map_err(|e| ServeError::Server(e.to_string()))
}
