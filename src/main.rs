//! The `vitalwatch` command line: run the daemon, check a config.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use vitalwatch::config::Config;

#[derive(Parser)]
#[command(
    name = "vitalwatch",
    version,
    about = "Watches vital signs during ketamine dosing sessions and raises alarms"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon. Without --config: one simulated oximeter and cuff (no hardware).
    Run {
        /// Config file (TOML). Default: the built-in simulated patient.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address for HTTP (panel, API, /metrics), overriding the config's server.listen.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Run the daemon's clock N times faster than real time (demos and tests only).
        #[arg(long)]
        speed: Option<f64>,
    },
    /// Check a config file and everything it refers to; report every error with file and line.
    CheckConfig { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Run {
            config,
            listen,
            speed,
        } => run(config, listen, speed),
        Command::CheckConfig { file } => check_config(&file),
    }
}

fn init_logging() {
    let filter =
        EnvFilter::try_from_env("VITALWATCH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn load(config: Option<&PathBuf>) -> Result<Config, vitalwatch::config::ConfigErrors> {
    match config {
        Some(path) => Config::load(path),
        None => Config::built_in(),
    }
}

fn run(config: Option<PathBuf>, listen: Option<SocketAddr>, speed: Option<f64>) -> ExitCode {
    let config = match load(config.as_ref()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    if let Some(speed) = speed
        && !(speed.is_finite() && speed > 0.0)
    {
        eprintln!("error: --speed must be a number > 0, got {speed}");
        return ExitCode::from(2);
    }
    let listen = listen.unwrap_or(config.listen);
    let speed = speed.unwrap_or(config.speed);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(vitalwatch::daemon::run(config, listen, speed)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match Config::load(file) {
        Ok(config) => {
            let devices: Vec<String> = config
                .devices
                .iter()
                .map(|d| format!("{} ({})", d.id, d.profile.name))
                .collect();
            println!(
                "{}: OK: {} device(s): {}; {} rule(s) from {}",
                file.display(),
                config.devices.len(),
                devices.join(", "),
                config.rules.rules.len(),
                config.rules_source
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: {} error(s)", file.display(), errors.0.len());
            ExitCode::FAILURE
        }
    }
}
