//! Identity hijacking: labels are something any pod can carry. A pod in another namespace gets a
//! name in its own namespace only; and with `members.protect_statefulset_names`, a pod that
//! only carries labels never takes a name from the StatefulSet pod that holds it, even one that
//! would win by the SPEC's conflict order.

mod common;

use common::*;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;

/// A pod that is not owned by anything and asks, by labels alone, for `db-0` of `db` in
/// `namespace`: older than every StatefulSet pod of the world, and ready.
fn intruder(namespace: &str, ip: &str) -> String {
    format!(
        "---
apiVersion: v1
kind: Pod
metadata:
  name: intruder
  namespace: {namespace}
  creationTimestamp: \"2025-01-01T00:00:00Z\"
  labels:
    roster.io/service: db
    roster.io/name: db
    roster.io/ordinal: \"0\"
spec:
  containers:
  - name: x
    image: x
    ports:
    - {{name: peer, containerPort: 7000}}
status:
  conditions:
  - {{type: Ready, status: \"True\"}}
  podIPs:
  - ip: {ip}
"
    )
}

#[test]
fn a_pod_in_another_namespace_gets_only_a_name_of_its_own_namespace() {
    let mut pods = world();
    pods.push_str(&intruder("evil", "10.66.0.1"));
    let r = Roster::start(&pods);
    assert_eq!(r.a("db-0.db.prod.roster.internal."), ["10.1.0.1"]);
    assert_eq!(r.a("db-0.db.evil.roster.internal."), ["10.66.0.1"]);
    // The SRV records of prod's db list prod's members only.
    let srv = udp(r.addr, &query("db.prod.roster.internal.", RecordType::SRV)).0;
    assert!(
        rdata(&srv)
            .iter()
            .all(|t| t.ends_with(".db.prod.roster.internal.")),
        "{:?}",
        rdata(&srv)
    );
}

#[test]
fn by_default_the_spec_order_decides_a_conflict() {
    let mut pods = world();
    pods.push_str(&intruder("prod", "10.66.0.1"));
    let r = Roster::start(&pods);
    // Older and ready: by SPEC §2 the labelled pod wins.
    assert_eq!(r.a("db-0.db.prod.roster.internal."), ["10.66.0.1"]);
}

#[test]
fn protected_statefulset_names_cannot_be_taken_by_labels() {
    let mut pods = world();
    pods.push_str(&intruder("prod", "10.66.0.1"));
    let r = Roster::start_with(
        "[members]\nprotect_statefulset_names = true\n",
        &pods,
        &["--admin-listen", "127.0.0.1:0"],
    );
    assert_eq!(r.a("db-0.db.prod.roster.internal."), ["10.1.0.1"]);
    // Still a conflict an operator sees.
    let (_, members) = http_get(r.admin.unwrap(), "/members");
    assert!(members.contains("intruder"), "{members}");

    // Even when the StatefulSet's pod is not ready (it would lose by SPEC §2), it keeps its
    // name: the name answers NODATA rather than the intruder's address.
    let mut pods = db_pod(0, "10.1.0.1", false);
    pods.push_str(&intruder("prod", "10.66.0.1"));
    r.write_pods(&pods);
    let name = "db-0.db.prod.roster.internal.";
    assert!(
        r.eventually(std::time::Duration::from_secs(5), || {
            let m = udp(r.addr, &query(name, RecordType::A)).0;
            m.metadata.response_code == ResponseCode::NoError && m.answers.is_empty()
        })
        .is_some(),
        "db-0 held, unpublished, by the StatefulSet's pod"
    );
    assert!(r.a(name).is_empty());
}
