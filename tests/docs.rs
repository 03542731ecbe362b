//! The README documents what operators configure and watch: every key of the shipped
//! `config/roster.toml` (as `section.key`), and every metric family roster exports (counters
//! under their `_total` name), so that neither can be added without its documentation.

mod common;

use common::*;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

#[test]
fn every_configuration_key_is_documented() {
    let config =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/roster.toml"))
            .unwrap();
    let readme = readme();
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in config.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, _)) = line.split_once(" = ")
            && !line.starts_with('#')
        {
            keys.push(format!("`{section}.{key}`"));
        }
    }
    assert!(keys.len() > 20, "keys found: {keys:?}");
    let missing: Vec<&String> = keys.iter().filter(|k| !readme.contains(*k)).collect();
    assert!(missing.is_empty(), "not in the README: {missing:?}");
}

#[test]
fn every_metric_is_documented() {
    let r = Roster::start_with("", &world(), &["--admin-listen", "127.0.0.1:0"]);
    let mut names = families(r.admin.unwrap());
    // Some families exist only with the Kubernetes source and `source.namespaces`.
    let api = fake_api::FakeApi::start();
    api.apply(fake_api::pod("prod", "db-0", "db", "10.0.0.1", true));
    let dir = temp_dir();
    let config = format!(
        "[source]\ntype = \"kubernetes\"\nkubeconfig = \"{}\"\nnamespaces = [\"prod\"]\n",
        api.kubeconfig(&dir).display()
    );
    let kube = Roster::start_with(&config, "", &["--admin-listen", "127.0.0.1:0"]);
    names.extend(families(kube.admin.unwrap()));
    names.sort();
    names.dedup();
    assert!(names.len() > 20, "metrics found: {names:?}");
    let readme = readme();
    let missing: Vec<&String> = names.iter().filter(|n| !readme.contains(*n)).collect();
    assert!(missing.is_empty(), "not in the README: {missing:?}");
}

/// The metric families the admin listener at `admin` exports, each as the README quotes it.
fn families(admin: std::net::SocketAddr) -> Vec<String> {
    let (_, text) = http_get(admin, "/metrics");
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        // The Prometheus text format names a family as its samples are.
        .map(|rest| format!("`{}`", rest.split_whitespace().next().unwrap()))
        .collect()
}
