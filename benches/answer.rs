//! The answer path without sockets: one query's bytes in, one answer's bytes out, through the
//! fast path and through the general path (hickory's parser and encoder), at 5,000 and 100,000
//! members. Negative answers (NXDOMAIN, NODATA) should cost the same at both sizes. Then
//! whether the answer path scales with threads: one handler answering compare.py's query mix on
//! one thread, then on one thread per core.
//!
//!     cargo bench --bench answer

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use hickory_server::proto::op::{Message, MessageType, OpCode, Query};
use hickory_server::proto::rr::{Name, RecordType};
use roster::dns::{Handler, Path};
use roster::identity::IdentityConfig;
use roster::membership::{Membership, Published};
use roster::metrics::{Metrics, Transport};
use roster::source::{Health, PodEvent, PodView, PortView, Protocol, Scope};
use roster::zone::{DomainName, ZoneSettings};

fn handler(services: usize, members: usize) -> Handler {
    let mut m = Membership::new(IdentityConfig::default(), [Scope::Cluster]);
    m.handle(PodEvent::Init(Scope::Cluster));
    let mut n = 0u32;
    for s in 0..services {
        for i in 0..members {
            n += 1;
            m.handle(PodEvent::InitApply(
                Scope::Cluster,
                PodView {
                    namespace: "bench".into(),
                    name: format!("svc{s}-{i}"),
                    label_service: Some(format!("svc{s}")),
                    ips: vec![std::net::Ipv4Addr::from(0x0a00_0000 + n).into()],
                    ready: true,
                    ports: vec![PortView {
                        container: 0,
                        name: Some("peer".into()),
                        number: 7000,
                        protocol: Some(Protocol::Tcp),
                    }],
                    ..Default::default()
                },
            ));
        }
    }
    m.handle(PodEvent::InitDone(Scope::Cluster));
    let published = Arc::new(Published::empty());
    published.store(m.publish());
    let settings = ZoneSettings {
        zones: vec![DomainName::parse("roster.internal").unwrap()],
        reverse_zones: vec![],
        ttl: 5,
        negative_ttl: 5,
        nameserver: DomainName::parse("roster.roster-system.svc.cluster.local").unwrap(),
        hostmaster: DomainName::parse("hostmaster.roster.internal").unwrap(),
    };
    Handler::new(
        settings,
        1232,
        published,
        Arc::new(Metrics::new(Arc::new(Health::default()))),
    )
}

fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

fn bench(c: &mut Criterion) {
    let src = "127.0.0.1:5353".parse().unwrap();
    for (label, services) in [("5k", 1_000), ("100k", 20_000)] {
        let h = handler(services, 5);
        let cases = [
            (
                "member A",
                query("svc123-3.svc123.bench.roster.internal.", RecordType::A),
            ),
            (
                "service SRV",
                query("svc123.bench.roster.internal.", RecordType::SRV),
            ),
            (
                "port SRV",
                query("_peer._tcp.svc123.bench.roster.internal.", RecordType::SRV),
            ),
            (
                "NXDOMAIN",
                query("nope.svc123.bench.roster.internal.", RecordType::A),
            ),
            (
                "NODATA",
                query("svc123-3.svc123.bench.roster.internal.", RecordType::AAAA),
            ),
        ];
        let mut out = Vec::with_capacity(1500);
        for (what, bytes) in &cases {
            for (path, name) in [(Path::Fast, "fast"), (Path::General, "general")] {
                c.bench_function(&format!("{label} {what} {name}"), |b| {
                    b.iter(|| h.answer_by(path, black_box(bytes), src, Transport::Udp, &mut out))
                });
            }
        }
    }
}

/// compare.py's mix: 60% member A, 15% service SRV, 10% `_peer._tcp` SRV, 10% service A, 5%
/// nonexistent names, spread over every service.
fn mix(services: usize, members: usize, count: usize) -> Vec<Vec<u8>> {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    (0..count)
        .map(|i| {
            let (s, m, r) = (next(services), next(members), next(100));
            let service = format!("svc{s}.bench.roster.internal.");
            match r {
                0..60 => query(&format!("svc{s}-{m}.{service}"), RecordType::A),
                60..75 => query(&service, RecordType::SRV),
                75..85 => query(&format!("_peer._tcp.{service}"), RecordType::SRV),
                85..95 => query(&service, RecordType::A),
                _ => query(&format!("nope{i}.{service}"), RecordType::A),
            }
        })
        .collect()
}

/// Answers per second of `threads` threads sharing one handler, each answering `mix` in a loop.
fn answers_per_second(h: &Handler, mix: &[Vec<u8>], threads: usize) -> f64 {
    const RUN: Duration = Duration::from_secs(3);
    let src = "127.0.0.1:5353".parse().unwrap();
    let total: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::with_capacity(1500);
                    let (start, mut answered) = (Instant::now(), 0u64);
                    while start.elapsed() < RUN {
                        for q in mix {
                            h.answer(black_box(q), src, Transport::Udp, &mut out);
                        }
                        answered += mix.len() as u64;
                    }
                    answered
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    total as f64 / RUN.as_secs_f64()
}

fn threads(_: &mut Criterion) {
    let h = handler(1_000, 5);
    let mix = mix(1_000, 5, 10_000);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // One thread before and after, so that a warming cache or a changing clock does not
    // pass for scaling.
    let before = answers_per_second(&h, &mix, 1);
    let all = answers_per_second(&h, &mix, cores);
    let one = (before + answers_per_second(&h, &mix, 1)) / 2.0;
    println!("answer path, 5,000 members, compare.py's mix: 1 thread {one:.0} answers/s");
    println!(
        "answer path, 5,000 members, compare.py's mix: {cores} threads {all:.0} answers/s, {:.2}x one thread",
        all / one
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    targets = bench, threads
}
criterion_main!(benches);
