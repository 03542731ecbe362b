//! deploy/: the kustomize base renders, every document (and every example) validates offline
//! against the Kubernetes 1.33 schemas, the shipped configuration is valid roster configuration
//! that matches the Deployment's ports, and the StatefulSet examples get the names they use.
//!
//! Needs `kubectl` (for `kubectl kustomize`) and `kubernetes-validate` (PyPI); `tests/run.sh`
//! installs both. `KUBERNETES_VALIDATE` may point at the validator.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn validator() -> PathBuf {
    if let Ok(v) = std::env::var("KUBERNETES_VALIDATE") {
        return v.into();
    }
    let venv = root().join("target/k8s-validate/bin/kubernetes-validate");
    assert!(
        venv.exists(),
        "kubernetes-validate is not installed; run tests/run.sh (it makes {})",
        venv.display()
    );
    venv
}

fn render() -> String {
    tool_output(
        Command::new("kubectl")
            .args(["kustomize", "deploy/"])
            .current_dir(root()),
        Duration::from_secs(60),
    )
}

fn documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text).unwrap()
}

fn validate(files: &[PathBuf]) -> String {
    tool_output(
        Command::new(validator())
            .args(["--strict", "-k", "1.33.0"])
            .args(files),
        Duration::from_secs(120),
    )
}

#[test]
fn the_base_renders_and_validates() {
    let rendered = render();
    let docs = documents(&rendered);
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let dir = temp_dir();
    let file = dir.join("rendered.yaml");
    std::fs::write(&file, &rendered).unwrap();
    let report = validate(&[file]);
    assert_eq!(
        report.matches(" passed for resource ").count(),
        docs.len(),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn examples_and_extras_validate() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.push(root().join("deploy/rbac-namespaced.yaml"));
    files.sort();
    let report = validate(&files);
    assert!(!report.contains("ERROR"), "{report}");
    assert!(
        report.contains("statefulset/etcd") && report.contains("statefulset/cockroach"),
        "{report}"
    );
    // The ServiceMonitor is a custom resource: no schema ships for it, so only its shape here.
    let sm = documents(
        &std::fs::read_to_string(root().join("deploy/extras/servicemonitor.yaml")).unwrap(),
    );
    assert_eq!(sm[0]["kind"], "ServiceMonitor");
    assert_eq!(sm[0]["spec"]["endpoints"][0]["port"], "admin");
}

#[test]
fn the_deployment_is_hardened_and_matches_the_configuration() {
    let docs = documents(&render());
    let find = |kind: &str| docs.iter().find(|d| d["kind"] == kind).unwrap().clone();
    let deployment = find("Deployment");
    let spec = &deployment["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        spec["topologySpreadConstraints"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(find("PodDisruptionBudget")["spec"]["minAvailable"].is_number());

    // The ConfigMap is config/cluster.toml, and its ports are the container's.
    let configmap = find("ConfigMap");
    let toml = configmap["data"]["roster.toml"].as_str().unwrap();
    assert_eq!(
        toml,
        std::fs::read_to_string(root().join("config/cluster.toml")).unwrap()
    );
    assert_eq!(
        spec["volumes"][0]["configMap"]["name"], configmap["metadata"]["name"],
        "the generated name is wired"
    );
    let ports: Vec<(String, i64)> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["containerPort"].as_i64().unwrap(),
            )
        })
        .collect();
    // It is a valid configuration (with a kubeconfig standing in for the service account).
    let api = fake_api::FakeApi::start();
    let dir = temp_dir();
    std::fs::write(dir.join("cluster.toml"), toml).unwrap();
    let kubeconfig = api.kubeconfig(&dir);
    let (code, out, err) = run(
        &dir,
        &[
            "check-config",
            "--config",
            "cluster.toml",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("listen = [\"0.0.0.0:5353\", \"[::]:5353\"]"),
        "{out}"
    );
    assert!(
        ports.contains(&("dns-udp".into(), 5353)) && ports.contains(&("dns-tcp".into(), 5353)),
        "{ports:?}"
    );
    assert!(
        out.contains("listen = \"0.0.0.0:9153\"") && ports.contains(&("admin".into(), 9153)),
        "{out} {ports:?}"
    );
    let service = find("Service");
    assert_eq!(service["spec"]["ports"][0]["port"], 53);
}

use common::fake_api;

/// The pods a StatefulSet controller makes from `statefulset`: `<name>-N`, owned by the set, in
/// the governing service's subdomain, with the template's labels, annotations and containers;
/// running with an IP, not ready yet (a cluster bootstrapping).
fn pods_of(statefulset: &Value, base_ip: u8) -> String {
    let name = statefulset["metadata"]["name"].as_str().unwrap();
    let namespace = statefulset["metadata"]["namespace"].as_str().unwrap();
    let template = &statefulset["spec"]["template"];
    (0..statefulset["spec"]["replicas"].as_u64().unwrap())
        .map(|i| {
            let pod = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": format!("{name}-{i}"),
                    "namespace": namespace,
                    "labels": template["metadata"]["labels"],
                    "annotations": template["metadata"]["annotations"],
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name, "uid": "u", "controller": true}],
                },
                "spec": {
                    "hostname": format!("{name}-{i}"),
                    "subdomain": statefulset["spec"]["serviceName"],
                    "containers": template["spec"]["containers"],
                },
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "False"}],
                    "podIP": format!("10.9.{base_ip}.{}", i + 1),
                },
            });
            format!("---\n{pod}\n")
        })
        .collect()
}

fn example(file: &str) -> Value {
    let docs =
        documents(&std::fs::read_to_string(root().join("deploy/examples").join(file)).unwrap());
    docs.into_iter()
        .find(|d| d["kind"] == "StatefulSet")
        .unwrap()
}

#[test]
fn the_statefulset_examples_get_the_names_they_use() {
    let etcd = example("etcd-statefulset.yaml");
    let cockroach = example("cockroachdb-statefulset.yaml");
    let r = Roster::start(&format!("{}{}", pods_of(&etcd, 1), pods_of(&cockroach, 2)));
    let server = r.addr.to_string();

    // etcd --discovery-srv=etcd.demo.roster.internal looks up _etcd-server._tcp under it.
    let args = etcd["spec"]["template"]["spec"]["containers"][0]["command"]
        .as_array()
        .unwrap();
    let domain = args
        .iter()
        .find_map(|a| a.as_str()?.strip_prefix("--discovery-srv="))
        .unwrap();
    let (code, out, err) = run(
        &r.dir,
        &[
            "peers",
            "--server",
            &server,
            &format!("_etcd-server._tcp.{domain}"),
            "--format",
            "etcd",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "etcd-0=http://etcd-0.etcd.demo.roster.internal:2380,etcd-1=http://etcd-1.etcd.demo.roster.internal:2380,etcd-2=http://etcd-2.etcd.demo.roster.internal:2380",
        "published before ready, on the etcd-server port"
    );
    // Each member's advertised peer URL names itself.
    assert_eq!(
        dig_short(r.addr, &["etcd-1.etcd.demo.roster.internal"]),
        ["10.9.1.2"]
    );

    // CockroachDB joins through member names; its init container waits for the SRV name.
    let args = cockroach["spec"]["template"]["spec"]["containers"][0]["command"]
        .as_array()
        .unwrap();
    let join = args
        .iter()
        .find_map(|a| a.as_str()?.strip_prefix("--join="))
        .unwrap();
    for (i, host) in join.split(',').enumerate() {
        assert_eq!(
            dig_short(r.addr, &[host]),
            [format!("10.9.2.{}", i + 1)],
            "{host}"
        );
    }
    let init = &cockroach["spec"]["template"]["spec"]["initContainers"][0]["args"];
    let srv = init[1].as_str().unwrap();
    let (code, out, err) = run(
        &r.dir,
        &[
            "peers",
            "--server",
            &server,
            srv,
            "--wait-for=1",
            "--timeout=5s",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().next(),
        Some("cockroach-0.cockroach.demo.roster.internal 26257")
    );
}
