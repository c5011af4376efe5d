//! Device profiles: one data file per device model in `device-profiles/`, built into the binary.
//!
//! A profile says which vitals a device reports, how often, when its silence becomes a
//! technical alarm, and how to reach it (the transport table: `[simulator]` for now; serial
//! and BLE profiles come with their drivers).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::source::{ConfigErrors, Source};
use crate::acquire::scenario::Role;
use crate::vitals::Vital;

/// The profiles shipped in `device-profiles/`.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "simulated-oximeter",
        include_str!("../../device-profiles/simulated-oximeter.toml"),
    ),
    (
        "simulated-bp-cuff",
        include_str!("../../device-profiles/simulated-bp-cuff.toml"),
    ),
];

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorProfile {
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    description: String,
    vitals: Vec<Vital>,
    interval_s: f64,
    silent_after_s: Option<f64>,
    simulator: Option<SimulatorProfile>,
}

/// How a profile's devices are reached.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    Simulator(SimulatorProfile),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub vitals: Vec<Vital>,
    /// How often the device reports.
    pub interval: Duration,
    /// Silence longer than this raises the device-silent technical alarm; `None` for
    /// intermittent devices (a cuff), whose silence is BP overdue instead.
    pub silent_after: Option<Duration>,
    pub transport: Transport,
}

impl Profile {
    pub fn parse(source: &Source) -> Result<Self, ConfigErrors> {
        let file: ProfileFile = source.parse()?;
        let whole = 0..source.text.len();
        let mut errors = Vec::new();
        for (key, value) in [
            ("interval_s", Some(file.interval_s)),
            ("silent_after_s", file.silent_after_s),
        ] {
            let Some(value) = value else { continue };
            if !(value.is_finite() && value > 0.0) {
                errors.push(source.error_at_key(
                    whole.clone(),
                    key,
                    format!("{key} must be > 0 seconds"),
                ));
            }
        }
        let transport = match file.simulator {
            Some(simulator) => Some(Transport::Simulator(simulator)),
            None => {
                errors.push(source.error_at(
                    whole.clone(),
                    "a profile needs a transport table: [simulator]",
                ));
                None
            }
        };
        match transport {
            Some(transport) if errors.is_empty() => Ok(Profile {
                name: file.name,
                description: file.description,
                vitals: file.vitals,
                interval: Duration::from_secs_f64(file.interval_s),
                silent_after: file.silent_after_s.map(Duration::from_secs_f64),
                transport,
            }),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// The built-in profile called `name`.
    pub fn built_in(name: &str) -> Option<Result<Self, ConfigErrors>> {
        BUILT_IN.iter().find(|(n, _)| *n == name).map(|(n, text)| {
            Profile::parse(&Source::built_in(
                &format!("device-profiles/{n}.toml"),
                text,
            ))
        })
    }

    /// The profile called `name`: the clinic's own file `dir/NAME.toml` if there is one, else
    /// the built-in profile of that name.
    pub fn find(name: &str, dir: Option<&Path>) -> Option<Result<Self, ConfigErrors>> {
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if let Some(dir) = dir.filter(|_| valid_name) {
            let path = dir.join(format!("{name}.toml"));
            if path.is_file() {
                return Some(
                    Source::read(&path)
                        .map_err(ConfigErrors::from)
                        .and_then(|source| {
                            let profile = Profile::parse(&source)?;
                            if profile.name != name {
                                let message = format!(
                                    "the profile in {name}.toml must be named `{name}`, not `{}`",
                                    profile.name
                                );
                                return Err(source
                                    .error_at_key(0..source.text.len(), "name", message)
                                    .into());
                            }
                            Ok(profile)
                        }),
                );
            }
        }
        Profile::built_in(name)
    }

    /// The names of the profiles in `dir` (its `*.toml` files), sorted.
    pub fn names_in(dir: Option<&Path>) -> Vec<String> {
        let Some(Ok(entries)) = dir.map(std::fs::read_dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|entry| {
                let path = entry.path();
                (path.extension()? == "toml")
                    .then(|| path.file_stem()?.to_str().map(str::to_string))?
            })
            .collect();
        names.sort();
        names
    }

    pub fn built_in_names() -> impl Iterator<Item = &'static str> {
        BUILT_IN.iter().map(|(name, _)| *name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_profile_loads_under_its_own_name() {
        for name in Profile::built_in_names() {
            let profile = Profile::built_in(name).unwrap().unwrap();
            assert_eq!(profile.name, name);
            assert!(!profile.vitals.is_empty());
        }
    }

    #[test]
    fn a_profile_without_transport_is_refused() {
        let errors = Profile::parse(&Source::built_in(
            "p",
            "name = \"x\"\ndescription = \"x\"\nvitals = [\"spo2\"]\ninterval_s = 1\nsilent_after_s = 0\n",
        ))
        .unwrap_err();
        assert_eq!(errors.0.len(), 2, "{errors}");
        assert_eq!(errors.0[0].line, Some(5));
    }
}
