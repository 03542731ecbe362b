//! The answer path without sockets: one query's bytes in, one answer's bytes out, through the
//! fast path and through the general path (hickory's parser and encoder), at 5,000 and 100,000
//! members. Negative answers (NXDOMAIN, NODATA) should cost the same at both sizes.
//!
//!     cargo bench --bench answer

use std::hint::black_box;
use std::sync::Arc;

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

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
