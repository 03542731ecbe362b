//! The `roster` command: parses the command line, sets up logging, and runs. Nothing else.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use roster::config::{self, Config, Overrides};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Authoritative DNS for stable member names of clustered applications on Kubernetes.
#[derive(Parser)]
#[command(name = "roster", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve DNS.
    Serve(Settings),
    /// Validate the configuration (and the pods file) and print the effective configuration.
    CheckConfig(Settings),
}

#[derive(Args)]
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
}

impl Settings {
    fn load(&self) -> Result<Config, config::ConfigError> {
        let overrides = Overrides {
            listen: self.listen.clone(),
            zones: self.zones.clone(),
            pods_file: self.pods_file.clone(),
            kubeconfig: self.kubeconfig.clone(),
        };
        Config::load(&self.config, &overrides)
    }
}

const USAGE: u8 = 2;
const FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::new(log_filter(std::env::var("RUST_LOG").ok()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // A closed stderr (a log collector gone) must not turn every log line into a panic.
        .log_internal_errors(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    match cli.command {
        Command::CheckConfig(settings) => check_config(&settings),
        Command::Serve(settings) => serve(&settings),
    }
}

/// `RUST_LOG` (default `info`), with two dependencies kept quiet unless it names them: hickory
/// logs two info lines per query, and kube logs every failed request, where roster reports a
/// run of failures at a falling rate itself.
fn log_filter(rust_log: Option<String>) -> String {
    let mut filter = rust_log
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "info".into());
    if !filter.contains("hickory") {
        filter.push_str(",hickory_server=warn,hickory_proto=warn,hickory_net=warn");
    }
    if !filter.contains("kube") {
        filter.push_str(",kube_client=off,kube_runtime=off");
    }
    filter
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
    let result = runtime.block_on(async {
        tokio::spawn(signal(shutdown.clone()));
        roster::app::serve(config, shutdown).await
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
async fn signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers; stop roster with SIGKILL");
        return;
    };
    loop {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        if shutdown.is_cancelled() {
            error!(signal = name, "second signal during shutdown; exiting now");
            std::process::exit(FAILURE.into());
        }
        info!(signal = name, "shutting down");
        shutdown.cancel();
    }
}
