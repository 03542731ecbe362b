//! Sockets: UDP and TCP on every listen address, bound before anything is served so that a bad
//! address fails start-up, and served until shutdown.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::rrl::RateLimit;
use super::{Handler, TcpLimits, tcp, udp};

/// How long TCP connections get at shutdown to finish the query they are answering.
const TCP_DRAIN: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr} ({transport}): {source}")]
    Bind {
        addr: SocketAddr,
        transport: &'static str,
        source: std::io::Error,
    },
    #[error("cannot start the thread serving UDP on {addr}: {source}")]
    Thread {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Bound sockets, ready to serve.
pub struct Listeners {
    /// Each with the address it is bound to.
    udp: Vec<(SocketAddr, UdpSocket)>,
    tcp: Vec<TcpListener>,
    addrs: Vec<SocketAddr>,
}

impl Listeners {
    /// The addresses actually bound (a port of 0 becomes a free port, the same for UDP and TCP).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
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

/// A bound UDP socket, with the receive buffer the kernel granted it.
fn bind_udp(addr: SocketAddr, receive_buffer: usize) -> std::io::Result<(UdpSocket, usize)> {
    let socket = socket(addr, Type::DGRAM)?;
    // Several sockets on one port, one per worker thread; the kernel spreads clients over them.
    socket.set_reuse_port(true)?;
    // Room for bursts: a full receive buffer drops queries.
    let granted = set_receive_buffer(&socket, receive_buffer)?;
    if let Err(e) = omit_path_mtu(&socket, addr.is_ipv6()) {
        warn!(
            %addr,
            error = %e,
            "cannot turn off path MTU discovery on the UDP socket; answers may carry the \
             don't-fragment bit"
        );
    }
    socket.bind(&addr.into())?;
    Ok((socket.into(), granted))
}

/// Asks for a receive buffer of `size` bytes; returns the size granted. SO_RCVBUF is capped at
/// the sysctl net.core.rmem_max without a word, so where roster may (CAP_NET_ADMIN) the size is
/// forced past it, as NSD does.
fn set_receive_buffer(socket: &Socket, size: usize) -> std::io::Result<usize> {
    let value = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid descriptor, and an int option passed with its size.
    let forced = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    } == 0;
    if !forced {
        socket.set_recv_buffer_size(size)?;
    }
    // Linux reports twice the size it grants: the other half is for its own bookkeeping.
    Ok(socket.recv_buffer_size()? / 2)
}

/// Answers go out without the don't-fragment bit, and "fragmentation needed" messages are
/// ignored, as NSD and Knot do: a forged ICMP message then cannot make roster fragment its
/// answers, the opening of fragmentation-based cache poisoning. Answers are at most 1232 bytes
/// by default and fit any path. It also spares the kernel a path-MTU lookup per answer.
fn omit_path_mtu(socket: &impl AsRawFd, ipv6: bool) -> std::io::Result<()> {
    let (level, name, value) = if ipv6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_OMIT,
        )
    } else {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_OMIT,
        )
    };
    // SAFETY: a valid descriptor, and an int option passed with its size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A socket's inode number, which names it in /proc/net/udp.
fn inode(socket: &impl AsRawFd) -> Option<u64> {
    // SAFETY: fstat writes into the zeroed stat buffer it is given.
    unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        (libc::fstat(socket.as_raw_fd(), &mut stat) == 0).then_some(stat.st_ino)
    }
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket(addr, Type::STREAM)?;
    // A restarted roster can bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Binds UDP (`udp_sockets` sockets, each asking for a receive buffer of `receive_buffer`
/// bytes) and TCP on each address. For port 0 the same free port is taken for both.
pub fn bind(
    addrs: &[SocketAddr],
    udp_sockets: usize,
    receive_buffer: usize,
) -> Result<Listeners, ServeError> {
    let mut listeners = Listeners {
        udp: Vec::new(),
        tcp: Vec::new(),
        addrs: Vec::new(),
    };
    // The smallest receive buffer granted: the cap is the same for every socket.
    let mut granted = usize::MAX;
    for &addr in addrs {
        let bind_err = |transport, source| ServeError::Bind {
            addr,
            transport,
            source,
        };
        let mut attempts = 0;
        let (first, tcp) = loop {
            let (udp, size) = bind_udp(addr, receive_buffer).map_err(|e| bind_err("udp", e))?;
            granted = granted.min(size);
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
        let local = first.local_addr().map_err(|e| bind_err("udp", e))?;
        listeners.udp.push((local, first));
        for _ in 1..udp_sockets.max(1) {
            let (socket, size) = bind_udp(local, receive_buffer).map_err(|e| bind_err("udp", e))?;
            granted = granted.min(size);
            listeners.udp.push((local, socket));
        }
        listeners.tcp.push(tcp);
        listeners.addrs.push(local);
    }
    if granted < receive_buffer {
        warn!(
            asked = receive_buffer,
            granted,
            "UDP receive buffers are smaller than dns.udp_receive_buffer: the kernel caps them at \
             the sysctl net.core.rmem_max. Raise it (or give roster CAP_NET_ADMIN), else bursts \
             of queries are dropped sooner; roster_dns_udp_receive_dropped_total counts them"
        );
    }
    Ok(listeners)
}

/// Serves until `shutdown` is cancelled, then lets TCP connections finish the query in flight.
pub async fn serve(
    listeners: Listeners,
    handler: Arc<Handler>,
    tcp_limits: TcpLimits,
    rate_limit: Option<Arc<RateLimit>>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    for addr in &listeners.addrs {
        info!(%addr, "listening for DNS on UDP and TCP");
    }
    let loops = TaskTracker::new();
    let connections = TaskTracker::new();
    // Each UDP socket has a thread of its own, blocked in the socket's receive call when there
    // is nothing to do: no readiness registration, whose bookkeeping the kernel would do for
    // every query and every answer sent.
    let mut udp_sockets = Vec::with_capacity(listeners.udp.len());
    handler
        .metrics
        .set_udp_sockets(listeners.udp.iter().filter_map(|(_, s)| inode(s)).collect());
    for (addr, socket) in listeners.udp {
        let socket = Arc::new(socket);
        udp_sockets.push(socket.clone());
        let (h, r, s) = (handler.clone(), rate_limit.clone(), shutdown.clone());
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("roster-udp".into())
            .spawn(move || {
                udp::run(&socket, h, r, s);
                drop(done);
            })
            .map_err(|source| ServeError::Thread { addr, source })?;
        loops.spawn(async move {
            let _ = finished.await;
        });
    }
    // One connection limit for all listeners: it bounds the process's descriptors and memory.
    let registry = tcp::Registry::new();
    for listener in listeners.tcp {
        let (h, r, s, c) = (
            handler.clone(),
            registry.clone(),
            shutdown.clone(),
            connections.clone(),
        );
        loops.spawn(tcp::accept(listener, h, tcp_limits, r, s, c));
    }
    loops.close();
    shutdown.cancelled().await;
    udp_sockets.iter().for_each(|s| udp::wake(s));
    loops.wait().await;
    connections.close();
    if tokio::time::timeout(TCP_DRAIN, connections.wait())
        .await
        .is_err()
    {
        warn!(
            open = connections.len(),
            "TCP connections still busy at shutdown; closing them"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_mtu_option(socket: &impl AsRawFd, ipv6: bool) -> libc::c_int {
        let (level, name) = if ipv6 {
            (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER)
        } else {
            (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER)
        };
        let mut value: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: an int option read into an int of the given size.
        let r = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        value
    }

    #[tokio::test]
    async fn udp_answers_never_ask_for_path_mtu_discovery() {
        let v4 = bind_udp("127.0.0.1:0".parse().unwrap(), 1 << 16).unwrap().0;
        assert_eq!(path_mtu_option(&v4, false), libc::IP_PMTUDISC_OMIT);
        if let Ok(v6) = bind_udp("[::1]:0".parse().unwrap(), 1 << 16).map(|(s, _)| s) {
            assert_eq!(path_mtu_option(&v6, true), libc::IPV6_PMTUDISC_OMIT);
        }
    }
}
