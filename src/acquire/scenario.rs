//! Scenario files: a scripted patient for the simulator, as a pure function of time.
//!
//! A scenario gives each vital a baseline value and noise, then a timeline of steps: ramp a
//! vital to a value over a duration, dip it for some seconds, take a device's sensor off,
//! disconnect a device, flag its readings as artefact, or keep it connected but silent. Both
//! simulated devices of one patient play the same scenario; each samples the vitals its role
//! measures.
//!
//! A scenario may also say how long it lasts (`duration_s`) and when the session moves to
//! each phase (`[session]`). The daemon ignores both (a nurse drives the phases there);
//! `vitalwatch replay` plays them.
//!
//! Noise comes from a counter-based generator (SplitMix64) seeded by the scenario's seed, the
//! device and the sample number, so a scenario plays the same way every time, at any speed.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;

use crate::config::{ConfigError, ConfigErrors, Source};
use crate::vitals::{Phase, Vital};

/// Which simulated device a step addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Oximeter,
    BpCuff,
}

impl Role {
    /// The vitals a device of this role reports.
    pub fn vitals(self) -> &'static [Vital] {
        match self {
            Role::Oximeter => &[Vital::Spo2, Vital::PulseRate, Vital::PerfusionIndex],
            Role::BpCuff => &[
                Vital::Systolic,
                Vital::Diastolic,
                Vital::MeanArterial,
                Vital::PulseRate,
            ],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineConfig {
    value: f64,
    #[serde(default)]
    noise: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RampConfig {
    vital: Vital,
    to: f64,
    over_s: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DipConfig {
    vital: Vital,
    to: f64,
    for_s: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceSpanConfig {
    role: Role,
    for_s: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepConfig {
    at_s: f64,
    ramp: Option<RampConfig>,
    dip: Option<DipConfig>,
    sensor_off: Option<DeviceSpanConfig>,
    artefact: Option<DeviceSpanConfig>,
    disconnect: Option<DeviceSpanConfig>,
    silent: Option<DeviceSpanConfig>,
}

/// When the session moves to each phase, in seconds from the scenario's start (it starts in
/// baseline at 0).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionConfig {
    infusion_s: Option<f64>,
    recovery_s: Option<f64>,
    ended_s: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioConfig {
    description: String,
    #[serde(default = "default_seed")]
    seed: u64,
    duration_s: Option<f64>,
    session: Option<toml::Spanned<SessionConfig>>,
    baseline: BTreeMap<Vital, toml::Spanned<BaselineConfig>>,
    #[serde(default)]
    step: Vec<toml::Spanned<StepConfig>>,
}

fn default_seed() -> u64 {
    1
}

/// A linear change of a vital's level.
#[derive(Debug, Clone, PartialEq)]
struct Ramp {
    at: f64,
    to: f64,
    over: f64,
}

/// A vital held at `to` during `during`, then back to its level.
#[derive(Debug, Clone, PartialEq)]
struct Dip {
    during: Range<f64>,
    to: f64,
}

/// What a device does during a span of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCondition {
    /// Sensor off the finger: readings carry no value and the sensor-off flag.
    SensorOff,
    /// Motion artefact: readings carry misleading values and the artefact flag.
    Artefact,
    /// The device is gone: no readings, link lost.
    Disconnected,
    /// The device stays connected but sends nothing (a cuff whose measurements fail).
    Silent,
}

#[derive(Debug, Clone, PartialEq)]
struct DeviceSpan {
    role: Role,
    during: Range<f64>,
    condition: DeviceCondition,
}

#[derive(Debug, Clone, PartialEq)]
struct VitalTrack {
    baseline: f64,
    noise: f64,
    ramps: Vec<Ramp>,
    dips: Vec<Dip>,
}

/// A parsed, validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seed: u64,
    /// How long the scenario lasts, in seconds (`duration_s`), if it says.
    pub duration_s: Option<f64>,
    /// When the session moves to each phase (`[session]`).
    pub session: SessionPlan,
    tracks: BTreeMap<Vital, VitalTrack>,
    spans: Vec<DeviceSpan>,
}

/// When a scenario's session moves to each phase, in seconds from its start. The session
/// starts in baseline at 0; a phase left out is never reached.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SessionPlan {
    pub infusion_s: Option<f64>,
    pub recovery_s: Option<f64>,
    pub ended_s: Option<f64>,
}

impl SessionPlan {
    /// The phase changes in time order, starting with baseline at 0.
    pub fn phase_changes(&self) -> Vec<(f64, Phase)> {
        let mut changes = vec![(0.0, Phase::Baseline)];
        for (at, phase) in [
            (self.infusion_s, Phase::Infusion),
            (self.recovery_s, Phase::Recovery),
            (self.ended_s, Phase::Ended),
        ] {
            if let Some(at) = at {
                changes.push((at, phase));
            }
        }
        changes
    }
}

impl Scenario {
    pub fn parse(name: &str, source: &Source) -> Result<Self, ConfigErrors> {
        let config: ScenarioConfig = source.parse()?;
        let mut errors = Vec::new();
        let mut tracks = BTreeMap::new();
        for (vital, spanned) in &config.baseline {
            let baseline = spanned.get_ref();
            let (low, high) = vital.plausible_range();
            if !(low..=high).contains(&baseline.value) || !(0.0..=high).contains(&baseline.noise) {
                errors.push(source.error_at(
                    spanned.span(),
                    format!("baseline of {vital} must lie in {low}..={high} with noise ≥ 0"),
                ));
            }
            tracks.insert(
                *vital,
                VitalTrack {
                    baseline: baseline.value,
                    noise: baseline.noise,
                    ramps: Vec::new(),
                    dips: Vec::new(),
                },
            );
        }
        let mut spans = Vec::new();
        for spanned in &config.step {
            let span = spanned.span();
            let step = spanned.get_ref();
            match step_action(source, span.clone(), step, &mut tracks) {
                Ok(Some(device_span)) => spans.push(device_span),
                Ok(None) => {}
                Err(error) => errors.push(error),
            }
        }
        let duration_s = config.duration_s;
        if let Some(duration) = duration_s
            && !(duration.is_finite() && duration > 0.0)
        {
            errors.push(source.error_at_key(
                0..source.text.len(),
                "duration_s",
                format!("duration_s must be > 0 seconds, got {duration}"),
            ));
        }
        let session = match &config.session {
            None => SessionPlan::default(),
            Some(spanned) => session_plan(source, spanned, duration_s, &mut errors),
        };
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        for track in tracks.values_mut() {
            track.ramps.sort_by(|a, b| a.at.total_cmp(&b.at));
        }
        Ok(Scenario {
            name: name.to_string(),
            description: config.description,
            seed: config.seed,
            duration_s,
            session,
            tracks,
            spans,
        })
    }

    /// The vitals this scenario scripts.
    pub fn vitals(&self) -> impl Iterator<Item = Vital> + '_ {
        self.tracks.keys().copied()
    }

    /// The scripted level of `vital` at `t` seconds, before noise; `None` if not scripted.
    pub fn level(&self, vital: Vital, t: f64) -> Option<f64> {
        let track = self.tracks.get(&vital)?;
        if let Some(dip) = track.dips.iter().find(|d| d.during.contains(&t)) {
            return Some(dip.to);
        }
        // Each ramp starts from wherever the previous segments had taken the level.
        let mut segment: Option<(f64, &Ramp)> = None;
        for ramp in track.ramps.iter().take_while(|r| r.at <= t) {
            let from = segment.map_or(track.baseline, |(from, prev)| {
                ramp_value(from, prev, ramp.at)
            });
            segment = Some((from, ramp));
        }
        Some(segment.map_or(track.baseline, |(from, ramp)| ramp_value(from, ramp, t)))
    }

    /// The value a device reports for `vital` at `t`: level plus noise, rounded the way
    /// devices display it and kept within the physically possible range.
    pub fn sample(&self, vital: Vital, t: f64, stream: u64, sample_index: u64) -> Option<f64> {
        let track = self.tracks.get(&vital)?;
        let level = self.level(vital, t)?;
        // A dip holds its scripted value exactly, so a scenario's clinical claim (86 % for 40 s)
        // does not depend on the noise draw.
        let in_dip = track.dips.iter().any(|d| d.during.contains(&t));
        let noise = if in_dip { 0.0 } else { track.noise };
        let value = level + noise * gaussian(self.seed, stream ^ vital as u64, sample_index);
        let (low, high) = vital.plausible_range();
        let value = value.clamp(low, high);
        Some(match vital {
            Vital::PerfusionIndex => (value * 10.0).round() / 10.0,
            _ => value.round(),
        })
    }

    /// The device condition scripted for `role` at `t`, if any.
    pub fn condition(&self, role: Role, t: f64) -> Option<DeviceCondition> {
        self.spans
            .iter()
            .find(|s| s.role == role && s.during.contains(&t))
            .map(|s| s.condition)
    }
}

/// Checks a `[session]` table: times ≥ 0, phases in their only order (baseline → infusion →
/// recovery → ended; recovery needs an infusion before it), all within `duration_s`.
fn session_plan(
    source: &Source,
    spanned: &toml::Spanned<SessionConfig>,
    duration_s: Option<f64>,
    errors: &mut Vec<ConfigError>,
) -> SessionPlan {
    let span = spanned.span();
    let config = spanned.get_ref();
    let before = errors.len();
    let mut error = |key: &str, message: String| {
        errors.push(source.error_at_key(span.clone(), key, message));
    };
    let keyed = [
        ("infusion_s", config.infusion_s),
        ("recovery_s", config.recovery_s),
        ("ended_s", config.ended_s),
    ];
    for (key, value) in keyed {
        if let Some(value) = value
            && !(value.is_finite() && value >= 0.0)
        {
            error(
                key,
                format!("{key} must be a time ≥ 0 seconds, got {value}"),
            );
        }
    }
    if config.recovery_s.is_some() && config.infusion_s.is_none() {
        error(
            "recovery_s",
            "recovery_s needs infusion_s: phases go baseline → infusion → recovery → ended"
                .to_string(),
        );
    }
    // Each given phase must come strictly after the previous given one.
    let mut previous: Option<(&str, f64)> = None;
    for (key, value) in keyed {
        let Some(value) = value else { continue };
        if let Some((previous_key, previous_value)) = previous
            && value <= previous_value
        {
            error(
                key,
                format!(
                    "{key} ({value}) must come after {previous_key} ({previous_value}): phases go \
                     baseline → infusion → recovery → ended"
                ),
            );
        }
        previous = Some((key, value));
    }
    if let Some(duration) = duration_s {
        for (key, value) in keyed {
            if let Some(value) = value
                && value > duration
            {
                error(
                    key,
                    format!(
                        "{key} ({value}) is after the scenario's end (duration_s = {duration})"
                    ),
                );
            }
        }
    }
    if errors.len() > before {
        return SessionPlan::default();
    }
    SessionPlan {
        infusion_s: config.infusion_s,
        recovery_s: config.recovery_s,
        ended_s: config.ended_s,
    }
}

fn ramp_value(from: f64, ramp: &Ramp, t: f64) -> f64 {
    if ramp.over <= 0.0 || t >= ramp.at + ramp.over {
        ramp.to
    } else {
        from + (ramp.to - from) * ((t - ramp.at) / ramp.over)
    }
}

fn step_action(
    source: &Source,
    span: Range<usize>,
    step: &StepConfig,
    tracks: &mut BTreeMap<Vital, VitalTrack>,
) -> Result<Option<DeviceSpan>, ConfigError> {
    let actions = [
        step.ramp.is_some(),
        step.dip.is_some(),
        step.sensor_off.is_some(),
        step.artefact.is_some(),
        step.disconnect.is_some(),
        step.silent.is_some(),
    ];
    if actions.iter().filter(|a| **a).count() != 1 {
        return Err(source.error_at(
            span,
            "a step needs exactly one of ramp, dip, sensor_off, artefact, disconnect, silent",
        ));
    }
    if !(step.at_s.is_finite() && step.at_s >= 0.0) {
        return Err(source.error_at_key(span, "at_s", "at_s must be a time ≥ 0 seconds"));
    }
    let at = step.at_s;
    // The vital sits inside the step's inline table, so point at that table's line.
    let missing = |action: &str, vital: Vital| {
        source.error_at_key(
            span.clone(),
            action,
            format!("{vital} has no baseline in this scenario"),
        )
    };
    let duration_ok = |d: f64| d.is_finite() && d >= 0.0;
    if let Some(ramp) = &step.ramp {
        if !duration_ok(ramp.over_s) {
            return Err(source.error_at_key(span, "over_s", "over_s must be ≥ 0 seconds"));
        }
        tracks
            .get_mut(&ramp.vital)
            .ok_or_else(|| missing("ramp", ramp.vital))?
            .ramps
            .push(Ramp {
                at,
                to: ramp.to,
                over: ramp.over_s,
            });
        return Ok(None);
    }
    if let Some(dip) = &step.dip {
        if !duration_ok(dip.for_s) {
            return Err(source.error_at_key(span, "for_s", "for_s must be ≥ 0 seconds"));
        }
        tracks
            .get_mut(&dip.vital)
            .ok_or_else(|| missing("dip", dip.vital))?
            .dips
            .push(Dip {
                during: at..at + dip.for_s,
                to: dip.to,
            });
        return Ok(None);
    }
    let spans = [
        (&step.sensor_off, DeviceCondition::SensorOff),
        (&step.artefact, DeviceCondition::Artefact),
        (&step.disconnect, DeviceCondition::Disconnected),
        (&step.silent, DeviceCondition::Silent),
    ];
    let Some((device, condition)) = spans
        .into_iter()
        .find_map(|(device, condition)| device.as_ref().map(|d| (d, condition)))
    else {
        return Ok(None);
    };
    if !duration_ok(device.for_s) {
        return Err(source.error_at_key(span, "for_s", "for_s must be ≥ 0 seconds"));
    }
    Ok(Some(DeviceSpan {
        role: device.role,
        during: at..at + device.for_s,
        condition,
    }))
}

/// A standard normal deviate determined by its inputs (SplitMix64 + Box–Muller).
fn gaussian(seed: u64, stream: u64, index: u64) -> f64 {
    let a = splitmix64(seed ^ splitmix64(stream ^ splitmix64(index)));
    let b = splitmix64(a);
    // 53-bit uniforms in (0, 1]: ln() must never see 0.
    let u1 = ((a >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let u2 = (b >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable 64-bit hash of a name (FNV-1a), for per-device noise streams.
pub fn stream_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ byte as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Result<Scenario, ConfigErrors> {
        Scenario::parse("test", &Source::built_in("test", text))
    }

    const BASE: &str = r#"
description = "t"
[baseline]
spo2 = { value = 98, noise = 0 }
systolic = { value = 120, noise = 0 }
"#;

    #[test]
    fn ramps_chain_from_where_the_last_one_left_the_level() {
        let s = scenario(&format!(
            "{BASE}
[[step]]
at_s = 100
ramp = {{ vital = \"systolic\", to = 160, over_s = 100 }}
[[step]]
at_s = 150
ramp = {{ vital = \"systolic\", to = 100, over_s = 40 }}
"
        ))
        .unwrap();
        assert_eq!(s.level(Vital::Systolic, 50.0), Some(120.0));
        assert_eq!(s.level(Vital::Systolic, 125.0), Some(130.0));
        // The second ramp starts at 140 (half-way through the first) and reaches 100 at 190.
        assert_eq!(s.level(Vital::Systolic, 150.0), Some(140.0));
        assert_eq!(s.level(Vital::Systolic, 170.0), Some(120.0));
        assert_eq!(s.level(Vital::Systolic, 500.0), Some(100.0));
        assert_eq!(s.level(Vital::PulseRate, 0.0), None);
    }

    #[test]
    fn dips_and_device_conditions_cover_their_span_only() {
        let s = scenario(&format!(
            "{BASE}
[[step]]
at_s = 10
dip = {{ vital = \"spo2\", to = 88, for_s = 5 }}
[[step]]
at_s = 20
sensor_off = {{ role = \"oximeter\", for_s = 30 }}
"
        ))
        .unwrap();
        assert_eq!(s.level(Vital::Spo2, 9.9), Some(98.0));
        assert_eq!(s.level(Vital::Spo2, 10.0), Some(88.0));
        assert_eq!(s.level(Vital::Spo2, 15.0), Some(98.0));
        assert_eq!(s.condition(Role::Oximeter, 19.0), None);
        assert_eq!(
            s.condition(Role::Oximeter, 20.0),
            Some(DeviceCondition::SensorOff)
        );
        assert_eq!(s.condition(Role::BpCuff, 25.0), None);
        assert_eq!(s.condition(Role::Oximeter, 50.0), None);
    }

    #[test]
    fn noise_is_repeatable_and_roughly_normal() {
        let s =
            scenario("description = \"t\"\n[baseline]\npulse_rate = { value = 70, noise = 2 }\n")
                .unwrap();
        let samples: Vec<f64> = (0..4000)
            .map(|i| s.sample(Vital::PulseRate, i as f64, 7, i).unwrap())
            .collect();
        let again: Vec<f64> = (0..4000)
            .map(|i| s.sample(Vital::PulseRate, i as f64, 7, i).unwrap())
            .collect();
        assert_eq!(samples, again);
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        let sd =
            (samples.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / samples.len() as f64).sqrt();
        assert!((mean - 70.0).abs() < 0.2, "mean {mean}");
        assert!((sd - 2.0).abs() < 0.3, "sd {sd}");
    }

    #[test]
    fn a_step_with_two_actions_or_an_unscripted_vital_is_an_error_on_its_line() {
        let errors = scenario(&format!(
            "{BASE}
[[step]]
at_s = 10
dip = {{ vital = \"pulse_rate\", to = 40, for_s = 5 }}
"
        ))
        .unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].line, Some(9), "{}", errors);
        assert!(errors.0[0].message.contains("pulse_rate has no baseline"));

        let errors = scenario(&format!(
            "{BASE}
[[step]]
at_s = 10
dip = {{ vital = \"spo2\", to = 88, for_s = 5 }}
sensor_off = {{ role = \"oximeter\", for_s = 5 }}
"
        ))
        .unwrap_err();
        assert!(errors.0[0].message.contains("exactly one"), "{errors}");
    }

    #[test]
    fn a_silent_step_covers_its_span_only() {
        let s = scenario(&format!(
            "{BASE}
[[step]]
at_s = 1000
silent = {{ role = \"bp_cuff\", for_s = 1200 }}
"
        ))
        .unwrap();
        assert_eq!(s.condition(Role::BpCuff, 999.0), None);
        assert_eq!(
            s.condition(Role::BpCuff, 1000.0),
            Some(DeviceCondition::Silent)
        );
        assert_eq!(
            s.condition(Role::BpCuff, 2199.0),
            Some(DeviceCondition::Silent)
        );
        assert_eq!(s.condition(Role::BpCuff, 2200.0), None);
        assert_eq!(s.condition(Role::Oximeter, 1500.0), None);
    }

    #[test]
    fn the_session_table_and_duration_give_the_phase_changes() {
        let s = scenario(&format!(
            "duration_s = 7800\n{BASE}[session]\ninfusion_s = 600\nrecovery_s = 3000\nended_s = 7800\n"
        ))
        .unwrap();
        assert_eq!(s.duration_s, Some(7800.0));
        assert_eq!(
            s.session.phase_changes(),
            [
                (0.0, Phase::Baseline),
                (600.0, Phase::Infusion),
                (3000.0, Phase::Recovery),
                (7800.0, Phase::Ended)
            ]
        );
        // Both are optional: a scenario without them stays in baseline and has no end.
        let s = scenario(BASE).unwrap();
        assert_eq!(s.duration_s, None);
        assert_eq!(s.session.phase_changes(), [(0.0, Phase::Baseline)]);
    }

    /// Parses `text` and returns its errors as (line, key, message).
    fn errors_of(text: &str) -> Vec<(Option<u32>, Option<String>, String)> {
        scenario(text)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| (e.line, e.key, e.message))
            .collect()
    }

    #[test]
    fn an_impossible_baseline_is_an_error_on_its_own_line() {
        let errors = errors_of(
            "description = \"t\"\n[baseline]\npulse_rate = { value = 75 }\nspo2 = { value = 120, noise = 0.5 }\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            (errors[0].0, errors[0].1.as_deref()),
            (Some(4), Some("spo2"))
        );
        assert!(
            errors[0].2.contains("baseline of spo2 must lie in 0..=100"),
            "{errors:?}"
        );
    }

    #[test]
    fn phases_out_of_order_are_an_error_on_their_line() {
        let errors = errors_of(&format!(
            "duration_s = 3600\n{BASE}[session]\ninfusion_s = 900\nrecovery_s = 600\n"
        ));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, Some(9));
        assert_eq!(errors[0].1.as_deref(), Some("recovery_s"));
        assert!(
            errors[0].2.contains(
                "recovery_s (600) must come after infusion_s (900): phases go baseline → infusion"
            ),
            "{errors:?}"
        );

        let errors = errors_of(&format!("{BASE}[session]\nrecovery_s = 600\n"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            (errors[0].0, errors[0].1.as_deref()),
            (Some(7), Some("recovery_s"))
        );
        assert!(errors[0].2.contains("needs infusion_s"), "{errors:?}");

        let errors = errors_of(&format!("{BASE}[session]\ninfusion_s = -5\n"));
        assert_eq!(
            (errors[0].0, errors[0].1.as_deref()),
            (Some(7), Some("infusion_s"))
        );
        assert!(errors[0].2.contains("≥ 0"), "{errors:?}");
    }

    #[test]
    fn phases_after_the_end_and_a_bad_duration_are_errors_on_their_line() {
        let errors = errors_of(&format!(
            "duration_s = 1800\n{BASE}[session]\ninfusion_s = 600\nended_s = 2400\n"
        ));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            (errors[0].0, errors[0].1.as_deref()),
            (Some(9), Some("ended_s"))
        );
        assert!(
            errors[0]
                .2
                .contains("ended_s (2400) is after the scenario's end (duration_s = 1800)"),
            "{errors:?}"
        );

        let errors = errors_of(&format!("duration_s = 0\n{BASE}"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            (errors[0].0, errors[0].1.as_deref()),
            (Some(1), Some("duration_s"))
        );
        assert!(errors[0].2.contains("> 0 seconds"), "{errors:?}");
    }
}
