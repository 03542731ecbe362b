//! Any bytes through the whole request path (the fast path, then the general one), over UDP and
//! TCP: no panic, and a reply exactly when one is due (a readable header, QR=0). A reply parses,
//! answers the query's ID, is a response, carries a response code roster sends for bad input or
//! a loaded zone (never SERVFAIL), and fits the transport: 512 bytes over UDP without EDNS, the
//! client's EDNS payload size (512 to 1232) with it, 65,535 over TCP. Where the fast path
//! answers, the general path gives the same bytes. Each case runs with `dns.nsid` unset and set.
//!
//! The same property runs for longer under `cargo fuzz` (see `fuzz/`).

#[path = "common/answer_world.rs"]
mod answer_world;

use std::sync::LazyLock;

use answer_world::{NAMES, QTYPES, check_reply, handler, handler_with_nsid, query, with_options};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use roster::dns::{Handler, Path};
use roster::metrics::Transport;

static HANDLER: LazyLock<Handler> = LazyLock::new(handler);
static WITH_NSID: LazyLock<Handler> = LazyLock::new(handler_with_nsid);

fn check(bytes: &[u8], transport: Transport) -> Result<(), TestCaseError> {
    check_reply(&HANDLER, bytes, transport).map_err(TestCaseError::fail)?;
    check_reply(&WITH_NSID, bytes, transport)
        .map_err(|e| TestCaseError::fail(format!("with dns.nsid: {e}")))
}

fn transport() -> impl Strategy<Value = Transport> {
    prop_oneof![Just(Transport::Udp), Just(Transport::Tcp)]
}

/// A valid query for one of the world's names, as a base for mutations; with EDNS, it may carry
/// options: NSID, client subnet (family, prefixes and address as they come, readable or not),
/// cookie, or any other.
fn valid_query() -> impl Strategy<Value = Vec<u8>> {
    let option = (
        prop_oneof![Just(3u16), Just(8), Just(10), any::<u16>()],
        prop_oneof![
            (
                0u16..4,
                any::<u8>(),
                any::<u8>(),
                prop::collection::vec(any::<u8>(), 0..18)
            )
                .prop_map(|(family, source, scope, address)| {
                    let mut data = family.to_be_bytes().to_vec();
                    data.extend([source % 140, scope]);
                    data.extend(address);
                    data
                }),
            prop::collection::vec(any::<u8>(), 0..24),
        ],
    )
        .prop_map(|(code, data)| {
            let mut option = code.to_be_bytes().to_vec();
            option.extend((data.len() as u16).to_be_bytes());
            option.extend(data);
            option
        });
    (
        0..NAMES.len(),
        0..QTYPES.len(),
        prop::option::of(prop_oneof![
            Just(512u16),
            Just(1232),
            Just(4096),
            0..u16::MAX
        ]),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(option, 0..3),
    )
        .prop_map(move |(name, qtype, edns, rd, cd, options)| {
            let q = query(NAMES[name], QTYPES[qtype], edns, rd, cd);
            match edns {
                Some(_) => {
                    let options: Vec<&[u8]> = options.iter().map(Vec::as_slice).collect();
                    with_options(&q, &options)
                }
                None => q,
            }
        })
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Cut { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0..8u8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Cut { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        match m {
            Mutation::Flip { at, bit } => {
                let at = at % bytes.len();
                bytes[at] ^= 1 << bit;
            }
            Mutation::Set { at, byte } => {
                let at = at % bytes.len();
                bytes[at] = *byte;
            }
            Mutation::Cut { at } => bytes.truncate(at % bytes.len()),
            Mutation::Insert { at, bytes: new } => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, new.iter().copied());
            }
        }
    }
    bytes
}

/// The queries real clients send (dig and kdig with several options, glibc's and musl's
/// resolvers; captured by `fuzz/seeds.sh` as the fuzz target's seeds, each a transport byte then
/// the message) get sane replies with `dns.nsid` unset and set, from the fast path.
#[test]
fn real_clients_queries_get_sane_replies_from_the_fast_path() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/request");
    let src = "192.0.2.7:5353".parse().unwrap();
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("seed-") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let (&pick, message) = bytes.split_first().unwrap();
        let transport = if pick & 1 == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        for (h, nsid) in [(&*HANDLER, ""), (&*WITH_NSID, " with dns.nsid")] {
            check_reply(h, message, transport).unwrap_or_else(|e| panic!("{name}{nsid}: {e}"));
            let mut out = Vec::new();
            let fast = h.answer_by(Path::Fast, message, src, transport, &mut out);
            assert!(fast.is_some(), "{name}{nsid}: the fast path declines it");
        }
        seeds += 1;
    }
    assert!(seeds >= 30, "{seeds} seeds in {}", dir.display());
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 20_000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/hostile.proptest-regressions"
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_get_a_sane_reply_or_none(
        bytes in prop::collection::vec(any::<u8>(), 0..700),
        transport in transport(),
    ) {
        check(&bytes, transport)?;
    }

    #[test]
    fn mutated_queries_get_a_sane_reply_or_none(
        base in valid_query(),
        mutations in prop::collection::vec(mutation(), 0..5),
        transport in transport(),
    ) {
        check(&mutate(base, &mutations), transport)?;
    }

    /// A header that reads, then anything: every such message is answered.
    #[test]
    fn any_query_header_gets_a_reply(
        id in any::<u16>(),
        flags in any::<u16>(),
        counts in prop::array::uniform4(0u16..4),
        body in prop::collection::vec(any::<u8>(), 0..300),
        transport in transport(),
    ) {
        let mut bytes = Vec::with_capacity(12 + body.len());
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend_from_slice(&(flags & 0x7fff).to_be_bytes());
        for c in counts {
            bytes.extend_from_slice(&c.to_be_bytes());
        }
        bytes.extend_from_slice(&body);
        check(&bytes, transport)?;
    }
}
