//! The `file` source: Pod objects from a local file, watched and applied as a whole.
//!
//! Accepted: a `PodList` or `List` as `kubectl get pods -A -o json|yaml` prints it, a single Pod,
//! or a multi-document YAML of Pods and lists. The file is polled (a `stat` every 100 ms), which
//! also sees a ConfigMap volume's symlink swap and an editor's rename; a change is read once the
//! file has stopped changing for one poll, and is applied only if it parses completely, so a
//! half-written file never reaches the zone. Each good version goes out as one list
//! (`Init`, `InitApply`…, `InitDone`).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{PodEvent, PodView, Received, Scope};
use crate::metrics::Metrics;

const POLL: Duration = Duration::from_millis(100);

/// Why a pods file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("pods file {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("pods file {path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("pods file {path}: document {document}: {message}")]
    Content {
        path: PathBuf,
        document: usize,
        message: String,
    },
}

/// A parse problem before the path is known.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    Syntax {
        line: u64,
        column: u64,
        message: String,
    },
    Content {
        document: usize,
        message: String,
    },
}

impl ParseError {
    fn at(self, path: &Path) -> FileError {
        let path = path.to_owned();
        match self {
            ParseError::Syntax {
                line,
                column,
                message,
            } => FileError::Syntax {
                path,
                line,
                column,
                message,
            },
            ParseError::Content { document, message } => FileError::Content {
                path,
                document,
                message,
            },
        }
    }
}

/// One top-level document: a Pod, or a list of Pods. The fields of both are read in one pass;
/// `metadata` is read as `ObjectMeta`, which ignores the list-only fields.
#[derive(Deserialize)]
struct Document {
    kind: Option<String>,
    metadata: Option<ObjectMeta>,
    spec: Option<PodSpec>,
    status: Option<PodStatus>,
    items: Option<Items>,
}

/// A list's items, each stripped to a [`PodView`] as soon as it is read: a large list never
/// exists in memory as full Pod objects.
struct Items(Vec<PodView>);

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Items;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of Pods")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Items, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(pod) = seq.next_element::<Pod>()? {
                    out.push(PodView::from_pod(&pod));
                }
                Ok(Items(out))
            }
            fn visit_unit<E>(self) -> Result<Items, E> {
                Ok(Items(Vec::new())) // `items: null`
            }
        }
        deserializer.deserialize_seq(Visitor)
    }
}

impl Document {
    fn into_pods(self, document: usize, out: &mut Vec<PodView>) -> Result<(), ParseError> {
        let bad = |message: String| ParseError::Content { document, message };
        match self.kind.as_deref() {
            Some("PodList" | "List") | None if self.items.is_some() => {
                out.extend(self.items.map(|i| i.0).unwrap_or_default());
                Ok(())
            }
            Some("Pod") | None => {
                let pod = Pod {
                    metadata: self.metadata.unwrap_or_default(),
                    spec: self.spec,
                    status: self.status,
                };
                if pod.metadata.name.as_deref().is_none_or(str::is_empty) {
                    return Err(bad("a Pod without metadata.name".into()));
                }
                out.push(PodView::from_pod(&pod));
                Ok(())
            }
            Some(kind) => Err(bad(format!(
                "kind {kind:?} is neither a Pod nor a list of Pods"
            ))),
        }
    }
}

/// Parses a pods file's text. JSON when it starts with `{`, YAML (one or more documents)
/// otherwise.
pub fn parse(text: &str) -> Result<Vec<PodView>, ParseError> {
    let mut pods = Vec::new();
    if text.trim_start().starts_with('{') {
        let doc: Document = serde_json::from_str(text).map_err(|e| ParseError::Syntax {
            line: e.line() as u64,
            column: e.column() as u64,
            message: e
                .to_string()
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_owned(),
        })?;
        doc.into_pods(1, &mut pods)?;
        return Ok(pods);
    }
    let docs: Vec<Document> = serde_saphyr::from_multiple_with_options(text, yaml_options(text))
        .map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            let message = e.without_snippet().to_string();
            ParseError::Syntax {
                line,
                column,
                message: first_line(&message),
            }
        })?;
    for (i, doc) in docs.into_iter().enumerate() {
        doc.into_pods(i + 1, &mut pods)?;
    }
    Ok(pods)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_owned()
}

/// The YAML parser's default budget is made for configuration files; a pods file of a large
/// cluster has far more nodes. Alias limits stay, so an alias bomb is still refused.
fn yaml_options(text: &str) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    let scale = text.len().max(1 << 20);
    budget.max_documents = scale;
    budget.max_nodes = scale;
    budget.max_events = scale.saturating_mul(2);
    budget.max_total_scalar_bytes = scale;
    budget.max_reader_input_bytes = None;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// What identifies a version of the file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Ok(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
    })
}

fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// A version of the file that parsed.
pub struct Loaded {
    pub pods: Vec<PodView>,
    stamp: Option<Stamp>,
    fingerprint: u64,
}

/// Reads and parses the file once. The stamp is taken before reading, so a write that races
/// the read makes the watcher read again.
pub fn load(path: &Path) -> Result<Loaded, FileError> {
    let read_err = |source| FileError::Read {
        path: path.to_owned(),
        source,
    };
    let before = stamp(path).map_err(read_err)?;
    let bytes = std::fs::read(path).map_err(read_err)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| FileError::Content {
        path: path.to_owned(),
        document: 0,
        message: format!("not UTF-8 text (byte {})", e.valid_up_to()),
    })?;
    let pods = parse(text).map_err(|e| e.at(path))?;
    Ok(Loaded {
        pods,
        stamp: Some(before),
        fingerprint: fingerprint(&bytes),
    })
}

/// Sends `loaded` as one list, then watches the file until `shutdown`, sending every new
/// version that parses. Versions that do not parse are logged and skipped; the zone keeps the
/// last good version.
pub async fn watch(
    path: PathBuf,
    loaded: Loaded,
    events: mpsc::Sender<Received>,
    metrics: std::sync::Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let health = metrics.health();
    let mut applied = (loaded.stamp, loaded.fingerprint);
    health.synced();
    metrics.reloaded();
    if send_list(&events, loaded.pods).await.is_err() {
        return;
    }
    // The stamp seen at the previous poll: a version is read once two polls agree on it.
    let mut seen = applied.0;
    let mut failing = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(POLL) => {}
        }
        let now = stamp(&path).ok();
        let settled = now == seen;
        seen = now;
        if now == applied.0 || !settled {
            continue;
        }
        let p = path.clone();
        let result = match tokio::task::spawn_blocking(move || load(&p)).await {
            Ok(result) => result,
            Err(e) => {
                error!(error = %e, "pods file reader panicked");
                continue;
            }
        };
        match result {
            Ok(loaded) if loaded.stamp != now => {} // changed while being read: next poll
            Ok(loaded) => {
                if failing {
                    info!(path = %path.display(), "pods file is valid again");
                    failing = false;
                }
                health.synced();
                let unchanged = loaded.fingerprint == applied.1;
                applied = (loaded.stamp, loaded.fingerprint);
                if unchanged {
                    continue;
                }
                info!(path = %path.display(), pods = loaded.pods.len(), "pods file changed; applying");
                if send_list(&events, loaded.pods).await.is_err() {
                    return;
                }
                metrics.reloaded();
            }
            Err(e) => {
                // Remember the bad version so it is reported once, not at every poll.
                applied.0 = now;
                failing = true;
                warn!(
                    error = %e,
                    failures_total = health.error(),
                    "pods file reload failed; still serving the last good version"
                );
            }
        }
    }
}

async fn send_list(
    events: &mpsc::Sender<Received>,
    pods: Vec<PodView>,
) -> Result<(), mpsc::error::SendError<Received>> {
    events.send(PodEvent::Init(Scope::Cluster).into()).await?;
    for pod in pods {
        events
            .send(PodEvent::InitApply(Scope::Cluster, pod).into())
            .await?;
    }
    events.send(PodEvent::InitDone(Scope::Cluster).into()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD_YAML: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  namespace: prod
  labels:
    roster.io/service: db
status:
  podIP: 10.0.0.1
";

    #[test]
    fn yaml_documents_and_lists() {
        let text = format!(
            "{POD_YAML}---\napiVersion: v1\nkind: List\nitems:\n- metadata:\n    name: db-1\n    namespace: prod\n---\n"
        );
        let pods = parse(&text).unwrap();
        let names: Vec<_> = pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["db-0", "db-1"]);
        assert_eq!(pods[0].label_service.as_deref(), Some("db"));
        assert_eq!(
            pods[0].ips,
            ["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
    }

    #[test]
    fn json_list() {
        let text = r#"{"apiVersion":"v1","kind":"PodList","metadata":{"resourceVersion":"7"},
            "items":[{"metadata":{"name":"a","namespace":"x"}}]}"#;
        let pods = parse(text).unwrap();
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].namespace, "x");
    }

    #[test]
    fn a_pod_without_namespace_is_in_default() {
        let pods = parse("metadata:\n  name: a\n").unwrap();
        assert_eq!(pods[0].namespace, "default");
    }

    #[test]
    fn errors_carry_positions() {
        match parse("{\"kind\": \"PodList\", \"items\": [\n  {\"metadata\": }\n]}") {
            Err(ParseError::Syntax { line: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
        match parse("metadata:\n  name: a\n  labels: [unclosed\n") {
            Err(ParseError::Syntax { line, .. }) => assert!(line >= 3, "line {line}"),
            other => panic!("{other:?}"),
        }
        match parse(&format!(
            "{POD_YAML}---\nkind: Deployment\nmetadata:\n  name: x\n"
        )) {
            Err(ParseError::Content {
                document: 2,
                message,
            }) => {
                assert!(message.contains("Deployment"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        match parse("kind: Pod\nmetadata:\n  namespace: a\n") {
            Err(ParseError::Content {
                document: 1,
                message,
            }) => {
                assert!(message.contains("metadata.name"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        match parse("kind: List\nitems:\n- kind: Service\n  metadata:\n    name: x\n") {
            Err(ParseError::Syntax { line, message, .. }) => {
                assert!(
                    line >= 3 && message.contains("Service"),
                    "{line}: {message}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
