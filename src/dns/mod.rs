//! The wire: the only module that touches hickory. It parses requests with hickory-server,
//! checks protocol hygiene (opcode, EDNS version, question count, class), asks
//! [`crate::zone::answer()`], and encodes the answer so that it fits the transport: additional
//! records are dropped first, then answers are cut in ordinal order with TC=1 (RFC 2181 §9),
//! and the OPT record always survives. The UDP and TCP loops are roster's own (`udp`, `tcp`):
//! no task per packet, counted malformed input, and a TCP shutdown that finishes the answer in
//! flight.

mod fast;
pub mod listen;
pub mod rrl;
mod tcp;
mod udp;
pub mod wire;

pub use tcp::TcpLimits;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use hickory_server::net::xfer::Protocol;
use hickory_server::proto::ProtoError;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, Query, ResponseCode,
    emit_message_parts,
};
use hickory_server::proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_server::proto::rr::rdata::{A, AAAA, NS, PTR, SOA, SRV};
use hickory_server::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_server::proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder,
};
use hickory_server::server::Request;
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};
use tracing::debug;

use crate::identity::Identity;
use crate::membership::Published;
use crate::metrics::{Metrics, Transport};
use crate::zone::{self, AnswerKind, DomainName, QType, Rdata, ZoneSettings};

/// SOA timers. roster has no secondaries (the zone is not transferable), so these only tell
/// resolvers and tools something sane.
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 86_400;

/// Lets a log line through at most once a minute: overload repeats an event by the thousand,
/// and its counter, not the log, says how often.
pub(crate) struct OncePerMinute {
    /// Seconds since the first use by any, plus one, when a line was last let through; 0: never.
    last: AtomicU64,
}

impl OncePerMinute {
    pub(crate) const fn new() -> Self {
        Self {
            last: AtomicU64::new(0),
        }
    }

    pub(crate) fn allow(&self) -> bool {
        static START: OnceLock<Instant> = OnceLock::new();
        let now = START.get_or_init(Instant::now).elapsed().as_secs() + 1;
        let last = self.last.load(Relaxed);
        (last == 0 || now - last >= 60)
            && self
                .last
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
    }
}

/// Size of an OPT record with no options (RFC 6891 §6.1.2): root name, type, class, TTL, RDLEN.
const OPT_LEN: usize = 11;

/// The longest NSID roster sends (`dns.nsid`): an identifier, far below any answer's room.
pub const MAX_NSID: usize = 128;

fn to_name(name: &DomainName) -> Name {
    let mut n = Name::from_labels(name.labels().iter().map(|l| l.as_bytes()))
        .expect("validated at configuration time");
    n.set_fqdn(true);
    n
}

/// Answers DNS requests from the latest published snapshot.
pub struct Handler {
    settings: ZoneSettings,
    max_udp_payload: u16,
    published: Arc<Published>,
    pub(crate) metrics: Arc<Metrics>,
    /// Origins of the forward zones, for SRV and PTR targets.
    origins: Vec<Name>,
    nameserver: Name,
    hostmaster: Name,
    /// Sent to queries that carry an NSID option (RFC 5001); `None`: the option is ignored.
    nsid: Option<Box<[u8]>>,
}

impl Handler {
    pub fn new(
        settings: ZoneSettings,
        max_udp_payload: u16,
        published: Arc<Published>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            metrics,
            origins: settings.zones.iter().map(to_name).collect(),
            nameserver: to_name(&settings.nameserver),
            hostmaster: to_name(&settings.hostmaster),
            settings,
            max_udp_payload,
            published,
            nsid: None,
        }
    }

    /// Answers queries that ask for the server's identity (NSID, RFC 5001) with `nsid`, of at
    /// most [`MAX_NSID`] bytes (the configuration and the host name are checked against it).
    pub fn with_nsid(mut self, nsid: Option<Box<[u8]>>) -> Self {
        assert!(
            nsid.as_ref().is_none_or(|id| id.len() <= MAX_NSID),
            "an NSID longer than MAX_NSID"
        );
        self.nsid = nsid;
        self
    }

    /// The identifier to send in answer to a query, if it carries an NSID option (`asked`).
    fn nsid_for(&self, asked: bool) -> Option<&[u8]> {
        self.nsid.as_deref().filter(|_| asked)
    }

    /// The OPT record of an answer, in bytes: with the NSID option when one is sent.
    fn opt_len(&self, nsid: Option<&[u8]>) -> usize {
        OPT_LEN + nsid.map_or(0, |id| 4 + id.len())
    }

    fn target(&self, member: &Identity, zone: usize) -> Name {
        let mut name = Name::from_labels(member.labels()).expect("member names are DNS labels");
        name.set_fqdn(false);
        name.append_domain(&self.origins[zone])
            .expect("validated name lengths")
    }

    fn soa(&self, apex: Name, serial: u32) -> Record {
        let soa = SOA::new(
            self.nameserver.clone(),
            self.hostmaster.clone(),
            serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            self.settings.negative_ttl,
        );
        Record::from_rdata(apex, self.settings.negative_ttl, RData::SOA(soa))
    }

    fn record(
        &self,
        owner: &Name,
        rdata: Rdata<'_>,
        zone: usize,
        apex: &Name,
        serial: u32,
    ) -> Record {
        let ttl = self.settings.ttl;
        let data = match rdata {
            Rdata::A(a) => RData::A(A(a)),
            Rdata::Aaaa(a) => RData::AAAA(AAAA(a)),
            Rdata::Srv { port, target } => {
                RData::SRV(SRV::new(0, 1, port, self.target(target, zone)))
            }
            Rdata::Ptr(target) => RData::PTR(PTR(self.target(target, zone))),
            Rdata::Ns => RData::NS(NS(self.nameserver.clone())),
            Rdata::Soa => return self.soa(apex.clone(), serial),
        };
        Record::from_rdata(owner.clone(), ttl, data)
    }
}

fn qtype_of(t: RecordType) -> QType {
    match t {
        RecordType::A => QType::A,
        RecordType::AAAA => QType::Aaaa,
        RecordType::SRV => QType::Srv,
        RecordType::PTR => QType::Ptr,
        RecordType::SOA => QType::Soa,
        RecordType::NS => QType::Ns,
        RecordType::ANY => QType::Any,
        _ => QType::Other,
    }
}

/// Upper bound of a record's encoded size, ignoring compression.
fn max_len(record: &Record) -> usize {
    let rdata = match &record.data {
        RData::A(_) => 4,
        RData::AAAA(_) => 16,
        RData::SRV(s) => 6 + s.target.len() + 1,
        RData::PTR(p) => p.0.len() + 1,
        RData::NS(n) => n.0.len() + 1,
        RData::SOA(s) => s.mname.len() + s.rname.len() + 2 + 20,
        _ => 65_535,
    };
    record.name.len() + 1 + 10 + rdata
}

/// How much of a response fits in `limit` bytes.
#[derive(Debug, PartialEq, Eq)]
struct Fit {
    answers: usize,
    /// Whole glue groups (all addresses of one SRV target) that fit.
    glue_groups: usize,
    truncated: bool,
}

fn fit(
    query: &Query,
    metadata: Metadata,
    answers: &[Record],
    authority: &[Record],
    glue: &[Vec<Record>],
    limit: usize,
) -> Fit {
    let all = Fit {
        answers: answers.len(),
        glue_groups: glue.len(),
        truncated: false,
    };
    let question = query.name().len() + 1 + 4;
    let estimate = 12
        + question
        + answers
            .iter()
            .chain(authority)
            .chain(glue.iter().flatten())
            .map(max_len)
            .sum::<usize>();
    if estimate <= limit {
        return all;
    }
    // Encode once with everything; the counts tell what fitted (hickory stops at the first record
    // that does not fit and rolls it back).
    let mut buf = Vec::with_capacity(limit);
    let mut encoder = BinEncoder::new(&mut buf);
    encoder.set_max_size(limit.min(u16::MAX as usize) as u16);
    let parts = (answers.iter(), authority.iter(), glue.iter().flatten());
    let Ok(header) = emit_response(&metadata, query, parts, None, &mut encoder) else {
        return Fit {
            answers: 0,
            glue_groups: 0,
            truncated: true,
        };
    };
    let counts = header.counts;
    if (counts.answers as usize) < answers.len() || (counts.authorities as usize) < authority.len()
    {
        return Fit {
            answers: counts.answers as usize,
            glue_groups: 0,
            truncated: true,
        };
    }
    let mut room = counts.additionals as usize;
    let glue_groups = glue
        .iter()
        .take_while(|g| {
            let ok = g.len() <= room;
            room = room.saturating_sub(g.len());
            ok
        })
        .count();
    Fit {
        answers: answers.len(),
        glue_groups,
        truncated: false,
    }
}

/// Which code answers a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// The fast path where it can, the general path otherwise (what the server does).
    Any,
    /// Only the fast path.
    Fast,
    /// Only the general path (hickory's parser and encoder).
    General,
}

/// Whether the first question's name holds a compression pointer (or a reserved label type).
/// Nothing precedes a question but the header, so such a pointer can only point into it; and
/// since the question is echoed as received, the reply would point at its own, different,
/// header and not parse.
fn question_has_pointer(bytes: &[u8]) -> bool {
    let mut at = 12;
    while let Some(&len) = bytes.get(at) {
        if len == 0 {
            return false;
        }
        if len & 0xC0 != 0 {
            return true;
        }
        at += 1 + len as usize;
    }
    false
}

/// What a request got, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Index into [`crate::metrics::QTYPES`].
    pub qtype: usize,
    /// Index into [`crate::metrics::RCODES`].
    pub rcode: usize,
    pub truncated: bool,
}

fn qtype_index(t: RecordType) -> usize {
    match t {
        RecordType::A => 0,
        RecordType::AAAA => 1,
        RecordType::SRV => 2,
        RecordType::PTR => 3,
        RecordType::SOA => 4,
        RecordType::NS => 5,
        RecordType::ANY => 6,
        _ => 7,
    }
}

fn rcode_index(r: ResponseCode) -> usize {
    match r {
        ResponseCode::NoError => 0,
        ResponseCode::NXDomain => 1,
        ResponseCode::ServFail => 2,
        ResponseCode::Refused => 3,
        ResponseCode::FormErr => 4,
        ResponseCode::NotImp => 5,
        ResponseCode::BADVERS => 6,
        _ => 7,
    }
}

impl Handler {
    /// Answers the DNS message in `bytes` into `out` (cleared first). Returns `None` when
    /// nothing must be sent: not even a header could be read, or the message is a response
    /// (QR=1), which is never answered so that two servers cannot loop. A message whose header
    /// reads but whose body does not parse gets FORMERR. Counts everything in the metrics.
    pub fn answer(
        &self,
        bytes: &[u8],
        src: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Option<Reply> {
        self.answer_by(Path::Any, bytes, src, transport, out)
    }

    /// [`Handler::answer`] through a chosen path, so that tests and benchmarks can compare them.
    /// `Path::Fast` answers `None` where the fast path declines.
    pub fn answer_by(
        &self,
        path: Path,
        bytes: &[u8],
        src: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Option<Reply> {
        out.clear();
        let fast = match path {
            Path::Any | Path::Fast => self.answer_fast(bytes, transport, out),
            Path::General => None,
        };
        let reply = match (fast, path) {
            (Some(reply), _) => Some(reply),
            (None, Path::Fast) => return None,
            (None, _) => {
                out.clear();
                self.answer_general(bytes, src, transport, out)
            }
        };
        if let Some(r) = reply {
            self.metrics.query(r.qtype, r.rcode, transport, r.truncated);
        }
        reply
    }

    fn answer_general(
        &self,
        bytes: &[u8],
        src: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Option<Reply> {
        let Ok(header) = Header::read(&mut BinDecoder::new(bytes)) else {
            self.metrics.malformed(transport);
            return None;
        };
        if header.metadata.message_type == MessageType::Response {
            self.metrics.malformed(transport);
            return None;
        }
        let protocol = match transport {
            Transport::Udp => Protocol::Udp,
            Transport::Tcp => Protocol::Tcp,
        };
        let request = if header.counts.queries > 0 && question_has_pointer(bytes) {
            Err("a compression pointer in the question".to_owned())
        } else {
            Request::from_bytes(bytes.to_vec(), src, protocol).map_err(|e| e.to_string())
        };
        let reply = match request {
            Ok(request) => self.respond(&request, out),
            Err(e) => {
                debug!(%src, error = %e, "malformed message; FORMERR");
                self.metrics.malformed(transport);
                let mut metadata = Metadata::response_from_request(&header.metadata);
                metadata.response_code = ResponseCode::FormErr;
                let header = Header {
                    metadata,
                    counts: HeaderCounts::default(),
                };
                let _ = header.emit(&mut BinEncoder::new(out));
                Reply {
                    qtype: 7,
                    rcode: rcode_index(ResponseCode::FormErr),
                    truncated: false,
                }
            }
        };
        Some(reply)
    }

    /// Answers a parsed request into `out`.
    pub fn respond(&self, request: &Request, out: &mut Vec<u8>) -> Reply {
        // RFC 6891 §6.2.3/6.2.5: sizes below 512 mean 512; offer at most our own maximum. The
        // DO flag is copied (RFC 3225 §3): the answer says it was read, and is unsigned.
        let nsid = request
            .edns
            .as_ref()
            .and_then(|e| self.nsid_for(e.option(EdnsCode::NSID).is_some()));
        let edns = request.edns.as_ref().map(|e| {
            let mut ours = Edns::new();
            ours.set_max_payload(e.max_payload().clamp(512, self.max_udp_payload));
            ours.set_dnssec_ok(e.flags().dnssec_ok);
            if let Some(id) = nsid {
                let id = NSIDPayload::new(id).expect("at most MAX_NSID bytes");
                ours.options_mut().insert(EdnsOption::NSID(id));
            }
            ours
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = false;
        let qtype = request
            .queries
            .queries()
            .first()
            .map_or(7, |q| qtype_index(q.query_type()));

        let early = if request.metadata.op_code != OpCode::Query {
            Some(ResponseCode::NotImp)
        } else if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            Some(ResponseCode::BADVERS) // RFC 6891 §6.1.3
        } else if request.queries.len() != 1 {
            Some(ResponseCode::FormErr)
        } else {
            None
        };
        if let Some(code) = early {
            metadata.response_code = code;
            debug!(src = %request.src(), rcode = %code, "refusing the request before lookup");
            // The question is echoed only when there is exactly one: many questions would make
            // the refusal larger than the transport allows (and an amplifier).
            let none;
            let builder = if request.queries.len() == 1 {
                builder
            } else {
                none = Queries::read(&mut BinDecoder::new(&[]), 0)
                    .expect("reading no questions cannot fail");
                MessageResponseBuilder::new(&none, edns.as_ref())
            };
            emit(builder.build_no_records(metadata), out);
            return Reply {
                qtype,
                rcode: rcode_index(code),
                truncated: false,
            };
        }

        let query = &request.queries.queries()[0];
        let labels: Vec<&[u8]> = query.name().iter().collect();
        let snapshot = self.published.load();
        let not_in = query.query_class() != DNSClass::IN
            || matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR);
        let answer = if not_in {
            zone::Answer {
                kind: AnswerKind::Refused,
                apex_labels: 0,
                target_zone: 0,
                records: vec![],
                glue: vec![],
            }
        } else {
            zone::answer(
                &self.settings,
                snapshot.as_deref(),
                &labels,
                qtype_of(query.query_type()),
            )
        };

        let serial = snapshot.as_ref().map_or(0, |s| s.serial);
        let owner = query.original().name();
        let apex = owner.trim_to(answer.apex_labels);
        metadata.authoritative = matches!(
            answer.kind,
            AnswerKind::Data | AnswerKind::NoData | AnswerKind::NxDomain
        );
        metadata.response_code = match answer.kind {
            AnswerKind::Data | AnswerKind::NoData => ResponseCode::NoError,
            AnswerKind::NxDomain => ResponseCode::NXDomain,
            AnswerKind::Refused => ResponseCode::Refused,
            AnswerKind::NotReady => ResponseCode::ServFail,
        };
        let zone = answer.target_zone;
        let answers: Vec<Record> = answer
            .records
            .iter()
            .map(|r| self.record(owner, *r, zone, &apex, serial))
            .collect();
        let authority: Vec<Record> = if answer.has_soa_authority() {
            vec![self.soa(apex.clone(), serial)]
        } else {
            vec![]
        };
        let glue: Vec<Vec<Record>> = answer
            .glue
            .iter()
            .map(|m| {
                let name = self.target(&m.identity, zone);
                let ttl = self.settings.ttl;
                let v4 = m
                    .v4()
                    .map(|a| Record::from_rdata(name.clone(), ttl, RData::A(A(a))));
                let v6 = m
                    .v6()
                    .map(|a| Record::from_rdata(name.clone(), ttl, RData::AAAA(AAAA(a))));
                v4.chain(v6).collect()
            })
            .collect();

        let limit = match request.protocol() {
            Protocol::Udp => edns.as_ref().map_or(512, |e| e.max_payload() as usize),
            _ => u16::MAX as usize,
        } - if edns.is_some() {
            self.opt_len(nsid)
        } else {
            0
        };
        let fit = fit(
            query.original(),
            metadata,
            &answers,
            &authority,
            &glue,
            limit,
        );
        metadata.truncation = fit.truncated;
        let authority: &[Record] = if fit.truncated { &[] } else { &authority };
        debug!(
            src = %request.src(),
            protocol = %request.protocol(),
            name = %owner,
            qtype = %query.query_type(),
            rcode = %metadata.response_code,
            answers = fit.answers,
            truncated = fit.truncated,
            "query"
        );
        let parts = (
            answers[..fit.answers].iter(),
            authority.iter(),
            glue[..fit.glue_groups].iter().flatten(),
        );
        let mut encoder = BinEncoder::new(out);
        if let Err(e) = emit_response(
            &metadata,
            query.original(),
            parts,
            edns.as_ref(),
            &mut encoder,
        ) {
            servfail(e, metadata, out);
        }
        Reply {
            qtype,
            rcode: rcode_index(metadata.response_code),
            truncated: fit.truncated,
        }
    }
}

/// Writes a response that was sized to fit; an encoding failure becomes SERVFAIL.
fn emit<'a>(
    message: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    out: &mut Vec<u8>,
) {
    let metadata = *message.metadata();
    if let Err(e) = message.destructive_emit(&mut BinEncoder::new(out)) {
        servfail(e, metadata, out);
    }
}

/// Replaces an answer that could not be encoded with a bare SERVFAIL.
fn servfail(e: ProtoError, mut metadata: Metadata, out: &mut Vec<u8>) {
    tracing::error!(error = %e, "cannot encode an answer; sending SERVFAIL");
    out.clear();
    metadata.response_code = ResponseCode::ServFail;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    let _ = header.emit(&mut BinEncoder::new(out));
}

/// Writes an answer: the header, the question, then answers, authority and additional records
/// (hickory stops at the first record that does not fit the encoder's size, and counts what it
/// wrote). The question goes through hickory's name encoder instead of being copied as received
/// (as `MessageResponse` copies it), so that its name is a compression target: the first answer
/// then points to it (a member's A answer is 62 bytes instead of 90, as Knot and NSD write it).
/// The question was parsed without compression pointers, so its bytes are the ones received.
fn emit_response<'r>(
    metadata: &Metadata,
    query: &Query,
    (answers, authority, additional): (
        impl Iterator<Item = &'r Record>,
        impl Iterator<Item = &'r Record>,
        impl Iterator<Item = &'r Record>,
    ),
    edns: Option<&Edns>,
    encoder: &mut BinEncoder<'_>,
) -> Result<Header, ProtoError> {
    emit_message_parts(
        metadata,
        &mut std::iter::once(query),
        &mut { answers },
        &mut { authority },
        &mut { additional },
        edns,
        None,
        encoder,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_once_a_minute() {
        let limit = OncePerMinute::new();
        assert!(limit.allow(), "the first is let through");
        assert!(!limit.allow(), "the next, within the minute, is not");
        assert!(OncePerMinute::new().allow(), "each limit is its own");
    }
}
