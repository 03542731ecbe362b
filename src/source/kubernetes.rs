//! The `kubernetes` source: pods listed and watched through the API server with kube-rs.
//!
//! One kube watcher per scope (the cluster, or each configured namespace), each an explicit
//! list-then-watch state machine that relists on 410 Gone and re-watches after a dropped
//! connection. Pods are stripped to a [`PodView`] the moment they arrive. Errors never stop the
//! source: kube's backoff retries them (except the first 410 Gone in a row, which lists again at
//! once), the zone keeps its last good state, and the log says what is wrong at a falling rate
//! (not one line per retry) and when it is over.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use hyper::{Request, Response};
use k8s_openapi::api::core::v1::Pod;
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower::Service;
use tower::layer::layer_fn;
use tracing::{info, warn};

use super::selection::Selection;
use super::{Health, PodEvent, PodKey, PodView, ReadAgain, Received, Scope};
use crate::metrics::Metrics;

/// How often a scope whose requests failed looks for a successful answer since.
const ANSWERED_CHECK: Duration = Duration::from_secs(1);

/// Pods that will never run again hold no names; the API server leaves them out.
const FIELD_SELECTOR: &str = "status.phase!=Succeeded,status.phase!=Failed";

/// After this many 410 Gone answers in a row to a watch request, the watcher is rebuilt (a fresh
/// list). kube-rs retries such a watch with the same expired resource version forever.
const GONE_LIMIT: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error(
        "no Kubernetes credentials: no kubeconfig (KUBECONFIG or ~/.kube/config) and no in-cluster service account: {0}"
    )]
    Infer(#[from] kube::config::InferConfigError),
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// Settings of the source, validated by the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeSettings {
    /// `None`: find credentials as kubectl does, then the in-cluster service account.
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The namespaces listed and watched, and the label selector sent with each request.
    pub selection: Selection,
    /// Silence from the API server after which a request is dropped and retried.
    pub api_timeout: Duration,
}

impl KubeSettings {
    pub fn scopes(&self) -> Vec<Scope> {
        if self.selection.namespaces.is_empty() {
            vec![Scope::Cluster]
        } else {
            self.selection
                .namespaces
                .iter()
                .map(|n| Scope::Namespace(n.clone()))
                .collect()
        }
    }

    /// Watches end and are renewed before the read timeout can cut an idle one.
    fn watch_timeout(&self) -> u32 {
        (self.api_timeout.as_secs() * 2 / 3).max(1) as u32
    }
}

/// The API server, through a client built from the kubeconfig given, or kubectl's search order,
/// then in-cluster; and when it last answered for each scope.
#[derive(Clone)]
pub struct Connection {
    client: Client,
    answers: Arc<Answers>,
}

/// Builds the connection. Each request for a scope's pods that the API server answers with
/// success counts as an answer for that scope, and for the source's last sync in `metrics`: the
/// least recent of its scopes' answers.
pub async fn client(
    settings: &KubeSettings,
    metrics: &Arc<Metrics>,
) -> Result<Connection, KubeError> {
    let mut config = match &settings.kubeconfig {
        Some(path) => {
            let err = |source| KubeError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let kubeconfig = Kubeconfig::read_from(path).map_err(err)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(err)?
        }
        None => kube::Config::infer().await?,
    };
    // Without a read timeout, a list that the API server accepts and never answers would hang
    // for ever; the timeout counts from each request, not from a pooled connection's idle time.
    config.read_timeout = Some(settings.api_timeout);
    config.reset_reader_on_write = true;
    // kube's client would retry 429/503/504 silently for minutes; the watcher's own backoff
    // retries them too, and roster's log then shows the outage.
    config.default_retry = false;
    info!(server = %config.cluster_url, "Kubernetes API server");
    let answers = Arc::new(Answers::new(settings.scopes()));
    metrics
        .health()
        .watch_namespaces(settings.selection.namespaces.iter().map(String::as_str));
    let (told, health) = (answers.clone(), metrics.clone());
    let client = ClientBuilder::try_from(config)?
        .with_layer(&layer_fn(move |inner| Answering {
            inner,
            answers: told.clone(),
            metrics: health.clone(),
        }))
        .build();
    Ok(Connection { client, answers })
}

/// When the API server last answered, with success, a request for each scope's pods: nanoseconds
/// after `base`, 0 for never.
struct Answers {
    base: Instant,
    scopes: Vec<(Scope, AtomicU64)>,
}

impl Answers {
    fn new(scopes: Vec<Scope>) -> Self {
        Answers {
            base: Instant::now(),
            scopes: scopes.into_iter().map(|s| (s, AtomicU64::new(0))).collect(),
        }
    }

    fn now(&self) -> u64 {
        (self.base.elapsed().as_nanos() as u64).max(1)
    }

    /// The scope whose pods `path` asks for, with the time of its last answer.
    fn scope(&self, path: &str) -> Option<&(Scope, AtomicU64)> {
        let asked = match path.split('/').collect::<Vec<_>>().as_slice() {
            ["", "api", "v1", "pods"] => Scope::Cluster,
            ["", "api", "v1", "namespaces", ns, "pods"] => Scope::Namespace((*ns).to_owned()),
            _ => return None,
        };
        self.slot(&asked)
    }

    /// `scope` with the time of its last answer, where `scope` is watched.
    fn slot(&self, scope: &Scope) -> Option<&(Scope, AtomicU64)> {
        self.scopes.iter().find(|(s, _)| s == scope)
    }

    /// Notes an answer for `scope`, whose last answer was `at`. The source is in step with the
    /// API server as of its least recent scope: a namespace whose requests fail (a missing
    /// RoleBinding) ages the last sync while the others answer; before every scope has answered
    /// once there is no sync.
    fn answered(&self, (scope, at): &(Scope, AtomicU64), health: &Health) {
        let now = self.now();
        at.store(now, Ordering::Relaxed);
        if let Scope::Namespace(namespace) = scope {
            health.namespace_synced_at(namespace, SystemTime::now());
        }
        let oldest = self
            .scopes
            .iter()
            .map(|(_, t)| t.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        if oldest > 0 {
            let age = Duration::from_nanos(now.saturating_sub(oldest));
            health.synced_at(SystemTime::now() - age);
        }
    }

    /// [`Answers::answered`] for `scope`, by a watch event it sent.
    fn answered_for(&self, scope: &Scope, health: &Health) {
        if let Some(slot) = self.slot(scope) {
            self.answered(slot, health);
        }
    }

    fn last(&self, scope: &Scope) -> u64 {
        self.slot(scope)
            .map_or(0, |(_, at)| at.load(Ordering::Relaxed))
    }
}

/// The client's service, noting each successful answer of the API server for a scope's pods
/// (see [`Answers::answered`]). The watcher's events alone miss the answers that carry none: a
/// watch renewed (every two thirds of `api_timeout`) in a cluster where no pod changes. The last
/// sync would age for hours while roster is in step with the API server, and an outage's end
/// would go unlogged until the next pod change.
#[derive(Clone)]
struct Answering<S> {
    inner: S,
    answers: Arc<Answers>,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<Request<kube::client::Body>> for Answering<S>
where
    S: Service<Request<kube::client::Body>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<kube::client::Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let (answers, metrics) = (self.answers.clone(), self.metrics.clone());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            if response.status().is_success()
                && let Some(slot) = answers.scope(&path)
            {
                answers.answered(slot, metrics.health());
            }
            Ok(response)
        })
    }
}

/// Watches every scope until `shutdown`, sending events to the membership layer.
pub async fn watch(
    connection: Connection,
    settings: KubeSettings,
    events: mpsc::Sender<Received>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    reread: ReadAgain,
) {
    let tasks: Vec<_> = settings
        .scopes()
        .into_iter()
        .map(|scope| {
            tokio::spawn(watch_scope(
                connection.clone(),
                scope,
                settings.clone(),
                events.clone(),
                metrics.clone(),
                shutdown.clone(),
                reread.clone(),
            ))
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

async fn watch_scope(
    connection: Connection,
    scope: Scope,
    settings: KubeSettings,
    events: mpsc::Sender<Received>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    mut reread: ReadAgain,
) {
    let health = metrics.health();
    let mut errors = ErrorLog::new(scope.clone());
    loop {
        let api: Api<Pod> = match &scope {
            Scope::Cluster => Api::all(connection.client.clone()),
            Scope::Namespace(ns) => Api::namespaced(connection.client.clone(), ns),
        };
        let mut config = watcher::Config::default()
            .fields(FIELD_SELECTOR)
            .timeout(settings.watch_timeout());
        if let Some(labels) = &settings.selection.labels {
            config = config.labels(labels.as_str());
        }
        let stream = watcher::watcher(api, config);
        tokio::pin!(stream);
        let mut gone = 0;
        // kube's own backoff, applied here rather than with `default_backoff()`, so that the
        // first 410 Gone after a working watch lists again at once, as client-go does: the
        // resource version expired, nothing is wrong with the API server, and every moment
        // of waiting is a moment of stale answers. A second 410 in a row waits as any error.
        let mut backoff = watcher::DefaultBackoff::default();
        let mut last_was_gone = false;
        loop {
            let item = tokio::select! {
                () = shutdown.cancelled() => return,
                // A new list: the membership layer swaps it in whole, so answers do not flap.
                Ok(()) = reread.changed() => {
                    info!(scope = %scope, "listing the pods again, as asked");
                    break;
                }
                item = stream.next() => item,
                // A renewed watch brings no event where no pod changes: the API server's
                // answer is what says the errors are over, and that the next failure starts
                // the backoff over (else it waits the step this outage grew it to).
                () = tokio::time::sleep(ANSWERED_CHECK), if errors.failing() => {
                    if connection.answers.last(&scope) > errors.failed_at {
                        errors.recovered();
                        backoff.reset();
                    }
                    continue;
                }
            };
            let Some(item) = item else { break };
            let event = match item {
                // kube's watcher says `Init` when it is about to list, before the request: a
                // list that fails gives `Init` and the error, again at every retry. Only an
                // event the API server answered shows that it is reachable; taking `Init` for
                // one reset the backoff (a retry every second for as long as lists failed)
                // and logged "reachable again" between the failures.
                Ok(Event::Init) => Event::Init,
                Ok(event) => {
                    errors.recovered();
                    backoff.reset();
                    gone = 0;
                    last_was_gone = false;
                    event
                }
                Err(e) => {
                    gone = if is_gone_at_watch_start(&e) {
                        gone + 1
                    } else {
                        0
                    };
                    errors.record(&e, health, connection.answers.now());
                    if gone >= GONE_LIMIT {
                        warn!(scope = %scope, "watch start refused with 410 Gone {gone} times; listing again");
                        break;
                    }
                    let first_gone = is_gone(&e) && !last_was_gone;
                    last_was_gone = is_gone(&e);
                    if !first_gone {
                        let wait = backoff.next().unwrap_or(Duration::from_secs(30));
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(wait) => {}
                        }
                    }
                    continue;
                }
            };
            let event = match event {
                Event::Init => PodEvent::Init(scope.clone()),
                Event::InitApply(pod) => {
                    PodEvent::InitApply(scope.clone(), PodView::from_pod(&pod))
                }
                Event::InitDone => {
                    connection.answers.answered_for(&scope, health);
                    info!(scope = %scope, "pod list complete");
                    PodEvent::InitDone(scope.clone())
                }
                Event::Apply(pod) => {
                    connection.answers.answered_for(&scope, health);
                    PodEvent::Apply(PodView::from_pod(&pod))
                }
                Event::Delete(pod) => {
                    connection.answers.answered_for(&scope, health);
                    let view = PodView::from_pod(&pod);
                    PodEvent::Delete(PodKey::new(&view.namespace, &view.name))
                }
            };
            let sent = events.send(event.into()).await;
            if sent.is_err() {
                return; // membership is gone: shutting down
            }
        }
    }
}

fn api_status(e: &watcher::Error) -> Option<&kube::core::Status> {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => Some(s),
        watcher::Error::WatchError(s) => Some(s),
        _ => None,
    }
}

/// The resource version expired (410 Gone), at the watch request or in the watch stream.
fn is_gone(e: &watcher::Error) -> bool {
    api_status(e).is_some_and(|s| s.code == 410)
}

fn is_gone_at_watch_start(e: &watcher::Error) -> bool {
    matches!(e, watcher::Error::WatchStartFailed(kube::Error::Api(s)) if s.code == 410)
}

/// What an operator should read about an error at 3 a.m.
fn describe(e: &watcher::Error, scope: &Scope) -> String {
    let Some(status) = api_status(e) else {
        return e.to_string();
    };
    let said = if status.message.is_empty() {
        String::new()
    } else {
        format!(": {}", status.message)
    };
    match status.code {
        401 => format!(
            "the API server rejected roster's credentials (401 Unauthorized); check the kubeconfig or the service account token{said}"
        ),
        403 => {
            let where_ = match scope {
                Scope::Cluster => "cluster-wide (a ClusterRole and ClusterRoleBinding)".to_string(),
                Scope::Namespace(ns) => format!("in namespace {ns} (a Role and RoleBinding)"),
            };
            format!(
                "permission denied (403 Forbidden): roster needs get, list and watch on pods {where_}; see deploy/rbac.yaml{said}"
            )
        }
        410 => format!("resource version expired (410 Gone); listing again{said}"),
        code => format!("the API server answered {code} {}{said}", status.reason),
    }
}

/// Logs a run of errors at a falling rate: the 1st, 2nd, 4th, 8th… error, and at least once a
/// minute, each line carrying the count and the time since the last successful sync.
struct ErrorLog {
    scope: Scope,
    consecutive: u64,
    /// When the last error was recorded, on the clock of [`Answers`].
    failed_at: u64,
    since: Option<Instant>,
    last_line: Option<Instant>,
}

impl ErrorLog {
    fn new(scope: Scope) -> Self {
        Self {
            scope,
            consecutive: 0,
            failed_at: 0,
            since: None,
            last_line: None,
        }
    }

    fn record(&mut self, e: &watcher::Error, health: &Health, now: u64) {
        self.consecutive += 1;
        self.failed_at = now;
        health.error();
        let since = *self.since.get_or_insert_with(Instant::now);
        let due = self.consecutive.is_power_of_two()
            || self
                .last_line
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if !due {
            return;
        }
        self.last_line = Some(Instant::now());
        let last_sync = health
            .since_last_sync()
            .map_or("never".to_string(), |d| format!("{}s ago", d.as_secs()));
        warn!(
            scope = %self.scope,
            consecutive_errors = self.consecutive,
            failing_for_s = since.elapsed().as_secs(),
            last_sync = %last_sync,
            "Kubernetes API: {}; still serving the last good state",
            describe(e, &self.scope)
        );
    }

    fn failing(&self) -> bool {
        self.consecutive > 0
    }

    fn recovered(&mut self) {
        if self.consecutive > 0 {
            info!(
                scope = %self.scope,
                errors = self.consecutive,
                failing_for_s = self.since.map_or(0, |s| s.elapsed().as_secs()),
                "Kubernetes API reachable again"
            );
        }
        self.consecutive = 0;
        self.since = None;
        self.last_line = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_renew_before_the_read_timeout() {
        let s = KubeSettings {
            kubeconfig: None,
            selection: Selection::default(),
            api_timeout: Duration::from_secs(90),
        };
        assert_eq!(s.watch_timeout(), 60);
        assert_eq!(s.scopes(), [Scope::Cluster]);
    }

    /// An answer counts for the scope whose pods it gave, and for no other.
    #[test]
    fn answers_are_told_apart_by_scope() {
        let prod = Scope::Namespace("prod".into());
        let answers = Answers::new(vec![prod.clone(), Scope::Namespace("dev".into())]);
        assert!(answers.scope("/api/v1/namespaces/prod/pods").is_some());
        assert!(answers.scope("/api/v1/namespaces/other/pods").is_none());
        assert!(answers.scope("/api/v1/pods").is_none(), "not watched");
        assert!(answers.scope("/api/v1/namespaces/prod/pods/db-0").is_none());
        assert!(answers.scope("/version").is_none());
        answers
            .scope("/api/v1/namespaces/prod/pods")
            .unwrap()
            .1
            .store(answers.now(), Ordering::Relaxed);
        assert!(answers.last(&prod) > 0);
        assert_eq!(answers.last(&Scope::Namespace("dev".into())), 0);
        // The source's last sync waits for every scope, then follows the least recent; each
        // namespace's own is kept apart.
        let health = Health::default();
        health.watch_namespaces(["prod", "dev"]);
        answers.answered_for(&prod, &health);
        assert_eq!(health.last_sync(), None, "dev never answered");
        let each: Vec<_> = health.namespace_syncs().collect();
        assert!(
            matches!(each[..], [("prod", Some(_)), ("dev", None)]),
            "{each:?}"
        );
        answers.answered_for(&Scope::Namespace("dev".into()), &health);
        let both = health.last_sync().expect("both answered");
        std::thread::sleep(Duration::from_millis(50));
        answers.answered_for(&prod, &health);
        let later = health.last_sync().unwrap().duration_since(both).unwrap();
        assert!(
            later < Duration::from_millis(10),
            "dev is the least recent: {later:?}"
        );
        let cluster = Answers::new(vec![Scope::Cluster]);
        assert!(cluster.scope("/api/v1/pods").is_some());
    }
}
