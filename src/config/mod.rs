//! The daemon's configuration: one TOML file naming the devices, the rules and the server.
//!
//! Loading resolves everything the file refers to (profiles, scenarios, the rule file) and
//! checks it, so that `vitalwatch check-config` and `vitalwatch run` see the same errors, each
//! with its file, line and key. Unknown keys are errors (`deny_unknown_fields`): a typo in a
//! limit must never silently fall back to a default.

mod profile;
mod rules;
mod source;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use profile::{
    BleProfile, FlowControl, HexBytes, LineOverride, LineSettings, Parity, Profile, SerialProfile,
    SimulatorProfile, Transport, UsbId,
};
pub use rules::{DEFAULT_RULES, parse_rule_set};
pub use source::{ConfigError, ConfigErrors, Source};

use crate::acquire::ble::BleTarget;
use crate::acquire::ble::protocol::BleProtocol;
use crate::acquire::decode::Protocol;
use crate::acquire::scenario::Scenario;
use crate::engine::RuleSet;
use crate::forward::ForwardConfig;
use crate::vitals::DeviceId;

/// The built-in default config (`config/vitalwatch.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../config/vitalwatch.toml");

/// The scenarios shipped in `config/scenarios/`.
const BUILT_IN_SCENARIOS: &[(&str, &str)] = &[
    (
        "typical-infusion",
        include_str!("../../config/scenarios/typical-infusion.toml"),
    ),
    (
        "hypertensive-response",
        include_str!("../../config/scenarios/hypertensive-response.toml"),
    ),
    (
        "desaturation",
        include_str!("../../config/scenarios/desaturation.toml"),
    ),
    (
        "sensor-off",
        include_str!("../../config/scenarios/sensor-off.toml"),
    ),
    (
        "device-lost",
        include_str!("../../config/scenarios/device-lost.toml"),
    ),
    (
        "critical-bp",
        include_str!("../../config/scenarios/critical-bp.toml"),
    ),
    (
        "critical-desaturation",
        include_str!("../../config/scenarios/critical-desaturation.toml"),
    ),
    (
        "motion-artefact",
        include_str!("../../config/scenarios/motion-artefact.toml"),
    ),
    (
        "bp-overdue",
        include_str!("../../config/scenarios/bp-overdue.toml"),
    ),
    (
        "long-session",
        include_str!("../../config/scenarios/long-session.toml"),
    ),
];

/// Readings a device's ring holds before new ones are dropped (and counted).
pub const DEFAULT_RING_CAPACITY: usize = 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    site: SiteFile,
    #[serde(default)]
    server: ServerFile,
    #[serde(default)]
    api: ApiFile,
    #[serde(default)]
    alarms: AlarmsFile,
    #[serde(default)]
    simulator: SimulatorFile,
    #[serde(default)]
    profiles: ProfilesFile,
    #[serde(default)]
    recording: RecordingFile,
    alertmanager: Option<toml::Spanned<AlertmanagerFile>>,
    #[serde(default)]
    device: Vec<toml::Spanned<DeviceFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteFile {
    #[serde(default = "default_chair")]
    chair: toml::Spanned<String>,
}

impl Default for SiteFile {
    fn default() -> Self {
        SiteFile {
            chair: default_chair(),
        }
    }
}

fn default_chair() -> toml::Spanned<String> {
    toml::Spanned::new(0..0, "chair-1".to_string())
}

/// Longest chair label.
const CHAIR_MAX_LEN: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    #[serde(default = "default_listen")]
    listen: SocketAddr,
}

impl Default for ServerFile {
    fn default() -> Self {
        ServerFile {
            listen: default_listen(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertmanagerFile {
    /// Alertmanager base URLs (`http://host:9093`), every one posted to.
    urls: Vec<toml::Spanned<String>>,
    repeat_s: Option<f64>,
    /// The bedside panel's address, as the alerts' link back.
    panel_url: Option<String>,
}

/// Default re-post interval of active alerts.
const DEFAULT_REPEAT: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingFile {
    /// The session database; relative to the config file.
    database: Option<String>,
    keep_days: Option<toml::Spanned<u32>>,
}

/// Where sessions are recorded, and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingConfig {
    /// The SQLite session database. Default: `sessions.sqlite` in systemd's state directory
    /// (`$STATE_DIRECTORY`) when there is one, else beside the config file (the working
    /// directory for the built-in config).
    pub database: std::path::PathBuf,
    /// Ended sessions older than this many days are pruned; `None` keeps them all.
    pub keep_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    /// A directory of the clinic's own device profiles (`NAME.toml`), searched before the
    /// built-in ones; relative to the config file.
    dir: Option<toml::Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiFile {
    #[serde(default)]
    token: Vec<toml::Spanned<TokenFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    name: String,
    token: String,
}

/// A nurse (or nurse station) token: mutating API requests carry it as a bearer token, and
/// what they do is recorded under its name.
#[derive(Clone, PartialEq)]
pub struct NurseToken {
    pub name: String,
    pub token: String,
}

impl std::fmt::Debug for NurseToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("NurseToken")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Shortest token accepted: long enough not to be guessed by trying.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlarmsFile {
    rules: Option<toml::Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulatorFile {
    #[serde(default = "default_speed")]
    speed: f64,
}

impl Default for SimulatorFile {
    fn default() -> Self {
        SimulatorFile {
            speed: default_speed(),
        }
    }
}

fn default_speed() -> f64 {
    1.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceFile {
    id: String,
    profile: String,
    scenario: Option<String>,
    interval_s: Option<f64>,
    silent_after_s: Option<f64>,
    ring_capacity: Option<usize>,
    /// Serial devices: the port's path (a stable /dev/serial/by-id/... link is best).
    port: Option<String>,
    /// Serial devices: line settings that differ from the profile's.
    serial: Option<LineOverride>,
    /// BLE devices: the device's address (`AA:BB:CC:DD:EE:FF`), on its label or from
    /// `vitalwatch devices --ble`.
    address: Option<String>,
    /// BLE devices: the name it must also advertise (a second check, optional).
    advertised_name: Option<String>,
}

/// How the daemon drives one device.
#[derive(Debug, Clone)]
pub enum Driver {
    Simulator {
        profile: SimulatorProfile,
        scenario: Arc<Scenario>,
    },
    Serial {
        port: String,
        line: LineSettings,
        protocol: Protocol,
        on_connect: Vec<Vec<u8>>,
        keep_alive: Option<(Duration, Vec<u8>)>,
    },
    Ble {
        target: BleTarget,
        protocol: BleProtocol,
        connects_per_measurement: bool,
    },
}

/// A configured device, resolved and checked.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    pub id: DeviceId,
    pub profile: Arc<Profile>,
    pub driver: Driver,
    pub interval: Duration,
    /// `None` for intermittent devices (a cuff): their silence is BP overdue instead.
    pub silent_after: Option<Duration>,
    pub ring_capacity: usize,
}

/// The whole configuration, resolved and checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from, for messages.
    pub source: String,
    /// Which chair (or bed) this daemon watches: the location on every metric and forwarded
    /// alert. Never a patient's name.
    pub chair: String,
    pub listen: SocketAddr,
    /// Nurse tokens; without any, mutating requests are accepted from whoever reaches the
    /// port (loopback only: the daemon refuses any other address without tokens).
    pub tokens: Vec<NurseToken>,
    pub speed: f64,
    pub rules: RuleSet,
    /// Where the rules came from, for messages.
    pub rules_source: String,
    pub devices: Vec<DeviceConfig>,
    pub recording: RecordingConfig,
    /// Where alarms are forwarded; `None`: nowhere (the bedside panel only).
    pub alertmanager: Option<ForwardConfig>,
}

impl Config {
    /// The built-in default config: simulated devices, default rules.
    pub fn built_in() -> Result<Self, ConfigErrors> {
        Config::parse(&Source::built_in("config/vitalwatch.toml", DEFAULT_CONFIG))
    }

    pub fn load(path: &std::path::Path) -> Result<Self, ConfigErrors> {
        Config::parse(&Source::read(path)?)
    }

    pub fn parse(source: &Source) -> Result<Self, ConfigErrors> {
        let file: ConfigFile = source.parse()?;
        let mut errors = Vec::new();

        if !(file.simulator.speed.is_finite() && file.simulator.speed > 0.0) {
            errors.push(source.error_at_key(
                0..source.text.len(),
                "speed",
                "speed must be a number > 0",
            ));
        }

        let (rules, rules_source) = match &file.alarms.rules {
            None => (
                parse_rule_set(&Source::built_in(
                    "config/rules/default.toml",
                    DEFAULT_RULES,
                )),
                "built-in default rules".to_string(),
            ),
            Some(path) => {
                let resolved = source.resolve(path.get_ref());
                let rules = Source::read(&resolved)
                    .map_err(|e| ConfigErrors::from(source.error_at(path.span(), e.message)))
                    .and_then(|rules_source| parse_rule_set(&rules_source));
                (rules, resolved.display().to_string())
            }
        };
        let rules = rules.map_err(|e| errors.extend(e.0)).ok();

        let tokens = tokens(source, &file.api, &mut errors);

        let alertmanager = file
            .alertmanager
            .as_ref()
            .and_then(|spanned| forward_config(source, spanned, &mut errors));

        let chair = file.site.chair.get_ref();
        let chair_ok = !chair.is_empty()
            && chair.len() <= CHAIR_MAX_LEN
            && chair
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !chair_ok {
            errors.push(source.error_at(
                file.site.chair.span(),
                format!(
                    "chair `{chair}` must be 1 to {CHAIR_MAX_LEN} letters, digits, `-`, `_` or `.` (a location like \"chair-3\", never a patient's name)"
                ),
            ));
        }

        if let Some(keep_days) = &file.recording.keep_days
            && *keep_days.get_ref() == 0
        {
            errors.push(source.error_at(
                keep_days.span(),
                "keep_days must be at least 1: 0 would delete every ended session at each start",
            ));
        }

        // A mistyped directory would silently fall back to the built-in profiles of the same
        // names, with their line settings instead of the clinic's.
        let profiles_dir = file
            .profiles
            .dir
            .as_ref()
            .map(|dir| source.resolve(dir.get_ref()));
        if let (Some(dir), Some(path)) = (&file.profiles.dir, &profiles_dir)
            && !path.is_dir()
        {
            errors.push(source.error_at(
                dir.span(),
                format!(
                    "profiles dir `{}` is not a directory ({})",
                    dir.get_ref(),
                    path.display()
                ),
            ));
        }

        let mut ids = HashSet::new();
        let mut devices = Vec::new();
        for spanned in &file.device {
            let span = spanned.span();
            match resolve_device(
                source,
                span.clone(),
                spanned.get_ref(),
                profiles_dir.as_deref(),
            ) {
                Ok(device) => {
                    if !ids.insert(device.id.clone()) {
                        errors.push(source.error_at_key(
                            span,
                            "id",
                            format!("device id `{}` is used twice", device.id),
                        ));
                    }
                    devices.push(device);
                }
                Err(e) => errors.extend(e.0),
            }
        }

        match rules {
            Some(rules) if errors.is_empty() => Ok(Config {
                source: source.name.clone(),
                chair: chair.clone(),
                listen: file.server.listen,
                tokens,
                speed: file.simulator.speed,
                rules,
                rules_source,
                devices,
                recording: RecordingConfig {
                    database: match &file.recording.database {
                        Some(path) => source.resolve(path),
                        None => default_database(source),
                    },
                    keep_days: file.recording.keep_days.map(toml::Spanned::into_inner),
                },
                alertmanager,
            }),
            _ => Err(ConfigErrors(errors)),
        }
    }
}

fn resolve_device(
    source: &Source,
    span: Range<usize>,
    file: &DeviceFile,
    profiles_dir: Option<&std::path::Path>,
) -> Result<DeviceConfig, ConfigErrors> {
    let error = |key: &str, message: String| -> ConfigErrors {
        source.error_at_key(span.clone(), key, message).into()
    };
    let id_ok = !file.id.is_empty()
        && file.id.len() <= 32
        && file
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !id_ok {
        return Err(error(
            "id",
            format!(
                "device id `{}` must be 1 to 32 letters, digits, `-` or `_`",
                file.id
            ),
        ));
    }
    let profile = match Profile::find(&file.profile, profiles_dir) {
        Some(profile) => profile?,
        None => {
            let mut known = Profile::names_in(profiles_dir);
            known.extend(Profile::built_in_names().map(str::to_string));
            return Err(error(
                "profile",
                format!(
                    "unknown device profile `{}`; known profiles: {}",
                    file.profile,
                    known.join(", ")
                ),
            ));
        }
    };
    let seconds = |key: &str, value: Option<f64>, default: Duration| match value {
        None => Ok(default),
        Some(v) if v.is_finite() && v > 0.0 => Ok(Duration::from_secs_f64(v)),
        Some(v) => Err(error(key, format!("{key} must be > 0 seconds, got {v}"))),
    };
    let interval = seconds("interval_s", file.interval_s, profile.interval)?;
    let silent_default = profile.silent_after.map(|silent_after| {
        // A slower device than its profile's default is silent later by the same margin.
        interval + silent_after.saturating_sub(profile.interval)
    });
    let silent_after = match file.silent_after_s {
        Some(_) => Some(seconds(
            "silent_after_s",
            file.silent_after_s,
            Duration::ZERO,
        )?),
        None => silent_default,
    };
    let ring_capacity = match file.ring_capacity {
        None => DEFAULT_RING_CAPACITY,
        Some(n) if (1..=1 << 20).contains(&n) => n,
        Some(n) => {
            return Err(error(
                "ring_capacity",
                format!("ring_capacity must be 1 to 1048576, got {n}"),
            ));
        }
    };
    let driver = match &profile.transport {
        Transport::Simulator(simulator) => {
            let Some(name) = &file.scenario else {
                return Err(error(
                    "profile",
                    format!(
                        "profile `{}` is simulated and needs a `scenario`",
                        profile.name
                    ),
                ));
            };
            let scenario = load_scenario(source, name).map_err(|e| match e.0.as_slice() {
                // A scenario that cannot be found is this file's error; one that is broken
                // is the scenario file's.
                [only] if only.line.is_none() => error("scenario", only.message.clone()),
                _ => e,
            })?;
            if file.port.is_some() || file.serial.is_some() {
                return Err(error(
                    "port",
                    format!(
                        "profile `{}` is simulated: it has no port or serial settings",
                        profile.name
                    ),
                ));
            }
            refuse_ble_keys(file, &profile, &error)?;
            Driver::Simulator {
                profile: simulator.clone(),
                scenario: Arc::new(scenario),
            }
        }
        Transport::Serial(serial) => {
            if file.scenario.is_some() {
                return Err(error(
                    "scenario",
                    format!(
                        "profile `{}` is a serial device: scenarios are for simulated ones",
                        profile.name
                    ),
                ));
            }
            let Some(port) = file.port.clone().filter(|p| !p.trim().is_empty()) else {
                return Err(error(
                    "profile",
                    format!(
                        "profile `{}` is a serial device and needs a `port` (for example \"/dev/ttyUSB0\")",
                        profile.name
                    ),
                ));
            };
            refuse_ble_keys(file, &profile, &error)?;
            let line = match &file.serial {
                None => serial.line,
                Some(changes) => serial
                    .line
                    .with(changes)
                    .map_err(|message| error("serial", message))?,
            };
            Driver::Serial {
                port: source.resolve(&port).display().to_string(),
                line,
                protocol: serial.protocol.clone(),
                on_connect: serial.on_connect.clone(),
                keep_alive: serial.keep_alive.clone(),
            }
        }
        Transport::Ble(ble) => {
            for (key, present) in [
                ("scenario", file.scenario.is_some()),
                ("port", file.port.is_some()),
                ("serial", file.serial.is_some()),
            ] {
                if present {
                    return Err(error(
                        key,
                        format!(
                            "profile `{}` is a Bluetooth LE device: it has no `{key}`",
                            profile.name
                        ),
                    ));
                }
            }
            // By address only: a name alone could pick up the same model at the next chair.
            let Some(address) = &file.address else {
                return Err(error(
                    "profile",
                    format!(
                        "profile `{}` is a Bluetooth LE device and needs its `address` (for example \"AA:BB:CC:DD:EE:FF\"; `vitalwatch devices --ble` lists them)",
                        profile.name
                    ),
                ));
            };
            let address = ble_address(address).ok_or_else(|| {
                error(
                    "address",
                    format!("`{address}` is not a Bluetooth address (six hex pairs, like \"AA:BB:CC:DD:EE:FF\")"),
                )
            })?;
            Driver::Ble {
                target: BleTarget {
                    address: Some(address),
                    name: file.advertised_name.clone(),
                    service: Some(ble.protocol.service()),
                },
                protocol: ble.protocol,
                connects_per_measurement: ble.connects_per_measurement,
            }
        }
    };
    Ok(DeviceConfig {
        id: DeviceId::new(&file.id),
        profile: Arc::new(profile),
        driver,
        interval,
        silent_after,
        ring_capacity,
    })
}

/// Checks `[alertmanager]`: plain-HTTP URLs, a sensible repeat.
fn forward_config(
    source: &Source,
    spanned: &toml::Spanned<AlertmanagerFile>,
    errors: &mut Vec<ConfigError>,
) -> Option<ForwardConfig> {
    let file = spanned.get_ref();
    let before = errors.len();
    if file.urls.is_empty() {
        errors.push(source.error_at_key(
            spanned.span(),
            "urls",
            "give at least one Alertmanager URL, like \"http://alertmanager.clinic.lan:9093\"",
        ));
    }
    for url in &file.urls {
        let text = url.get_ref();
        let message = match reqwest::Url::parse(text) {
            Ok(parsed) if parsed.scheme() == "http" && parsed.host().is_some() => continue,
            Ok(parsed) if parsed.scheme() == "https" => format!(
                "`{text}`: https is not supported; reach a TLS Alertmanager through a local proxy (plain http on this host)"
            ),
            Ok(_) => format!("`{text}` is not an http URL"),
            Err(error) => format!("`{text}` is not a URL: {error}"),
        };
        errors.push(source.error_at(url.span(), message));
    }
    let repeat = match file.repeat_s {
        None => DEFAULT_REPEAT,
        Some(s) if s.is_finite() && (1.0..=3600.0).contains(&s) => Duration::from_secs_f64(s),
        Some(s) => {
            errors.push(source.error_at_key(
                spanned.span(),
                "repeat_s",
                format!("repeat_s must be 1 to 3600 seconds, got {s}"),
            ));
            DEFAULT_REPEAT
        }
    };
    (errors.len() == before).then(|| ForwardConfig {
        urls: file.urls.iter().map(|u| u.get_ref().clone()).collect(),
        repeat,
        panel_url: file.panel_url.clone(),
    })
}

/// `AA:BB:CC:DD:EE:FF` in upper case, if `text` is a Bluetooth address.
fn ble_address(text: &str) -> Option<String> {
    let pairs: Vec<&str> = text.trim().split(':').collect();
    let valid = pairs.len() == 6
        && pairs
            .iter()
            .all(|pair| pair.len() == 2 && pair.chars().all(|c| c.is_ascii_hexdigit()));
    valid.then(|| pairs.join(":").to_ascii_uppercase())
}

/// A simulated or serial device's entry may not carry the BLE keys.
fn refuse_ble_keys(
    file: &DeviceFile,
    profile: &Profile,
    error: &dyn Fn(&str, String) -> ConfigErrors,
) -> Result<(), ConfigErrors> {
    for (key, present) in [
        ("address", file.address.is_some()),
        ("advertised_name", file.advertised_name.is_some()),
    ] {
        if present {
            return Err(error(
                key,
                format!(
                    "`{key}` is for Bluetooth LE devices; profile `{}` is not one",
                    profile.name
                ),
            ));
        }
    }
    Ok(())
}

/// `sessions.sqlite` in systemd's state directory, else beside the config.
fn default_database(source: &Source) -> std::path::PathBuf {
    match std::env::var_os("STATE_DIRECTORY") {
        // systemd may list several directories, colon-separated: the first is ours.
        Some(dirs) => {
            std::path::PathBuf::from(dirs.to_string_lossy().split(':').next().unwrap_or_default())
                .join("sessions.sqlite")
        }
        None => source.resolve("sessions.sqlite"),
    }
}

fn tokens(source: &Source, api: &ApiFile, errors: &mut Vec<ConfigError>) -> Vec<NurseToken> {
    let mut names = HashSet::new();
    let mut secrets = HashSet::new();
    let mut tokens = Vec::new();
    for spanned in &api.token {
        let span = spanned.span();
        let file = spanned.get_ref();
        let name_ok = !file.name.trim().is_empty()
            && file.name.len() <= 64
            && !file.name.chars().any(char::is_control);
        if !name_ok {
            errors.push(source.error_at_key(
                span.clone(),
                "name",
                "a token's name must be 1 to 64 printable characters",
            ));
        } else if !names.insert(file.name.clone()) {
            errors.push(source.error_at_key(
                span.clone(),
                "name",
                format!("token name `{}` is used twice", file.name),
            ));
        }
        let secret_ok = file.token.len() >= MIN_TOKEN_LEN
            && file.token.len() <= 256
            && file.token.chars().all(|c| c.is_ascii_graphic());
        if !secret_ok {
            errors.push(source.error_at_key(
                span.clone(),
                "token",
                format!("a token must be {MIN_TOKEN_LEN} to 256 printable ASCII characters without spaces"),
            ));
        } else if !secrets.insert(file.token.clone()) {
            errors.push(source.error_at_key(span, "token", "two names share one token"));
        }
        tokens.push(NurseToken {
            name: file.name.clone(),
            token: file.token.clone(),
        });
    }
    tokens
}

/// Loads a scenario: a built-in name, or a path to a `.toml` file relative to `source`.
pub fn load_scenario(source: &Source, name: &str) -> Result<Scenario, ConfigErrors> {
    if name.ends_with(".toml") {
        let path = source.resolve(name);
        let scenario_source = Source::read(&path)?;
        return Scenario::parse(name, &scenario_source);
    }
    match BUILT_IN_SCENARIOS.iter().find(|(n, _)| *n == name) {
        Some((n, text)) => Scenario::parse(
            n,
            &Source::built_in(&format!("config/scenarios/{n}.toml"), text),
        ),
        None => {
            let known: Vec<_> = built_in_scenarios().collect();
            Err(ConfigError::whole_file(
                &source.name,
                format!(
                    "unknown scenario `{name}`; built-in scenarios: {} (or a path ending in .toml)",
                    known.join(", ")
                ),
            )
            .into())
        }
    }
}

pub fn built_in_scenarios() -> impl Iterator<Item = &'static str> {
    BUILT_IN_SCENARIOS.iter().map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(&Source::built_in("test.toml", text))
    }

    #[test]
    fn the_built_in_default_is_one_simulated_patient() {
        let config = Config::built_in().unwrap();
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        let ids: Vec<_> = config.devices.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["ox1", "cuff1"]);
        assert_eq!(config.devices[1].interval, Duration::from_secs(300));
        assert_eq!(
            config.devices[0].silent_after,
            Some(Duration::from_secs(10))
        );
        assert_eq!(config.devices[1].silent_after, None);
        assert!(!config.rules.rules.is_empty());
    }

    #[test]
    fn every_built_in_scenario_loads() {
        let source = Source::built_in("t", "");
        for name in built_in_scenarios() {
            load_scenario(&source, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn every_shipped_scenario_file_is_built_in_and_says_how_long_it_lasts() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/scenarios");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "toml"))
            .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut built_in: Vec<String> = built_in_scenarios().map(str::to_string).collect();
        built_in.sort();
        assert_eq!(files, built_in);
        let source = Source::built_in("t", "");
        for name in built_in_scenarios() {
            let scenario = load_scenario(&source, name).unwrap();
            assert!(scenario.duration_s.is_some(), "{name} has no duration_s");
            assert!(
                scenario.session.infusion_s.is_some(),
                "{name} never reaches the infusion"
            );
        }
    }

    #[test]
    fn an_unknown_profile_names_its_line_and_the_known_ones() {
        let errors = parse(
            "[[device]]\nid = \"ox1\"\nprofile = \"nonin-9999\"\nscenario = \"typical-infusion\"\n",
        )
        .unwrap_err();
        assert_eq!(errors.0.len(), 1);
        let error = &errors.0[0];
        assert_eq!(
            (error.line, error.key.as_deref()),
            (Some(3), Some("profile"))
        );
        assert!(error.message.contains("simulated-oximeter"), "{error}");
    }

    #[test]
    fn an_unknown_scenario_and_a_duplicate_id_are_both_reported() {
        let errors = parse(
            "[[device]]\nid = \"a\"\nprofile = \"simulated-oximeter\"\nscenario = \"nope\"\n\n[[device]]\nid = \"b\"\nprofile = \"simulated-oximeter\"\nscenario = \"desaturation\"\n[[device]]\nid = \"b\"\nprofile = \"simulated-oximeter\"\nscenario = \"desaturation\"\n",
        )
        .unwrap_err();
        let found: Vec<_> = errors.0.iter().map(|e| (e.line, e.key.clone())).collect();
        assert_eq!(
            found,
            [
                (Some(4), Some("scenario".into())),
                (Some(11), Some("id".into()))
            ],
            "{errors}"
        );
    }

    #[test]
    fn a_rule_file_that_cannot_be_read_is_an_error_at_the_key() {
        let errors = parse("[alarms]\nrules = \"/nonexistent/rules.toml\"\n").unwrap_err();
        assert_eq!(errors.0[0].line, Some(2), "{errors}");
        assert!(errors.0[0].message.contains("cannot read"), "{errors}");
    }

    #[test]
    fn tokens_must_be_long_distinct_and_named() {
        let errors = parse(
            "[[api.token]]\nname = \"a\"\ntoken = \"short\"\n\n[[api.token]]\nname = \"a\"\ntoken = \"long-enough-token-0001\"\n",
        )
        .unwrap_err();
        let found: Vec<_> = errors.0.iter().map(|e| (e.line, e.key.clone())).collect();
        assert_eq!(
            found,
            [
                (Some(3), Some("token".into())),
                (Some(6), Some("name".into()))
            ],
            "{errors}"
        );
        let config =
            parse("[[api.token]]\nname = \"station\"\ntoken = \"long-enough-token-0001\"\n")
                .unwrap();
        assert_eq!(config.tokens[0].name, "station");
        assert!(
            !format!("{:?}", config.tokens[0]).contains("long-enough"),
            "Debug must not print the secret"
        );
    }

    #[test]
    fn a_ble_device_is_configured_by_its_address() {
        let config = parse(
            "[[device]]\nid = \"ox-ble\"\nprofile = \"ble-pulse-oximeter\"\naddress = \"aa:bb:cc:dd:ee:01\"\nadvertised_name = \"PulseOx\"\n",
        )
        .unwrap();
        let Driver::Ble {
            target,
            protocol,
            connects_per_measurement,
        } = &config.devices[0].driver
        else {
            panic!("not a BLE driver: {:?}", config.devices[0].driver);
        };
        assert_eq!(target.address.as_deref(), Some("AA:BB:CC:DD:EE:01"));
        assert_eq!(target.name.as_deref(), Some("PulseOx"));
        assert_eq!(target.service, Some(crate::acquire::ble::sig_uuid(0x1822)));
        assert_eq!(*protocol, BleProtocol::PulseOximeter);
        assert!(!connects_per_measurement);
        let cuff = parse(
            "[[device]]\nid = \"cuff\"\nprofile = \"ble-blood-pressure\"\naddress = \"AA:BB:CC:DD:EE:02\"\n",
        )
        .unwrap();
        assert!(matches!(
            cuff.devices[0].driver,
            Driver::Ble {
                connects_per_measurement: true,
                ..
            }
        ));
        assert_eq!(cuff.devices[0].silent_after, None);
    }

    #[test]
    fn ble_keys_are_checked_and_named_where_they_are_wrong() {
        let cases = [
            // No address: a name alone could take the next chair's oximeter.
            (
                "[[device]]\nid = \"o\"\nprofile = \"berrymed-bm1000\"\nadvertised_name = \"BerryMed\"\n",
                3,
                "profile",
                "needs its `address`",
            ),
            (
                "[[device]]\nid = \"o\"\nprofile = \"berrymed-bm1000\"\naddress = \"AA:BB:CC:DD:EE\"\n",
                4,
                "address",
                "not a Bluetooth address",
            ),
            (
                "[[device]]\nid = \"o\"\nprofile = \"ble-heart-rate\"\naddress = \"AA:BB:CC:DD:EE:0G\"\n",
                4,
                "address",
                "not a Bluetooth address",
            ),
            (
                "[[device]]\nid = \"o\"\nprofile = \"wellue-o2ring\"\naddress = \"AA:BB:CC:DD:EE:01\"\nport = \"/dev/ttyUSB0\"\n",
                5,
                "port",
                "has no `port`",
            ),
            (
                "[[device]]\nid = \"o\"\nprofile = \"nonin-df8\"\nport = \"/dev/ttyUSB0\"\naddress = \"AA:BB:CC:DD:EE:01\"\n",
                5,
                "address",
                "is for Bluetooth LE devices",
            ),
        ];
        for (text, line, key, message) in cases {
            let errors = parse(text).unwrap_err();
            let error = &errors.0[0];
            assert_eq!(
                (error.line, error.key.as_deref()),
                (Some(line), Some(key)),
                "{text}: {errors}"
            );
            assert!(error.message.contains(message), "{errors}");
        }
    }

    #[test]
    fn keep_days_zero_is_refused_at_its_line() {
        let errors = parse("[recording]\nkeep_days = 0\n").unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        let error = &errors.0[0];
        assert_eq!(
            (error.line, error.key.as_deref()),
            (Some(2), Some("keep_days"))
        );
        assert!(error.message.contains("at least 1"), "{errors}");
        let config = parse("[recording]\nkeep_days = 1\n").unwrap();
        assert_eq!(config.recording.keep_days, Some(1));
    }

    #[test]
    fn a_profiles_dir_that_is_not_a_directory_is_refused_at_its_line() {
        let errors = parse(
            "[profiles]\ndir = \"/nonexistent/profiles\"\n\n[[device]]\nid = \"ox1\"\nprofile = \"simulated-oximeter\"\nscenario = \"typical-infusion\"\n",
        )
        .unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        let error = &errors.0[0];
        assert_eq!((error.line, error.key.as_deref()), (Some(2), Some("dir")));
        assert!(error.message.contains("is not a directory"), "{errors}");
    }

    #[test]
    fn the_chair_is_a_location_label_checked_at_its_line() {
        assert_eq!(Config::built_in().unwrap().chair, "chair-1");
        assert_eq!(
            parse("[site]\nchair = \"room-2.bed-1\"\n").unwrap().chair,
            "room-2.bed-1"
        );
        let errors = parse("[site]\nchair = \"Mrs Smith\"\n").unwrap_err();
        assert_eq!(errors.0[0].line, Some(2), "{errors}");
        assert!(
            errors.0[0].message.contains("never a patient's name"),
            "{errors}"
        );
    }

    #[test]
    fn alertmanager_urls_and_repeat_are_checked_at_their_lines() {
        let config = parse(
            "[alertmanager]\nurls = [\"http://am-1:9093\", \"http://am-2:9093/\"]\nrepeat_s = 15\n",
        )
        .unwrap();
        let forward = config.alertmanager.unwrap();
        assert_eq!(forward.urls, ["http://am-1:9093", "http://am-2:9093/"]);
        assert_eq!(forward.repeat, Duration::from_secs(15));
        assert!(Config::built_in().unwrap().alertmanager.is_none());
        let errors = parse(
            "[alertmanager]\nurls = [\n  \"https://am:9093\",\n  \"am:9093\",\n]\nrepeat_s = 0\n",
        )
        .unwrap_err();
        let found: Vec<_> = errors.0.iter().map(|e| e.line).collect();
        assert_eq!(found, [Some(3), Some(4), Some(6)], "{errors}");
        assert!(
            errors.0[0].message.contains("https is not supported"),
            "{errors}"
        );
    }
}
