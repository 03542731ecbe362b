#!/usr/bin/env bash
# Writes the seed corpus of the `request` fuzz target: the queries real clients send, captured
# as they leave them -- dig and kdig (several option sets), glibc's resolver (getent), and musl's
# (a getaddrinfo call built with musl-gcc, when musl-tools is installed). glibc and musl read
# /etc/resolv.conf, so they run in a network and mount namespace of their own (created here and
# gone when the command ends) with a resolv.conf naming the capture socket. Needs root.
#
# Each seed is one byte (0: as UDP, 1: as TCP; see fuzz_targets/request.rs) then the message.
set -euo pipefail
cd "$(dirname "$0")"
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
