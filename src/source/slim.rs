//! Pods as the pods file holds them, read for the fields roster uses and nothing else.
//!
//! A real Pod object is mostly what roster never reads (managedFields, volumes, environment,
//! probes, container statuses): deserialized as k8s-openapi's full `Pod`, a 28 KB Prometheus pod
//! takes 48 µs; read through these types, which skip the rest unparsed, 13 µs. Only the large
//! parts (metadata, spec, status, containers) are replaced; the small ones roster reads (owner
//! references, ports, pod IPs, conditions) are k8s-openapi's own and checked as it checks them.
//! What is read becomes a k8s-openapi `Pod` holding only those fields, so
//! [`PodView::from_pod`] stays the one place that decides what they mean. A field roster does not
//! read is not checked: a value of the wrong type there no longer refuses the pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::de::{Error, Unexpected};
use serde::{Deserialize, Deserializer};

use super::PodView;
use super::selection::{Selection, unselected};

/// A Pod's metadata, spec and status, each read only for what roster uses. Its `kind` and
/// `apiVersion`, when present, must be a Pod's, as k8s-openapi requires.
#[derive(Deserialize, Default)]
pub struct SlimPod {
    #[serde(default, rename = "kind", deserialize_with = "pod_kind")]
    _kind: (),
    #[serde(default, rename = "apiVersion", deserialize_with = "pod_api_version")]
    _api_version: (),
    pub metadata: Option<SlimMeta>,
    pub spec: Option<SlimSpec>,
    pub status: Option<SlimStatus>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SlimMeta {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
}

#[derive(Deserialize)]
pub struct SlimSpec {
    containers: Option<Vec<SlimContainer>>,
    subdomain: Option<String>,
}

#[derive(Deserialize)]
struct SlimContainer {
    ports: Option<Vec<ContainerPort>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimStatus {
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pod_ips: Option<Vec<PodIP>>,
    conditions: Option<Vec<PodCondition>>,
    phase: Option<String>,
}

fn pod_kind<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
    expect(deserializer, "Pod")
}

fn pod_api_version<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
    expect(deserializer, "v1")
}

/// A string that must be `expected`, refused as k8s-openapi refuses it.
fn expect<'de, D: Deserializer<'de>>(deserializer: D, expected: &str) -> Result<(), D::Error> {
    let value = String::deserialize(deserializer)?;
    if value == expected {
        Ok(())
    } else {
        Err(D::Error::invalid_value(Unexpected::Str(&value), &expected))
    }
}

impl SlimPod {
    pub fn new(
        metadata: Option<SlimMeta>,
        spec: Option<SlimSpec>,
        status: Option<SlimStatus>,
    ) -> Self {
        SlimPod {
            metadata,
            spec,
            status,
            ..SlimPod::default()
        }
    }

    /// The pod as roster reads it; outside `selection`, a pod that claims nothing.
    pub fn view(self, selection: &Selection) -> PodView {
        let pod = self.into_pod();
        let view = PodView::from_pod(&pod);
        let labels = pod.metadata.labels.unwrap_or_default();
        if selection.admits(&view.namespace, &labels) {
            view
        } else {
            unselected(view)
        }
    }

    /// The name in `metadata.name`, if any.
    pub fn name(&self) -> Option<&str> {
        self.metadata.as_ref()?.name.as_deref()
    }

    fn into_pod(self) -> Pod {
        Pod {
            metadata: self.metadata.map(SlimMeta::into_meta).unwrap_or_default(),
            spec: self.spec.map(SlimSpec::into_spec),
            status: self.status.map(SlimStatus::into_status),
        }
    }
}

impl SlimMeta {
    fn into_meta(self) -> ObjectMeta {
        ObjectMeta {
            name: self.name,
            namespace: self.namespace,
            labels: self.labels,
            annotations: self.annotations,
            owner_references: self.owner_references,
            creation_timestamp: self.creation_timestamp,
            deletion_timestamp: self.deletion_timestamp,
            ..ObjectMeta::default()
        }
    }
}

impl SlimSpec {
    fn into_spec(self) -> PodSpec {
        let container = |c: SlimContainer| Container {
            ports: c.ports,
            ..Container::default()
        };
        PodSpec {
            containers: self
                .containers
                .unwrap_or_default()
                .into_iter()
                .map(container)
                .collect(),
            subdomain: self.subdomain,
            ..PodSpec::default()
        }
    }
}

impl SlimStatus {
    fn into_status(self) -> PodStatus {
        PodStatus {
            pod_ip: self.pod_ip,
            pod_ips: self.pod_ips,
            conditions: self.conditions,
            phase: self.phase,
            ..PodStatus::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read the slim way or whole, every pod the tests and the shared fixtures hold means the
    /// same: the slim types read every field `PodView::from_pod` uses.
    #[test]
    fn slim_and_full_pods_mean_the_same() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pods");
        let mut pods = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let value: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                match value.get("items").and_then(|i| i.as_array()) {
                    Some(items) => pods.extend(items.iter().cloned()),
                    None => pods.push(value),
                }
            }
        }
        assert!(pods.len() >= 5, "{pods:?}");
        // Every field from_pod reads, in turn absent, null and set to something unusual.
        let variants = [
            ("/metadata/namespace", serde_json::Value::Null),
            (
                "/metadata/labels",
                serde_json::json!({"roster.io/service": "s", "roster.io/ordinal": "7"}),
            ),
            (
                "/metadata/annotations",
                serde_json::json!({"roster.io/port": "peer", "roster.io/publish-not-ready": "TRUE"}),
            ),
            (
                "/metadata/ownerReferences",
                serde_json::json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "x", "uid": "u"}]),
            ),
            (
                "/metadata/deletionTimestamp",
                serde_json::json!("2026-01-01T00:00:00Z"),
            ),
            ("/metadata/creationTimestamp", serde_json::Value::Null),
            ("/spec/subdomain", serde_json::json!("sub")),
            (
                "/spec/containers",
                serde_json::json!([{"name": "a", "ports": [{"containerPort": 1, "protocol": "SCTP"}, {"name": "p", "containerPort": 2, "protocol": "QUIC"}]}, {"name": "b"}]),
            ),
            (
                "/status/podIPs",
                serde_json::json!([{"ip": "fd00::1"}, {"ip": "not-an-ip"}, {"ip": "fd00::1"}]),
            ),
            ("/status/podIPs", serde_json::Value::Null),
            ("/status/podIP", serde_json::json!("10.9.9.9")),
            (
                "/status/conditions",
                serde_json::json!([{"type": "Ready", "status": "False"}, {"type": "Ready", "status": "True"}]),
            ),
            ("/status/phase", serde_json::json!("Succeeded")),
            ("/status", serde_json::Value::Null),
            ("/spec", serde_json::Value::Null),
            ("/kind", serde_json::json!("Pod")),
            ("/apiVersion", serde_json::json!("v1")),
        ];
        let mut compared = 0;
        for pod in &pods {
            let mut all = vec![pod.clone()];
            for (pointer, value) in &variants {
                let (parent, key) = pointer.rsplit_once('/').unwrap();
                let mut changed = pod.clone();
                if let Some(serde_json::Value::Object(map)) = changed.pointer_mut(parent) {
                    map.insert(key.to_owned(), value.clone());
                    all.push(changed);
                }
            }
            for pod in all {
                let text = pod.to_string();
                let full: Pod = serde_json::from_str(&text).unwrap();
                let slim: SlimPod = serde_json::from_str(&text).unwrap();
                assert_eq!(
                    slim.view(&Selection::default()),
                    PodView::from_pod(&full),
                    "{text}"
                );
                compared += 1;
            }
        }
        assert!(compared > 50, "{compared}");
        // Another kind or version is refused both ways.
        for (field, value) in [("kind", "Service"), ("apiVersion", "apps/v1")] {
            let text = serde_json::json!({field: value, "metadata": {"name": "a"}}).to_string();
            let full = serde_json::from_str::<Pod>(&text).unwrap_err().to_string();
            let slim = serde_json::from_str::<SlimPod>(&text)
                .err()
                .unwrap()
                .to_string();
            assert_eq!(slim, full);
        }
    }
}
