//! The watched pods file (SPEC §3, §4): edits are served within 2 s, a broken file keeps the
//! last good answers, and roster recovers by itself when the file is fixed.

mod common;

use common::*;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{RData, RecordType};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(2);

fn a(r: &Roster, qname: &str) -> (ResponseCode, Vec<String>) {
    let (m, _) = udp(r.addr, &query(qname, RecordType::A));
    (m.metadata.response_code, a_records(&m))
}

fn serial(r: &Roster) -> u32 {
    let (m, _) = udp(r.addr, &query(ZONE, RecordType::SOA));
    match &m.answers[0].data {
        RData::SOA(soa) => soa.serial,
        other => panic!("{other:?}"),
    }
}

fn serial_gt(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < (1 << 31)
}

/// Writes `pods`, then waits until `qname` answers `want`; fails after 2 s.
fn expect_after(r: &Roster, pods: &str, qname: &str, want: (ResponseCode, Vec<&str>), what: &str) {
    let before = serial(r);
    r.write_pods(pods);
    let want = (
        want.0,
        want.1.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    );
    let took = r.eventually(WITHIN, || a(r, qname) == want);
    assert!(
        took.is_some(),
        "{what}: {qname} still answers {:?}, want {want:?}\n{}",
        a(r, qname),
        r.log()
    );
    assert!(
        serial_gt(serial(r), before),
        "{what}: the SOA serial increases"
    );
}

#[test]
fn edits_are_served_within_two_seconds() {
    let r = Roster::start(&world());
    let db1 = "db-1.db.prod.roster.internal.";
    assert_eq!(
        a(&r, db1),
        (ResponseCode::NoError, vec!["10.1.0.2".to_string()])
    );

    // The pod is rescheduled: same name, new IP.
    let mut pods = world().replace("10.1.0.2", "10.1.9.2");
    expect_after(
        &r,
        &pods,
        db1,
        (ResponseCode::NoError, vec!["10.1.9.2"]),
        "IP change",
    );

    // Scale up: a new member.
    pods.push_str(&db_pod(3, "10.1.0.4", true));
    expect_after(
        &r,
        &pods,
        "db-3.db.prod.roster.internal.",
        (ResponseCode::NoError, vec!["10.1.0.4"]),
        "new member",
    );

    // Readiness flips: db-2 becomes ready.
    pods = pods.replace("status: \"False\"", "status: \"True\"");
    expect_after(
        &r,
        &pods,
        "db-2.db.prod.roster.internal.",
        (ResponseCode::NoError, vec!["10.1.0.3"]),
        "ready",
    );

    // ... and back.
    pods = pods.replace(&db_pod(2, "10.1.0.3", true), &db_pod(2, "10.1.0.3", false));
    expect_after(
        &r,
        &pods,
        "db-2.db.prod.roster.internal.",
        (ResponseCode::NoError, vec![]),
        "not ready",
    );

    // Deletion: scale down removes db-3 entirely.
    pods = pods.replace(&db_pod(3, "10.1.0.4", true), "");
    expect_after(
        &r,
        &pods,
        "db-3.db.prod.roster.internal.",
        (ResponseCode::NXDomain, vec![]),
        "deleted",
    );

    // A conflict: a labelled pod claims db-1. It is newer, so the incumbent keeps the name...
    let claimant = |created: &str| {
        format!(
            "---\nmetadata:\n  name: intruder\n  namespace: prod\n  creationTimestamp: \"{created}\"\n  labels:\n    roster.io/service: db\n    roster.io/name: db\n    roster.io/ordinal: \"1\"\nstatus:\n  conditions: [{{type: Ready, status: \"True\"}}]\n  podIP: 10.1.6.6\n"
        )
    };
    let with_newer = format!("{pods}{}", claimant("2030-01-01T00:00:00Z"));
    r.write_pods(&with_newer);
    let line = r.wait_log("member name claimed by more than one pod", WITHIN);
    let line = line.unwrap_or_else(|| panic!("the conflict is logged\n{}", r.log()));
    assert!(
        line.contains("conflicts_total=1") && line.contains("prod/intruder"),
        "counted: {line}"
    );
    assert_eq!(a(&r, db1).1, ["10.1.9.2"], "the incumbent keeps its name");
    // ...until the incumbent terminates.
    let terminating = with_newer.replace(
        "  name: db-1\n  namespace: prod\n",
        "  name: db-1\n  namespace: prod\n  deletionTimestamp: \"2026-06-01T00:00:00Z\"\n",
    );
    expect_after(
        &r,
        &terminating,
        db1,
        (ResponseCode::NoError, vec!["10.1.6.6"]),
        "terminating loses",
    );
}

#[test]
fn a_broken_file_keeps_the_last_good_answers_and_recovers() {
    let r = Roster::start(&world());
    let db0 = "db-0.db.prod.roster.internal.";
    let good = (ResponseCode::NoError, vec!["10.1.0.1".to_string()]);
    let before = serial(&r);

    // Half-written: cut in the middle of a document.
    let text = world();
    let half = &text[..text.len() / 2];
    r.write_pods(&format!("{half}\n  - {{broken"));
    let line = r
        .wait_log("pods file reload failed", WITHIN)
        .expect("the failure is logged");
    assert!(
        line.contains("pods.yaml:"),
        "the log names the file and position: {line}"
    );
    assert_eq!(a(&r, db0), good, "still serving the last good version");
    assert_eq!(serial(&r), before, "nothing changed");

    // Not a list of pods at all.
    r.write_pods("kind: Deployment\nmetadata:\n  name: x\n");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(a(&r, db0), good);
    // Gone for a while (an editor that deletes then writes).
    std::fs::remove_file(r.pods_path()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(a(&r, db0), good);
    assert!(
        r.log().contains("cannot read"),
        "a missing file is reported\n{}",
        r.log()
    );

    // Fixed: roster recovers by itself.
    let fixed = world().replace("10.1.0.1", "10.1.7.1");
    r.write_pods(&fixed);
    assert!(
        r.eventually(WITHIN, || a(&r, db0).1 == ["10.1.7.1"])
            .is_some(),
        "{}",
        r.log()
    );
    // Logged before the fixed version is applied; read from roster's stderr as it comes.
    assert!(
        r.wait_log("pods file is valid again", WITHIN).is_some(),
        "{}",
        r.log()
    );
}

#[test]
fn a_file_written_in_place_is_applied_once_complete() {
    use std::io::Write;
    let r = Roster::start(&world());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(r.pods_path())
        .unwrap();
    let text = world().replace("10.1.0.2", "10.1.3.2");
    let (head, tail) = text.split_at(text.len() / 3);
    f.write_all(head.as_bytes()).unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    // Whatever roster made of the partial file, it never served a half: db-1 is old or new.
    let db1 = a(&r, "db-1.db.prod.roster.internal.");
    assert!(db1.1 == ["10.1.0.2"] || db1.1 == ["10.1.3.2"], "{db1:?}");
    f.write_all(tail.as_bytes()).unwrap();
    drop(f);
    let done = r.eventually(WITHIN, || {
        a(&r, "db-1.db.prod.roster.internal.").1 == ["10.1.3.2"]
    });
    assert!(done.is_some(), "{}", r.log());
    assert_eq!(a(&r, "db-0.db.prod.roster.internal.").1, ["10.1.0.1"]);
}

#[test]
fn a_file_rewritten_in_place_at_its_old_size_and_time_is_applied() {
    // What `rsync -a --inplace` or `cp -p` over the file do: new content at the old length,
    // with the old modification time set back.
    use std::io::Write;
    let r = Roster::start(&world());
    let path = r.pods_path();
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    let text = world().replace("10.1.0.2", "10.1.0.9");
    assert_eq!(text.len(), world().len());
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.set_modified(modified).unwrap();
    drop(f);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (meta.len(), meta.modified().unwrap()),
        (world().len() as u64, modified)
    );
    let db1 = "db-1.db.prod.roster.internal.";
    let done = r.eventually(WITHIN, || a(&r, db1).1 == ["10.1.0.9"]);
    assert!(
        done.is_some(),
        "{db1} answers {:?}\n{}",
        a(&r, db1),
        r.log()
    );
}

/// A file truncated and not yet written, as `kubectl get pods -o yaml > pods.yaml` leaves it
/// while kubectl runs, or as any in-place writer does until its first write, is not a version
/// with no pods: the last good version is still served, the empty file is reported, and the
/// version written next is applied.
#[test]
fn an_emptied_file_is_taken_for_a_write_in_progress() {
    let r = Roster::start(&world());
    let db1 = "db-1.db.prod.roster.internal.";
    // Truncated and closed: the write is over as far as the directory's events can tell.
    drop(std::fs::File::create(r.pods_path()).unwrap());
    r.wait_log("empty, as a file written in place", WITHIN)
        .unwrap_or_else(|| panic!("the empty file is reported\n{}", r.log()));
    assert_eq!(
        a(&r, db1),
        (ResponseCode::NoError, vec!["10.1.0.2".to_string()]),
        "{}",
        r.log()
    );
    expect_after(
        &r,
        &world().replace("10.1.0.2", "10.1.0.7"),
        db1,
        (ResponseCode::NoError, vec!["10.1.0.7"]),
        "the version written after it",
    );
}

#[test]
fn sighup_reads_the_pods_file_again() {
    let r = Roster::start(&world());
    let db0 = "db-0.db.prod.roster.internal.";
    r.send("-HUP");
    r.wait_log("pods file read again; unchanged", WITHIN)
        .unwrap_or_else(|| panic!("SIGHUP reads the file\n{}", r.log()));
    // A broken version is reported at each SIGHUP, and the last good one is still served.
    r.write_pods("kind: Deployment\n");
    r.wait_log("failures_total=1", WITHIN)
        .unwrap_or_else(|| panic!("the failure is logged\n{}", r.log()));
    r.send("-HUP");
    r.wait_log("failures_total=2", WITHIN)
        .unwrap_or_else(|| panic!("SIGHUP reads the broken file again\n{}", r.log()));
    assert_eq!(
        a(&r, db0),
        (ResponseCode::NoError, vec!["10.1.0.1".to_string()])
    );
}

#[test]
fn an_unchanged_rewrite_changes_nothing() {
    let r = Roster::start(&world());
    let before = serial(&r);
    r.write_pods(&world());
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(serial(&r), before, "same content, same serial");
}

#[test]
fn a_pod_that_cannot_be_a_member_is_logged_once() {
    let orphan =
        "---\nmetadata:\n  name: db-abc\n  namespace: prod\n  labels: {roster.io/service: db}\n";
    let r = Roster::start(&format!("{}{orphan}", world()));
    let needle = "pod asks to be a member but has no name";
    let line = r.wait_log(needle, WITHIN).expect("logged at load");
    assert!(
        line.contains("prod/db-abc") && line.contains("no_ordinal"),
        "{line}"
    );
    assert!(
        line.contains("skipped_for_reason=1"),
        "counted by reason: {line}"
    );
    // Other pods change; the orphan does not: it is not reported again.
    let pods = format!("{}{orphan}", world().replace("10.1.0.2", "10.1.5.2"));
    r.write_pods(&pods);
    let applied = r.eventually(WITHIN, || {
        a(&r, "db-1.db.prod.roster.internal.").1 == ["10.1.5.2"]
    });
    assert!(applied.is_some());
    assert_eq!(r.log().matches(needle).count(), 1, "{}", r.log());
}

fn json_pod(name: &str, ip: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod",
  "metadata": {{"name": "{name}", "namespace": "prod", "creationTimestamp": "2026-01-01T00:00:00Z",
    "ownerReferences": [{{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u1", "controller": true}}]}},
  "spec": {{"subdomain": "db", "containers": [{{"name": "db", "image": "db", "ports": [{{"name": "peer", "containerPort": 7000}}]}}]}},
  "status": {{"phase": "Running", "conditions": [{{"type": "Ready", "status": "True"}}], "podIP": "{ip}"}}}}"#
    )
}

fn json_list(pods: &[(&str, &str)]) -> String {
    let items: Vec<String> = pods.iter().map(|(name, ip)| json_pod(name, ip)).collect();
    format!(
        "{{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [\n{}\n]}}\n",
        items.join(",\n")
    )
}

/// The members of db in its SRV answer, as (target, address) pairs.
fn members(r: &Roster) -> Vec<(String, String)> {
    let (m, _) = udp(r.addr, &query("db.prod.roster.internal.", RecordType::SRV));
    let mut out: Vec<(String, String)> = m
        .answers
        .iter()
        .filter_map(|rec| match &rec.data {
            RData::SRV(srv) => Some(srv.target.to_ascii()),
            _ => None,
        })
        .map(|target| {
            let ips = a(r, &target).1;
            (target, ips.join(","))
        })
        .collect();
    out.sort();
    out
}

fn member(name: &str, ip: &str) -> (String, String) {
    (format!("{name}.db.prod.roster.internal."), ip.to_string())
}

/// The same list as `kubectl get pods -o yaml` prints it.
fn yaml_list(pods: &[(&str, &str)]) -> String {
    let items: String = pods
        .iter()
        .map(|(name, ip)| {
            format!(
                "- apiVersion: v1
  kind: Pod
  metadata:
    creationTimestamp: \"2026-01-01T00:00:00Z\"
    name: {name}
    namespace: prod
    ownerReferences:
    - apiVersion: apps/v1
      controller: true
      kind: StatefulSet
      name: db
      uid: u1
  spec:
    containers:
    - image: db
      name: db
      ports:
      - containerPort: 7000
        name: peer
    subdomain: db
  status:
    conditions:
    - status: \"True\"
      type: Ready
    phase: Running
    podIP: {ip}
"
            )
        })
        .collect();
    format!("apiVersion: v1\nitems:\n{items}kind: List\nmetadata:\n  resourceVersion: \"\"\n")
}

/// `kubectl get pods -o json` output is compared with the last version item by item: only the
/// pods whose text changed are applied, and the answers are those of the whole new file.
#[test]
fn a_json_list_is_applied_item_by_item() {
    applied_item_by_item(json_list);
}

/// So is `kubectl get pods -o yaml` output, which would otherwise be parsed whole at every
/// change (seconds for a large cluster's).
#[test]
fn a_yaml_list_is_applied_item_by_item() {
    applied_item_by_item(yaml_list);
}

fn applied_item_by_item(list: fn(&[(&str, &str)]) -> String) {
    let r = Roster::start(&list(&[
        ("db-0", "10.1.0.1"),
        ("db-1", "10.1.0.2"),
        ("db-2", "10.1.0.3"),
    ]));
    let expect = |pods: &[(&str, &str)], want: Vec<(String, String)>, log: &str, what: &str| {
        let lines = r.log().matches(log).count();
        r.write_pods(&list(pods));
        let took = r.eventually(WITHIN, || {
            members(&r) == want && r.log().matches(log).count() > lines
        });
        assert!(
            took.is_some(),
            "{what}: members {:?}, want {want:?}\n{}",
            members(&r),
            r.log()
        );
    };
    expect(
        &[
            ("db-0", "10.1.0.1"),
            ("db-1", "10.1.9.2"),
            ("db-2", "10.1.0.3"),
        ],
        vec![
            member("db-0", "10.1.0.1"),
            member("db-1", "10.1.9.2"),
            member("db-2", "10.1.0.3"),
        ],
        "applying the pods that changed path=pods.yaml pods=3 changed=1 gone=0",
        "a new address",
    );
    expect(
        &[("db-0", "10.1.0.1"), ("db-1", "10.1.9.2")],
        vec![member("db-0", "10.1.0.1"), member("db-1", "10.1.9.2")],
        "pods=2 changed=0 gone=1",
        "a pod removed",
    );
    // A pod renamed in place: the old name goes, the new one comes, in one snapshot.
    expect(
        &[("db-5", "10.1.0.1"), ("db-1", "10.1.9.2")],
        vec![member("db-1", "10.1.9.2"), member("db-5", "10.1.0.1")],
        "pods=2 changed=1 gone=1",
        "a pod renamed",
    );
    assert_eq!(
        a(&r, "db-0.db.prod.roster.internal.").0,
        ResponseCode::NXDomain
    );
    // Two items for one pod: which counts depends on their order, so the file is read whole, and
    // the later item wins as in any list.
    expect(
        &[
            ("db-5", "10.1.0.1"),
            ("db-1", "10.1.9.2"),
            ("db-1", "10.1.8.2"),
        ],
        vec![member("db-1", "10.1.8.2"), member("db-5", "10.1.0.1")],
        "pods file changed; applying it whole",
        "a duplicate",
    );
    // ...and so is the next version, which then is compared item by item again.
    expect(
        &[("db-5", "10.1.0.1"), ("db-1", "10.1.8.2")],
        vec![member("db-1", "10.1.8.2"), member("db-5", "10.1.0.1")],
        "pods file changed; applying it whole",
        "after a duplicate",
    );
    expect(
        &[
            ("db-5", "10.1.0.1"),
            ("db-1", "10.1.8.2"),
            ("db-3", "10.1.0.4"),
        ],
        vec![
            member("db-1", "10.1.8.2"),
            member("db-3", "10.1.0.4"),
            member("db-5", "10.1.0.1"),
        ],
        "pods=3 changed=1 gone=0",
        "a pod added",
    );
}

/// `source.namespaces` and `source.label_selector` select among the file's pods as the API server
/// selects among a cluster's: a dump of the cluster served with its configuration gives its
/// answers. A pod whose labels leave the selection leaves the zone; one that enters it is served.
#[test]
fn the_file_serves_the_pods_its_selection_admits() {
    let pod = |ns: &str, name: &str, tier: &str, ip: &str| {
        format!(
            r#"{{"metadata": {{"name": "{name}", "namespace": "{ns}", "creationTimestamp": "2026-01-01T00:00:00Z",
    "labels": {{"roster.io/service": "db", "tier": "{tier}"}}}},
  "status": {{"phase": "Running", "conditions": [{{"type": "Ready", "status": "True"}}], "podIP": "{ip}"}}}}"#
        )
    };
    let version = |db0: &str, db1: &str| {
        let items = [
            pod("prod", "db-0", db0, "10.1.0.1"),
            pod("prod", "db-1", db1, "10.1.0.2"),
            pod("staging", "db-0", "data", "10.2.0.1"),
        ];
        format!(
            "{{\"kind\": \"List\", \"items\": [\n{}\n]}}\n",
            items.join(",\n")
        )
    };
    let config = "[source]\npods_file = \"pods.yaml\"\nnamespaces = [\"prod\"]\nlabel_selector = \"tier in (data, cache)\"\n";
    let r = Roster::start_with(config, &version("data", "web"), &[]);
    let answers = |r: &Roster| {
        ["db-0.db.prod", "db-1.db.prod", "db-0.db.staging"]
            .map(|n| a(r, &format!("{n}.roster.internal.")))
    };
    let served = |ip: &str| (ResponseCode::NoError, vec![ip.to_owned()]);
    let none = || (ResponseCode::NXDomain, vec![]);
    assert_eq!(answers(&r), [served("10.1.0.1"), none(), none()]);
    // Writes `pods`, then waits for `want` and for `log` in the log.
    let expect = |pods: &str, want: [(ResponseCode, Vec<String>); 3], log: &str| {
        r.write_pods(pods);
        let took = r.eventually(WITHIN, || answers(&r) == want);
        assert!(took.is_some(), "{:?}\n{}", answers(&r), r.log());
        // Logged before the version is applied; read from roster's stderr as it comes.
        assert!(r.wait_log(log, WITHIN).is_some(), "{}", r.log());
    };
    // db-0 leaves the selection and db-1 enters it, in a version compared item by item.
    expect(
        &version("web", "cache"),
        [none(), served("10.1.0.2"), none()],
        "pods=3 changed=2 gone=0",
    );
    // Back, in a version read whole (JSON is YAML, and a comment first makes it read as such).
    expect(
        &format!("# as YAML\n{}", version("data", "web")),
        [served("10.1.0.1"), none(), none()],
        "applying it whole",
    );
}

/// A writer that replaces the file (by renames) faster than roster can read it still gets its
/// versions served as it goes, rather than only once it stops: a version read while a newer one
/// lands is complete, and is used.
#[test]
fn a_file_replaced_faster_than_it_is_read_is_still_followed() {
    // 50,000 pods (21 MB): a read takes long enough for several renames to land during it, and
    // the file is larger than those roster reads on its pipeline's own thread (16 MiB), so the
    // read is handed to another thread, as for every large file.
    let version = |v: usize| {
        let mut pods: Vec<(String, String)> = (0..50_000)
            .map(|n| {
                (
                    format!("db-{}", n + 1),
                    format!("10.2.{}.{}", n / 250, n % 250 + 1),
                )
            })
            .collect();
        pods.push(("db-0".into(), format!("10.1.0.{}", v + 1)));
        let pods: Vec<(&str, &str)> = pods
            .iter()
            .map(|(n, ip)| (n.as_str(), ip.as_str()))
            .collect();
        json_list(&pods)
    };
    let r = Roster::start(&version(0));
    let dir = r.pods_path().parent().unwrap().to_owned();
    let files: Vec<_> = (0..4)
        .map(|v| {
            let file = dir.join(format!("version-{v}.json"));
            std::fs::write(&file, version(v)).unwrap();
            file
        })
        .collect();
    let db0 = "db-0.db.prod.roster.internal.";
    let storm = Duration::from_secs(3);
    let writer = {
        let (path, tmp) = (r.pods_path(), dir.join("next.json"));
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let mut renames = 0usize;
            while started.elapsed() < storm {
                std::fs::hard_link(&files[renames % 4], &tmp).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
                renames += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            renames
        })
    };
    let mut seen = std::collections::BTreeSet::new();
    let started = std::time::Instant::now();
    while started.elapsed() < storm - Duration::from_millis(200) {
        seen.extend(a(&r, db0).1);
        std::thread::sleep(Duration::from_millis(5));
    }
    let renames = writer.join().unwrap();
    assert!(renames > 500, "{renames} renames");
    assert!(
        seen.len() >= 3,
        "during {renames} renames only {seen:?} were served\n{}",
        r.log()
    );
}

/// A ConfigMap volume: the file is a symlink through `..data`, which the kubelet points at a new
/// directory on each update by renaming a new symlink over it.
#[test]
fn a_configmap_volume_update_is_followed() {
    let cm = temp_dir();
    let publish = |version: usize, text: &str| {
        let dir = cm.join(format!("..2026_11_27_00_00_0{version}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("pods.yaml"), text).unwrap();
        let tmp = cm.join("..data_tmp");
        std::os::unix::fs::symlink(dir.file_name().unwrap(), &tmp).unwrap();
        std::fs::rename(&tmp, cm.join("..data")).unwrap();
    };
    publish(0, &world());
    std::os::unix::fs::symlink("..data/pods.yaml", cm.join("pods.yaml")).unwrap();
    let config = format!(
        "[source]\npods_file = \"{}\"\n",
        cm.join("pods.yaml").display()
    );
    let r = Roster::start_with(&config, "", &[]);
    let db1 = "db-1.db.prod.roster.internal.";
    assert_eq!(a(&r, db1).1, ["10.1.0.2"]);
    for version in 1..4 {
        let ip = format!("10.1.9.{version}");
        publish(version, &world().replace("10.1.0.2", &ip));
        let took = r.eventually(WITHIN, || a(&r, db1).1 == [ip.as_str()]);
        assert!(took.is_some(), "version {version}\n{}", r.log());
    }
}
