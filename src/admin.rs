//! The admin HTTP listener: `/healthz` (the process is alive), `/readyz` (the first complete list
//! is served and roster is not shutting down), `/metrics` (Prometheus text) and `/members`
//! (every service and member as JSON, for `roster status` and for people).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::membership::Published;
use crate::metrics::Metrics;
use crate::zone::Snapshot;

/// What the admin endpoints read.
pub struct Admin {
    published: Arc<Published>,
    metrics: Arc<Metrics>,
    stopping: AtomicBool,
}

impl Admin {
    pub fn new(published: Arc<Published>, metrics: Arc<Metrics>) -> Self {
        Self {
            published,
            metrics,
            stopping: AtomicBool::new(false),
        }
    }

    pub fn is_ready(&self) -> bool {
        !self.stopping.load(Ordering::Relaxed) && self.published.load().is_some()
    }

    /// Readiness drops from here on, before the DNS listeners close.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.metrics.set_ready(false);
    }

    fn route(&self, req: &Request<Incoming>) -> (StatusCode, &'static str, String) {
        const TEXT: &str = "text/plain; charset=utf-8";
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return (StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n".into());
        }
        match req.uri().path() {
            "/healthz" => (StatusCode::OK, TEXT, "ok\n".into()),
            "/readyz" => {
                if self.is_ready() {
                    (StatusCode::OK, TEXT, "ready\n".into())
                } else if self.stopping.load(Ordering::Relaxed) {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        TEXT,
                        "not ready: shutting down\n".into(),
                    )
                } else {
                    let why = "not ready: the source has not delivered a complete list yet\n";
                    (StatusCode::SERVICE_UNAVAILABLE, TEXT, why.into())
                }
            }
            "/metrics" => {
                self.metrics.set_ready(self.is_ready());
                // OpenMetrics for who asks for it (Prometheus does), the older text format,
                // which every scraper and promtool read, for everyone else.
                let open_metrics = req
                    .headers()
                    .get_all(hyper::header::ACCEPT)
                    .iter()
                    .any(|v| {
                        v.to_str()
                            .is_ok_and(|s| s.contains("application/openmetrics-text"))
                    });
                if open_metrics {
                    (
                        StatusCode::OK,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        self.metrics.render(),
                    )
                } else {
                    (
                        StatusCode::OK,
                        "text/plain; version=0.0.4; charset=utf-8",
                        self.metrics.render_prometheus(),
                    )
                }
            }
            "/members" => {
                let snapshot = self.published.load();
                let body = members_json(snapshot.as_deref(), self.is_ready(), &self.metrics);
                (StatusCode::OK, "application/json", format!("{body:#}\n"))
            }
            _ => (
                StatusCode::NOT_FOUND,
                TEXT,
                "not found; try /healthz, /readyz, /metrics or /members\n".into(),
            ),
        }
    }
}

/// Every service and member, published or why not, and the pods that cannot be members.
pub fn members_json(snapshot: Option<&Snapshot>, ready: bool, metrics: &Metrics) -> Value {
    let last_sync = metrics
        .health()
        .last_sync()
        .map(crate::source::unix_seconds);
    // Said by roster's clock, so that `roster status` elsewhere shows no clock skew.
    let age = metrics.health().since_last_sync().map(|d| d.as_secs());
    let Some(snapshot) = snapshot else {
        return json!({"ready": false, "serial": null, "last_sync": last_sync,
            "last_sync_age_seconds": age, "services": [], "skipped": []});
    };
    let mut services: Vec<_> = snapshot.services().collect();
    services
        .sort_by(|a, b| (a.0.namespace(), a.0.service()).cmp(&(b.0.namespace(), b.0.service())));
    let services: Vec<Value> = services
        .into_iter()
        .map(|(id, node)| {
            let members: Vec<Value> = node
                .members
                .iter()
                .map(|m| {
                    let id = &m.identity;
                    json!({
                        "name": m.name(),
                        "ordinal": m.ordinal(),
                        "pod": m.pod(),
                        "published": m.is_published(),
                        "reason": id.unpublished.map(|u| u.as_str()),
                        "addresses": id.ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "port": id.primary_port,
                        "ports": id.ports.iter().map(|p| json!({
                            "name": &*p.name, "protocol": p.protocol.label(), "port": p.number,
                        })).collect::<Vec<_>>(),
                        "contenders": m.contenders.iter().map(|c| &**c).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({"namespace": id.namespace(), "service": id.service(), "members": members})
        })
        .collect();
    let skipped: Vec<Value> = snapshot
        .skipped()
        .map(|(pod, s)| json!({"pod": pod.to_string(), "reason": s.reason.as_str(), "detail": &*s.detail}))
        .collect();
    json!({
        "ready": ready,
        "serial": snapshot.serial,
        "last_sync": last_sync,
        "last_sync_age_seconds": age,
        "services": services,
        "skipped": skipped,
    })
}

/// Binds the admin listener (before serving, so a bad address fails start-up).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// How long the admin listener waits for a request's head; kubelet's probes and Prometheus send
/// theirs at once.
const HEAD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves until `shutdown`.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, shutdown: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "admin listening (/healthz, /readyz, /metrics, /members)");
    }
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    debug!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let admin = admin.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (status, content_type, body) = admin.route(&req);
                let response = Response::builder()
                    .status(status)
                    .header("content-type", content_type)
                    .body(Full::new(Bytes::from(body)));
                async move { response }
            });
            // A request's head must arrive within HEAD_WAIT of the connection opening or of the
            // last answer: a client that sends nothing, or keeps an idle connection, is cut
            // off instead of holding a descriptor (and a task) for ever.
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_WAIT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = connection => if let Err(e) = result {
                    debug!(%peer, error = %e, "admin connection failed");
                },
                () = shutdown.cancelled() => {}
            }
        });
    }
}
