//! Configuration: a TOML file, plus command-line overrides, validated into a typed [`Config`].
//!
//! The file is walked key by key (not deserialized with serde) so that every problem is reported
//! at once, each with its line and dotted key: an operator fixes a file in one round.
//! `config/roster.toml` documents every key with its default; keep the two in step.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use crate::dns::rrl::Block;
use crate::dns::{MAX_NSID, TcpLimits};
use crate::identity::{DEFAULT_MAX_PER_SERVICE, DEFAULT_MAX_PODS, IdentityConfig, is_dns_label};
use crate::source::kubernetes::KubeSettings;
use crate::source::selection::{LabelSelector, Selection};
use crate::zone::{DomainName, ReverseZone, ZoneSettings};

/// The default configuration path (SPEC §5).
pub const DEFAULT_PATH: &str = "config/roster.toml";

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5353";
pub const DEFAULT_ZONE: &str = "roster.internal.";
pub const DEFAULT_TTL: u32 = 5;
pub const DEFAULT_NEGATIVE_TTL: u32 = 5;
/// RFC 2181 allows up to 2^31-1, but names that follow pods should not be cached for more than
/// a day; a larger value is almost certainly a mistake (milliseconds, say).
pub const MAX_TTL: u32 = 86_400;
/// DNS Flag Day 2020: a payload that avoids IP fragmentation on every common path.
pub const DEFAULT_MAX_UDP_PAYLOAD: u16 = 1232;
pub const DEFAULT_TCP_IDLE_TIMEOUT: u64 = 10;
pub const DEFAULT_TCP_LIFETIME: u64 = 120;
/// No bound, as in NSD and Knot: a bound closes a busy connection, and a client that pipelines
/// loses the queries it has in flight then.
pub const DEFAULT_TCP_MAX_QUERIES: u32 = 0;
pub const DEFAULT_TCP_MAX_CONNECTIONS: usize = 1000;
pub const DEFAULT_RATE_LIMIT_SLIP: u32 = 2;
/// About 10,000 queued queries per socket (each takes about 830 bytes of it): room for a burst,
/// or for a pause of the thread that reads them, of tens of milliseconds at full load.
pub const DEFAULT_UDP_RECEIVE_BUFFER: usize = 4 << 20;
/// Where roster's own Service lives in the manifests of `deploy/`.
pub const DEFAULT_NAMESERVER: &str = "roster.roster-system.svc.cluster.local.";

/// Where pods come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceConfig {
    /// A local file of Pod objects, watched; roster serves the pods `selection` admits.
    File { path: PathBuf, selection: Selection },
    /// The API server, listed and watched.
    Kubernetes(KubeSettings),
}

pub const DEFAULT_API_TIMEOUT: u64 = 90;

/// What roster sends back to a query that asks who answered it (NSID, RFC 5001): with several
/// replicas behind one address, `dig +nsid` tells which one did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Nsid {
    /// Nothing (RFC 5001 lets a server leave the option unanswered).
    #[default]
    Off,
    /// The host's name, read at start: in Kubernetes, the pod's name.
    Hostname,
    /// This text.
    Text(String),
}

/// The validated configuration roster runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file it came from, if any (for messages).
    pub file: Option<PathBuf>,
    /// UDP and TCP on each.
    pub listen: Vec<SocketAddr>,
    pub zone: ZoneSettings,
    /// Largest UDP answer offered to EDNS clients; answers are also capped by the client's size.
    pub max_udp_payload: u16,
    /// The bounds on TCP clients.
    pub tcp: TcpLimits,
    /// UDP responses per second per source prefix; 0: unlimited.
    pub rate_limit: u32,
    /// Every how many limited responses one is sent truncated; 0: none.
    pub rate_limit_slip: u32,
    /// Sources never rate limited.
    pub rate_limit_exempt: Vec<Block>,
    /// UDP sockets per listen address (SO_REUSEPORT), each with its thread, and TCP threads.
    pub workers: usize,
    /// Bytes of receive buffer asked for each UDP socket.
    pub udp_receive_buffer: usize,
    pub nsid: Nsid,
    pub identity: IdentityConfig,
    pub source: SourceConfig,
    /// HTTP health, readiness, metrics and members; `None`: not served.
    pub admin_listen: Option<SocketAddr>,
}

/// Command-line settings that replace the file's (SPEC §5).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Vec<SocketAddr>,
    pub zones: Vec<String>,
    pub pods_file: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    pub admin_listen: Option<SocketAddr>,
    /// `Some(0)` or `None`: the file's setting.
    pub workers: Option<usize>,
}

/// One thing wrong with a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the file, when the problem has one.
    pub line: Option<usize>,
    /// Dotted key, such as `dns.ttl`, or the flag that set it.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "configuration file {path}: cannot read: {source}{}",
        default_hint(path, source)
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path}: {}", list(.problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// Where the default path was not found, it is read from the working directory, which a
/// service manager or a container sets: say so, and which one it was.
fn default_hint(path: &Path, error: &std::io::Error) -> String {
    if path != Path::new(DEFAULT_PATH) || error.kind() != std::io::ErrorKind::NotFound {
        return String::new();
    }
    let dir = std::env::current_dir().map_or_else(|_| "?".into(), |d| d.display().to_string());
    format!(
        " (the default path, taken from the working directory {dir}; give the file with --config PATH)"
    )
}

/// A key as TOML writes it: bare where it can be, else quoted, so that an empty key or one
/// with spaces or dots is seen for what it is in a message.
fn toml_key(key: &str) -> String {
    let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !key.is_empty() && key.chars().all(bare) {
        key.to_owned()
    } else {
        toml::Value::String(key.to_owned()).to_string()
    }
}

fn list(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut s = format!("{} problems:", many.len());
            for p in many {
                s.push_str("\n  ");
                s.push_str(&p.to_string());
            }
            s
        }
    }
}

impl Config {
    /// Reads, overrides and validates. Every problem of the file and the flags is reported
    /// together.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, Some(path), overrides).map_err(|problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })
    }

    /// Validates `text`; relative paths in it are taken from `path`'s directory.
    pub fn parse(
        text: &str,
        path: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Config, Vec<Problem>> {
        let mut w = Walker {
            text,
            problems: Vec::new(),
        };
        let (root, syntax) = DeTable::parse_recoverable(text);
        for e in syntax {
            let line = e.span().map(|s| w.line(s.start));
            w.problems.push(Problem {
                line,
                key: "(syntax)".into(),
                message: e.message().into(),
            });
        }
        let root = root.into_inner();
        let base = path.and_then(Path::parent).unwrap_or(Path::new("."));

        w.known(&root, "", &["dns", "members", "source", "admin"]);
        let empty = DeTable::new();
        let dns = w.table(&root, "", "dns").unwrap_or(&empty);
        let members = w.table(&root, "", "members").unwrap_or(&empty);
        let source = w.table(&root, "", "source").unwrap_or(&empty);
        let admin = w.table(&root, "", "admin").unwrap_or(&empty);
        w.known(admin, "admin.", &["listen"]);
        let admin_listen = match (overrides.admin_listen, w.string(admin, "admin.", "listen")) {
            (Some(addr), _) => Some(addr),
            (None, Some(("", _))) => None,
            (None, Some((text, line))) => match text.parse() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    let text = text.to_owned();
                    w.problem(
                        line,
                        "admin.listen",
                        format!("{text:?} is not an ADDRESS:PORT"),
                    );
                    None
                }
            },
            (None, None) => None,
        };
        w.known(
            dns,
            "dns.",
            &[
                "listen",
                "zones",
                "reverse_zones",
                "ttl",
                "negative_ttl",
                "max_udp_payload",
                "tcp_idle_timeout",
                "tcp_lifetime",
                "tcp_max_queries",
                "tcp_max_connections",
                "rate_limit",
                "rate_limit_slip",
                "rate_limit_exempt",
                "workers",
                "udp_receive_buffer",
                "nameserver",
                "hostmaster",
                "nsid",
            ],
        );
        w.known(
            members,
            "members.",
            &[
                "publish_not_ready",
                "protect_statefulset_names",
                "max_pods",
                "max_per_service",
            ],
        );
        w.known(
            source,
            "source.",
            &[
                "type",
                "pods_file",
                "kubeconfig",
                "namespaces",
                "label_selector",
                "api_timeout",
            ],
        );

        let listen: Vec<SocketAddr> = if overrides.listen.is_empty() {
            let listen = w.strings(dns, "dns.", "listen", &[DEFAULT_LISTEN]);
            if listen.is_empty() {
                w.problem(None, "dns.listen", "at least one address is needed".into());
            }
            listen
                .into_iter()
                .filter_map(|(s, line)| match s.parse() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        w.problem(line, "dns.listen", format!("{s:?} is not an ADDRESS:PORT"));
                        None
                    }
                })
                .collect()
        } else {
            overrides.listen.clone()
        };
        for (i, a) in listen.iter().enumerate() {
            if listen[..i].contains(a) {
                w.problem(None, "dns.listen", format!("{a} is listed twice"));
            }
        }

        let zones: Vec<(String, Option<usize>)> = if overrides.zones.is_empty() {
            w.strings(dns, "dns.", "zones", &[DEFAULT_ZONE])
        } else {
            overrides.zones.iter().map(|z| (z.clone(), None)).collect()
        };
        let zone_key = if overrides.zones.is_empty() {
            "dns.zones"
        } else {
            "--zone"
        };
        if zones.is_empty() {
            w.problem(None, zone_key, "at least one zone is needed".into());
        }
        let zones: Vec<DomainName> = zones
            .into_iter()
            .filter_map(|(z, line)| match DomainName::parse(&z) {
                Ok(name) if name.labels().last().is_some_and(|l| &**l == "arpa") => {
                    w.problem(
                        line,
                        zone_key,
                        format!("{z:?} is a reverse zone; list it in dns.reverse_zones"),
                    );
                    None
                }
                Ok(name) => Some(name),
                Err(e) => {
                    w.problem(line, zone_key, e);
                    None
                }
            })
            .collect();
        let reverse_zones: Vec<ReverseZone> = w
            .strings(dns, "dns.", "reverse_zones", &[])
            .into_iter()
            .filter_map(|(z, line)| {
                ReverseZone::parse(&z)
                    .map_err(|e| w.problem(line, "dns.reverse_zones", e))
                    .ok()
            })
            .collect();
        let names: Vec<&DomainName> = zones
            .iter()
            .chain(reverse_zones.iter().map(|r| &r.name))
            .collect();
        for (i, a) in names.iter().enumerate() {
            for b in &names[..i] {
                if a.is_within(b) || b.is_within(a) {
                    w.problem(None, "dns.zones", format!("zones {b} and {a} overlap"));
                }
            }
        }

        let ttl = w.int(dns, "dns.", "ttl", DEFAULT_TTL.into(), 0, MAX_TTL.into()) as u32;
        let negative_ttl = w.int(
            dns,
            "dns.",
            "negative_ttl",
            DEFAULT_NEGATIVE_TTL.into(),
            0,
            MAX_TTL.into(),
        ) as u32;
        let max_udp_payload = w.int(
            dns,
            "dns.",
            "max_udp_payload",
            DEFAULT_MAX_UDP_PAYLOAD.into(),
            512,
            65_535,
        ) as u16;
        let tcp_idle_timeout = w.int(
            dns,
            "dns.",
            "tcp_idle_timeout",
            DEFAULT_TCP_IDLE_TIMEOUT as i64,
            1,
            3600,
        ) as u64;
        let tcp_lifetime = w.int(
            dns,
            "dns.",
            "tcp_lifetime",
            DEFAULT_TCP_LIFETIME as i64,
            1,
            86_400,
        ) as u64;
        let tcp_max_queries = w.int(
            dns,
            "dns.",
            "tcp_max_queries",
            DEFAULT_TCP_MAX_QUERIES.into(),
            0,
            u32::MAX.into(),
        ) as u32;
        let tcp_max_connections = w.int(
            dns,
            "dns.",
            "tcp_max_connections",
            DEFAULT_TCP_MAX_CONNECTIONS as i64,
            1,
            1_000_000,
        ) as usize;
        let rate_limit = w.int(dns, "dns.", "rate_limit", 0, 0, 1_000_000_000) as u32;
        let rate_limit_slip = w.int(
            dns,
            "dns.",
            "rate_limit_slip",
            DEFAULT_RATE_LIMIT_SLIP.into(),
            0,
            100,
        ) as u32;
        let rate_limit_exempt: Vec<Block> = w
            .strings(dns, "dns.", "rate_limit_exempt", &[])
            .into_iter()
            .filter_map(|(text, line)| {
                Block::parse(&text)
                    .map_err(|e| w.problem(line, "dns.rate_limit_exempt", e))
                    .ok()
            })
            .collect();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = match overrides.workers {
            Some(n) if n > 0 => n,
            _ => match w.int(dns, "dns.", "workers", 0, 0, 1024) as usize {
                0 => cores,
                n => n,
            },
        };
        let udp_receive_buffer = w.int(
            dns,
            "dns.",
            "udp_receive_buffer",
            DEFAULT_UDP_RECEIVE_BUFFER as i64,
            65_536,
            // Linux keeps twice the size asked for in an int.
            1 << 29,
        ) as usize;
        let nameserver = w.name(dns, "dns.", "nameserver", DEFAULT_NAMESERVER);
        let default_hostmaster = format!(
            "hostmaster.{}",
            zones
                .first()
                .map_or(DEFAULT_ZONE.to_owned(), |z| z.to_string())
        );
        let hostmaster = w.name(dns, "dns.", "hostmaster", &default_hostmaster);
        let nsid = w.nsid(dns);
        let publish_not_ready = w.bool(members, "members.", "publish_not_ready", false);
        let protect_statefulset_names =
            w.bool(members, "members.", "protect_statefulset_names", false);
        let max_pods = w.int(
            members,
            "members.",
            "max_pods",
            DEFAULT_MAX_PODS as i64,
            1,
            100_000_000,
        ) as usize;
        let max_per_service = w.int(
            members,
            "members.",
            "max_per_service",
            DEFAULT_MAX_PER_SERVICE as i64,
            1,
            100_000_000,
        ) as usize;

        let kind = w
            .string(source, "source.", "type")
            .map(|(s, line)| (s.to_owned(), line));
        let source = match (&overrides.pods_file, &overrides.kubeconfig) {
            (Some(file), _) => SourceConfig::File {
                path: file.clone(),
                selection: w.selection(source),
            },
            (None, Some(kubeconfig)) => w.source_kubernetes(source, base, Some(kubeconfig.clone())),
            (None, None) => match kind {
                None => w.source_file(source, base),
                Some((k, _)) if k == "file" => w.source_file(source, base),
                Some((k, _)) if k == "kubernetes" => w.source_kubernetes(source, base, None),
                Some((other, line)) => {
                    let message =
                        format!("{other:?} is not a source; use \"file\" or \"kubernetes\"");
                    w.problem(line, "source.type", message);
                    SourceConfig::File {
                        path: PathBuf::new(),
                        selection: Selection::default(),
                    }
                }
            },
        };

        if !w.problems.is_empty() {
            // In file order; problems without a line (flags, missing keys) last.
            w.problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            return Err(w.problems);
        }
        // A zone name is at most 255 octets on the wire (253 characters, checked above).
        let name_room = 255 - zones.iter().map(DomainName::wire_len).max().unwrap_or(0);
        Ok(Config {
            file: path.map(Path::to_owned),
            listen,
            zone: ZoneSettings {
                zones,
                reverse_zones,
                ttl,
                negative_ttl,
                nameserver: nameserver.expect("checked above"),
                hostmaster: hostmaster.expect("checked above"),
            },
            max_udp_payload,
            tcp: TcpLimits {
                idle: Duration::from_secs(tcp_idle_timeout),
                lifetime: Duration::from_secs(tcp_lifetime),
                max_queries: tcp_max_queries,
                max_connections: tcp_max_connections,
            },
            rate_limit,
            rate_limit_slip,
            rate_limit_exempt,
            workers,
            udp_receive_buffer,
            nsid,
            identity: IdentityConfig {
                publish_not_ready,
                protect_statefulset_names,
                max_pods,
                max_per_service,
                name_room,
            },
            source,
            admin_listen,
        })
    }

    /// The keys (`section.key`, as the file names them) whose values differ between two
    /// configurations, in the file's order; empty when they are the same.
    pub fn changed_keys(&self, other: &Config) -> Vec<String> {
        fn keyed(text: &str) -> Vec<(String, &str)> {
            let mut section = "";
            let mut keys = Vec::new();
            for line in text.lines() {
                if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    section = name;
                } else if let Some((key, value)) = line.split_once(" = ") {
                    keys.push((format!("{section}.{key}"), value));
                }
            }
            keys
        }
        let (this, that) = (self.to_toml(), other.to_toml());
        let (this, that) = (keyed(&this), keyed(&that));
        let value = |keys: &[(String, &'_ str)], key: &str| {
            keys.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.to_string())
        };
        let mut changed: Vec<String> = Vec::new();
        for (key, _) in this.iter().chain(&that) {
            if value(&this, key) != value(&that, key) && !changed.contains(key) {
                changed.push(key.clone());
            }
        }
        changed
    }

    /// The effective configuration as TOML, in the file's layout (`roster check-config`).
    pub fn to_toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let list = |items: Vec<String>| {
            format!(
                "[{}]",
                items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
            )
        };
        let selection_toml = |s: &Selection| {
            let labels = s.labels.as_ref().map_or("", LabelSelector::as_str);
            format!(
                "namespaces = {}\nlabel_selector = {}\n",
                list(s.namespaces.clone()),
                q(labels)
            )
        };
        let z = &self.zone;
        let mut out = String::new();
        if let Some(file) = &self.file {
            out.push_str(&format!(
                "# effective configuration of {}\n",
                file.display()
            ));
        }
        out.push_str("[dns]\n");
        out.push_str(&format!(
            "listen = {}\n",
            list(self.listen.iter().map(ToString::to_string).collect())
        ));
        out.push_str(&format!(
            "zones = {}\n",
            list(z.zones.iter().map(ToString::to_string).collect())
        ));
        out.push_str(&format!(
            "reverse_zones = {}\n",
            list(z.reverse_zones.iter().map(|r| r.name.to_string()).collect())
        ));
        out.push_str(&format!(
            "ttl = {}\nnegative_ttl = {}\n",
            z.ttl, z.negative_ttl
        ));
        out.push_str(&format!("max_udp_payload = {}\n", self.max_udp_payload));
        out.push_str(&format!(
            "tcp_idle_timeout = {}\ntcp_lifetime = {}\ntcp_max_queries = {}\ntcp_max_connections = {}\n",
            self.tcp.idle.as_secs(),
            self.tcp.lifetime.as_secs(),
            self.tcp.max_queries,
            self.tcp.max_connections
        ));
        out.push_str(&format!(
            "rate_limit = {}\nrate_limit_slip = {}\n",
            self.rate_limit, self.rate_limit_slip
        ));
        out.push_str(&format!(
            "rate_limit_exempt = {}\n",
            list(
                self.rate_limit_exempt
                    .iter()
                    .map(|b| b.to_string())
                    .collect()
            )
        ));
        out.push_str(&format!("workers = {}\n", self.workers));
        out.push_str(&format!(
            "udp_receive_buffer = {}\n",
            self.udp_receive_buffer
        ));
        out.push_str(&format!("nameserver = {}\n", q(&z.nameserver.to_string())));
        out.push_str(&format!("hostmaster = {}\n", q(&z.hostmaster.to_string())));
        out.push_str(&match &self.nsid {
            Nsid::Off => "nsid = false\n".to_owned(),
            Nsid::Hostname => "nsid = true\n".to_owned(),
            Nsid::Text(text) => format!("nsid = {}\n", q(text)),
        });
        out.push_str(&format!(
            "\n[members]\npublish_not_ready = {}\nprotect_statefulset_names = {}\nmax_pods = {}\nmax_per_service = {}\n",
            self.identity.publish_not_ready,
            self.identity.protect_statefulset_names,
            self.identity.max_pods,
            self.identity.max_per_service
        ));
        let admin = self.admin_listen.map(|a| a.to_string()).unwrap_or_default();
        out.push_str(&format!("\n[admin]\nlisten = {}\n", q(&admin)));
        match &self.source {
            SourceConfig::File { path, selection } => {
                out.push_str(&format!(
                    "\n[source]\ntype = \"file\"\npods_file = {}\n",
                    q(&path.display().to_string())
                ));
                out.push_str(&selection_toml(selection));
            }
            SourceConfig::Kubernetes(k) => {
                out.push_str("\n[source]\ntype = \"kubernetes\"\n");
                let kubeconfig = k.kubeconfig.as_ref().map(|p| p.display().to_string());
                out.push_str(&format!(
                    "kubeconfig = {}\n",
                    q(kubeconfig.as_deref().unwrap_or(""))
                ));
                out.push_str(&selection_toml(&k.selection));
                out.push_str(&format!("api_timeout = {}\n", k.api_timeout.as_secs()));
            }
        }
        out
    }
}

/// Reads values out of the spanned TOML tree, recording problems instead of stopping.
struct Walker<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

type Entry<'a, 'i> = (&'a toml::Spanned<DeValue<'i>>, Option<usize>);

impl<'t> Walker<'t> {
    fn line(&self, offset: usize) -> usize {
        self.text.as_bytes()[..offset.min(self.text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn problem(&mut self, line: Option<usize>, key: &str, message: String) {
        self.problems.push(Problem {
            line,
            key: key.into(),
            message,
        });
    }

    fn known(&mut self, table: &DeTable<'_>, prefix: &str, keys: &[&str]) {
        for (k, _) in table.iter() {
            if !keys.contains(&k.get_ref().as_ref()) {
                let line = Some(self.line(k.span().start));
                let message = format!("unknown key (known here: {})", keys.join(", "));
                self.problem(line, &format!("{prefix}{}", toml_key(k.get_ref())), message);
            }
        }
    }

    fn get<'a, 'i>(&self, table: &'a DeTable<'i>, key: &str) -> Option<Entry<'a, 'i>> {
        table.get(key).map(|v| (v, Some(self.line(v.span().start))))
    }

    fn wrong_type(&mut self, line: Option<usize>, key: String, want: &str, got: &DeValue<'_>) {
        self.problem(
            line,
            &key,
            format!("expected {want}, found {}", got.type_str()),
        );
    }

    fn table<'a, 'i>(
        &mut self,
        table: &'a DeTable<'i>,
        prefix: &str,
        key: &str,
    ) -> Option<&'a DeTable<'i>> {
        let (v, line) = self.get(table, key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.wrong_type(line, format!("{prefix}{key}"), "a table", other);
                None
            }
        }
    }

    fn string<'a>(
        &mut self,
        table: &'a DeTable<'_>,
        prefix: &str,
        key: &str,
    ) -> Option<(&'a str, Option<usize>)> {
        let (v, line) = self.get(table, key)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.as_ref(), line)),
            other => {
                self.wrong_type(line, format!("{prefix}{key}"), "a string", other);
                None
            }
        }
    }

    fn strings(
        &mut self,
        table: &DeTable<'_>,
        prefix: &str,
        key: &str,
        default: &[&str],
    ) -> Vec<(String, Option<usize>)> {
        let Some((v, line)) = self.get(table, key) else {
            return default.iter().map(|s| (s.to_string(), None)).collect();
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(
                line,
                format!("{prefix}{key}"),
                "a list of strings",
                v.get_ref(),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            let line = Some(self.line(item.span().start));
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), line)),
                other => self.wrong_type(line, format!("{prefix}{key}"), "a string", other),
            }
        }
        out
    }

    fn int(
        &mut self,
        table: &DeTable<'_>,
        prefix: &str,
        key: &str,
        default: i64,
        min: i64,
        max: i64,
    ) -> i64 {
        let Some((v, line)) = self.get(table, key) else {
            return default;
        };
        let full = format!("{prefix}{key}");
        let DeValue::Integer(i) = v.get_ref() else {
            self.wrong_type(line, full, "an integer", v.get_ref());
            return default;
        };
        match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                self.problem(
                    line,
                    &full,
                    format!("{} is out of range ({min} to {max})", i.as_str()),
                );
                default
            }
        }
    }

    /// `dns.nsid`: false, true (the host's name) or a text.
    fn nsid(&mut self, dns: &DeTable<'_>) -> Nsid {
        let Some((v, line)) = self.get(dns, "nsid") else {
            return Nsid::Off;
        };
        match v.get_ref() {
            DeValue::Boolean(false) => Nsid::Off,
            DeValue::Boolean(true) => Nsid::Hostname,
            DeValue::String(s)
                if (1..=MAX_NSID).contains(&s.len())
                    && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ') =>
            {
                Nsid::Text(s.to_string())
            }
            DeValue::String(s) => {
                let message = format!(
                    "{s:?} is not an identifier: use 1 to {MAX_NSID} printable ASCII characters, \
                     or true for the host's name"
                );
                self.problem(line, "dns.nsid", message);
                Nsid::Off
            }
            other => {
                self.wrong_type(line, "dns.nsid".into(), "true, false or a string", other);
                Nsid::Off
            }
        }
    }

    fn bool(&mut self, table: &DeTable<'_>, prefix: &str, key: &str, default: bool) -> bool {
        let Some((v, line)) = self.get(table, key) else {
            return default;
        };
        match v.get_ref() {
            DeValue::Boolean(b) => *b,
            other => {
                self.wrong_type(line, format!("{prefix}{key}"), "true or false", other);
                default
            }
        }
    }

    fn name(
        &mut self,
        table: &DeTable<'_>,
        prefix: &str,
        key: &str,
        default: &str,
    ) -> Option<DomainName> {
        let (text, line) = match self.string(table, prefix, key) {
            Some((s, line)) => (s.to_owned(), line),
            None => (default.to_owned(), None),
        };
        DomainName::parse(&text)
            .map_err(|e| self.problem(line, &format!("{prefix}{key}"), e))
            .ok()
    }

    fn source_kubernetes(
        &mut self,
        source: &DeTable<'_>,
        base: &Path,
        kubeconfig: Option<PathBuf>,
    ) -> SourceConfig {
        let kubeconfig = kubeconfig.or_else(|| {
            self.string(source, "source.", "kubeconfig")
                .filter(|(p, _)| !p.is_empty())
                .map(|(p, _)| base.join(p))
        });
        let selection = self.selection(source);
        let api_timeout = self.int(
            source,
            "source.",
            "api_timeout",
            DEFAULT_API_TIMEOUT as i64,
            3,
            3600,
        ) as u64;
        SourceConfig::Kubernetes(KubeSettings {
            kubeconfig,
            selection,
            api_timeout: Duration::from_secs(api_timeout),
        })
    }

    /// `source.namespaces` and `source.label_selector`, for either source.
    fn selection(&mut self, source: &DeTable<'_>) -> Selection {
        let mut namespaces: Vec<String> = Vec::new();
        for (ns, line) in self.strings(source, "source.", "namespaces", &[]) {
            if !is_dns_label(&ns) {
                self.problem(
                    line,
                    "source.namespaces",
                    format!("{ns:?} is not a namespace name"),
                );
            } else if namespaces.contains(&ns) {
                self.problem(line, "source.namespaces", format!("{ns:?} is listed twice"));
            } else {
                namespaces.push(ns);
            }
        }
        let labels = match self.string(source, "source.", "label_selector") {
            Some((sel, line)) if !sel.trim().is_empty() => LabelSelector::parse(sel)
                .map_err(|e| self.problem(line, "source.label_selector", e))
                .ok(),
            _ => None,
        };
        Selection { namespaces, labels }
    }

    fn source_file(&mut self, source: &DeTable<'_>, base: &Path) -> SourceConfig {
        let path = match self.string(source, "source.", "pods_file") {
            Some((p, _)) if !p.is_empty() => base.join(p),
            Some((_, line)) => {
                self.problem(line, "source.pods_file", "must not be empty".into());
                PathBuf::new()
            }
            None => {
                self.problem(
                    None,
                    "source.pods_file",
                    "required by the file source (a path to a list of Pods)".into(),
                );
                PathBuf::new()
            }
        };
        SourceConfig::File {
            path,
            selection: self.selection(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Vec<Problem>> {
        Config::parse(
            text,
            Some(Path::new("/etc/roster/roster.toml")),
            &Overrides::default(),
        )
    }

    #[test]
    fn defaults() {
        let c = parse("[source]\npods_file = \"pods.yaml\"\n").unwrap();
        assert_eq!(c.listen, ["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(c.zone.zones[0].to_string(), "roster.internal.");
        assert_eq!((c.zone.ttl, c.zone.negative_ttl), (5, 5));
        assert_eq!(c.max_udp_payload, 1232);
        assert_eq!(c.udp_receive_buffer, 4 << 20);
        assert_eq!(c.zone.hostmaster.to_string(), "hostmaster.roster.internal.");
        assert_eq!(
            c.source,
            SourceConfig::File {
                path: "/etc/roster/pods.yaml".into(),
                selection: Selection::default(),
            }
        );
        assert!(!c.identity.publish_not_ready);
        assert_eq!(c.identity, IdentityConfig::default());
    }

    /// The room left for `<member>.<service>.<namespace>.` is what the longest zone leaves.
    #[test]
    fn member_names_get_the_room_the_longest_zone_leaves() {
        let c = parse(
            "[dns]\nzones = [\"a.b\", \"roster.example.internal\"]\n[source]\npods_file = \"p\"\n",
        )
        .unwrap();
        assert_eq!(c.identity.name_room, 255 - 25);
    }

    #[test]
    fn every_problem_at_once_with_lines_and_keys() {
        let text = "\
[dns]
listen = [\"127.0.0.1:53\", \"nope\"]
zones = [\"Good.Zone.\", \"bad zone\"]
ttl = 999999
negative_ttl = \"5\"
zonez = 1

[source]
type = \"etcd\"
";
        let problems = parse(text).unwrap_err();
        let got: Vec<(Option<usize>, &str)> =
            problems.iter().map(|p| (p.line, p.key.as_str())).collect();
        assert_eq!(
            got,
            [
                (Some(2), "dns.listen"),
                (Some(3), "dns.zones"),
                (Some(4), "dns.ttl"),
                (Some(5), "dns.negative_ttl"),
                (Some(6), "dns.zonez"),
                (Some(9), "source.type"),
            ],
            "{problems:#?}"
        );
        assert!(
            problems[2].message.contains("out of range"),
            "{}",
            problems[2]
        );
    }

    #[test]
    fn overrides_replace_the_file() {
        let overrides = Overrides {
            listen: vec![
                "127.0.0.1:1053".parse().unwrap(),
                "[::1]:1053".parse().unwrap(),
            ],
            zones: vec!["A.Example".into()],
            pods_file: Some("here.json".into()),
            kubeconfig: None,
            admin_listen: None,
            workers: None,
        };
        let c = Config::parse(
            "[dns]\nlisten=[\"0.0.0.0:53\"]\nzones=[\"x.y\"]\n[source]\npods_file=\"p\"\n",
            Some(Path::new("/etc/r.toml")),
            &overrides,
        )
        .unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.zone.zones[0].to_string(), "a.example.");
        assert_eq!(
            c.source,
            SourceConfig::File {
                path: "here.json".into(),
                selection: Selection::default(),
            }
        );
    }

    #[test]
    fn zone_checks() {
        for (zones, want) in [
            ("[\".\"]", "root"),
            ("[\"a.b\", \"c.a.b\"]", "overlap"),
            ("[\"10.in-addr.arpa\"]", "reverse"),
            ("[]", "at least one"),
        ] {
            let text = format!("[dns]\nzones = {zones}\n[source]\npods_file=\"p\"\n");
            let problems = parse(&text).unwrap_err();
            assert!(
                problems.iter().any(|p| p.message.contains(want)),
                "{zones}: {problems:?}"
            );
        }
    }

    /// Found by fuzzing: a key that TOML must quote was named bare, and an empty one not at all
    /// ("line 1: : unknown key").
    #[test]
    fn unknown_keys_are_named_as_toml_writes_them() {
        let text = r#""" = 1
[dns]
"a b" = 2
"x.y" = 3
ttl2 = 4
[source]
pods_file = "p.json"
"#;
        let problems = parse(text).unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["\"\"", "dns.\"a b\"", "dns.\"x.y\"", "dns.ttl2"],
            "{problems:?}"
        );
    }

    #[test]
    fn syntax_errors_have_lines() {
        let problems = parse("[dns]\nttl = = 5\n").unwrap_err();
        assert_eq!(problems[0].line, Some(2), "{problems:?}");
    }

    #[test]
    fn effective_config_round_trips() {
        let c = parse("[dns]\nreverse_zones=[\"10.in-addr.arpa\"]\n[members]\npublish_not_ready=true\n[source]\npods_file=\"p.yaml\"\n").unwrap();
        let again =
            Config::parse(&c.to_toml(), Some(Path::new("/")), &Overrides::default()).unwrap();
        assert_eq!(
            Config {
                file: c.file.clone(),
                ..again
            },
            c
        );
    }

    #[test]
    fn the_file_source_selects_as_the_kubernetes_source_does() {
        let text =
            "[source]\npods_file=\"p.json\"\nnamespaces=[\"prod\"]\nlabel_selector=\" app=db \"\n";
        let c = parse(text).unwrap();
        let SourceConfig::File { selection, .. } = &c.source else {
            panic!("{:?}", c.source)
        };
        assert_eq!(selection.namespaces, ["prod"]);
        assert_eq!(
            selection.labels.as_ref().map(LabelSelector::as_str),
            Some("app=db")
        );
        let printed = c.to_toml();
        assert!(
            printed.contains("namespaces = [\"prod\"]\nlabel_selector = \"app=db\"\n"),
            "{printed}"
        );
        // --pods-file over a cluster's configuration keeps its selection.
        let cluster =
            "[source]\ntype=\"kubernetes\"\nnamespaces=[\"prod\"]\nlabel_selector=\"a in (b)\"\n";
        let flag = Overrides {
            pods_file: Some("pods.json".into()),
            ..Overrides::default()
        };
        let c = Config::parse(cluster, None, &flag).unwrap();
        let SourceConfig::File { selection, .. } = &c.source else {
            panic!("{:?}", c.source)
        };
        assert_eq!(selection.namespaces, ["prod"]);
        assert!(selection.labels.is_some());
        // And refuses what the Kubernetes source refuses.
        let bad =
            "[source]\npods_file=\"p.json\"\nnamespaces=[\"Prod\"]\nlabel_selector=\"a in b\"\n";
        let keys: Vec<String> = parse(bad).unwrap_err().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["source.namespaces", "source.label_selector"]);
    }

    #[test]
    fn nsid_is_off_the_host_name_or_a_text() {
        let nsid = |value: &str| {
            parse(&format!(
                "[dns]\nnsid = {value}\n[source]\npods_file = \"p.yaml\"\n"
            ))
            .map(|c| c.nsid)
            .map_err(|p| p[0].to_string())
        };
        let default = parse("[source]\npods_file = \"p.yaml\"\n").unwrap();
        assert_eq!(default.nsid, Nsid::Off);
        assert_eq!(nsid("false"), Ok(Nsid::Off));
        assert_eq!(nsid("true"), Ok(Nsid::Hostname));
        assert_eq!(nsid("\"roster a-1\""), Ok(Nsid::Text("roster a-1".into())));
        let long = format!("\"{}\"", "x".repeat(MAX_NSID + 1));
        for bad in ["\"\"", "\"café\"", "\"a\\nb\"", long.as_str()] {
            let e = nsid(bad).unwrap_err();
            assert!(
                e.starts_with("line 2: dns.nsid: ") && e.contains("printable ASCII"),
                "{bad}: {e}"
            );
        }
        assert!(
            nsid("1")
                .unwrap_err()
                .contains("expected true, false or a string")
        );
        // The effective configuration reads back the same.
        for value in ["false", "true", "\"roster a-1\""] {
            let c = parse(&format!(
                "[dns]\nnsid = {value}\n[source]\npods_file = \"p.yaml\"\n"
            ))
            .unwrap();
            assert_eq!(parse(&c.to_toml()).unwrap().nsid, c.nsid, "{value}");
            assert!(
                c.to_toml().contains(&format!("nsid = {value}\n")),
                "{value}"
            );
        }
    }

    #[test]
    fn changed_keys_name_the_section_and_the_key() {
        let running = parse("[dns]\nttl = 5\n[source]\npods_file = \"p.yaml\"\n").unwrap();
        assert_eq!(running.changed_keys(&running), Vec::<String>::new());
        let edited = parse(
            "[dns]\nttl = 30\n[admin]\nlisten = \"127.0.0.1:9153\"\n[source]\npods_file = \"p.yaml\"\n",
        )
        .unwrap();
        assert_eq!(running.changed_keys(&edited), ["dns.ttl", "admin.listen"]);
        // Keys only one source has count as changed, both ways.
        let kube = parse("[source]\ntype = \"kubernetes\"\n").unwrap();
        let keys = running.changed_keys(&kube);
        assert!(keys.contains(&"source.type".to_owned()), "{keys:?}");
        assert!(keys.contains(&"source.pods_file".to_owned()), "{keys:?}");
        assert!(keys.contains(&"source.api_timeout".to_owned()), "{keys:?}");
    }
}

#[cfg(test)]
mod kubernetes_tests {
    use super::*;

    #[test]
    fn the_kubernetes_source() {
        let text = "[source]\ntype = \"kubernetes\"\nnamespaces = [\"prod\", \"staging\"]\nlabel_selector = \"team in (a, b)\"\napi_timeout = 30\n";
        let c = Config::parse(
            text,
            Some(Path::new("/etc/roster/r.toml")),
            &Overrides::default(),
        )
        .unwrap();
        let SourceConfig::Kubernetes(k) = &c.source else {
            panic!("{:?}", c.source)
        };
        assert_eq!(k.kubeconfig, None, "found as kubectl does");
        assert_eq!(k.selection.namespaces, ["prod", "staging"]);
        assert_eq!(
            k.selection.labels.as_ref().map(LabelSelector::as_str),
            Some("team in (a, b)")
        );
        assert_eq!(k.api_timeout, Duration::from_secs(30));
        let again =
            Config::parse(&c.to_toml(), Some(Path::new("/")), &Overrides::default()).unwrap();
        assert_eq!(again.source, c.source);

        let bad = "[source]\ntype = \"kubernetes\"\nnamespaces = [\"Prod\"]\nlabel_selector = \"a in b\"\napi_timeout = 1\n";
        let problems = Config::parse(bad, None, &Overrides::default()).unwrap_err();
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "source.namespaces",
                "source.label_selector",
                "source.api_timeout"
            ]
        );
    }

    #[test]
    fn the_kubeconfig_flag_selects_the_kubernetes_source() {
        let overrides = Overrides {
            kubeconfig: Some("/k/config".into()),
            ..Overrides::default()
        };
        let c = Config::parse("[source]\npods_file = \"p.yaml\"\n", None, &overrides).unwrap();
        let SourceConfig::Kubernetes(k) = &c.source else {
            panic!("{:?}", c.source)
        };
        assert_eq!(k.kubeconfig.as_deref(), Some(Path::new("/k/config")));
    }
}
