#!/usr/bin/env bash
# Runs every check of roster: formatting, lints, unit tests, and the integration tests against
# the real binary, dig, Unbound, dnsmasq, Knot DNS (as the reference answers are compared with),
# a fake Kubernetes API server, Prometheus scraping roster, the deploy/ manifests rendered by
# kubectl and validated offline by kubernetes-validate, and the alerts unit-tested by promtool;
# that the code's documentation has no broken link; and that the
# fuzz targets compile.
#
# Missing tools are installed: Debian packages with apt-get (as root, or through sudo)
#   bind9-dnsutils (dig)   unbound   dnsmasq-base   knot (knotd)   kubernetes-client (kubectl)
#   python3-venv
#   iproute2 (ip, tc: the congestion test's network namespaces, run as root)
# kubernetes-validate from PyPI into target/k8s-validate (a virtual environment), and Debian's
# prometheus package (Prometheus and promtool, for tests/prometheus.rs) unpacked into
# target/prometheus: installing it would also start a Prometheus server.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

missing=()
have dig || missing+=(bind9-dnsutils)
have unbound || missing+=(unbound)
have dnsmasq || missing+=(dnsmasq-base)
have knotd || missing+=(knot)
have kubectl || missing+=(kubernetes-client)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
{ have ip && have tc; } || missing+=(iproute2)

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  as_root=(false)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/run.sh: installing ${missing[*]}"
  if [ "${as_root[*]}" = false ]; then
    echo "tests/run.sh: ${missing[*]} missing; run this script as root to install them" >&2
    exit 1
  fi
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

validator=target/k8s-validate/bin/kubernetes-validate
if [ ! -x "$validator" ]; then
  echo "tests/run.sh: installing kubernetes-validate into target/k8s-validate"
  python3 -m venv target/k8s-validate
  target/k8s-validate/bin/pip install -q --disable-pip-version-check kubernetes-validate
fi

if [ ! -x target/prometheus/usr/bin/promtool ] && ! { [ -x /usr/bin/promtool ] && [ -x /usr/bin/prometheus ]; }; then
  echo "tests/run.sh: unpacking Debian's prometheus package into target/prometheus"
  deb_dir=$(mktemp -d)
  chmod 755 "$deb_dir"
  # Where the package lists were never fetched, fetch them first.
  (cd "$deb_dir" && apt-get download -qq prometheus 2>/dev/null) || {
    if [ "${as_root[*]}" = false ]; then
      echo "tests/run.sh: cannot download Debian's prometheus package; run this script as root (it runs apt-get update)" >&2
      exit 1
    fi
    "${as_root[@]}" apt-get update -qq
    (cd "$deb_dir" && apt-get download -qq prometheus)
  }
  mkdir -p target/prometheus
  dpkg-deb -x "$deb_dir"/prometheus_*.deb target/prometheus
  rm -rf "$deb_dir"
fi

if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all -- --check
else
  echo "tests/run.sh: rustfmt is not installed; skipping the format check" >&2
fi
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --locked --all-targets -- -D warnings
else
  echo "tests/run.sh: clippy is not installed; skipping lints" >&2
fi
cargo test --locked
# The code's own documentation, private items included: a link that no longer resolves is an error.
RUSTDOCFLAGS="-D warnings" cargo doc --locked --quiet --no-deps --document-private-items
# The fuzz targets (fuzz/, a workspace of their own) are run by `cargo fuzz`, not here; checking
# that they still compile keeps a change to what they call from breaking them unseen. Without
# libFuzzer, which is C++.
cargo check --locked --quiet --manifest-path fuzz/Cargo.toml --bins --no-default-features
