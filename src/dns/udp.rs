//! UDP: a thread per socket, blocked in `recvmmsg` until queries arrive, taking up to [`BATCH`]
//! datagrams at once, answering each in place into a reused buffer, and sending the answers with
//! one `sendmmsg`: no task, channel, lock or allocation per packet, and no readiness
//! registration (epoll), whose bookkeeping the kernel would do for every query received and
//! every answer sent. Several sockets share a port (SO_REUSEPORT), as many per address as
//! workers, so that the kernel spreads clients over the threads. A busy socket, once emptied, is
//! left alone for [`PAUSE`] before the thread waits on it again.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::rrl::{self, RateLimit, Verdict};
use super::{Handler, OncePerMinute};
use crate::metrics::{Metrics, Transport, Unsent};

/// Datagrams per system call.
const BATCH: usize = 32;
/// A socket that held at least this many queries between two times it was found empty (a receive
/// taking less than a full batch) is busy.
const BUSY: usize = BATCH / 2;
/// How long the thread of a busy socket pauses, once it has emptied it, before waiting on it
/// again. Waiting means being woken by the next query, and that wake-up is paid for by the client
/// sending it (on loopback, by its core); a busy socket refills within microseconds, so after a
/// pause the next receive finds a batch and nobody was woken. Measured with `compare.py`'s UDP
/// load at 5,000 members: 5-10% less CPU per query (and, when the loop still waited through
/// epoll, 7% more queries per second); no change where the core is saturated (100,000 members
/// with EDNS), since a saturated socket is never found empty. A quiet socket never pauses, so a
/// lone query is answered as soon as it arrives; a query arriving during a pause waits for its
/// end, which the kernel may put off by the thread's timer slack (50 µs by default): about 0.1
/// ms at most.
const PAUSE: Duration = Duration::from_micros(50);
/// Largest query read; a longer datagram is dropped as malformed (a DNS query is far smaller).
const DATAGRAM: usize = 4096;

/// The buffers of one socket's loop, allocated once.
struct Batch {
    input: Vec<u8>,
    addrs: [libc::sockaddr_storage; BATCH],
    iov: [libc::iovec; BATCH],
    headers: [libc::mmsghdr; BATCH],
    outputs: Vec<Vec<u8>>,
    /// For each answer to send: (index into `outputs`, index into `addrs`).
    replies: Vec<usize>,
    send_iov: [libc::iovec; BATCH],
    send_headers: [libc::mmsghdr; BATCH],
}

// SAFETY: the raw pointers in the headers point only into the same boxed `Batch`, are set again
// before every system call, and are never used from two threads at once.
unsafe impl Send for Batch {}

impl Batch {
    fn new() -> Box<Self> {
        Box::new(Batch {
            input: vec![0u8; BATCH * DATAGRAM],
            // SAFETY: plain C structures, for which all-zero bytes are a valid value; the
            // pointers in them are set before every use.
            addrs: unsafe { zeroed() },
            iov: unsafe { zeroed() },
            headers: unsafe { zeroed() },
            outputs: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
            replies: Vec::with_capacity(BATCH),
            send_iov: unsafe { zeroed() },
            send_headers: unsafe { zeroed() },
        })
    }

    /// Points the receive headers at the input buffers and address slots.
    fn arm_receive(&mut self) {
        for i in 0..BATCH {
            self.iov[i] = libc::iovec {
                iov_base: self.input[i * DATAGRAM..].as_mut_ptr().cast(),
                iov_len: DATAGRAM,
            };
            let h = &mut self.headers[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.headers[i].msg_len = 0;
        }
    }

    /// Points the send headers at the answers in `replies`.
    fn arm_send(&mut self) {
        for (j, &i) in self.replies.iter().enumerate() {
            self.send_iov[j] = libc::iovec {
                iov_base: self.outputs[i].as_mut_ptr().cast(),
                iov_len: self.outputs[i].len(),
            };
            let h = &mut self.send_headers[j].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = self.headers[i].msg_hdr.msg_namelen;
            h.msg_iov = &mut self.send_iov[j];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.send_headers[j].msg_len = 0;
        }
    }
}

fn source(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match addr.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET; the storage is large enough.
            let a: &libc::sockaddr_in = unsafe { &*(addr as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a: &libc::sockaddr_in6 =
                unsafe { &*(addr as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// How long a send waits for room in the socket's buffer before the rest of the batch is dropped.
const SEND_WAIT: Duration = Duration::from_millis(100);

/// How long the thread rests after a receive error, so that one that persists cannot keep a core
/// busy; queries wait in the socket's buffer meanwhile.
const RECEIVE_RETRY: Duration = Duration::from_millis(10);

/// Serves one socket on the calling thread until `shutdown` is cancelled and [`wake`] is called.
pub(super) fn run(
    socket: &UdpSocket,
    handler: Arc<Handler>,
    rate_limit: Option<Arc<RateLimit>>,
    shutdown: CancellationToken,
) {
    if let Err(e) = socket
        .set_nonblocking(false)
        .and_then(|()| socket.set_write_timeout(Some(SEND_WAIT)))
    {
        warn!(error = %e, "cannot make the UDP socket blocking; not serving it");
        return;
    }
    let fd = socket.as_raw_fd();
    let mut batch = Batch::new();
    // Queries received since the socket was last found empty.
    let mut served = 0;
    while !shutdown.is_cancelled() {
        batch.arm_receive();
        // SAFETY: the headers point into `batch`, which outlives the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                batch.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) {
                static LOGGED: OncePerMinute = OncePerMinute::new();
                if LOGGED.allow() {
                    warn!(error = %e, "UDP receive failed; retrying (logged at most once a minute)");
                }
                std::thread::sleep(RECEIVE_RETRY);
            }
            continue;
        }
        let arrived = std::time::Instant::now();
        // No datagram (n = 0) only after `wake`: the loop then ends.
        let n = n as usize;
        served += n;
        batch.replies.clear();
        for i in 0..n {
            let header = &batch.headers[i];
            if header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                handler.metrics.malformed(Transport::Udp);
                continue;
            }
            // An answer to port 0 cannot arrive; such a source is spoofed or broken.
            let Some(src) = source(&batch.addrs[i]).filter(|s| s.port() != 0) else {
                continue;
            };
            let verdict = rate_limit
                .as_ref()
                .map_or(Verdict::Send, |r| r.check(src.ip()));
            if verdict == Verdict::Drop {
                handler.metrics.rate_limited(verdict);
                continue;
            }
            let len = header.msg_len as usize;
            let packet = &batch.input[i * DATAGRAM..i * DATAGRAM + len];
            let out = &mut batch.outputs[i];
            if handler.answer(packet, src, Transport::Udp, out).is_some() {
                if verdict == Verdict::Slip {
                    rrl::slip(out);
                    handler.metrics.rate_limited(verdict);
                }
                batch.replies.push(i);
            }
        }
        let sent = send(fd, &mut batch, &handler.metrics);
        // One clock reading per batch: every answer in it was sent by now.
        handler
            .metrics
            .answered(Transport::Udp, arrived.elapsed(), sent as u64);
        // Fewer than a full batch: the socket was empty when they were taken.
        if n < BATCH {
            if served >= BUSY {
                std::thread::sleep(PAUSE);
            }
            served = 0;
        }
    }
}

/// Sends every answer of the batch, waiting for room when the socket's buffer is full, and
/// skips an answer the kernel refuses (say, to an unreachable address) or cannot take within
/// [`SEND_WAIT`]. Answers not sent are counted and logged (at most once a minute); returns how
/// many were sent.
fn send(fd: libc::c_int, batch: &mut Batch, metrics: &Metrics) -> usize {
    batch.arm_send();
    let count = batch.replies.len();
    // The next answer to hand to the kernel, and how many it refused.
    let mut next = 0;
    let mut refused = 0;
    while next < count {
        // SAFETY: the headers point into `batch`, which outlives the call.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                batch.send_headers[next..].as_mut_ptr(),
                (count - next) as libc::c_uint,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    let dropped = (count - next) as u64;
                    metrics.unsent(Unsent::BufferFull, dropped);
                    if log_unsent(Unsent::BufferFull) {
                        warn!(
                            dropped,
                            waited_ms = SEND_WAIT.as_millis() as u64,
                            "UDP answers dropped: the socket's send buffer stayed full (the \
                             network or the clients take answers more slowly than they ask); \
                             roster_dns_unsent_total counts them (logged at most once a minute)"
                        );
                    }
                    return next - refused;
                }
                _ => {
                    metrics.unsent(Unsent::Refused, 1);
                    refused += 1;
                    if log_unsent(Unsent::Refused) {
                        warn!(
                            error = %e,
                            "UDP answer refused by the kernel; roster_dns_unsent_total counts \
                             such answers (logged at most once a minute)"
                        );
                    }
                    next += 1;
                }
            }
        } else {
            next += (n as usize).max(1);
        }
    }
    count - refused
}

/// Whether an answer not sent for `reason` should be logged now: once a minute per reason for
/// the whole process.
fn log_unsent(reason: Unsent) -> bool {
    static LOGGED: [OncePerMinute; 2] = [OncePerMinute::new(), OncePerMinute::new()];
    LOGGED[reason as usize].allow()
}

/// Wakes the thread serving `socket` once `shutdown` is cancelled: it is blocked in its receive
/// call, which returns at once, now and from then on, when the socket is shut for reading. (An
/// unconnected UDP socket reports ENOTCONN for this, yet is shut and its waiters woken.) Waking
/// the thread this way spares it a timeout, and an idle server its wake-ups.
pub(super) fn wake(socket: &UdpSocket) {
    // SAFETY: a plain call on a descriptor `socket` owns and keeps open.
    unsafe {
        libc::shutdown(socket.as_raw_fd(), libc::SHUT_RD);
    }
}
