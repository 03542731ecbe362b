//! Where pods come from. This is the only code that reads Kubernetes `Pod` fields: every source
//! strips a `Pod` into a [`PodView`] at the edge and delivers [`PodEvent`]s, nothing else.
//!
//! The events follow the kube-runtime watcher: a (re)list is `Init`, one `InitApply` per pod,
//! then `InitDone`; between lists, `Apply` and `Delete`. The membership layer buffers a list and
//! applies it as a whole, so a source never has to compute differences itself; one that does
//! (the pods file) sends them as one `Changes`.

mod dirwatch;
pub mod file;
pub mod kubernetes;
pub mod selection;
mod slim;

use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Pod;

/// Label naming the service a pod is a member of (SPEC §2, rule 1).
pub const LABEL_SERVICE: &str = "roster.io/service";
/// Label naming the pod's set; the member name is `<set>-<ordinal>`.
pub const LABEL_NAME: &str = "roster.io/name";
/// Label giving the pod's ordinal explicitly.
pub const LABEL_ORDINAL: &str = "roster.io/ordinal";
/// The ordinal label the StatefulSet controller sets (Kubernetes 1.28 and later).
pub const LABEL_POD_INDEX: &str = "apps.kubernetes.io/pod-index";
/// Annotation choosing the primary port by name or number.
pub const ANNOTATION_PORT: &str = "roster.io/port";
/// Annotation publishing the pod while it is not ready.
pub const ANNOTATION_PUBLISH_NOT_READY: &str = "roster.io/publish-not-ready";

/// The namespace a pod without `metadata.namespace` belongs to, as `kubectl apply` assumes.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Asks the source to read it again (SIGHUP): the pods file at once, or a new list of the pods
/// from the API server. Each new value is one request; a source started later sees none before.
pub type ReadAgain = tokio::sync::watch::Receiver<u64>;

/// A pod's identity in the API: namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    pub namespace: Box<str>,
    pub name: Box<str>,
}

impl PodKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Transport protocol of a container port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The label used in SRV owner names (`_tcp`, `_udp`, `_sctp`), without the underscore.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    pub fn from_label(label: &str) -> Option<Self> {
        match label {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "sctp" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

/// One container port, in pod order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortView {
    /// Index of the container that declares the port (0 is the first container).
    pub container: usize,
    pub name: Option<String>,
    /// As written in the object; validated by the identity layer.
    pub number: i32,
    /// `None` when the protocol string is not TCP, UDP or SCTP; absent means TCP.
    pub protocol: Option<Protocol>,
}

/// The few fields of a Pod that roster reads, owned and small.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub label_service: Option<String>,
    pub label_name: Option<String>,
    pub label_ordinal: Option<String>,
    pub label_pod_index: Option<String>,
    pub annotation_port: Option<String>,
    pub annotation_publish_not_ready: bool,
    /// Name of the owning StatefulSet, if an ownerReference of kind StatefulSet exists.
    pub statefulset: Option<String>,
    pub subdomain: Option<String>,
    /// `status.podIPs` (or `status.podIP` when the list is absent), in the API's order.
    pub ips: Vec<IpAddr>,
    /// IP strings that did not parse; kept so the identity layer can say so.
    pub bad_ips: Vec<String>,
    pub ready: bool,
    pub terminating: bool,
    /// Phase `Succeeded` or `Failed`: the pod will never run again and holds no name.
    pub finished: bool,
    /// `metadata.creationTimestamp` in seconds since the Unix epoch.
    pub created: Option<i64>,
    pub ports: Vec<PortView>,
}

impl PodView {
    pub fn key(&self) -> PodKey {
        PodKey::new(&self.namespace, &self.name)
    }

    /// Strips a Kubernetes Pod to the fields roster reads.
    pub fn from_pod(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let label = |key: &str| meta.labels.as_ref().and_then(|l| l.get(key)).cloned();
        let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key)).cloned();

        let statefulset = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.kind == "StatefulSet");
        let status = pod.status.as_ref();
        let mut ips = Vec::new();
        let mut bad_ips = Vec::new();
        let raw_ips: Vec<&str> = match status.and_then(|s| s.pod_ips.as_ref()) {
            Some(list) if !list.is_empty() => list.iter().map(|p| p.ip.as_str()).collect(),
            _ => status
                .and_then(|s| s.pod_ip.as_deref())
                .into_iter()
                .collect(),
        };
        for raw in raw_ips {
            match raw.parse::<IpAddr>() {
                Ok(ip) if !ips.contains(&ip) => ips.push(ip),
                Ok(_) => {}
                Err(_) => bad_ips.push(raw.to_owned()),
            }
        }
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let finished = matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );

        let spec = pod.spec.as_ref();
        let ports = spec
            .into_iter()
            .flat_map(|s| s.containers.iter().enumerate())
            .flat_map(|(container, c)| {
                c.ports.iter().flatten().map(move |p| PortView {
                    container,
                    name: p.name.clone(),
                    number: p.container_port,
                    protocol: match p.protocol.as_deref() {
                        None | Some("TCP") => Some(Protocol::Tcp),
                        Some("UDP") => Some(Protocol::Udp),
                        Some("SCTP") => Some(Protocol::Sctp),
                        Some(_) => None,
                    },
                })
            })
            .collect();

        PodView {
            namespace: meta
                .namespace
                .clone()
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            name: meta.name.clone().unwrap_or_default(),
            label_service: label(LABEL_SERVICE),
            label_name: label(LABEL_NAME),
            label_ordinal: label(LABEL_ORDINAL),
            label_pod_index: label(LABEL_POD_INDEX),
            annotation_port: annotation(ANNOTATION_PORT),
            annotation_publish_not_ready: annotation(ANNOTATION_PUBLISH_NOT_READY)
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            statefulset: statefulset.map(|o| o.name.clone()),
            subdomain: spec.and_then(|s| s.subdomain.clone()),
            ips,
            bad_ips,
            ready,
            terminating: meta.deletion_timestamp.is_some(),
            finished,
            created: meta.creation_timestamp.as_ref().map(|t| t.0.as_second()),
            ports,
        }
    }
}

/// The pods a list covers: every namespace, or one. Watchers of different namespaces list
/// independently; a list replaces only the pods of its own scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Cluster,
    Namespace(String),
}

impl Scope {
    pub fn contains(&self, key: &PodKey) -> bool {
        self.contains_namespace(&key.namespace)
    }

    pub fn contains_namespace(&self, namespace: &str) -> bool {
        match self {
            Scope::Cluster => true,
            Scope::Namespace(ns) => namespace == ns,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Cluster => f.write_str("all namespaces"),
            Scope::Namespace(ns) => write!(f, "namespace {ns}"),
        }
    }
}

/// A [`PodEvent`] and the moment the source received it, for the programming-latency metric.
#[derive(Debug)]
pub struct Received {
    pub at: Instant,
    pub event: PodEvent,
}

impl From<PodEvent> for Received {
    fn from(event: PodEvent) -> Self {
        Self {
            at: Instant::now(),
            event,
        }
    }
}

/// What a source tells the membership layer.
#[derive(Clone, Debug)]
pub enum PodEvent {
    /// A complete list of the scope begins; its pods not in the list are gone once it is done.
    Init(Scope),
    /// One pod of the scope's list in progress.
    InitApply(Scope, PodView),
    /// The scope's list is complete: apply it as a whole.
    InitDone(Scope),
    /// A pod was added or changed.
    Apply(PodView),
    /// A pod is gone.
    Delete(PodKey),
    /// The differences between two complete versions of the source, applied together: the pods
    /// gone, then the pods added or changed. (The pods file, which compares its versions item by
    /// item rather than sending a whole list for every change.)
    Changes {
        delete: Vec<PodKey>,
        apply: Vec<PodView>,
    },
}

/// How a source is doing: shared with the logs (and, through them, the operator).
#[derive(Debug, Default)]
pub struct Health {
    /// Milliseconds since the Unix epoch of the last successful sync (a good version of the pods
    /// file, or a poll finding it still in place; a successful answer of the API server, a watch
    /// event); 0 before the first.
    last_sync_ms: AtomicU64,
    errors_total: AtomicU64,
    /// With `source.namespaces`, the last successful answer for each namespace, as
    /// `last_sync_ms`: which one ages the source's sync, for an operator looking at metrics.
    namespaces: OnceLock<Box<[NamespaceSync]>>,
}

impl Health {
    pub fn synced(&self) {
        self.synced_at(SystemTime::now());
    }

    /// A sync as of `at`; never moves the last sync back (answers noted out of order).
    pub fn synced_at(&self, at: SystemTime) {
        self.last_sync_ms.fetch_max(unix_ms(at), Ordering::Relaxed);
    }

    /// Counts one failed attempt and returns the total so far.
    pub fn error(&self) -> u64 {
        self.errors_total.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn errors_total(&self) -> u64 {
        self.errors_total.load(Ordering::Relaxed)
    }

    pub fn last_sync(&self) -> Option<SystemTime> {
        from_unix_ms(self.last_sync_ms.load(Ordering::Relaxed))
    }

    pub fn since_last_sync(&self) -> Option<Duration> {
        self.last_sync().map(|t| t.elapsed().unwrap_or_default())
    }

    /// The namespaces whose syncs are told apart; set once, by the source that watches them.
    pub fn watch_namespaces<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let table = names
            .into_iter()
            .map(|n| (Box::from(n), AtomicU64::new(0)))
            .collect();
        let _ = self.namespaces.set(table);
    }

    /// A sync of `namespace` as of `at`, as [`Health::synced_at`] for the source.
    pub fn namespace_synced_at(&self, namespace: &str, at: SystemTime) {
        let slot = self
            .namespaces
            .get()
            .and_then(|t| t.iter().find(|(n, _)| &**n == namespace));
        if let Some((_, ms)) = slot {
            ms.fetch_max(unix_ms(at), Ordering::Relaxed);
        }
    }

    /// Each watched namespace's last sync (`None`: never), in the order they were given.
    pub fn namespace_syncs(&self) -> impl Iterator<Item = (&str, Option<SystemTime>)> {
        self.namespaces
            .get()
            .into_iter()
            .flatten()
            .map(|(n, ms)| (&**n, from_unix_ms(ms.load(Ordering::Relaxed))))
    }
}

/// A namespace and its last sync, in milliseconds since the Unix epoch (0: never).
type NamespaceSync = (Box<str>, AtomicU64);

/// Whole seconds since the Unix epoch, as the metrics and `/members` give a sync's time.
pub fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// 0 is never.
fn from_unix_ms(ms: u64) -> Option<SystemTime> {
    (ms > 0).then(|| UNIX_EPOCH + Duration::from_millis(ms))
}
