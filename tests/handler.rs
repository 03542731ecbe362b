//! The request handler without sockets: a request's bytes go through the same handler the server
//! runs, and the response bytes are parsed back. This is how the moment before the first
//! complete load (SERVFAIL) is observed exactly, which a running file source passes too quickly
//! to catch over a socket.

use std::sync::Arc;

use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use roster::dns::Handler;
use roster::identity::IdentityConfig;
use roster::membership::{Membership, Published};
use roster::metrics::{Metrics, Transport};
use roster::source::{Health, PodEvent, PodView, Scope};
use roster::zone::{DomainName, ZoneSettings};

fn settings() -> ZoneSettings {
    ZoneSettings {
        zones: vec![DomainName::parse("roster.internal").unwrap()],
        reverse_zones: vec![],
        ttl: 5,
        negative_ttl: 5,
        nameserver: DomainName::parse("ns.example").unwrap(),
        hostmaster: DomainName::parse("hostmaster.example").unwrap(),
    }
}

fn ask(handler: &Handler, name: &str) -> Message {
    let mut q = Message::new(42, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let mut out = Vec::new();
    let src = "127.0.0.1:5000".parse().unwrap();
    handler
        .answer(&q.to_vec().unwrap(), src, Transport::Udp, &mut out)
        .expect("an answer");
    Message::from_vec(&out).unwrap()
}

#[tokio::test]
async fn servfail_until_the_first_complete_list_then_answers() {
    let published = Arc::new(Published::empty());
    let metrics = Arc::new(Metrics::new(Arc::new(Health::default())));
    let handler = Handler::new(settings(), 1232, published.clone(), metrics);

    let m = ask(&handler, "db-0.db.prod.roster.internal.");
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "not synced yet"
    );
    assert!(!m.metadata.authoritative);
    let m = ask(&handler, "roster.internal.");
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "the apex too"
    );
    let m = ask(&handler, "example.com.");
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::Refused,
        "outside the zones: still REFUSED"
    );

    let mut membership = Membership::new(IdentityConfig::default(), [Scope::Cluster]);
    membership.handle(PodEvent::Init(Scope::Cluster));
    membership.handle(PodEvent::InitApply(
        Scope::Cluster,
        PodView {
            namespace: "prod".into(),
            name: "db-0".into(),
            label_service: Some("db".into()),
            ips: vec!["10.0.0.1".parse().unwrap()],
            ready: true,
            ..Default::default()
        },
    ));
    assert!(
        membership.publish().is_none(),
        "a list in progress publishes nothing"
    );
    let m = ask(&handler, "db-0.db.prod.roster.internal.");
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "still within the first list"
    );

    membership.handle(PodEvent::InitDone(Scope::Cluster));
    published.store(membership.publish());
    let m = ask(&handler, "db-0.db.prod.roster.internal.");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.metadata.id, 42);
}
