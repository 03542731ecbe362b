//! `roster peers`: the members of a service, from its SRV records, for init containers and
//! scripts. It asks a DNS server like any client would (the system resolver by default), so it
//! works through the cluster DNS and the stub domain, and prints the members in the forms that
//! databases take: lines, JSON, an etcd `--initial-cluster` string, or ZooKeeper `server.N=`
//! lines. With `--wait-for N` it waits until N members are listed.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RData, RecordType};

#[derive(Debug, thiserror::Error)]
pub enum PeersError {
    #[error("{0:?} is not a domain name: {1}")]
    BadName(String, String),
    #[error("no DNS server: /etc/resolv.conf names none; give one with --server ADDR:PORT")]
    NoResolver,
    #[error("DNS server {server}: {source}")]
    Io {
        server: SocketAddr,
        source: std::io::Error,
    },
    #[error("DNS server {server} sent an answer that does not parse: {message}")]
    Garbled { server: SocketAddr, message: String },
    #[error("{name}: {detail}")]
    Answer { name: String, detail: String },
    #[error("{found} of {wanted} members of {name} after {waited:.1?}; the last answer: {last}")]
    Timeout {
        name: String,
        wanted: usize,
        found: usize,
        waited: Duration,
        last: String,
    },
    #[error("member {0} has no ordinal in its name, which ZooKeeper ids need")]
    NoOrdinal(String),
    #[error(
        "{name}: the answer is cut even over TCP after {count} members (a DNS message holds \
         64 KiB); the service has more, so no list is printed (the admin listener's /members \
         has them all)"
    )]
    Cut { name: String, count: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `host port`, one member per line.
    Lines,
    /// A JSON array of {name, host, port, ordinal, addresses}.
    Json,
    /// `name=scheme://host:port,...` for etcd's --initial-cluster.
    Etcd,
    /// `server.N=host:PORTS` lines, N = ordinal + 1.
    Zookeeper,
}

/// One member, from an SRV record (and its address records, when the server sent them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The member name: the first label of the target (`db-0`).
    pub name: String,
    /// The target, without the final dot.
    pub host: String,
    pub port: u16,
    /// The decimal suffix of the member name.
    pub ordinal: Option<u32>,
    pub addresses: Vec<IpAddr>,
}

/// The first `nameserver` of /etc/resolv.conf, on port 53.
pub fn system_resolver() -> Result<SocketAddr, PeersError> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
        .ok_or(PeersError::NoResolver)
}

fn exchange(server: SocketAddr, query: &Message, tcp: bool) -> Result<Message, PeersError> {
    let io = |source| PeersError::Io { server, source };
    let bytes = query.to_vec().map_err(|e| PeersError::Garbled {
        server,
        message: e.to_string(),
    })?;
    let reply = if tcp {
        let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(3)).map_err(io)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(io)?;
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).map_err(io)?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).map_err(io)?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut buf).map_err(io)?;
        buf
    } else {
        let local: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .unwrap();
        let socket = UdpSocket::bind(local).map_err(io)?;
        socket
            .set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(io)?;
        socket.send_to(&bytes, server).map_err(io)?;
        let mut buf = vec![0u8; 65_535];
        loop {
            let (n, from) = socket.recv_from(&mut buf).map_err(io)?;
            if from.ip() == server.ip() {
                break buf[..n].to_vec();
            }
        }
    };
    let message = Message::from_vec(&reply).map_err(|e| PeersError::Garbled {
        server,
        message: e.to_string(),
    })?;
    if message.metadata.id != query.metadata.id {
        return Err(PeersError::Garbled {
            server,
            message: "the reply's ID does not match".into(),
        });
    }
    Ok(message)
}

/// Asks `server` for the SRV records of `name` (over TCP when the UDP answer is truncated).
pub fn lookup(server: SocketAddr, name: &str) -> Result<Vec<Peer>, PeersError> {
    let mut qname =
        Name::from_ascii(name).map_err(|e| PeersError::BadName(name.into(), e.to_string()))?;
    qname.set_fqdn(true);
    // An unpredictable ID, so that a spoofed answer is unlikely to be taken.
    let id =
        std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), Instant::now()) as u16;
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(qname.clone(), RecordType::SRV));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    query.set_edns(edns);
    let mut reply = exchange(server, &query, false)?;
    if reply.metadata.truncation {
        reply = exchange(server, &query, true)?;
        // The lowest ordinals alone, printed as the service, would configure a cluster with
        // members missing.
        if reply.metadata.truncation {
            return Err(PeersError::Cut {
                name: name.into(),
                count: reply.answers.len(),
            });
        }
    }
    match reply.metadata.response_code {
        ResponseCode::NoError => {}
        code => {
            let detail = match code {
                ResponseCode::NXDomain => "NXDOMAIN: the name does not exist".into(),
                ResponseCode::ServFail => {
                    "SERVFAIL: the server could not answer (is roster ready?)".into()
                }
                ResponseCode::Refused => "REFUSED: the server does not serve this name".into(),
                other => format!("the server answered {other:?}"),
            };
            return Err(PeersError::Answer {
                name: name.into(),
                detail,
            });
        }
    }
    let mut peers: Vec<Peer> = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some(srv),
            _ => None,
        })
        .map(|srv| {
            let host = srv.target.to_ascii().trim_end_matches('.').to_owned();
            let name = host.split('.').next().unwrap_or_default().to_owned();
            let ordinal = name.rsplit_once('-').and_then(|(_, n)| n.parse().ok());
            let addresses = reply
                .additionals
                .iter()
                .filter(|a| a.name.eq_ignore_root_case(&srv.target) || a.name == srv.target)
                .filter_map(|a| match &a.data {
                    RData::A(v4) => Some(IpAddr::V4(v4.0)),
                    RData::AAAA(v6) => Some(IpAddr::V6(v6.0)),
                    _ => None,
                })
                .collect();
            Peer {
                name,
                host,
                port: srv.port,
                ordinal,
                addresses,
            }
        })
        .collect();
    peers.sort_by(|a, b| (a.ordinal, &a.name).cmp(&(b.ordinal, &b.name)));
    peers.dedup_by(|a, b| a.host == b.host && a.port == b.port);
    Ok(peers)
}

/// Prints the members in `format`.
pub fn render(
    peers: &[Peer],
    format: Format,
    scheme: &str,
    zookeeper_ports: &str,
) -> Result<String, PeersError> {
    let mut out = String::new();
    match format {
        Format::Lines => {
            for p in peers {
                let _ = writeln!(out, "{} {}", p.host, p.port);
            }
        }
        Format::Json => {
            let list: Vec<serde_json::Value> = peers
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "name": p.name, "host": p.host, "port": p.port, "ordinal": p.ordinal,
                        "addresses": p.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let _ = writeln!(out, "{}", serde_json::Value::Array(list));
        }
        Format::Etcd => {
            let members: Vec<String> = peers
                .iter()
                .map(|p| format!("{}={scheme}://{}:{}", p.name, p.host, p.port))
                .collect();
            let _ = writeln!(out, "{}", members.join(","));
        }
        Format::Zookeeper => {
            for p in peers {
                let ordinal = p
                    .ordinal
                    .ok_or_else(|| PeersError::NoOrdinal(p.name.clone()))?;
                let _ = writeln!(out, "server.{}={}:{zookeeper_ports}", ordinal + 1, p.host);
            }
        }
    }
    Ok(out)
}

/// Looks up `name`, waiting (up to `timeout`) until at least `wait_for` members are listed.
/// Without waiting, one answer is enough, whatever its size.
pub fn wait(
    server: SocketAddr,
    name: &str,
    wait_for: usize,
    timeout: Duration,
) -> Result<Vec<Peer>, PeersError> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        let last = lookup(server, name);
        match &last {
            Ok(peers) if peers.len() >= wait_for => return last,
            // Nothing a wait can change.
            Err(PeersError::BadName(..) | PeersError::Cut { .. }) => return last,
            Err(_) if wait_for == 0 => return last,
            _ => {}
        }
        if started.elapsed() >= timeout {
            let (found, last) = match last {
                Ok(peers) => (peers.len(), format!("{} members", peers.len())),
                Err(e) => (0, e.to_string()),
            };
            return Err(PeersError::Timeout {
                name: name.into(),
                wanted: wait_for,
                found,
                waited: started.elapsed(),
                last,
            });
        }
        std::thread::sleep(delay.min(timeout.saturating_sub(started.elapsed())));
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// `30s`, `2m`, `500ms`, `1h`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |i| text.split_at(i));
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (say 30s, 2m, 500ms)"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{text:?}: unit {unit:?} is not ms, s, m or h")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, port: u16) -> Peer {
        Peer {
            name: name.into(),
            host: format!("{name}.db.prod.roster.internal"),
            port,
            ordinal: name.rsplit_once('-').and_then(|(_, n)| n.parse().ok()),
            addresses: vec![],
        }
    }

    #[test]
    fn formats() {
        let peers = [peer("db-0", 2380), peer("db-1", 2380)];
        assert_eq!(
            render(&peers, Format::Lines, "http", "").unwrap(),
            "db-0.db.prod.roster.internal 2380\ndb-1.db.prod.roster.internal 2380\n"
        );
        assert_eq!(
            render(&peers, Format::Etcd, "https", "").unwrap(),
            "db-0=https://db-0.db.prod.roster.internal:2380,db-1=https://db-1.db.prod.roster.internal:2380\n"
        );
        assert_eq!(
            render(&peers, Format::Zookeeper, "", "2888:3888").unwrap(),
            "server.1=db-0.db.prod.roster.internal:2888:3888\nserver.2=db-1.db.prod.roster.internal:2888:3888\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&peers, Format::Json, "", "").unwrap()).unwrap();
        assert_eq!(json[1]["ordinal"], 1);
        assert!(render(&[peer("web", 80)], Format::Zookeeper, "", "1:2").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("5 parsecs").is_err());
    }
}
