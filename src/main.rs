//! The `vitalwatch` command line: run the daemon, check a config, replay a scenario, decode a
//! capture, list devices, list recorded sessions and export one.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgGroup, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use vitalwatch::acquire::scenario::Scenario;
use vitalwatch::config::{
    Config, ConfigErrors, DEFAULT_RULES, Source, built_in_scenarios, load_scenario, parse_rule_set,
};
use vitalwatch::engine::RuleSet;

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
    /// Replay a scenario through the alarm engine in virtual time and print its alarm
    /// timeline (as fast as the CPU allows: it never sleeps).
    #[command(group(ArgGroup::new("input").required(true).args(["scenario", "session"])))]
    Replay {
        /// A built-in scenario name (for example `desaturation`) or a scenario file.
        #[arg(long, value_name = "NAME_OR_FILE")]
        scenario: Option<String>,
        /// A recorded session's id.
        #[arg(long, value_name = "ID")]
        session: Option<String>,
        /// The session database (default: the config's [recording] database).
        #[arg(long, value_name = "FILE")]
        database: Option<PathBuf>,
        /// The config whose [recording] database holds the session.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// A rule file (TOML). Default: the built-in default rules.
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
    },
    /// Decode a raw serial capture (for example `cat /dev/ttyUSB0 > capture.bin`) with a
    /// device profile's decoder, or BLE payloads given with --hex: one JSON line per reading,
    /// then a summary line.
    Decode {
        /// A device profile: a built-in name (see `devices`) or a profile file.
        #[arg(
            long,
            value_name = "NAME_OR_FILE",
            required_unless_present = "characteristic"
        )]
        profile: Option<String>,
        /// BLE: the characteristic the payloads came from, as `2a5f` or a full UUID.
        #[arg(long, value_name = "UUID")]
        characteristic: Option<String>,
        /// BLE: one notified payload in hex (`"00 64 00 5a 00"`); repeat for several, in order.
        #[arg(long, value_name = "BYTES", conflicts_with = "file")]
        hex: Vec<String>,
        /// The serial capture; `-` or nothing for standard input.
        file: Option<PathBuf>,
    },
    /// List the serial ports with their USB ids, or (--ble) the Bluetooth LE devices nearby,
    /// with the device profiles that match them.
    Devices {
        /// A config whose [profiles] dir to match against as well as the built-in profiles.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Scan for Bluetooth LE devices instead of listing serial ports.
        #[arg(long)]
        ble: bool,
        /// How long to scan, with --ble.
        #[arg(long, value_name = "N", default_value_t = 10, requires = "ble")]
        seconds: u64,
    },
    /// List the recorded sessions: key, id, start, end, duration, alarms, phases.
    Sessions {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Export a recorded session for the clinical record: readings (csv), timeline
    /// (csv-events), FHIR R4 bundle (fhir), EDF+ (edf) or a printable report (html).
    Export {
        /// The session's id.
        #[arg(long, value_name = "ID")]
        session: String,
        /// The session's key (see `sessions`), when several sessions have the same id.
        #[arg(long, value_name = "N")]
        key: Option<i64>,
        /// csv, csv-events, fhir, edf or html.
        #[arg(long, value_name = "FORMAT")]
        format: String,
        /// The file to write (written whole or not at all). Default: standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// FHIR only: one Observation per vital per this many seconds (the median) instead of
        /// one per reading.
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..))]
        interval: Option<u32>,
        #[command(flatten)]
        database: DatabaseArgs,
        /// Record in the database that the session was exported (opens it for writing: only
        /// while the daemon is stopped).
        #[arg(long)]
        mark_exported: bool,
    },
}

/// Where the session database is: `--database`, or the config's `[recording] database`.
#[derive(clap::Args)]
#[group(multiple = false)]
struct DatabaseArgs {
    /// The config whose [recording] database to read. Default: the built-in config's.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The session database itself.
    #[arg(long, value_name = "FILE")]
    database: Option<PathBuf>,
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
        Command::Replay {
            scenario,
            session,
            rules,
            database,
            config,
        } => match session {
            Some(session) => replay_session(&session, rules.as_deref(), database, config),
            None => replay(scenario.as_deref(), rules.as_deref()),
        },
        Command::Decode {
            profile,
            characteristic,
            hex,
            ..
        } if characteristic.is_some() || !hex.is_empty() => {
            decode_ble(profile.as_deref(), characteristic.as_deref(), &hex)
        }
        Command::Decode { profile, file, .. } => {
            decode(profile.as_deref().unwrap_or_default(), file.as_deref())
        }
        Command::Devices {
            config,
            ble: true,
            seconds,
        } => devices_ble(config.as_deref(), seconds),
        Command::Devices { config, .. } => devices(config.as_deref()),
        Command::Sessions { database, json } => sessions(&database, json),
        Command::Export {
            session,
            key,
            format,
            out,
            interval,
            database,
            mark_exported,
        } => export(
            session,
            key,
            &format,
            out,
            interval,
            &database,
            mark_exported,
        ),
    }
}

fn cli_exit(error: vitalwatch::export::cli::CliError) -> ExitCode {
    eprintln!("error: {}", error.message);
    if error.usage {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

fn sessions(database: &DatabaseArgs, json: bool) -> ExitCode {
    use vitalwatch::export::cli;
    let result = cli::database_path(database.config.as_deref(), database.database.as_deref())
        .and_then(|path| cli::sessions(&path, json, &mut std::io::stdout().lock()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => cli_exit(error),
    }
}

fn export(
    session: String,
    key: Option<i64>,
    format: &str,
    out: Option<PathBuf>,
    interval: Option<u32>,
    database: &DatabaseArgs,
    mark_exported: bool,
) -> ExitCode {
    use vitalwatch::export::{Format, cli};
    let format: Format = match format.parse() {
        Ok(format) => format,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let result = cli::database_path(database.config.as_deref(), database.database.as_deref())
        .and_then(|database| {
            cli::export(&cli::ExportRequest {
                database,
                session,
                key,
                format,
                out,
                interval_s: interval,
                mark_exported,
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => cli_exit(error),
    }
}

/// A profile named on the command line: a file if it ends in `.toml`, else a built-in name.
fn cli_profile(name: &str) -> Result<vitalwatch::config::Profile, String> {
    use vitalwatch::config::{Profile, Source};
    if name.ends_with(".toml") {
        let source = Source::read(std::path::Path::new(name)).map_err(|e| format!("error: {e}"))?;
        return Profile::parse(&source).map_err(|e| e.to_string());
    }
    match Profile::built_in(name) {
        Some(profile) => profile.map_err(|e| e.to_string()),
        None => {
            let known: Vec<_> = Profile::built_in_names().collect();
            Err(format!(
                "error: unknown device profile `{name}`; built-in profiles: {} (or a path ending in .toml)",
                known.join(", ")
            ))
        }
    }
}

fn decode(profile: &str, file: Option<&std::path::Path>) -> ExitCode {
    let profile = match cli_profile(profile) {
        Ok(profile) => profile,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let Some(serial) = profile.serial() else {
        let why = if profile.ble().is_some() {
            "it is a Bluetooth LE device: give its payloads with --hex"
        } else {
            "it is simulated"
        };
        eprintln!(
            "error: profile `{}` has no serial protocol to decode ({why})",
            profile.name
        );
        return ExitCode::from(2);
    };
    let input: Box<dyn std::io::Read> = match file {
        None => Box::new(std::io::stdin().lock()),
        Some(path) if path == std::path::Path::new("-") => Box::new(std::io::stdin().lock()),
        Some(path) => match std::fs::File::open(path) {
            Ok(file) => Box::new(std::io::BufReader::new(file)),
            Err(error) => {
                eprintln!("error: cannot open {}: {error}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let stdout = std::io::stdout().lock();
    let stderr = std::io::stderr().lock();
    match vitalwatch::tools::decode_capture(&serial.protocol, input, stdout, stderr) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `vitalwatch decode --characteristic UUID --hex BYTES` / `--profile NAME --hex BYTES`.
fn decode_ble(profile: Option<&str>, characteristic: Option<&str>, hex: &[String]) -> ExitCode {
    use vitalwatch::acquire::decode::gatt::GattCharacteristic;
    use vitalwatch::config::HexBytes;
    use vitalwatch::tools::{PayloadSource, decode_payloads, parse_characteristic};
    let usage = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(2)
    };
    if hex.is_empty() {
        return usage("give the payload with --hex BYTES".into());
    }
    let payloads = match hex
        .iter()
        .map(|h| HexBytes::parse(h))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(payloads) => payloads,
        Err(message) => return usage(message),
    };
    let characteristic = match characteristic.map(parse_characteristic).transpose() {
        Ok(characteristic) => characteristic,
        Err(message) => return usage(message),
    };
    let mut plan;
    let source = match profile {
        None => {
            let Some(uuid) = characteristic else {
                return usage("give --characteristic or --profile".into());
            };
            match GattCharacteristic::from_uuid(uuid) {
                Some(gatt) => PayloadSource::Characteristic(gatt),
                None => {
                    return usage(format!(
                        "{uuid} is not a characteristic of the Bluetooth SIG services vitalwatch reads; for a vendor device give its --profile"
                    ));
                }
            }
        }
        Some(name) => {
            let profile = match cli_profile(name) {
                Ok(profile) => profile,
                Err(message) => {
                    eprintln!("{message}");
                    return ExitCode::from(2);
                }
            };
            let Some(ble) = profile.ble() else {
                return usage(format!(
                    "profile `{}` is not a Bluetooth LE device (decode a serial capture without --hex)",
                    profile.name
                ));
            };
            plan = ble.protocol.plan();
            let offered: Vec<String> = plan
                .channels
                .iter()
                .map(|ch| ch.characteristic.to_string())
                .collect();
            let chosen = match characteristic {
                Some(uuid) => plan
                    .channels
                    .iter()
                    .position(|ch| ch.characteristic == uuid),
                None if plan.channels.len() == 1 => Some(0),
                None => None,
            };
            let Some(index) = chosen else {
                return usage(format!(
                    "say which characteristic with --characteristic: profile `{}` reads {}",
                    profile.name,
                    offered.join(", ")
                ));
            };
            PayloadSource::Channel(&mut *plan.channels[index].decoder)
        }
    };
    let stdout = std::io::stdout().lock();
    let stderr = std::io::stderr().lock();
    match decode_payloads(source, &payloads, stdout, stderr) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The built-in profiles, and those of `config`'s devices.
fn known_profiles(
    config: Option<&std::path::Path>,
) -> Result<Vec<vitalwatch::config::Profile>, ExitCode> {
    use vitalwatch::config::Profile;
    let mut profiles: Vec<Profile> = Profile::all_built_in().filter_map(Result::ok).collect();
    if let Some(path) = config {
        match vitalwatch::config::Config::load(path) {
            Ok(config) => {
                for device in &config.devices {
                    if !profiles.iter().any(|p| p.name == device.profile.name) {
                        profiles.push((*device.profile).clone());
                    }
                }
            }
            Err(errors) => {
                eprintln!("{errors}");
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok(profiles)
}

/// `vitalwatch devices --ble`: scans and lists what it saw.
fn devices_ble(config: Option<&std::path::Path>, seconds: u64) -> ExitCode {
    use vitalwatch::acquire::ble::BleTransport;
    use vitalwatch::acquire::ble::btleplug::BtleplugTransport;
    let profiles = match known_profiles(config) {
        Ok(profiles) => profiles,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let scanned = runtime.block_on(async {
        BtleplugTransport::new()
            .await?
            .scan(std::time::Duration::from_secs(seconds))
            .await
    });
    let advertisements = match scanned {
        Ok(advertisements) => advertisements,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    if advertisements.is_empty() {
        println!("no Bluetooth LE devices seen in {seconds} s");
        return ExitCode::SUCCESS;
    }
    for found in vitalwatch::tools::match_advertisements(advertisements, &profiles) {
        let ad = &found.advertisement;
        let services: Vec<String> = ad.services.iter().map(|s| s.to_string()).collect();
        println!(
            "{}\t{}\trssi {}\tservices: {}\t{}",
            ad.address,
            ad.name.as_deref().unwrap_or("-"),
            ad.rssi.map_or("-".to_string(), |r| format!("{r} dBm")),
            if services.is_empty() {
                "-".to_string()
            } else {
                services.join(", ")
            },
            if found.profiles.is_empty() {
                "no matching profile".to_string()
            } else {
                format!("profiles: {}", found.profiles.join(", "))
            }
        );
    }
    ExitCode::SUCCESS
}

fn devices(config: Option<&std::path::Path>) -> ExitCode {
    let profiles = match known_profiles(config) {
        Ok(profiles) => profiles,
        Err(code) => return code,
    };
    match vitalwatch::tools::match_ports(&profiles) {
        Ok(ports) if ports.is_empty() => {
            println!("no serial ports found (pseudo-terminals are never listed)");
            ExitCode::SUCCESS
        }
        Ok(ports) => {
            for found in ports {
                let usb = found
                    .port
                    .usb
                    .map(|(vid, pid)| format!("usb {vid:04x}:{pid:04x}"))
                    .unwrap_or_else(|| "no usb id".to_string());
                let profiles = if found.profiles.is_empty() {
                    "no matching profile".to_string()
                } else {
                    format!("profiles: {}", found.profiles.join(", "))
                };
                println!(
                    "{}\t{usb}\t{}\t{profiles}",
                    found.port.path,
                    found.port.description.as_deref().unwrap_or("-")
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
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

/// The session database: `--database`, else the config's (or the built-in config's).
fn database_path(database: Option<PathBuf>, config: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(database) = database {
        return Ok(database);
    }
    match config {
        Some(path) => Config::load(&path),
        None => Config::built_in(),
    }
    .map(|config| config.recording.database)
    .map_err(|errors| errors.to_string())
}

fn replay_session(
    id: &str,
    rules: Option<&Path>,
    database: Option<PathBuf>,
    config: Option<PathBuf>,
) -> ExitCode {
    let path = match database_path(database, config) {
        Ok(path) => path,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let (rules, rules_source) = match load_replay_rules(rules) {
        Ok(rules) => rules,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let store = match vitalwatch::recorder::Store::open_read_only(&path) {
        Ok(store) => store,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let sessions = match store.sessions() {
        Ok(sessions) => sessions,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    // An id may have been used again for a later session: the latest is meant.
    let Some(session) = sessions.iter().rev().find(|s| s.id.as_str() == id) else {
        let recorded: Vec<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
        eprintln!(
            "error: no session `{id}` in {}; recorded sessions: {}",
            path.display(),
            if recorded.is_empty() {
                "none".to_string()
            } else {
                recorded.join(", ")
            }
        );
        return ExitCode::from(2);
    };
    eprintln!("replaying recorded session {id} with {rules_source}");
    match vitalwatch::replay::replay_recorded(&store, session, rules) {
        Ok(timeline) => print_timeline(&timeline),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn print_timeline(timeline: &vitalwatch::replay::Timeline) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match write!(stdout, "{timeline}").and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader's choice, not a failure worth a message.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: cannot write the timeline: {error}");
            ExitCode::FAILURE
        }
    }
}

fn replay(scenario: Option<&str>, rules: Option<&Path>) -> ExitCode {
    let Some(scenario) = scenario else {
        // clap requires one of --scenario and --session.
        eprintln!("error: replay needs --scenario NAME_OR_FILE or --session ID");
        return ExitCode::from(2);
    };
    let loaded = load_replay_scenario(scenario)
        .and_then(|scenario| Ok((scenario, load_replay_rules(rules)?)));
    let (scenario, (rules, rules_source)) = match loaded {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s)", errors.0.len());
            return ExitCode::FAILURE;
        }
    };
    eprintln!("replaying {} with {rules_source}", scenario.name);
    let timeline = match vitalwatch::replay::replay(Arc::new(scenario), rules) {
        Ok(timeline) => timeline,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    print_timeline(&timeline)
}

/// A built-in scenario by name, else a scenario file.
fn load_replay_scenario(arg: &str) -> Result<Scenario, ConfigErrors> {
    let command_line = Source {
        name: "--scenario".to_string(),
        dir: None,
        text: String::new(),
    };
    let is_built_in = built_in_scenarios().any(|name| name == arg);
    let path = Path::new(arg);
    if !is_built_in && (arg.ends_with(".toml") || path.is_file()) {
        let source = Source::read(path)?;
        return Scenario::parse(arg, &source);
    }
    load_scenario(&command_line, arg)
}

/// The rule file given, or the built-in default rules; and where they came from.
fn load_replay_rules(path: Option<&Path>) -> Result<(RuleSet, String), ConfigErrors> {
    match path {
        None => {
            let rules = parse_rule_set(&Source::built_in(
                "config/rules/default.toml",
                DEFAULT_RULES,
            ))?;
            Ok((rules, "the built-in default rules".to_string()))
        }
        Some(path) => {
            let source = Source::read(path)?;
            Ok((
                parse_rule_set(&source)?,
                format!("rules from {}", path.display()),
            ))
        }
    }
}
