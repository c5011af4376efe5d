//! Replay: a scenario played through the pure alarm engine in virtual time, as fast as the CPU
//! allows, giving the alarm timeline a session would have had.
//!
//! The patient is the scenario; the devices are one simulated oximeter (`ox1`, a sample every
//! second, silent after 10 s) and one cuff (`cuff1`, a measurement every 300 s), as in the
//! default config. Their samples go to the engine in time order (`Engine::observe_measurement`
//! per measurement, `Engine::link` per link message), the engine ticks every second, and the
//! session moves through the phases of the scenario's `[session]` table at their times, until
//! the scenario's `duration_s`. Nothing sleeps and nothing reads a clock, so the same scenario
//! and rules give the same timeline every time: that is what makes two rule files comparable.
//!
//! At one instant, a phase change comes first, then the oximeter's sample, then the cuff's,
//! then the tick (so the cuff reading at the moment the infusion starts is judged as an
//! infusion reading).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::acquire::scenario::{Role, Scenario};
use crate::acquire::sim::SimulatedDevice;
use crate::engine::{
    AlarmId, AlarmKind, AlarmSource, AlarmTransition, Change, DeviceSpec, Engine, Priority, RuleSet,
};
use crate::recorder::{EventDetail, SessionSummary, Store};
use crate::vitals::{DeviceId, DeviceMessage, LinkState, Mono, Phase, Reading, Vital};

/// The replayed oximeter's id.
pub const OXIMETER: &str = "ox1";
/// The replayed cuff's id.
pub const CUFF: &str = "cuff1";
/// The oximeter reports every second and is silent after 10 s without data (its profile).
const OXIMETER_INTERVAL: Duration = Duration::from_secs(1);
const OXIMETER_SILENT_AFTER: Duration = Duration::from_secs(10);
/// One cuff measurement every 5 minutes, as in the default config.
const CUFF_INTERVAL: Duration = Duration::from_secs(300);
/// The engine task's tick.
const TICK: Duration = Duration::from_secs(1);

/// Why a scenario cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(
        "scenario `{0}` has no duration_s: replay needs to know when to stop (add `duration_s = SECONDS` at the top of the scenario file)"
    )]
    NoDuration(String),
    #[error("{0}")]
    Store(#[from] crate::recorder::StoreError),
}

/// One alarm transition of a replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Time since the scenario's start.
    pub at: Duration,
    pub change: Change,
    pub alarm: AlarmId,
    pub kind: AlarmKind,
    /// The alarm's priority after the change.
    pub priority: Priority,
    /// The rule or technical condition behind it.
    pub source: AlarmSource,
    pub device: DeviceId,
    pub value: Option<f64>,
    pub limit: Option<f64>,
    pub advice: Option<String>,
    pub message: String,
}

impl Entry {
    fn of(transition: AlarmTransition) -> Self {
        let alarm = transition.alarm;
        Entry {
            at: transition.at.since_start(),
            change: transition.change,
            alarm: alarm.id,
            kind: alarm.kind,
            priority: alarm.priority,
            source: alarm.source,
            device: alarm.device,
            value: alarm.value,
            limit: alarm.limit,
            advice: alarm.advice,
            message: alarm.message,
        }
    }

    /// The rule id or the technical condition's name.
    pub fn source_name(&self) -> &str {
        source_name(&self.source)
    }
}

fn source_name(source: &AlarmSource) -> &str {
    match source {
        AlarmSource::Rule { rule } => rule,
        AlarmSource::Technical { condition } => condition.as_str(),
    }
}

/// The word a timeline line uses for a change.
pub fn change_name(change: &Change) -> &'static str {
    match change {
        Change::Raised => "raised",
        Change::Escalated { .. } => "escalated",
        // The condition ended, the alarm stays until acknowledged.
        Change::ConditionEnded => "latched",
        Change::ConditionReturned => "returned",
        Change::Acknowledged { .. } => "acked",
        Change::AudioPaused { .. } => "paused",
        Change::AudioResumed => "resumed",
        Change::AdviceChanged => "advice",
        Change::Ended => "ended",
    }
}

/// The alarms of one rule or technical condition over a replay.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// The rule id or the technical condition's name.
    pub source: String,
    pub kind: AlarmKind,
    /// Alarms by the highest priority they reached (one escalated from medium to high counts
    /// once, as high).
    pub low: usize,
    pub medium: usize,
    pub high: usize,
    /// How long at least one of its alarms was active (latched included); an alarm still
    /// active at the end counts up to the end.
    pub time_in_alarm: Duration,
}

/// A replay's alarm timeline and its summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub scenario: String,
    pub description: String,
    pub duration: Duration,
    /// The phase changes played, baseline at 0 first.
    pub phases: Vec<(Duration, Phase)>,
    pub entries: Vec<Entry>,
    /// One row per rule or condition that alarmed: physiological first, then by name.
    pub summary: Vec<SummaryRow>,
}

impl Timeline {
    /// The printed timeline (the same as `to_string`).
    pub fn render(&self) -> String {
        self.to_string()
    }

    /// The number of alarms raised.
    pub fn alarm_count(&self) -> usize {
        self.summary.iter().map(|r| r.low + r.medium + r.high).sum()
    }
}

/// Plays `scenario` through an engine with `rules`; see the module documentation.
pub fn replay(scenario: Arc<Scenario>, rules: RuleSet) -> Result<Timeline, ReplayError> {
    let duration_s = scenario
        .duration_s
        .ok_or_else(|| ReplayError::NoDuration(scenario.name.clone()))?;
    let end = Mono::from_secs_f64(duration_s);
    let devices = [
        (
            SimulatedDevice {
                id: DeviceId::new(OXIMETER),
                role: Role::Oximeter,
                scenario: scenario.clone(),
                interval: OXIMETER_INTERVAL,
            },
            DeviceSpec {
                id: DeviceId::new(OXIMETER),
                silent_after: Some(OXIMETER_SILENT_AFTER),
                measures_bp: false,
            },
        ),
        (
            SimulatedDevice {
                id: DeviceId::new(CUFF),
                role: Role::BpCuff,
                scenario: scenario.clone(),
                interval: CUFF_INTERVAL,
            },
            DeviceSpec {
                id: DeviceId::new(CUFF),
                silent_after: None,
                measures_bp: true,
            },
        ),
    ];
    let specs: Vec<DeviceSpec> = devices.iter().map(|(_, spec)| spec.clone()).collect();
    let mut engine = Engine::new(rules, &specs, Mono::ZERO);
    let phases: Vec<(Mono, Phase)> = scenario
        .session
        .phase_changes()
        .into_iter()
        .map(|(at, phase)| (Mono::from_secs_f64(at), phase))
        .filter(|(at, _)| *at <= end)
        .collect();

    let mut next_phase = 0;
    let mut next_sample = [0u64; 2];
    let mut link_up = [false; 2];
    let mut next_tick = 0u64;
    let mut transitions: Vec<AlarmTransition> = Vec::new();
    loop {
        // The next event; at one instant the order is phase, oximeter, cuff, tick.
        let phase_at = phases.get(next_phase).map(|(at, _)| *at);
        let sample_at = |device: usize| {
            let interval = devices[device].0.interval;
            Mono::ZERO + times(interval, next_sample[device])
        };
        let tick_at = Mono::ZERO + times(TICK, next_tick);
        let candidates = [
            phase_at,
            Some(sample_at(0)),
            Some(sample_at(1)),
            Some(tick_at),
        ];
        let Some((event, now)) = candidates
            .iter()
            .enumerate()
            .filter_map(|(event, at)| at.map(|at| (event, at)))
            .min_by_key(|(event, at)| (*at, *event))
        else {
            break;
        };
        if now > end {
            break;
        }
        match event {
            0 => {
                let phase = phases[next_phase].1;
                next_phase += 1;
                let active = (phase != Phase::Ended).then_some(phase);
                transitions.extend(engine.set_phase(active, now));
            }
            1 | 2 => {
                let device = event - 1;
                let index = next_sample[device];
                next_sample[device] += 1;
                let messages =
                    devices[device]
                        .0
                        .messages_at(index, link_up[device], now, utc_at(now));
                for message in messages {
                    if let DeviceMessage::Link { state, .. } = &message {
                        link_up[device] = *state == LinkState::Connected;
                    }
                    transitions.extend(engine.accept(&message, now));
                }
            }
            _ => {
                next_tick += 1;
                transitions.extend(engine.tick(now));
            }
        }
    }

    let entries: Vec<Entry> = transitions.into_iter().map(Entry::of).collect();
    let duration = end.since_start();
    let summary = summarise(&entries, duration);
    Ok(Timeline {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        duration,
        phases: phases
            .into_iter()
            .map(|(at, phase)| (at.since_start(), phase))
            .collect(),
        entries,
        summary,
    })
}

/// Plays a recorded session through an engine with `rules`: its readings in the order they
/// were received (those received together as one measurement), its link changes, its phase
/// changes at their recorded times, and a tick every second, from its start to its end (or
/// its last record, for a session still open). The same record and rules give the same
/// timeline; under other rules, the timeline that session would have had.
pub fn replay_recorded(
    store: &Store,
    session: &SessionSummary,
    rules: RuleSet,
) -> Result<Timeline, ReplayError> {
    let start = session.started;
    let mono = |at: DateTime<Utc>| Mono::ZERO + (at - start).to_std().unwrap_or(Duration::ZERO);
    // First pass: which devices there are, and which measure blood pressure (a cuff's silence
    // between measurements is BP overdue, not device silence).
    let mut bp_devices: BTreeMap<DeviceId, bool> = BTreeMap::new();
    let mut last = start;
    store.readings(session.key, |reading| -> Result<(), ReplayError> {
        *bp_devices.entry(reading.device.clone()).or_default() |= reading.vital == Vital::Systolic;
        last = last.max(reading.received);
        Ok(())
    })?;
    let events = store.events(session.key)?;
    if let Some(event) = events.last() {
        last = last.max(event.at);
    }
    let end = mono(session.ended.unwrap_or(last));
    let specs: Vec<DeviceSpec> = bp_devices
        .iter()
        .map(|(id, bp)| DeviceSpec {
            id: id.clone(),
            silent_after: (!bp).then_some(OXIMETER_SILENT_AFTER),
            measures_bp: *bp,
        })
        .collect();
    let mut engine = Engine::new(rules, &specs, Mono::ZERO);
    // Phase changes and link changes, in time order.
    let mut timed: Vec<(Mono, DeviceMessageOrPhase)> = Vec::new();
    for phase in &session.phases {
        timed.push((mono(phase.at), DeviceMessageOrPhase::Phase(phase.phase)));
    }
    for event in &events {
        if let EventDetail::Link {
            device,
            state,
            detail,
        } = &event.what
        {
            let at = mono(event.at);
            timed.push((
                at,
                DeviceMessageOrPhase::Message(DeviceMessage::Link {
                    device: device.clone(),
                    state: *state,
                    detail: detail.clone(),
                    at,
                    at_utc: event.at,
                }),
            ));
        }
    }
    timed.sort_by_key(|(at, _)| *at);

    let mut player = RecordPlayer {
        engine: &mut engine,
        timed: timed.into_iter().peekable(),
        next_tick: 0,
        transitions: Vec::new(),
        measurement: Vec::new(),
    };
    store.readings(session.key, |stored| -> Result<(), ReplayError> {
        let at = mono(stored.received);
        let reading = Reading {
            device: stored.device,
            vital: stored.vital,
            value: stored.value,
            quality: stored.quality,
            device_time: stored.device_time,
            received: at,
            received_utc: stored.received,
        };
        let same = player
            .measurement
            .first()
            .is_some_and(|first: &Reading| first.received == at && first.device == reading.device);
        if !same {
            player.flush();
        }
        player.until(at);
        player.measurement.push(reading);
        Ok(())
    })?;
    player.flush();
    player.until(end + Duration::from_nanos(1));
    let transitions = std::mem::take(&mut player.transitions);

    let entries: Vec<Entry> = transitions.into_iter().map(Entry::of).collect();
    let duration = end.since_start();
    let summary = summarise(&entries, duration);
    Ok(Timeline {
        scenario: session.id.to_string(),
        description: format!(
            "recorded session {} (started {})",
            session.id,
            start.to_rfc3339()
        ),
        duration,
        phases: session
            .phases
            .iter()
            .map(|p| (mono(p.at).since_start(), p.phase))
            .collect(),
        entries,
        summary,
    })
}

enum DeviceMessageOrPhase {
    Phase(Phase),
    Message(DeviceMessage),
}

/// Feeds a recorded session to the engine: timed events and ticks up to each measurement.
struct RecordPlayer<'a, I: Iterator<Item = (Mono, DeviceMessageOrPhase)>> {
    engine: &'a mut Engine,
    timed: std::iter::Peekable<I>,
    next_tick: u64,
    transitions: Vec<AlarmTransition>,
    measurement: Vec<Reading>,
}

impl<I: Iterator<Item = (Mono, DeviceMessageOrPhase)>> RecordPlayer<'_, I> {
    /// Plays phase and link changes at or before `at`, and ticks before it, in time order.
    fn until(&mut self, at: Mono) {
        loop {
            let tick_at = Mono::ZERO + times(TICK, self.next_tick);
            let timed_at = self.timed.peek().map(|(t, _)| *t).filter(|t| *t <= at);
            match timed_at {
                Some(t) if t <= tick_at => {
                    if let Some((t, what)) = self.timed.next() {
                        match what {
                            DeviceMessageOrPhase::Phase(phase) => {
                                let active = (phase != Phase::Ended).then_some(phase);
                                self.transitions.extend(self.engine.set_phase(active, t));
                            }
                            DeviceMessageOrPhase::Message(message) => {
                                self.transitions.extend(self.engine.accept(&message, t));
                            }
                        }
                    }
                }
                _ if tick_at < at => {
                    self.next_tick += 1;
                    self.transitions.extend(self.engine.tick(tick_at));
                }
                _ => return,
            }
        }
    }

    fn flush(&mut self) {
        if let Some(first) = self.measurement.first() {
            let at = first.received;
            let measurement = std::mem::take(&mut self.measurement);
            self.transitions
                .extend(self.engine.observe_measurement(&measurement, at));
        }
    }
}

/// `interval × index`, exactly (no floating point), saturating.
fn times(interval: Duration, index: u64) -> Duration {
    let nanos = interval.as_nanos().saturating_mul(u128::from(index));
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder is below 10^9, so it fits.
    let subsec = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Duration::new(secs, subsec)
}

/// Replay's UTC: a fixed origin, so a replay's readings are the same every time.
fn utc_at(t: Mono) -> DateTime<Utc> {
    let elapsed = chrono::Duration::from_std(t.since_start()).unwrap_or(chrono::Duration::MAX);
    DateTime::<Utc>::UNIX_EPOCH
        .checked_add_signed(elapsed)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn summarise(entries: &[Entry], duration: Duration) -> Vec<SummaryRow> {
    /// One alarm's life: its source, highest priority, and when it was active.
    struct Life<'a> {
        source: &'a str,
        kind: AlarmKind,
        highest: Priority,
        raised: Duration,
        ended: Option<Duration>,
    }
    let mut lives: BTreeMap<AlarmId, Life> = BTreeMap::new();
    for entry in entries {
        let life = lives.entry(entry.alarm).or_insert(Life {
            source: entry.source_name(),
            kind: entry.kind,
            highest: entry.priority,
            raised: entry.at,
            ended: None,
        });
        life.highest = life.highest.max(entry.priority);
        if entry.change == Change::Ended {
            life.ended = Some(entry.at);
        }
    }
    // Per rule or condition (physiological first, then by name): its row and its alarms'
    // active spans.
    type Spans = Vec<(Duration, Duration)>;
    let mut rows: BTreeMap<(bool, &str), (SummaryRow, Spans)> = BTreeMap::new();
    for life in lives.values() {
        let (row, spans) = rows
            .entry((life.kind == AlarmKind::Technical, life.source))
            .or_insert_with(|| {
                (
                    SummaryRow {
                        source: life.source.to_string(),
                        kind: life.kind,
                        low: 0,
                        medium: 0,
                        high: 0,
                        time_in_alarm: Duration::ZERO,
                    },
                    Vec::new(),
                )
            });
        match life.highest {
            Priority::Low => row.low += 1,
            Priority::Medium => row.medium += 1,
            Priority::High => row.high += 1,
        }
        spans.push((life.raised, life.ended.unwrap_or(duration)));
    }
    rows.into_values()
        .map(|(mut row, mut spans)| {
            row.time_in_alarm = union_length(&mut spans);
            row
        })
        .collect()
}

/// The total length covered by `spans` (overlaps counted once).
fn union_length(spans: &mut [(Duration, Duration)]) -> Duration {
    spans.sort();
    let mut total = Duration::ZERO;
    let mut current: Option<(Duration, Duration)> = None;
    for &(start, end) in spans.iter() {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e.saturating_sub(s);
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((s, e)) = current {
        total += e.saturating_sub(s);
    }
    total
}

/// `HH:MM:SS`, with milliseconds only when there are some.
pub fn format_time(at: Duration) -> String {
    let secs = at.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match at.subsec_millis() {
        0 => format!("{h:02}:{m:02}:{s:02}"),
        ms => format!("{h:02}:{m:02}:{s:02}.{ms:03}"),
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}  {:<10} {:<7} {:<19} {:<6} {}",
            format_time(self.at),
            change_name(&self.change),
            self.priority.as_str(),
            self.source_name(),
            self.device.as_str(),
            self.message
        )?;
        if let Change::Escalated { from } = &self.change {
            write!(f, " (from {from})")?;
        }
        match (&self.advice, &self.change) {
            (Some(advice), _) => write!(f, "  advice: {advice}"),
            (None, Change::AdviceChanged) => write!(f, "  advice: none"),
            (None, _) => Ok(()),
        }
    }
}

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "replay of {}: {}", self.scenario, self.description)?;
        // Phase changes and alarm transitions in time order; a phase change first at one
        // instant, as it was played.
        let mut phases = self.phases.iter().peekable();
        for entry in &self.entries {
            while let Some((at, phase)) = phases.next_if(|(at, _)| *at <= entry.at) {
                writeln!(f, "{}  phase      {phase}", format_time(*at))?;
            }
            writeln!(f, "{entry}")?;
        }
        for (at, phase) in phases {
            writeln!(f, "{}  phase      {phase}", format_time(*at))?;
        }
        writeln!(f, "{}  end of replay", format_time(self.duration))?;
        writeln!(f)?;
        let count = self.alarm_count();
        writeln!(
            f,
            "summary: {count} alarm{} in {}",
            if count == 1 { "" } else { "s" },
            format_time(self.duration)
        )?;
        if self.summary.is_empty() {
            return Ok(());
        }
        writeln!(
            f,
            "  {:<22} {:<14} {:>4} {:>7} {:>5}  time in alarm",
            "rule or condition", "kind", "low", "medium", "high"
        )?;
        for row in &self.summary {
            writeln!(
                f,
                "  {:<22} {:<14} {:>4} {:>7} {:>5}  {}",
                row.source,
                row.kind.as_str(),
                row.low,
                row.medium,
                row.high,
                format_time(row.time_in_alarm)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_RULES, Source, load_scenario, parse_rule_set};

    fn rules() -> RuleSet {
        parse_rule_set(&Source::built_in("default", DEFAULT_RULES)).unwrap()
    }

    fn scenario(text: &str) -> Arc<Scenario> {
        Arc::new(Scenario::parse("test", &Source::built_in("test", text)).unwrap())
    }

    #[test]
    fn every_built_in_scenario_replays_the_same_way_twice() {
        let source = Source::built_in("t", "");
        for name in crate::config::built_in_scenarios() {
            let scenario = Arc::new(load_scenario(&source, name).unwrap());
            let first = replay(scenario.clone(), rules()).unwrap();
            let second = replay(scenario, rules()).unwrap();
            assert_eq!(first, second, "{name}");
            assert_eq!(first.render(), second.render(), "{name}");
        }
    }

    #[test]
    fn a_scenario_without_duration_is_refused() {
        let s = scenario("description = \"t\"\n[baseline]\nspo2 = { value = 97 }\n");
        assert!(matches!(
            replay(s, rules()).unwrap_err(),
            ReplayError::NoDuration(name) if name == "test"
        ));
    }

    #[test]
    fn the_session_moves_through_its_phases_and_alarms_end_with_it() {
        // SpO2 82 % from 100 s to the end; the session ends at 200 s.
        let s = scenario(
            "description = \"t\"\nduration_s = 300\n[session]\ninfusion_s = 50\nended_s = 200\n\
             [baseline]\nspo2 = { value = 97 }\n[[step]]\nat_s = 100\ndip = { vital = \"spo2\", to = 82, for_s = 1000 }\n",
        );
        let timeline = replay(s, rules()).unwrap();
        assert_eq!(
            timeline.phases,
            [
                (Duration::ZERO, Phase::Baseline),
                (Duration::from_secs(50), Phase::Infusion),
                (Duration::from_secs(200), Phase::Ended)
            ]
        );
        let found: Vec<(u64, &str, Priority, &str)> = timeline
            .entries
            .iter()
            .map(|e| {
                (
                    e.at.as_secs(),
                    change_name(&e.change),
                    e.priority,
                    e.source_name(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (100, "raised", Priority::High, "spo2_critical"),
                // spo2_low's condition delay is 15 s.
                (115, "raised", Priority::Medium, "spo2_low"),
                // The session ends: every alarm ends with it (in the rule file's order).
                (200, "ended", Priority::Medium, "spo2_low"),
                (200, "ended", Priority::High, "spo2_critical"),
            ]
        );
        // The scenario scripts no blood pressure, so the cuff never measures; its overdue
        // alarm would come at 50 + 600 + 120 s, after the session ended.
        assert_eq!(timeline.summary.len(), 2);
    }

    #[test]
    fn the_summary_counts_alarms_by_highest_priority_and_time_until_the_end() {
        let entry = |at: u64, change: Change, id: u64, priority: Priority, rule: &str| Entry {
            at: Duration::from_secs(at),
            change,
            alarm: AlarmId(id),
            kind: AlarmKind::Physiological,
            priority,
            source: AlarmSource::Rule { rule: rule.into() },
            device: DeviceId::new("cuff1"),
            value: None,
            limit: None,
            advice: None,
            message: String::new(),
        };
        let entries = [
            entry(100, Change::Raised, 1, Priority::Medium, "bp_high"),
            entry(
                400,
                Change::Escalated {
                    from: Priority::Medium,
                },
                1,
                Priority::High,
                "bp_high",
            ),
            entry(700, Change::Ended, 1, Priority::High, "bp_high"),
            // Overlaps the first one from 600 to 700: counted once.
            entry(600, Change::Raised, 2, Priority::Medium, "bp_high"),
            entry(800, Change::Ended, 2, Priority::Medium, "bp_high"),
            // Still active at the end (1000 s).
            entry(900, Change::Raised, 3, Priority::Low, "bp_rise"),
        ];
        let rows = summarise(&entries, Duration::from_secs(1000));
        assert_eq!(
            rows,
            [
                SummaryRow {
                    source: "bp_high".into(),
                    kind: AlarmKind::Physiological,
                    low: 0,
                    medium: 1,
                    high: 1,
                    time_in_alarm: Duration::from_secs(700),
                },
                SummaryRow {
                    source: "bp_rise".into(),
                    kind: AlarmKind::Physiological,
                    low: 1,
                    medium: 0,
                    high: 0,
                    time_in_alarm: Duration::from_secs(100),
                }
            ]
        );
    }

    #[test]
    fn times_are_hours_minutes_seconds() {
        assert_eq!(format_time(Duration::from_secs(915)), "00:15:15");
        assert_eq!(format_time(Duration::from_secs(14_400)), "04:00:00");
        assert_eq!(format_time(Duration::from_millis(600_500)), "00:10:00.500");
        assert_eq!(
            times(Duration::from_secs(300), 48),
            Duration::from_secs(14_400)
        );
        assert_eq!(
            times(Duration::from_millis(1500), 3),
            Duration::from_millis(4500)
        );
    }
}
