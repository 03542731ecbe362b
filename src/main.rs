//! The `roster` command: parses the command line, sets up logging, and runs. Nothing else.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use roster::config::{self, Config, Overrides, SourceConfig};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// jemalloc groups allocations by size and returns freed pages to the system over time; with
/// glibc's allocator, replacing pods for hours scatters free chunks among the identities that
/// stay, and a 100,000-pod list leaves its parse buffers in per-thread arenas (README,
/// "Performance": resident memory and the soak).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Authoritative DNS for stable member names of clustered applications on Kubernetes.
#[derive(Parser)]
#[command(name = "roster", version, about)]
struct Cli {
    /// Log format: human-readable text, or one JSON object per line.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve DNS.
    Serve(Settings),
    /// Validate the configuration (and the pods file) and print the effective configuration.
    CheckConfig(Settings),
    /// Print the members of a service from its SRV records (for init containers and scripts).
    Peers(PeersArgs),
    /// Show every service and member of a running roster (from its admin listener).
    Status(StatusArgs),
}

#[derive(Args)]
struct PeersArgs {
    /// The SRV name: `<service>.<namespace>.<zone>` or `_<port>._<proto>.<service>.<namespace>.<zone>`.
    name: String,
    /// DNS server to ask; default: the first nameserver of /etc/resolv.conf.
    #[arg(long, value_name = "ADDR:PORT")]
    server: Option<SocketAddr>,
    /// Output format.
    #[arg(long, value_enum, default_value = "lines")]
    format: roster::peers::Format,
    /// Wait until at least N members are listed.
    #[arg(long, value_name = "N", default_value_t = 0)]
    wait_for: usize,
    /// How long to wait for --wait-for (30s, 2m, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = roster::peers::parse_duration)]
    timeout: Duration,
    /// URL scheme of the etcd format.
    #[arg(long, default_value = "http")]
    scheme: String,
    /// What follows `host:` in the zookeeper format (quorum and election ports).
    #[arg(long, default_value = "2888:3888")]
    zookeeper_ports: String,
}

#[derive(Args)]
struct StatusArgs {
    /// roster's admin listener.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9153")]
    admin: SocketAddr,
}

#[derive(Args, Clone)]
struct Settings {
    /// Configuration file.
    #[arg(long, value_name = "PATH", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// Address to serve DNS on, UDP and TCP (repeatable; replaces dns.listen).
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Zone to serve (repeatable; replaces dns.zones).
    #[arg(long = "zone", value_name = "NAME")]
    zones: Vec<String>,
    /// Serve the pods in this file (selects the file source).
    #[arg(long, value_name = "PATH", conflicts_with = "kubeconfig")]
    pods_file: Option<PathBuf>,
    /// Watch pods through the Kubernetes API with this kubeconfig (selects the Kubernetes source).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// Serve /healthz, /readyz, /metrics and /members over HTTP here (replaces admin.listen).
    #[arg(long, value_name = "ADDR:PORT")]
    admin_listen: Option<SocketAddr>,
    /// Workers: UDP sockets (each with its thread) per address, and TCP threads (replaces
    /// dns.workers).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
}

impl Settings {
    fn load(&self) -> Result<Config, config::ConfigError> {
        let overrides = Overrides {
            listen: self.listen.clone(),
            zones: self.zones.clone(),
            pods_file: self.pods_file.clone(),
            kubeconfig: self.kubeconfig.clone(),
            admin_listen: self.admin_listen,
            workers: self.workers,
        };
        Config::load(&self.config, &overrides)
    }
}

const USAGE: u8 = 2;
const FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::new(log_filter(std::env::var("RUST_LOG").ok()));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // A closed stderr (a log collector gone) must not turn every log line into a panic.
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }

    match cli.command {
        Command::CheckConfig(settings) => check_config(&settings),
        Command::Serve(settings) => serve(&settings),
        Command::Peers(args) => peers(&args),
        Command::Status(args) => match roster::status::fetch(args.admin) {
            Ok(members) => {
                print!("{}", roster::status::render(&members));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("roster: {e}");
                ExitCode::from(FAILURE)
            }
        },
    }
}

/// What SIGHUP does. Operators send it to DNS servers to reload them, and its default action
/// would end roster without a word. roster reads its pods again: the pods file at once, even
/// where nothing says it changed, or a new list from the API server (a watch that has stopped
/// delivering without an error is replaced at once, not at its timeout). It also reads its
/// configuration file again: what changed there takes a restart, and the log names the keys, so
/// that nobody takes a reload for a restart.
struct Hangup {
    settings: Settings,
    /// The configuration roster runs with.
    running: Config,
    /// Tells the source to read its pods again.
    reread: tokio::sync::watch::Sender<u64>,
}

impl Hangup {
    fn handle(&self) {
        match &self.running.source {
            SourceConfig::File { path, .. } => {
                info!(path = %path.display(), "SIGHUP: reading the pods file again");
            }
            SourceConfig::Kubernetes(_) => info!("SIGHUP: listing the pods again"),
        }
        self.reread.send_modify(|n| *n += 1);
        match self.settings.load() {
            Ok(config) => {
                let changed = self.running.changed_keys(&config);
                if changed.is_empty() {
                    info!(config = %self.settings.config.display(), "SIGHUP: configuration unchanged");
                } else {
                    warn!(
                        config = %self.settings.config.display(),
                        changed = ?changed,
                        "SIGHUP: the configuration file differs from the one roster started with; \
                         it is read only at start: restart roster to apply it"
                    );
                }
            }
            Err(e) => warn!(
                error = %e,
                "SIGHUP: the configuration file does not load; roster runs on with the \
                 configuration it started with"
            ),
        }
    }
}

/// `RUST_LOG` (default `info`), with two dependencies kept quiet unless it names them: hickory
/// logs two info lines per query, and its parser a warning per message with EDNS options it
/// cannot read (which any client can send by the thousand; roster counts bad input in its
/// metrics instead); kube logs every failed request, where roster reports a run of failures at
/// a falling rate itself.
fn log_filter(rust_log: Option<String>) -> String {
    let mut filter = rust_log
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "info".into());
    if !filter.contains("hickory") {
        filter.push_str(",hickory_server=warn,hickory_proto=error,hickory_net=warn");
    }
    if !filter.contains("kube") {
        filter.push_str(",kube_client=off,kube_runtime=off");
    }
    filter
}

fn peers(args: &PeersArgs) -> ExitCode {
    let server = match args.server.map_or_else(roster::peers::system_resolver, Ok) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("roster: {e}");
            return ExitCode::from(FAILURE);
        }
    };
    let listed =
        roster::peers::wait(server, &args.name, args.wait_for, args.timeout).and_then(|peers| {
            roster::peers::render(&peers, args.format, &args.scheme, &args.zookeeper_ports)
        });
    match listed {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("roster peers: {e}");
            ExitCode::from(FAILURE)
        }
    }
}

fn check_config(settings: &Settings) -> ExitCode {
    let config = match settings.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("roster: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let checked = match runtime {
        Ok(rt) => rt.block_on(roster::app::check(&config)),
        Err(e) => {
            eprintln!("roster: cannot start the runtime: {e}");
            return ExitCode::from(FAILURE);
        }
    };
    match checked {
        Ok(summary) => {
            print!("{}", config.to_toml());
            eprintln!("roster: configuration OK; {summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("roster: {e}");
            ExitCode::from(USAGE)
        }
    }
}

fn serve(settings: &Settings) -> ExitCode {
    let config = match settings.load() {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::from(FAILURE);
        }
    };
    let shutdown = CancellationToken::new();
    let (reread, asked) = tokio::sync::watch::channel(0);
    let hangup = Hangup {
        settings: settings.clone(),
        running: config.clone(),
        reread,
    };
    let result = runtime.block_on(async {
        tokio::spawn(signal(shutdown.clone(), hangup));
        roster::app::serve(config, shutdown, asked).await
    });
    // A blocking read of the pods file must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::from(if e.is_startup() { USAGE } else { FAILURE })
        }
    }
}

/// Cancels `shutdown` at the first SIGTERM or SIGINT; a second one ends the process at once.
/// SIGHUP does what [`Hangup`] says.
async fn signal(shutdown: CancellationToken, hangup: Hangup) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("cannot install signal handlers; stop roster with SIGKILL");
        return;
    };
    // When the shutdown began.
    let mut began: Option<Instant> = None;
    loop {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = hup.recv() => {
                hangup.handle();
                continue;
            }
        };
        if let Some(began) = began {
            // `timeout`, and whatever signals a process and its group, delivers one signal
            // twice within microseconds; tokio passes on both or one, as they fall. That is
            // one request to stop, not an impatient second one.
            if began.elapsed() < ONE_REQUEST {
                continue;
            }
            error!(signal = name, "second signal during shutdown; exiting now");
            std::process::exit(FAILURE.into());
        }
        info!(signal = name, "shutting down");
        began = Some(Instant::now());
        shutdown.cancel();
    }
}

/// Signals this close to the first are the same request to stop.
const ONE_REQUEST: Duration = Duration::from_millis(50);
