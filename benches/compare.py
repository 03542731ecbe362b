#!/usr/bin/env python3
"""roster against Knot DNS and NSD on the same zone, on this machine.

Each server serves the same names and records (N services x M members: member A, service A,
service SRV and _peer._tcp SRV) -- roster from a PodList, Knot and NSD from a zone file -- pinned
to one core with one worker, while dnsperf runs pinned to the other core. Servers run in turn
(A B C A B C ...), and each figure is the median of the runs with its range.

Reported: queries per second; queries per second of server CPU time (utime + stime from
/proc/PID/stat); roster's ratio to each; lost queries; the same over EDNS at 100,000 members;
TCP with pipelined queries; resident memory after loading and the time from start to the first
answer; and freshness at 100,000 members under 1,000 pod changes a second while roster answers
half its maximum query load: the file source (each version of the file, from its rename to the
new answer) and the Kubernetes source (benches/kube.rs, run from here); the file source's
freshness at smaller sizes; and the pods file as JSON and as YAML at 100,000 members.

    benches/compare.py                 # everything (about 12 minutes)
    benches/compare.py --quick         # one run of each, shorter
    benches/compare.py --only udp5k    # one scenario: udp5k, edns100k, tcp5k, load100k, fresh100k,
                                       # freshsizes (the file source's freshness by zone size),
                                       # formats100k (the pods file as JSON and as YAML)
    benches/compare.py --only soakfile # not in "everything": fresh100k for ten minutes, resident
                                       # memory each minute (the Kubernetes source's soak is
                                       # cargo bench --bench kube -- --soak 600)

Installs knot, nsd and dnsperf (Debian packages) when missing; needs root for that.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZONE = "roster.internal."
NS = "bench"
SERVER_CORE = "0"
CLIENT_CORE = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# How often the freshness prober asks again for an address not yet served, as benches/kube.rs's
# PROBE_EVERY: a prober asking back to back would be a load of its own, on top of dnsperf's, and
# each of its lone queries wakes the server's core.
PROBE_EVERY = 0.00025
SCENARIOS = ["udp5k", "edns100k", "tcp5k", "load100k", "fresh100k", "freshsizes", "formats100k"]
# Run only when named: ten minutes.
LONG = ["soakfile"]


def ensure_tools():
    missing = [pkg for tool, pkg in [("/usr/sbin/knotd", "knot"), ("/usr/sbin/nsd", "nsd"), ("dnsperf", "dnsperf")]
               if not (os.path.exists(tool) or shutil.which(tool))]
    if missing:
        print(f"installing {' '.join(missing)}", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env)


def ip(n):
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255 or 1}"


def dataset(services, members, workdir):
    """Writes pods.json (a PodList) and zone file roster.internal.zone; returns query names."""
    items, lines = [], [
        f"$ORIGIN {ZONE}",
        "$TTL 5",
        f"@ IN SOA roster.roster-system.svc.cluster.local. hostmaster.roster.internal. 1 3600 600 86400 5",
        "@ IN NS roster.roster-system.svc.cluster.local.",
    ]
    n = 0
    for s in range(services):
        svc = f"svc{s}"
        for m in range(members):
            n += 1
            name = f"{svc}-{m}"
            addr = ip(n)
            items.append({
                "metadata": {"name": name, "namespace": NS, "labels": {"roster.io/service": svc},
                             "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"name": "peer", "containerPort": 7000}]}]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                           "podIP": addr, "podIPs": [{"ip": addr}]},
            })
            target = f"{name}.{svc}.{NS}.{ZONE}"
            lines.append(f"{name}.{svc}.{NS} IN A {addr}")
            lines.append(f"{svc}.{NS} IN A {addr}")
            lines.append(f"{svc}.{NS} IN SRV 0 1 7000 {target}")
            lines.append(f"_peer._tcp.{svc}.{NS} IN SRV 0 1 7000 {target}")
    with open(os.path.join(workdir, "pods.json"), "w") as f:
        json.dump({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": items}, f)
    with open(os.path.join(workdir, "roster.internal.zone"), "w") as f:
        f.write("\n".join(lines) + "\n")


def queries(services, members, count, path, seed=7):
    """The mix: 60% member A, 15% service SRV, 10% _peer._tcp SRV, 10% service A, 5% nonexistent."""
    rnd = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(count):
            s, m, r = rnd.randrange(services), rnd.randrange(members), rnd.random()
            svc = f"svc{s}.{NS}.{ZONE}"
            if r < 0.60:
                f.write(f"svc{s}-{m}.{svc} A\n")
            elif r < 0.75:
                f.write(f"{svc} SRV\n")
            elif r < 0.85:
                f.write(f"_peer._tcp.{svc} SRV\n")
            elif r < 0.95:
                f.write(f"{svc} A\n")
            else:
                f.write(f"nope{rnd.randrange(1 << 30)}.{svc} A\n")


def free_port():
    while True:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()


def ask(port, name, timeout):
    """Sends `name` A to the server on `port`; returns (query, reply), or None without a reply."""
    q = struct.pack(">HHHHHH", 0x1234, 0, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, ("127.0.0.1", port))
        return q, s.recvfrom(4096)[0]
    except OSError:
        return None
    finally:
        s.close()


def dns_query(port, name, timeout=0.2):
    """(response code, answer count), or None."""
    asked = ask(port, name, timeout)
    if asked is None:
        return None
    data = asked[1]
    return data[3] & 0x0F, struct.unpack(">H", data[6:8])[0]


class Server:
    """One server process, pinned to SERVER_CORE."""

    def __init__(self, kind, workdir, port, extra=()):
        self.kind, self.workdir, self.port, self.extra = kind, workdir, port, list(extra)
        self.proc = None

    def command(self):
        w, p = self.workdir, self.port
        if self.kind == "roster":
            binary = os.path.join(ROOT, "target", "release", "roster")
            with open(os.path.join(w, "roster.toml"), "w") as f:
                f.write("[source]\npods_file = \"pods.json\"\n")
            return [binary, "serve", "--config", os.path.join(w, "roster.toml"), "--listen", f"127.0.0.1:{p}", "--workers", "1",
                    *self.extra]
        if self.kind == "knot":
            conf = os.path.join(w, "knot.conf")
            with open(conf, "w") as f:
                f.write(f"""server:
    rundir: "{w}/knot-run"
    listen: 127.0.0.1@{p}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{w}/knot-db"
log:
  - target: stderr
    any: error
template:
  - id: default
    storage: "{w}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: {ZONE}
    file: roster.internal.zone
""")
            os.makedirs(f"{w}/knot-run", exist_ok=True)
            os.makedirs(f"{w}/knot-db", exist_ok=True)
            return ["/usr/sbin/knotd", "-c", conf]
        if self.kind == "nsd":
            conf = os.path.join(w, "nsd.conf")
            with open(conf, "w") as f:
                f.write(f"""server:
    ip-address: 127.0.0.1@{p}
    server-count: 1
    tcp-count: 100
    username: ""
    chroot: ""
    zonesdir: "{w}"
    database: ""
    zonelistfile: "{w}/nsd-zone.list"
    xfrdfile: "{w}/nsd-xfrd.state"
    pidfile: "{w}/nsd.pid"
    verbosity: 0
    hide-version: yes
    rrl-ratelimit: 0
    reuseport: no
remote-control:
    control-enable: no
zone:
    name: {ZONE}
    zonefile: roster.internal.zone
""")
            return ["/usr/sbin/nsd", "-d", "-c", conf]
        raise ValueError(self.kind)

    def start(self):
        started = time.monotonic()
        env = dict(os.environ, RUST_LOG="warn")
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CORE, *self.command()], cwd=self.workdir,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        probe = f"svc0-0.svc0.{NS}.{ZONE}"
        while time.monotonic() - started < 120:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}")
            answer = dns_query(self.port, probe, 0.05)
            if answer and answer[0] == 0 and answer[1] > 0:
                return time.monotonic() - started
            time.sleep(0.005)
        raise RuntimeError(f"{self.kind} did not answer")

    def cpu_seconds(self):
        total = 0
        for pid in self.pids():
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / CLK_TCK

    def pids(self):
        """The server and all its descendants (NSD serves from forked children)."""
        pids, i = [self.proc.pid], 0
        while i < len(pids):
            out = subprocess.run(["pgrep", "-P", str(pids[i])], capture_output=True, text=True).stdout
            pids += [int(p) for p in out.split()]
            i += 1
        return pids

    def rss_mib(self, field="VmRSS"):
        """Resident memory of the server's processes; with field="VmHWM", the sum of each one's
        peak so far."""
        total = 0
        for pid in self.pids():
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        return total / 1024

    def stop(self):
        if self.proc and self.proc.poll() is None:
            for pid in self.pids()[1:]:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def dnsperf(port, query_file, seconds, edns=False, tcp=False):
    args = ["taskset", "-c", CLIENT_CORE, "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", query_file,
            "-l", str(seconds), "-c", "8", "-T", "1", "-q", "200", "-t", "2"]
    if edns:
        args.append("-e")
    if tcp:
        args += ["-m", "tcp"]
    out = subprocess.run(args, capture_output=True, text=True).stdout
    stats = {}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Queries sent:"):
            stats["sent"] = int(line.split()[2])
        elif line.startswith("Queries completed:"):
            stats["completed"] = int(line.split()[2])
        elif line.startswith("Queries lost:"):
            stats["lost"] = int(line.split()[2])
        elif line.startswith("Queries per second:"):
            stats["qps"] = float(line.split()[3])
    return stats


def scenario(name, services, members, runs, seconds, edns=False, tcp=False):
    with tempfile.TemporaryDirectory(prefix="roster-compare-") as w:
        dataset(services, members, w)
        qfile = os.path.join(w, "queries.txt")
        queries(services, members, 200_000, qfile)
        results = {k: [] for k in ("roster", "knot", "nsd")}
        for _ in range(runs):
            for kind in ("roster", "knot", "nsd"):
                server = Server(kind, w, free_port())
                try:
                    server.start()
                    dnsperf(server.port, qfile, 1, edns, tcp)  # warm up
                    cpu0 = server.cpu_seconds()
                    stats = dnsperf(server.port, qfile, seconds, edns, tcp)
                    cpu = server.cpu_seconds() - cpu0
                    stats["qps_cpu"] = stats.get("completed", 0) / cpu if cpu > 0 else 0.0
                    results[kind].append(stats)
                finally:
                    server.stop()
        report(name, services * members, results, edns, tcp)
        return results


def median_range(values):
    return statistics.median(values), min(values), max(values)


def report(name, members, results, edns, tcp):
    transport = "TCP, pipelined" if tcp else ("UDP, EDNS" if edns else "UDP, no EDNS")
    print(f"\n### {name}: {members:,} members, {transport}\n")
    print("| server | qps (median) | qps range | qps per CPU-second | lost |")
    print("|---|---|---|---|---|")
    med = {}
    for kind, runs in results.items():
        qps = median_range([r.get("qps", 0.0) for r in runs])
        cpu = median_range([r["qps_cpu"] for r in runs])
        lost = sum(r.get("lost", 0) for r in runs)
        sent = sum(r.get("sent", 0) for r in runs)
        med[kind] = (qps[0], cpu[0])
        print(f"| {kind} | {qps[0]:,.0f} | {qps[1]:,.0f} - {qps[2]:,.0f} | {cpu[0]:,.0f} | {lost} of {sent:,} |")
    for other in ("knot", "nsd"):
        if med[other][0] and med[other][1]:
            print(f"\nroster / {other}: {med['roster'][0] / med[other][0]:.2f} x qps, "
                  f"{med['roster'][1] / med[other][1]:.2f} x qps per CPU-second")


def load(services, members):
    with tempfile.TemporaryDirectory(prefix="roster-compare-") as w:
        dataset(services, members, w)
        print(f"\n### Loading {services * members:,} members\n")
        print("| server | start to first answer (s) | resident memory after load (MiB) | peak (MiB) |")
        print("|---|---|---|---|")
        for kind in ("roster", "knot", "nsd"):
            server = Server(kind, w, free_port())
            try:
                took = server.start()
                time.sleep(1)
                print(f"| {kind} | {took:.2f} | {server.rss_mib():.1f} | {server.rss_mib('VmHWM'):.1f} |")
            finally:
                server.stop()


def a_address(port, name, timeout=0.05):
    """The first A record's address in the answer to `name` A, or None."""
    asked = ask(port, name, timeout)
    if asked is None:
        return None
    q, data = asked
    if len(data) < len(q) or struct.unpack(">H", data[6:8])[0] == 0:
        return None
    # The first answer follows the question: its owner name, then type, class, TTL, length.
    at = len(q)
    while at < len(data) and data[at] != 0 and data[at] < 0xC0:
        at += 1 + data[at]
    at += 2 if at < len(data) and data[at] >= 0xC0 else 1
    if len(data) < at + 14 or data[at:at + 2] != b"\x00\x01":
        return None
    return socket.inet_ntoa(data[at + 10:at + 14])


def file_freshness(services, members, seconds=60, rate=1000):
    """Runs `file_run` and prints what it measured."""
    r = file_run(services, members, seconds, rate)
    print(f"\n### Freshness, file source, {services * members:,} members\n")
    print(f"{r['rate']:,.0f} pod changes/s for {r['elapsed']:.0f} s in {r['versions'] + 1} versions of the pods "
          f"file (each replaced by a rename), while dnsperf sends {r['served']:,.0f} qps (half of the measured "
          f"maximum, {r['maximum']:,.0f}; lost {r['lost']}). Time from the end of a version's rename to the new "
          f"address of one of its pods in an answer:\n")
    print("| versions | p50 (ms) | p99 (ms) | max (ms) | first version (ms) | most resident memory (MiB) |")
    print("|---|---|---|---|---|---|")
    print(f"| {r['versions']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['first']:.1f} "
          f"| {r['rss']:.1f} |")
    print(f"\nroster_programming_latency_seconds (the rename's directory event -> snapshot published), "
          f"{r['programmed']:.0f} versions: {r['within']}")
    print(f"\nReading the {r['mb']:.1f} MB file once, and nothing else, on the server's core with no load: "
          f"{r['read']:.1f} ms (best of 20).")


def file_sizes(sizes=(400, 2_000, 5_000, 10_000), seconds=20):
    """The file source's freshness by size of zone (N services x 5 members), under the same load
    as file_freshness: a version of a larger file costs more to read (the time to read it alone
    is printed beside), and the core it shares with the DNS load stretches that time."""
    print("\n### Freshness of the file source by number of members\n")
    print(f"As under \"Freshness, file source\", {seconds} s each: 1,000 pod changes/s while dnsperf sends half "
          "the measured maximum.\n")
    print("| members | file (MB) | read alone (ms) | versions | changes per version | p50 (ms) | p99 (ms) | max (ms) "
          "| dnsperf qps |")
    print("|---|---|---|---|---|---|---|---|---|")
    for services in sizes:
        r = file_run(services, 5, seconds, 1000)
        print(f"| {services * 5:,} | {r['mb']:.1f} | {r['read']:.2f} | {r['versions']} "
              f"| {r['changed'] / (r['versions'] + 1):.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['served']:,.0f} |", flush=True)


def file_soak(services, members, seconds=600, rate=1000):
    """fresh100k for `seconds`: resident memory at each minute, so that growth shows (every pod
    changes about six times in ten minutes), and what dnsperf saw."""
    r = file_run(services, members, seconds, rate)
    print(f"\n### Soak, file source, {services * members:,} members\n")
    print(f"{r['rate']:,.0f} pod changes/s ({r['changed']:,} in all) for {r['elapsed']:.0f} s in {r['versions'] + 1} "
          f"versions of the pods file, while dnsperf sent {r['served']:,.0f} qps (half of the measured maximum, "
          f"{r['maximum']:,.0f}).\n")
    print("| queries sent | lost | response codes | resident memory, 1 min -> end | versions p50 / p99 / max (ms) |")
    print("|---|---|---|---|---|")
    series = r["rss_series"]
    after_minute = next((rss for at, rss in series if at >= 60), series[-1][1])
    end = series[-1][1]
    sent = f"{int(r['sent']):,}" if r["sent"].isdigit() else r["sent"]
    print(f"| {sent} | {r['lost']} | {r['codes']} | {after_minute:.1f} -> {end:.1f} MiB "
          f"({(end - after_minute) / after_minute:+.1%}; {series[0][1]:.1f} MiB at the start) "
          f"| {r['p50']:.1f} / {r['p99']:.1f} / {r['max']:.1f} |")
    print("\nResident memory by minute: " + ", ".join(f"{at / 60:.0f}: {rss:.1f}" for at, rss in series))


def file_run(services, members, seconds, rate):
    """The file source at `rate` pod changes a second while roster answers half its maximum
    query load. A writer replaces the pods file (a new file renamed into place) version after
    version, each changing the addresses of the pods due since the last; each version is timed
    from the end of its rename (when it becomes the file) to the new address of one of its pods
    in an answer, asked for every PROBE_EVERY. The first version after a quiet file is timed
    apart. A version takes the writer about a quarter of a second, so the run is a minute long:
    enough versions for a p99 that is not simply the slowest one."""
    with tempfile.TemporaryDirectory(prefix="roster-compare-") as w:
        dataset(services, members, w)
        path = os.path.join(w, "pods.json")
        with open(path) as f:
            podlist = json.load(f)
        pods = podlist.pop("items")
        # The same text as the dataset: json.dump's separators, items last.
        head = json.dumps(podlist)[:-1] + ', "items": ['
        items = [json.dumps(pod) for pod in pods]
        qfile = os.path.join(w, "queries.txt")
        queries(services, members, 200_000, qfile)
        admin = free_port()
        server = Server("roster", w, free_port(), ["--admin-listen", f"127.0.0.1:{admin}"])
        rnd = random.Random(11)
        took, changed, busy_rss, rss_series = [], 0, 0, []
        # The writer and the prober are load, like dnsperf: they run on its core, not the server's.
        affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {int(CLIENT_CORE)})
        try:
            server.start()
            maximum = dnsperf(server.port, qfile, 5)["qps"]
            load = subprocess.Popen(
                ["taskset", "-c", CLIENT_CORE, "dnsperf", "-s", "127.0.0.1", "-p", str(server.port), "-d", qfile,
                 "-l", str(seconds + 2), "-c", "8", "-T", "1", "-q", "200", "-t", "2", "-Q", str(int(maximum / 2))],
                stdout=subprocess.PIPE, text=True)
            time.sleep(1)
            began = time.monotonic()
            while time.monotonic() - began < seconds:
                if time.monotonic() - began >= 60 * len(rss_series):
                    rss_series.append((time.monotonic() - began, server.rss_mib()))
                due = max(1, int((time.monotonic() - began) * rate) - changed)
                for n in rnd.sample(range(len(pods)), due):
                    changed += 1
                    new = f"10.{200 + (changed >> 16) % 50}.{(changed >> 8) & 255}.{changed & 255 or 1}"
                    pods[n]["status"]["podIP"] = new
                    pods[n]["status"]["podIPs"] = [{"ip": new}]
                    items[n] = json.dumps(pods[n])
                probe = pods[n]
                name = f"{probe['metadata']['name']}.{probe['metadata']['labels']['roster.io/service']}.{NS}.{ZONE}"
                took.append(replace_and_time(server.port, path, head + ", ".join(items) + "]}", name, new))
                busy_rss = max(busy_rss, server.rss_mib())
            elapsed = time.monotonic() - began
            rss_series.append((elapsed, server.rss_mib()))
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
                metrics = r.read().decode()
            out = load.communicate()[0]
            served = next((line.split()[3] for line in out.splitlines() if "Queries per second:" in line), "?")
            lost = next((line.split()[2] for line in out.splitlines() if "Queries lost:" in line), "?")
            sent = next((line.split()[2] for line in out.splitlines() if "Queries sent:" in line), "?")
            codes = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                          if "Response codes:" in line), "?")
        finally:
            server.stop()
            os.sched_setaffinity(0, affinity)
        mb = os.path.getsize(path) / 1e6
        read = read_alone(path)
        first, took = took[0], sorted(took[1:])
        pct = lambda q: took[min(len(took) - 1, int(q * len(took)))] * 1000
        # roster's own view: from the directory event that the file was replaced to the
        # snapshot being published (roster_programming_latency_seconds, every version of the run).
        buckets = {}
        for line in metrics.splitlines():
            if line.startswith("roster_programming_latency_seconds_bucket{le="):
                le = line.split('"')[1]
                buckets[float("inf") if le == "+Inf" else float(le)] = float(line.split()[-1])
        total = buckets.get(float("inf"), 0)
        within = ", ".join(f"{buckets[b] / total:.0%} within {b * 1000:g} ms"
                           for b in sorted(buckets) if b in (0.005, 0.01, 0.025, 0.05) and total)
        return {"rate": changed / elapsed, "elapsed": elapsed, "versions": len(took), "changed": changed,
                "served": float(served), "maximum": maximum, "lost": lost, "p50": pct(0.5), "p99": pct(0.99),
                "max": took[-1] * 1000, "first": first * 1000, "rss": busy_rss, "programmed": total,
                "within": within, "mb": mb, "read": read,
                "rss_series": rss_series, "sent": sent, "codes": codes}


def replace_and_time(port, path, text, name, new, limit=5):
    """Replaces the pods file at `path` with `text` (a new file renamed into place) and returns
    the seconds from the end of the rename to `name` answering `new`, asked every PROBE_EVERY;
    infinity after `limit` seconds."""
    with open(path + ".new", "w") as f:
        f.write(text)
    # The replaced version stays linked until it is timed: freeing 40 MB of it would otherwise
    # happen inside the rename, after the new version is in place, and delay the clock's start.
    os.link(path, path + ".old")
    os.rename(path + ".new", path)
    start = time.monotonic()
    try:
        while time.monotonic() - start < limit:
            if a_address(port, name) == new:
                return time.monotonic() - start
            time.sleep(PROBE_EVERY)
        return float("inf")
    finally:
        os.unlink(path + ".old")


def read_alone(path, passes=20):
    """The least time to read the file once on the server's core with nothing else running, as
    roster reads it (read(2) 256 KiB at a time, the file in the page cache): a version cannot
    land sooner, whatever is done with the text."""
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(SERVER_CORE)})
    buffer, best = bytearray(256 << 10), float("inf")
    try:
        for _ in range(passes):
            began = time.perf_counter()
            with open(path, "rb", buffering=0) as f:
                while f.readinto(buffer):
                    pass
            best = min(best, time.perf_counter() - began)
    finally:
        os.sched_setaffinity(0, affinity)
    return best * 1000


def yaml_text(value, indent=0):
    """Block YAML as `kubectl get -o yaml` writes it: a list under a key at the key's
    indentation, strings quoted."""
    pad, out = " " * indent, ""
    scalar = lambda v: "{}" if v == {} else "[]" if v == [] else json.dumps(v)
    if isinstance(value, dict):
        for key, v in value.items():
            if isinstance(v, (dict, list)) and v:
                out += f"{pad}{key}:\n" + yaml_text(v, indent + 2 if isinstance(v, dict) else indent)
            else:
                out += f"{pad}{key}: {scalar(v)}\n"
    else:
        for v in value:
            out += f"{pad}- " + (yaml_text(v, indent + 2)[indent + 2:] if isinstance(v, dict) else f"{scalar(v)}\n")
    return out


def file_formats(services, members, changes=20):
    """The same pods file as JSON and as YAML (kubectl's layouts): start to first answer, resident
    memory after loading, and single pod changes, each in a new version of the file replaced by a
    rename, timed to the new address in an answer (a core to itself, no DNS load), with the most
    resident memory over the changes."""
    print(f"\n### The pods file as JSON and as YAML, {services * members:,} members\n")
    print(f"{changes} versions, each changing one pod's address; no DNS load.\n")
    print("| format | file (MB) | start to first answer (s) | resident after load (MiB) | change p50 (ms) "
          "| change max (ms) | most resident (MiB) |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="roster-compare-") as w:
        dataset(services, members, w)
        path = os.path.join(w, "pods.json")
        with open(path) as f:
            json_text = f.read()
        texts = {"JSON": json_text, "YAML": yaml_text(json.loads(json_text))}
        affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {int(CLIENT_CORE)})
        try:
            for kind, text in texts.items():
                with open(path, "w") as f:
                    f.write(text)
                server = Server("roster", w, free_port())
                took = []
                try:
                    started = server.start()
                    time.sleep(1)
                    loaded = server.rss_mib()
                    for k in range(changes):
                        n = 1 + k * 7919 % (services * members)
                        old, new = ip(n), f"10.250.{k >> 8}.{k & 255 or 1}"
                        # Quoted in both formats: only this pod's address matches.
                        text = text.replace(f'"{old}"', f'"{new}"')
                        name = f"svc{(n - 1) // members}-{(n - 1) % members}.svc{(n - 1) // members}.{NS}.{ZONE}"
                        took.append(replace_and_time(server.port, path, text, name, new, limit=30))
                    peak = server.rss_mib("VmHWM")
                finally:
                    server.stop()
                took.sort()
                print(f"| {kind} | {len(text) / 1e6:.1f} | {started:.2f} | {loaded:.1f} | "
                      f"{took[len(took) // 2] * 1000:.1f} | {took[-1] * 1000:.1f} | {peak:.1f} |", flush=True)
        finally:
            os.sched_setaffinity(0, affinity)


def kube_freshness():
    """The Kubernetes source, under load: benches/kube.rs at 100,000 pods."""
    print("\n### Freshness, Kubernetes source (cargo bench --bench kube -- --pods 100000)\n",
          flush=True)
    subprocess.run(["cargo", "bench", "--quiet", "--bench", "kube", "--", "--pods", "100000"],
                   cwd=ROOT, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run of each scenario, 5 s each")
    parser.add_argument("--only", choices=SCENARIOS + LONG, action="append")
    args = parser.parse_args()
    ensure_tools()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "roster"], cwd=ROOT, check=True)
    runs, seconds = (1, 5) if args.quick else (3, 10)
    only = set(args.only or SCENARIOS)
    print(f"roster vs Knot DNS vs NSD; each server on core {SERVER_CORE} with one worker, dnsperf on core "
          f"{CLIENT_CORE} (-c 8 -q 200); {runs} run(s) of {seconds} s, servers in turn")
    if "udp5k" in only:
        scenario("udp5k", 1000, 5, runs, seconds)
    if "edns100k" in only:
        scenario("edns100k", 10_000, 10, runs, seconds, edns=True)
    if "tcp5k" in only:
        scenario("tcp5k", 1000, 5, runs, seconds, tcp=True)
    if "load100k" in only:
        load(20_000, 5)
    if "fresh100k" in only:
        file_freshness(20_000, 5)
        kube_freshness()
    if "freshsizes" in only:
        file_sizes()
    if "formats100k" in only:
        file_formats(20_000, 5)
    if "soakfile" in only:
        file_soak(20_000, 5, seconds=120 if args.quick else 600)


if __name__ == "__main__":
    main()
