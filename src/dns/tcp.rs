//! TCP (RFC 7766): a task per connection, queries answered in order (pipelining allowed).
//!
//! Bounded so that no client can hold the service from others: a connection closes after
//! `idle` without a complete query (a query or an answer must also move within it, so a client
//! that dribbles bytes or never reads is dropped), after `lifetime` however busy, and after
//! `max_queries` answers (when set). At most `max_connections` are open at once; a new
//! connection beyond that closes the open one whose last complete query is oldest, which is the
//! stalled or slow client rather than a working one. At shutdown, a connection waiting for a
//! query closes at once and one in the middle of a query is answered first.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::Handler;
use crate::metrics::{TcpClose, Transport};

/// The bounds on TCP clients (configuration keys `dns.tcp_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    pub idle: Duration,
    pub lifetime: Duration,
    /// 0: no bound.
    pub max_queries: u32,
    pub max_connections: usize,
}

/// How often, at most, the connection limit is reported in the log while it is being hit.
const LIMIT_LOG_EVERY: Duration = Duration::from_secs(60);

/// The open connections of every listener, for the connection limit.
pub(super) struct Registry {
    epoch: Instant,
    open: Mutex<Open>,
    /// Nanoseconds after `epoch` of the last warning about the limit, plus one (0: never).
    warned: AtomicU64,
}

#[derive(Default)]
struct Open {
    next: u64,
    slots: HashMap<u64, Arc<Slot>>,
}

struct Slot {
    id: u64,
    /// Nanoseconds after the registry's epoch of the connection's opening or last query.
    active: AtomicU64,
    evict: CancellationToken,
}

impl Registry {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Registry {
            epoch: Instant::now(),
            open: Mutex::new(Open::default()),
            warned: AtomicU64::new(0),
        })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Registers a new connection, first evicting the stalest when `max` are open.
    fn admit(&self, max: usize, handler: &Handler) -> Arc<Slot> {
        let now = self.now();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.slots.len() >= max {
            let stalest = open
                .slots
                .values()
                .min_by_key(|s| s.active.load(Relaxed))
                .map(|s| s.id);
            if let Some(slot) = stalest.and_then(|id| open.slots.remove(&id)) {
                slot.evict.cancel();
                self.warn_limit(max, now);
            }
        }
        let id = open.next;
        open.next += 1;
        let slot = Arc::new(Slot {
            id,
            active: AtomicU64::new(now),
            evict: CancellationToken::new(),
        });
        open.slots.insert(id, slot.clone());
        handler.metrics.set_tcp_connections(open.slots.len());
        slot
    }

    fn touch(&self, slot: &Slot) {
        slot.active.store(self.now(), Relaxed);
    }

    fn release(&self, slot: &Slot, handler: &Handler) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.slots.remove(&slot.id);
        handler.metrics.set_tcp_connections(open.slots.len());
    }

    fn warn_limit(&self, max: usize, now: u64) {
        let last = self.warned.load(Relaxed);
        if last == 0 || now + 1 - last >= LIMIT_LOG_EVERY.as_nanos() as u64 {
            self.warned.store(now + 1, Relaxed);
            warn!(
                limit = max,
                "TCP connection limit reached: closing the connections whose last query is \
                 oldest (dns.tcp_max_connections; roster_dns_tcp_closed{{reason=\"evicted\"}} \
                 counts them)"
            );
        }
    }
}

pub(super) async fn accept(
    listener: TcpListener,
    handler: Arc<Handler>,
    limits: TcpLimits,
    registry: Arc<Registry>,
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
                let slot = registry.admit(limits.max_connections, &handler);
                let (handler, registry, shutdown) =
                    (handler.clone(), registry.clone(), shutdown.clone());
                connections.spawn(async move {
                    let closed =
                        connection(stream, src, &handler, limits, &registry, &slot, shutdown).await;
                    registry.release(&slot, &handler);
                    if let Some(reason) = closed {
                        debug!(%src, ?reason, "TCP connection closed");
                        handler.metrics.tcp_closed(reason);
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors, say: wait a little rather than spin.
                warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one connection; returns why roster closed it, or `None` when the client did (or the
/// connection broke, or shutdown came).
async fn connection(
    mut stream: TcpStream,
    src: SocketAddr,
    handler: &Handler,
    limits: TcpLimits,
    registry: &Registry,
    slot: &Slot,
    shutdown: CancellationToken,
) -> Option<TcpClose> {
    let end_of_life = tokio::time::Instant::now() + limits.lifetime;
    let mut answered = 0u32;
    let mut query = Vec::new();
    let mut out = Vec::with_capacity(4096);
    let mut framed = Vec::with_capacity(4098);
    loop {
        let mut len = [0u8; 2];
        let waited = tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            () = slot.evict.cancelled() => return Some(TcpClose::Evicted),
            () = tokio::time::sleep_until(end_of_life) => return Some(TcpClose::Lifetime),
            read = timeout(limits.idle, stream.read_exact(&mut len)) => read,
        };
        match waited {
            Err(_) => return Some(TcpClose::Idle),
            Ok(Err(_)) => return None,
            Ok(Ok(_)) => {}
        }
        query.resize(u16::from_be_bytes(len) as usize, 0);
        // A query that has begun is read and answered, even during shutdown.
        let read = tokio::select! {
            biased;
            () = slot.evict.cancelled() => return Some(TcpClose::Evicted),
            read = timeout(limits.idle, stream.read_exact(&mut query)) => read,
        };
        match read {
            Err(_) => return Some(TcpClose::Idle),
            Ok(Err(_)) => return None,
            Ok(Ok(_)) => {}
        }
        registry.touch(slot);
        let arrived = Instant::now();
        if handler
            .answer(&query, src, Transport::Tcp, &mut out)
            .is_none()
        {
            debug!(%src, "unanswerable message on TCP; closing");
            return None;
        }
        framed.clear();
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        let written = tokio::select! {
            biased;
            () = slot.evict.cancelled() => return Some(TcpClose::Evicted),
            written = timeout(limits.idle, stream.write_all(&framed)) => written,
        };
        match written {
            Err(_) => return Some(TcpClose::Idle),
            Ok(Err(_)) => return None,
            Ok(Ok(())) => {}
        }
        handler
            .metrics
            .answered(Transport::Tcp, arrived.elapsed(), 1);
        answered = answered.saturating_add(1);
        if answered == limits.max_queries {
            return Some(TcpClose::Queries);
        }
    }
}
