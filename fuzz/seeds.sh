#!/usr/bin/env bash
# Writes the seed corpora of the fuzz targets. `request`'s are the queries real clients send,
# captured as they leave them -- dig and kdig (several option sets), glibc's resolver (getent),
# and musl's (a getaddrinfo call built with musl-gcc, when musl-tools is installed). glibc and
# musl read /etc/resolv.conf, so they run in a network and mount namespace of their own (created
# here and gone when the command ends) with a resolv.conf naming the capture socket. Needs root.
#
# Each `request` seed is one byte (0: as UDP, 1: as TCP; see fuzz_targets/request.rs) then the
# message.
set -euo pipefail
cd "$(dirname "$0")"

# The `podsfile` target's seeds: one byte (how much is read at a time, minus one), then versions
# of a small pods file separated by NUL (see fuzz_targets/podsfile.rs): a change of address, a
# pod gone, a pod added, items reordered, one pod named twice, a run of pods gone longer than the
# walk looks ahead, and the same list in kubectl's indented form; the same changes in YAML, as
# kubectl's list and as documents; the example pods file changed; and kubectl's own YAML.
mkdir -p corpus/podsfile
rm -f corpus/podsfile/seed-*
python3 - corpus/podsfile <<'PY'
import copy, json, os, sys
def pod(n, ip):
    port = {"name": "peer", "containerPort": 7000}
    return {"metadata": {"name": f"db-{n}", "namespace": "prod",
                         "labels": {"roster.io/service": "db"},
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [port]}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                       "podIP": ip, "podIPs": [{"ip": ip}]}}
def text(pods, indent=None):
    return json.dumps({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                       "items": pods}, indent=indent).encode()
first = [pod(n, f"10.0.0.{n + 1}") for n in range(3)]
moved = copy.deepcopy(first)
moved[1]["status"]["podIP"] = "10.0.1.2"
moved[1]["status"]["podIPs"] = [{"ip": "10.0.1.2"}]
# Longer than the walk looks ahead (256 items) for an item not at its place.
many = [{"metadata": {"name": f"p{n}", "namespace": "ns"},
         "status": {"podIP": f"10.1.{n // 250}.{n % 250 + 1}"}} for n in range(300)]
seeds = {
    "long-run-gone": [many, many[:20] + many[280:]],
    "address": [first, moved],
    "gone": [first, first[:1] + first[2:]],
    "added": [first, first + [pod(3, "10.0.0.4")]],
    "reordered": [first, first[::-1]],
    "twice": [first, first + [moved[1]]],
}
for name, versions in seeds.items():
    for chunk in (7, 255):
        with open(os.path.join(sys.argv[1], f"seed-{name}-{chunk}"), "wb") as f:
            f.write(bytes([chunk]) + b"\0".join(text(v) for v in versions))
with open(os.path.join(sys.argv[1], "seed-indented"), "wb") as f:
    f.write(bytes([31]) + text(first, 4) + b"\0" + text(moved, 4))
# kubectl's YAML layout, as the benchmark writes it.
sys.path.insert(0, "../benches")
from compare import yaml_text as emit
def yaml_list(pods):
    return emit({"apiVersion": "v1", "items": pods, "kind": "List",
                 "metadata": {"resourceVersion": ""}}, 0).encode()
def yaml_documents(pods):
    return "".join("---\n" + emit({"apiVersion": "v1", "kind": "Pod", **p}, 0) for p in pods).encode()
for name, versions in seeds.items():
    if name == "long-run-gone":
        continue
    for form, render in (("list", yaml_list), ("documents", yaml_documents)):
        with open(os.path.join(sys.argv[1], f"seed-yaml-{form}-{name}"), "wb") as f:
            f.write(bytes([255]) + b"\0".join(render(v) for v in versions))
# The example pods file (plain scalars, comments, documents), an address changed, and an
# annotation written as a literal block, as kubectl writes last-applied-configuration.
example = open("../config/example-pods.yaml", "rb").read()
moved = example.replace(b"10.244.1.10", b"10.244.9.10")
annotated = moved.replace(b"  name: db-0\n", b"  name: db-0\n  annotations:\n    note: |\n"
                          b"      {\"a\": \"b\"}\n\n      second\n", 1)
with open(os.path.join(sys.argv[1], "seed-yaml-example"), "wb") as f:
    f.write(bytes([255]) + b"\0".join([example, moved, annotated]))
# kubectl's own YAML (tests/fixtures/pods-yaml): strings folded over lines, |2 blocks,
# managedFields; then its address changed.
for name, ip in (("pod-folded-strings", b"10.0.0.1"),
                 ("podlist-sts-workbench-0-ready-openshift", b"10.131.1.182")):
    text = open(f"../tests/fixtures/pods-yaml/{name}.yaml", "rb").read()
    assert ip in text
    with open(os.path.join(sys.argv[1], f"seed-kubectl-{name}"), "wb") as f:
        f.write(bytes([63]) + b"\0".join([text, text.replace(ip, b"10.9.9.9")]))
# The first with a Windows editor's line breaks.
text = open("../tests/fixtures/pods-yaml/pod-folded-strings.yaml", "rb").read()
text = text.replace(b"\n", b"\r\n")
with open(os.path.join(sys.argv[1], "seed-kubectl-crlf"), "wb") as f:
    f.write(bytes([63]) + b"\0".join([text, text.replace(b"10.0.0.1", b"10.9.9.9")]))
PY

# The `config` target's seeds: the shipped configurations, and one that sets every key.
mkdir -p corpus/config
rm -f corpus/config/seed-*
cp ../config/roster.toml corpus/config/seed-roster
cp ../config/cluster.toml corpus/config/seed-cluster
cat > corpus/config/seed-every-key <<'TOML'
[dns]
listen = ["127.0.0.1:5353", "[::1]:5353"]
zones = ["roster.internal.", "db.example."]
reverse_zones = ["10.in-addr.arpa.", "0.0.d.f.ip6.arpa."]
ttl = 5
negative_ttl = 5
max_udp_payload = 1232
tcp_idle_timeout = 10
tcp_lifetime = 120
tcp_max_queries = 100
tcp_max_connections = 1000
rate_limit = 50
rate_limit_slip = 2
rate_limit_exempt = ["127.0.0.0/8", "fd00::/8"]
workers = 2
udp_receive_buffer = 4194304
nameserver = "roster.roster-system.svc.cluster.local."
hostmaster = "hostmaster.roster.internal."
nsid = "roster-a"

[members]
publish_not_ready = true
protect_statefulset_names = true
max_pods = 100000
max_per_service = 100

[admin]
listen = "127.0.0.1:9153"

[source]
type = "kubernetes"
kubeconfig = "kube/config"
namespaces = ["prod", "staging"]
label_selector = "team in (a, b), tier != web"
api_timeout = 30
TOML

out=corpus/request
mkdir -p "$out"
rm -f "$out"/seed-*

capture() { # capture TAG COMMAND... -- runs COMMAND in a fresh namespace with a capture socket
  local tag=$1; shift
  unshare --net --mount bash -euo pipefail -c '
    ip link set lo up
    resolv=$(mktemp)
    printf "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n" > "$resolv"
    mount --bind "$resolv" /etc/resolv.conf
    python3 - "$0" "$1" <<PY &
import socket, sys, os
out, tag = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53)); s.settimeout(3)
n = 0
try:
    while True:
        data, _ = s.recvfrom(65535)
        for transport in (0, 1):
            with open(os.path.join(out, f"seed-{tag}-{n}-{transport}"), "wb") as f:
                f.write(bytes([transport]) + data)
        n += 1
except socket.timeout:
    pass
PY
    sleep 0.3
    shift
    "$@" >/dev/null 2>&1 || true
    wait
  ' "$out" "$tag" "$@"
}

name=db-0.db.prod.roster.internal
capture dig dig +tries=1 +time=1 @127.0.0.1 "$name"
capture dig-srv dig +tries=1 +time=1 @127.0.0.1 _peer._tcp.db.prod.roster.internal SRV
capture dig-noedns dig +tries=1 +time=1 +noedns @127.0.0.1 "$name" AAAA
capture dig-dnssec dig +tries=1 +time=1 +dnssec +nocookie @127.0.0.1 db.prod.roster.internal SRV
capture dig-ptr dig +tries=1 +time=1 @127.0.0.1 -x 10.0.0.1
capture dig-any dig +tries=1 +time=1 +notcp +norec @127.0.0.1 DB-0.Db.Prod.Roster.Internal ANY
capture kdig kdig +retry=0 +timeout=1 @127.0.0.1 "$name"
capture kdig-nsid kdig +retry=0 +timeout=1 +nsid +bufsize=4096 @127.0.0.1 db.prod.roster.internal SOA
capture dig-subnet dig +tries=1 +time=1 +subnet=192.0.2.0/24 @127.0.0.1 db.prod.roster.internal SRV
capture kdig-subnet6 kdig +retry=0 +timeout=1 +subnet=2001:db8::/56 @127.0.0.1 "$name" AAAA
capture glibc getent ahosts "$name"
capture glibc-edns0 bash -c "echo 'options edns0 timeout:1 attempts:1' >> /etc/resolv.conf; getent ahosts $name"

if ! command -v musl-gcc >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends musl-tools >/dev/null
fi
if command -v musl-gcc >/dev/null 2>&1; then
  build=$(mktemp -d)
  cat > "$build/lookup.c" <<'C'
#include <netdb.h>
#include <stddef.h>
int main(int argc, char **argv) { struct addrinfo *r; return getaddrinfo(argv[1], NULL, NULL, &r); }
C
  musl-gcc -static -o "$build/lookup" "$build/lookup.c"
  capture musl "$build/lookup" "$name"
  rm -rf "$build"
fi
ls "$out" | wc -l
