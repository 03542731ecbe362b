//! The request handler without sockets: a request's bytes go through the same handler the server
//! runs, and the response bytes are parsed back. This is how the moment before the first
//! complete load (SERVFAIL) is observed exactly, which a running file source passes too quickly
//! to catch over a socket.

use std::sync::{Arc, Mutex};

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use roster::dns::Handler;
use roster::identity::IdentityConfig;
use roster::membership::{Membership, Published};
use roster::source::{PodEvent, PodView, Scope};
use roster::zone::{DomainName, ZoneSettings};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut buf = Vec::new();
        let info = response.destructive_emit(&mut BinEncoder::new(&mut buf))?;
        *self.0.lock().unwrap() = buf;
        Ok(info)
    }
}

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

async fn ask(handler: &Handler, name: &str) -> Message {
    let mut q = Message::new(42, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let request = Request::from_bytes(
        q.to_vec().unwrap(),
        "127.0.0.1:5000".parse().unwrap(),
        Protocol::Udp,
    )
    .unwrap();
    let capture = Capture::default();
    handler
        .handle_request::<_, TokioTime>(&request, capture.clone())
        .await;
    let bytes = capture.0.lock().unwrap().clone();
    Message::from_vec(&bytes).unwrap()
}

#[tokio::test]
async fn servfail_until_the_first_complete_list_then_answers() {
    let published = Arc::new(Published::empty());
    let handler = Handler::new(settings(), 1232, published.clone());

    let m = ask(&handler, "db-0.db.prod.roster.internal.").await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "not synced yet"
    );
    assert!(!m.metadata.authoritative);
    let m = ask(&handler, "roster.internal.").await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "the apex too"
    );
    let m = ask(&handler, "example.com.").await;
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
    let m = ask(&handler, "db-0.db.prod.roster.internal.").await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "still within the first list"
    );

    membership.handle(PodEvent::InitDone(Scope::Cluster));
    published.store(membership.publish());
    let m = ask(&handler, "db-0.db.prod.roster.internal.").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.metadata.id, 42);
}
