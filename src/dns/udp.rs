//! UDP: one loop per socket, receiving up to [`BATCH`] datagrams with one `recvmmsg`, answering
//! each in place into a reused buffer, and sending the answers with one `sendmmsg`: no task,
//! channel, lock or allocation per packet. Several sockets share a port (SO_REUSEPORT), one per
//! worker thread, so that the kernel spreads clients over the threads. A busy socket, once
//! emptied, is left alone for [`PAUSE`] before the loop waits on it again.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Handler;
use super::rrl::{self, RateLimit, Verdict};
use crate::metrics::Transport;

/// Datagrams per system call.
const BATCH: usize = 32;
/// A socket that held at least this many queries between two times it was found empty is busy.
const BUSY: usize = BATCH / 2;
/// How long the loop of a busy socket pauses, once it has emptied it, before waiting on it again.
/// Waiting means being woken by the next query, and that wake-up is paid for by the client
/// sending it (on loopback, by its core); a busy socket refills within microseconds, so after a
/// pause the next receive finds a batch and nobody was woken. Measured with `compare.py`'s UDP
/// load at 5,000 members: 7% more queries per second and 12% more per CPU-second; no change
/// where the core is saturated (100,000 members with EDNS), since a saturated socket is never
/// found empty. A quiet socket never pauses, so a lone query is answered as soon as it arrives;
/// a query arriving during a pause waits for its end, which the kernel may put off by the
/// thread's timer slack (50 µs by default): about 0.1 ms at most.
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

pub(super) async fn run(
    socket: UdpSocket,
    handler: Arc<Handler>,
    rate_limit: Option<Arc<RateLimit>>,
    shutdown: CancellationToken,
) {
    let fd = socket.as_raw_fd();
    let mut batch = Batch::new();
    // Queries received since the socket was last found empty.
    let mut served = 0;
    loop {
        // Readiness also spends tokio's cooperative budget, so a busy socket still lets the
        // other tasks of its thread (membership updates, TCP) run.
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            ready = socket.readable() => if let Err(e) = ready {
                debug!(error = %e, "UDP socket failed");
                return;
            },
        }
        batch.arm_receive();
        let arrived = std::time::Instant::now();
        let received = socket.try_io(Interest::READABLE, || {
            // SAFETY: the headers point into `batch`, which outlives the call.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    batch.headers.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        let n = match received {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if served >= BUSY {
                    // Blocks this worker's other tasks no longer than answering a batch does.
                    std::thread::sleep(PAUSE);
                }
                served = 0;
                continue;
            }
            Err(e) => {
                debug!(error = %e, "UDP receive failed");
                continue;
            }
        };
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
        send(&socket, &mut batch).await;
        // One clock reading per batch: every answer in it was sent by now.
        handler.metrics.answered(
            Transport::Udp,
            arrived.elapsed(),
            batch.replies.len() as u64,
        );
    }
}

/// Sends every answer of the batch; waits for room when the socket's buffer is full, and skips
/// an answer the kernel refuses (say, to an unreachable address).
async fn send(socket: &UdpSocket, batch: &mut Batch) {
    batch.arm_send();
    let fd = socket.as_raw_fd();
    let count = batch.replies.len();
    let mut sent = 0;
    while sent < count {
        let result = socket.try_io(Interest::WRITABLE, || {
            // SAFETY: the headers point into `batch`, which outlives the call.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    batch.send_headers[sent..].as_mut_ptr(),
                    (count - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match result {
            Ok(n) => sent += n.max(1),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if socket.writable().await.is_err() {
                    return;
                }
            }
            Err(e) => {
                debug!(error = %e, "UDP send failed; dropping one answer");
                sent += 1;
            }
        }
    }
}
