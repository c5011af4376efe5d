//! Domain words shared by every layer: vitals, readings, devices, sessions and phases.
//!
//! Nothing here does I/O. Time comes in two forms: [`Mono`] (monotonic, for logic such as
//! condition delays) and UTC (`chrono::DateTime<Utc>`, for anything recorded or shown).

use std::fmt;
use std::ops::{Add, Sub};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A vital sign that vitalwatch knows how to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vital {
    /// Peripheral oxygen saturation, %.
    Spo2,
    /// Pulse rate, beats per minute.
    PulseRate,
    /// Perfusion index, %.
    PerfusionIndex,
    /// Non-invasive systolic blood pressure, mmHg.
    Systolic,
    /// Non-invasive diastolic blood pressure, mmHg.
    Diastolic,
    /// Non-invasive mean arterial pressure, mmHg.
    MeanArterial,
    /// Respiratory rate, breaths per minute.
    RespiratoryRate,
}

impl Vital {
    pub const ALL: [Vital; 7] = [
        Vital::Spo2,
        Vital::PulseRate,
        Vital::PerfusionIndex,
        Vital::Systolic,
        Vital::Diastolic,
        Vital::MeanArterial,
        Vital::RespiratoryRate,
    ];

    /// The name used in config files, the API and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Vital::Spo2 => "spo2",
            Vital::PulseRate => "pulse_rate",
            Vital::PerfusionIndex => "perfusion_index",
            Vital::Systolic => "systolic",
            Vital::Diastolic => "diastolic",
            Vital::MeanArterial => "mean_arterial",
            Vital::RespiratoryRate => "respiratory_rate",
        }
    }

    /// The clinical unit, as shown to a nurse (UCUM spelling is the export's business).
    pub fn unit(self) -> &'static str {
        match self {
            Vital::Spo2 | Vital::PerfusionIndex => "%",
            Vital::PulseRate | Vital::RespiratoryRate => "/min",
            Vital::Systolic | Vital::Diastolic | Vital::MeanArterial => "mmHg",
        }
    }

    /// The range a decoded value must fall in to be physically possible; anything outside is a
    /// decoding fault, never a clinical value.
    pub fn plausible_range(self) -> (f64, f64) {
        match self {
            Vital::Spo2 => (0.0, 100.0),
            Vital::PulseRate => (0.0, 350.0),
            Vital::PerfusionIndex => (0.0, 30.0),
            Vital::Systolic | Vital::Diastolic | Vital::MeanArterial => (0.0, 350.0),
            Vital::RespiratoryRate => (0.0, 150.0),
        }
    }
}

impl fmt::Display for Vital {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Vital {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Vital::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Vital::ALL.iter().map(|v| v.as_str()).collect();
                format!("unknown vital `{s}`, expected one of {}", known.join(", "))
            })
    }
}

/// A device's name in the config (for example `ox1`). Cheap to clone: readings carry it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(Arc<str>);

impl DeviceId {
    pub fn new(id: &str) -> Self {
        DeviceId(Arc::from(id))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Monotonic time on the daemon's clock, as the span since the daemon started.
///
/// Logic (delays, staleness) only ever compares `Mono` values, so tests inject any instant they
/// like and never sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mono(Duration);

impl Mono {
    pub const ZERO: Mono = Mono(Duration::ZERO);

    pub fn from_secs_f64(secs: f64) -> Self {
        Mono(Duration::from_secs_f64(secs.max(0.0)))
    }
    pub fn from_millis(ms: u64) -> Self {
        Mono(Duration::from_millis(ms))
    }
    pub fn since_start(self) -> Duration {
        self.0
    }
    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Mono) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Mono {
    type Output = Mono;
    fn add(self, rhs: Duration) -> Mono {
        Mono(self.0 + rhs)
    }
}

impl Sub<Mono> for Mono {
    type Output = Duration;
    fn sub(self, rhs: Mono) -> Duration {
        self.saturating_since(rhs)
    }
}

/// Why a reading cannot be trusted as a clinical value. A reading with any flag set never
/// raises or clears a physiological alarm; the flags drive technical alarms instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Quality(u8);

impl Quality {
    pub const GOOD: Quality = Quality(0);
    /// Motion or other artefact detected by the device.
    pub const ARTEFACT: Quality = Quality(1);
    /// Perfusion too low for a reliable SpO2.
    pub const LOW_PERFUSION: Quality = Quality(1 << 1);
    /// Sensor off the patient or unplugged.
    pub const SENSOR_OFF: Quality = Quality(1 << 2);
    /// The device is searching for a pulse.
    pub const SEARCHING: Quality = Quality(1 << 3);

    const NAMES: [(Quality, &'static str); 4] = [
        (Quality::ARTEFACT, "artefact"),
        (Quality::LOW_PERFUSION, "low_perfusion"),
        (Quality::SENSOR_OFF, "sensor_off"),
        (Quality::SEARCHING, "searching"),
    ];

    pub fn is_good(self) -> bool {
        self.0 == 0
    }
    pub fn contains(self, other: Quality) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
    pub fn intersects(self, other: Quality) -> bool {
        self.0 & other.0 != 0
    }
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Quality::NAMES
            .into_iter()
            .filter(move |(flag, _)| self.contains(*flag))
            .map(|(_, name)| name)
    }
}

impl std::ops::BitOr for Quality {
    type Output = Quality;
    fn bitor(self, rhs: Quality) -> Quality {
        Quality(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Quality {
    fn bitor_assign(&mut self, rhs: Quality) {
        self.0 |= rhs.0;
    }
}

impl Serialize for Quality {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.names())
    }
}

impl<'de> Deserialize<'de> for Quality {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        let mut quality = Quality::GOOD;
        for name in names {
            let flag = Quality::NAMES
                .iter()
                .find(|(_, n)| *n == name)
                .map(|(f, _)| *f)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown quality flag `{name}`"))
                })?;
            quality |= flag;
        }
        Ok(quality)
    }
}

/// One value of one vital from one device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    pub device: DeviceId,
    pub vital: Vital,
    /// `None` when the device reports the vital as unavailable (for example finger out).
    pub value: Option<f64>,
    pub quality: Quality,
    /// The device's own timestamp, when its protocol carries one.
    pub device_time: Option<DateTime<Utc>>,
    /// When the daemon received it, on the monotonic clock.
    #[serde(skip)]
    pub received: Mono,
    /// When the daemon received it, in UTC.
    pub received_utc: DateTime<Utc>,
}

impl Reading {
    /// A value that may raise or clear a physiological alarm: present, and not flagged.
    pub fn clinical_value(&self) -> Option<f64> {
        if self.quality.is_good() {
            self.value
        } else {
            None
        }
    }
}

/// A device's connection as its transport sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Not yet heard from since the daemon started.
    Connecting,
    Connected,
    /// The port or link went away; the transport is trying to get it back.
    Lost,
    /// Not connected, as expected between measurements: a Bluetooth cuff connects only to send
    /// one. Its silence is judged by the BP schedule (BP overdue), not as a lost link.
    Idle,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::Lost => "lost",
            LinkState::Idle => "idle",
        }
    }
}

/// What a driver sends through its ring to the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceMessage {
    /// Readings taken together, all with one receive time: one oximeter sample, one cuff
    /// measurement. The engine judges them as one, so their order never matters.
    Readings(Vec<Reading>),
    /// Bytes from the device that did not decode (garbage, a bad checksum, a malformed line).
    DecodeError {
        device: DeviceId,
        /// What went wrong, as a metric label (`checksum`, `garbage`, ...).
        kind: &'static str,
        /// Bytes discarded.
        skipped: usize,
        detail: String,
        at: Mono,
    },
    Link {
        device: DeviceId,
        state: LinkState,
        /// Why, for a nurse or a technician (for example the OS error).
        detail: Option<String>,
        at: Mono,
        at_utc: DateTime<Utc>,
    },
}

/// The phases of a dosing session, in the only order they can happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Baseline,
    Infusion,
    Recovery,
    Ended,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::Baseline,
        Phase::Infusion,
        Phase::Recovery,
        Phase::Ended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Baseline => "baseline",
            Phase::Infusion => "infusion",
            Phase::Recovery => "recovery",
            Phase::Ended => "ended",
        }
    }

    /// Whether a session in `self` may move to `next`. Phases only move forward one step, and a
    /// session can be ended from any phase (an aborted session still needs its record closed).
    pub fn can_move_to(self, next: Phase) -> bool {
        matches!(
            (self, next),
            (Phase::Baseline, Phase::Infusion)
                | (Phase::Infusion, Phase::Recovery)
                | (
                    Phase::Baseline | Phase::Infusion | Phase::Recovery,
                    Phase::Ended
                )
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pseudonymous session id: letters, digits, `-` and `_`, at most 64 characters. The
/// restriction keeps free text (and so names) out of ids that end up in logs and exports.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SessionId(Arc<str>);

impl SessionId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(id: &str) -> Result<Self, String> {
        if id.is_empty() || id.len() > Self::MAX_LEN {
            return Err(format!(
                "session id must be 1 to {} characters, got {}",
                Self::MAX_LEN,
                id.len()
            ));
        }
        if let Some(bad) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "session id may hold only letters, digits, `-` and `_` (pseudonymous, never a name); found {bad:?}"
            ));
        }
        Ok(SessionId(Arc::from(id)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One patient's dosing session as the daemon tracks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: SessionId,
    pub phase: Phase,
    pub started: Mono,
    pub started_utc: DateTime<Utc>,
    pub phase_since: Mono,
    pub phase_since_utc: DateTime<Utc>,
    /// When the infusion phase began, if it has.
    pub infusion_started_utc: Option<DateTime<Utc>>,
    /// When the infusion phase ended (recovery, or the session ended during the infusion).
    pub infusion_stopped_utc: Option<DateTime<Utc>>,
}

impl Session {
    pub fn start(id: SessionId, now: Mono, now_utc: DateTime<Utc>) -> Self {
        Session {
            id,
            phase: Phase::Baseline,
            started: now,
            started_utc: now_utc,
            phase_since: now,
            phase_since_utc: now_utc,
            infusion_started_utc: None,
            infusion_stopped_utc: None,
        }
    }

    /// Moves to `next`, or says why the move is impossible.
    pub fn move_to(
        &mut self,
        next: Phase,
        now: Mono,
        now_utc: DateTime<Utc>,
    ) -> Result<(), String> {
        if !self.phase.can_move_to(next) {
            return Err(format!(
                "cannot move the session from {} to {}: phases go baseline → infusion → recovery → ended",
                self.phase, next
            ));
        }
        if self.phase == Phase::Infusion {
            self.infusion_stopped_utc = Some(now_utc);
        }
        self.phase = next;
        self.phase_since = now;
        self.phase_since_utc = now_utc;
        if next == Phase::Infusion {
            self.infusion_started_utc = Some(now_utc);
        }
        Ok(())
    }

    /// Whether the session is running (alarms armed): any phase but ended.
    pub fn is_active(&self) -> bool {
        self.phase != Phase::Ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_only_move_forward() {
        assert!(Phase::Baseline.can_move_to(Phase::Infusion));
        assert!(Phase::Infusion.can_move_to(Phase::Recovery));
        assert!(Phase::Recovery.can_move_to(Phase::Ended));
        assert!(Phase::Baseline.can_move_to(Phase::Ended));
        assert!(!Phase::Infusion.can_move_to(Phase::Baseline));
        assert!(!Phase::Baseline.can_move_to(Phase::Recovery));
        assert!(!Phase::Ended.can_move_to(Phase::Baseline));
        assert!(!Phase::Infusion.can_move_to(Phase::Infusion));
        // The session itself refuses to go back: a rule armed for the infusion stays armed.
        let t0 = Utc::now();
        let mut session = Session::start(SessionId::parse("KAP-1").unwrap(), Mono::ZERO, t0);
        session.move_to(Phase::Infusion, Mono::ZERO, t0).unwrap();
        let refused = session
            .move_to(Phase::Baseline, Mono::ZERO, t0)
            .unwrap_err();
        assert!(
            refused.contains("cannot move the session from infusion to baseline"),
            "{refused}"
        );
        assert_eq!(session.phase, Phase::Infusion);
    }

    #[test]
    fn a_session_records_when_its_infusion_started_and_stopped() {
        let t0 = Utc::now();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let mut session = Session::start(SessionId::parse("KAP-1").unwrap(), Mono::ZERO, t0);
        session
            .move_to(Phase::Infusion, Mono::from_millis(600_000), at(600))
            .unwrap();
        assert_eq!(session.infusion_started_utc, Some(at(600)));
        assert_eq!(session.infusion_stopped_utc, None);
        session
            .move_to(Phase::Recovery, Mono::from_millis(3_000_000), at(3000))
            .unwrap();
        assert_eq!(session.infusion_stopped_utc, Some(at(3000)));
        session
            .move_to(Phase::Ended, Mono::from_millis(9_000_000), at(9000))
            .unwrap();
        assert_eq!(session.infusion_stopped_utc, Some(at(3000)));
    }

    #[test]
    fn session_ids_refuse_free_text() {
        assert!(SessionId::parse("KAP-2026-0042").is_ok());
        assert!(SessionId::parse("Jane Doe").is_err());
        assert!(SessionId::parse("").is_err());
        assert!(SessionId::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn quality_serialises_as_flag_names() {
        let q = Quality::SENSOR_OFF | Quality::ARTEFACT;
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(json, r#"["artefact","sensor_off"]"#);
        let back: Quality = serde_json::from_str(&json).unwrap();
        assert_eq!(back, q);
        assert!(serde_json::from_str::<Quality>(r#"["wet"]"#).is_err());
    }

    #[test]
    fn flagged_readings_have_no_clinical_value() {
        let mut r = Reading {
            device: DeviceId::new("ox1"),
            vital: Vital::Spo2,
            value: Some(80.0),
            quality: Quality::ARTEFACT,
            device_time: None,
            received: Mono::ZERO,
            received_utc: Utc::now(),
        };
        assert_eq!(r.clinical_value(), None);
        r.quality = Quality::GOOD;
        assert_eq!(r.clinical_value(), Some(80.0));
    }
}
