//! Real API-server objects (tests/fixtures/pods, see its README) give the names SPEC implies.
//! Where a case has no real object (pod-index label, dual stack, termination), a real object is
//! changed in code, and the test says what it changed.

mod common;

use common::*;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/pods/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Several JSON objects as one multi-document YAML file (YAML is a superset of JSON).
fn documents(objects: &[Value]) -> String {
    objects.iter().map(|o| format!("---\n{o}\n")).collect()
}

const MON: &str = "openshift-monitoring.roster.internal.";

#[test]
fn real_statefulset_pods_get_their_names() {
    let r = Roster::start(&documents(&[
        fixture("pod-sts-prometheus-k8s-0-ready-subdomain.json"),
        fixture("pod-sts-prometheus-k8s-1-ready-subdomain.json"),
        fixture("pod-sts-alertmanager-main-0-ready-udp-port.json"),
        fixture("podlist-sts-workbench-0-ready-openshift.json"),
        fixture("podlist-replicaset-not-ready-image-pull.json"),
    ]));
    let a = |n: &str| r.a(&format!("{n}.{MON}"));
    assert_eq!(a("prometheus-k8s-0.prometheus-operated"), ["10.129.0.142"]);
    assert_eq!(a("prometheus-k8s-1.prometheus-operated"), ["10.129.0.148"]);
    assert_eq!(a("prometheus-operated"), ["10.129.0.142", "10.129.0.148"]);
    assert_eq!(
        a("alertmanager-main-0.alertmanager-operated"),
        ["10.128.2.10"]
    );

    // Every named port of every container has an SRV name.
    let srv = |n: &str| rdata(&udp(r.addr, &query(&format!("{n}.{MON}"), RecordType::SRV)).0);
    assert_eq!(
        srv("_web._tcp.prometheus-operated"),
        [
            format!("0 1 9091 prometheus-k8s-0.prometheus-operated.{MON}"),
            format!("0 1 9091 prometheus-k8s-1.prometheus-operated.{MON}")
        ]
    );
    assert_eq!(srv("_grpc._tcp.prometheus-operated").len(), 2);
    assert_eq!(srv("_thanos-proxy._tcp.prometheus-operated").len(), 2);
    assert_eq!(
        srv("_mesh-udp._udp.alertmanager-operated"),
        [format!(
            "0 1 9094 alertmanager-main-0.alertmanager-operated.{MON}"
        )]
    );
    // The primary port is the first port of the first container: alertmanager's mesh-tcp...
    assert_eq!(
        srv("alertmanager-operated"),
        [format!(
            "0 1 9094 alertmanager-main-0.alertmanager-operated.{MON}"
        )]
    );
    // ...and prometheus's first container declares none, so its service has no SRV.
    let (m, _) = udp(
        r.addr,
        &query(&format!("prometheus-operated.{MON}"), RecordType::SRV),
    );
    assert_eq!(
        (m.metadata.response_code, m.answers.len()),
        (ResponseCode::NoError, 0)
    );

    // A StatefulSet pod without spec.subdomain, and a ReplicaSet pod, are not members.
    let (m, _) = udp(
        r.addr,
        &query("workbench.project.roster.internal.", RecordType::A),
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let (m, _) = udp(r.addr, &query("project.roster.internal.", RecordType::A));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn changed_fixtures_cover_pod_index_dual_stack_and_termination() {
    // Changed: prometheus-k8s-1 gets the label apps.kubernetes.io/pod-index: "5" (the label
    // wins over the name's suffix).
    let mut p1 = fixture("pod-sts-prometheus-k8s-1-ready-subdomain.json");
    p1["metadata"]["labels"]["apps.kubernetes.io/pod-index"] = json!("5");
    // Changed: prometheus-k8s-0 gets a second, IPv6 address in status.podIPs.
    let mut p0 = fixture("pod-sts-prometheus-k8s-0-ready-subdomain.json");
    p0["status"]["podIPs"]
        .as_array_mut()
        .unwrap()
        .push(json!({"ip": "fd00:10:244:1::5"}));
    // Changed: alertmanager-main-0 is terminating (deletionTimestamp and grace period set).
    let mut am = fixture("pod-sts-alertmanager-main-0-ready-udp-port.json");
    am["metadata"]["deletionTimestamp"] = json!("2022-01-25T10:00:00Z");
    am["metadata"]["deletionGracePeriodSeconds"] = json!(120);
    // Changed: the workbench pod in the PodList is labelled into a service.
    let mut wb = fixture("podlist-sts-workbench-0-ready-openshift.json");
    wb["items"][0]["metadata"]["labels"]["roster.io/service"] = json!("workbench");

    let r = Roster::start(&documents(&[p0, p1, am, wb]));
    let ask = |n: &str, t| udp(r.addr, &query(n, t)).0;
    let m = ask(
        &format!("prometheus-k8s-5.prometheus-operated.{MON}"),
        RecordType::A,
    );
    assert_eq!(
        a_records(&m),
        ["10.129.0.148"],
        "pod-index label names the member"
    );
    let m = ask(
        &format!("prometheus-k8s-1.prometheus-operated.{MON}"),
        RecordType::A,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = ask(
        &format!("prometheus-k8s-0.prometheus-operated.{MON}"),
        RecordType::AAAA,
    );
    assert_eq!(a_records(&m), ["fd00:10:244:1::5"], "dual stack");
    let m = ask(
        &format!("alertmanager-main-0.alertmanager-operated.{MON}"),
        RecordType::A,
    );
    assert_eq!(
        (m.metadata.response_code, m.answers.len()),
        (ResponseCode::NoError, 0),
        "a terminating member keeps its name without records"
    );
    let m = ask(
        "workbench-0.workbench.project.roster.internal.",
        RecordType::A,
    );
    assert_eq!(
        a_records(&m),
        ["10.131.1.182"],
        "label membership, set from the StatefulSet"
    );
}

#[test]
fn a_podlist_file_is_served_as_is() {
    let path = format!(
        "{}/tests/fixtures/pods/podlist-sts-workbench-0-ready-openshift.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let r = Roster::start_with("", "", &["--pods-file", &path]);
    let (m, _) = udp(r.addr, &query("roster.internal.", RecordType::SOA));
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "ready: the list loaded"
    );
    assert!(r.log().contains("pods=1"), "{}", r.log());
}
