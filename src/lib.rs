//! roster: an authoritative DNS server that gives the members of clustered applications stable
//! names on Kubernetes.
//!
//! Data flows one way, with one type at each boundary:
//!
//! ```text
//! source ──PodEvent<PodView>──▶ identity ──Claim──▶ membership ──Arc<Snapshot>──▶ zone::answer ──Answer──▶ dns
//! ```
//!
//! - [`source`]: where pods come from (a watched file, or the Kubernetes API); the only code
//!   that reads `Pod` fields.
//! - [`identity`]: pure; decides whether a pod is a member, its name, and whether it is published.
//! - [`membership`]: the live set; buffers lists, resolves conflicts, sole writer of snapshots.
//! - [`zone`]: the immutable snapshot, query-name parsing, and answering as a pure function.
//! - [`dns`]: the wire, through hickory-server: protocol checks, encoding, truncation, sockets.
//! - [`config`]: the TOML file and command-line overrides, validated into typed settings.
//! - [`metrics`]: every exported number, lock-free; [`admin`]: the HTTP listener.
//! - [`peers`], [`status`]: the client subcommands.
//! - [`app`]: wires one running server together.

pub mod admin;
pub mod app;
pub mod config;
pub mod dns;
pub mod identity;
pub mod membership;
pub mod metrics;
pub mod peers;
pub mod source;
pub mod status;
pub mod zone;

/// A small, seeded source of numbers below `n` (xorshift64) for the randomized tests, so that a
/// failure names a step that replays.
#[cfg(test)]
pub(crate) fn test_rng(seed: u64) -> impl FnMut(usize) -> usize {
    let mut rng = seed;
    move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    }
}
