//! The pure alarm engine: readings and time in, alarm transitions out.
//!
//! No I/O, no clock, no async: every call takes `now`, so tests drive it through any timeline
//! in virtual time, and replay runs a recorded session as fast as the CPU allows. The engine task
//! (`engine::task`) is the thin shell that feeds it.
//!
//! Physiological alarms are armed only while a session is active and in a phase the rule names;
//! technical alarms (device silent or disconnected, sensor off, poor signal, ring overflow) are
//! armed for the whole of an active session, so an idle box between patients stays quiet.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::rules::{Priority, Rule};
use crate::vitals::{DeviceId, LinkState, Mono, Phase, Quality, Reading, Vital};

/// Unique for the daemon's lifetime; the panel and API refer to alarms by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AlarmId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    Physiological,
    Technical,
}

/// The technical conditions the engine watches for each device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TechnicalCondition {
    /// Nothing at all received for the device's silence limit.
    DeviceSilent,
    /// The transport lost the port or link.
    Disconnected,
    /// Readings flagged sensor off or searching.
    SensorOff,
    /// Readings flagged artefact or low perfusion.
    PoorSignal,
    /// The device's ring buffer was full and readings were dropped.
    RingOverflow,
}

impl TechnicalCondition {
    pub const ALL: [TechnicalCondition; 5] = [
        TechnicalCondition::DeviceSilent,
        TechnicalCondition::Disconnected,
        TechnicalCondition::SensorOff,
        TechnicalCondition::PoorSignal,
        TechnicalCondition::RingOverflow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TechnicalCondition::DeviceSilent => "device_silent",
            TechnicalCondition::Disconnected => "device_disconnected",
            TechnicalCondition::SensorOff => "sensor_off",
            TechnicalCondition::PoorSignal => "poor_signal",
            TechnicalCondition::RingOverflow => "ring_overflow",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Priority and condition delay, from the technical-alarm table of `clinical.md`. The
    /// silence delay is per device and comes from its config instead.
    fn defaults(self) -> (Priority, Duration) {
        match self {
            TechnicalCondition::DeviceSilent => (Priority::Medium, Duration::ZERO),
            TechnicalCondition::Disconnected => (Priority::Medium, Duration::ZERO),
            TechnicalCondition::SensorOff => (Priority::Medium, Duration::from_secs(10)),
            TechnicalCondition::PoorSignal => (Priority::Low, Duration::from_secs(15)),
            TechnicalCondition::RingOverflow => (Priority::Low, Duration::ZERO),
        }
    }

    fn message(self) -> &'static str {
        match self {
            TechnicalCondition::DeviceSilent => "no data from the device",
            TechnicalCondition::Disconnected => "device disconnected",
            TechnicalCondition::SensorOff => "sensor off or searching",
            TechnicalCondition::PoorSignal => "poor signal: artefact or low perfusion",
            TechnicalCondition::RingOverflow => "readings dropped: ring buffer full",
        }
    }
}

/// Overflow is a burst, not a state: the alarm ends after this long without new drops.
const RING_OVERFLOW_HOLD: Duration = Duration::from_secs(30);

/// What raised an alarm.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum AlarmSource {
    Rule { rule: Arc<str> },
    Technical { condition: TechnicalCondition },
}

/// One alarm instance, as sinks and the status API see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alarm {
    pub id: AlarmId,
    pub kind: AlarmKind,
    #[serde(flatten)]
    pub source: AlarmSource,
    pub priority: Priority,
    pub device: DeviceId,
    pub vital: Option<Vital>,
    /// The value that raised (or last escalated) the alarm.
    pub value: Option<f64>,
    /// The limit it crossed.
    pub limit: Option<f64>,
    pub message: String,
    /// What to consider doing, carried as data (shown prominently while the infusion runs).
    pub advice: Option<String>,
    #[serde(skip)]
    pub raised_at: Mono,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum Change {
    Raised,
    /// The alarm's priority rose (a confirmed crossing).
    Escalated {
        from: Priority,
    },
    Ended,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmTransition {
    #[serde(flatten)]
    pub change: Change,
    pub alarm: Alarm,
    #[serde(skip)]
    pub at: Mono,
}

/// What the engine needs to know of a configured device.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub id: DeviceId,
    /// After this long without any message the device-silent technical alarm is raised.
    pub silent_after: Duration,
}

/// Default silence limit for a device the config did not declare (a continuous oximeter's).
pub const DEFAULT_SILENT_AFTER: Duration = Duration::from_secs(10);

/// Evaluation state of one rule for one device.
#[derive(Debug, Clone, Default)]
struct RuleState {
    /// Per clause: whether it currently holds (hysteresis applied while the alarm is active).
    clause_holds: Vec<bool>,
    /// When the condition began to hold without a break.
    onset: Option<Mono>,
    /// Receive time of the latest clinical reading for this rule.
    last_reading: Option<Mono>,
    /// The value and clause index behind the latest change, for the alarm's text.
    last_value: f64,
    last_clause: usize,
    /// Confirmation bookkeeping: the current and previous measurement (one cuff cycle can
    /// deliver several readings with one receive time) and whether each crossed a limit.
    measurement_at: Option<Mono>,
    measurement_crossed: bool,
    previous_measurement_at: Option<Mono>,
    previous_measurement_crossed: bool,
    confirmed: bool,
    alarm: Option<AlarmId>,
}

#[derive(Debug, Clone, Default)]
struct TechnicalState {
    since: Option<Mono>,
    alarm: Option<AlarmId>,
}

#[derive(Debug)]
pub struct DeviceState {
    pub id: DeviceId,
    pub silent_after: Duration,
    pub link: LinkState,
    pub link_detail: Option<String>,
    /// Latest message of any kind.
    pub last_heard: Option<Mono>,
    /// When the engine started watching it (silence counts from here until first heard).
    watched_since: Mono,
    latest: [Option<Reading>; Vital::ALL.len()],
    rules: Vec<RuleState>,
    technical: [TechnicalState; TechnicalCondition::ALL.len()],
    ring_dropped_seen: u64,
    ring_dropped_at: Option<Mono>,
}

impl DeviceState {
    fn new(spec: &DeviceSpec, rule_count: usize, now: Mono) -> Self {
        DeviceState {
            id: spec.id.clone(),
            silent_after: spec.silent_after,
            link: LinkState::Connecting,
            link_detail: None,
            last_heard: None,
            watched_since: now,
            latest: Default::default(),
            rules: vec![RuleState::default(); rule_count],
            technical: Default::default(),
            ring_dropped_seen: 0,
            ring_dropped_at: None,
        }
    }

    /// The latest reading of each vital this device has sent.
    pub fn latest_readings(&self) -> impl Iterator<Item = &Reading> {
        self.latest.iter().flatten()
    }

    pub fn ring_dropped(&self) -> u64 {
        self.ring_dropped_seen
    }
}

/// The alarm engine's whole state.
pub struct Engine {
    rules: Vec<Rule>,
    /// For each vital (by `Vital as usize`), the rules with a clause on it.
    rules_by_vital: [Vec<usize>; Vital::ALL.len()],
    devices: Vec<DeviceState>,
    device_index: HashMap<DeviceId, usize>,
    alarms: BTreeMap<AlarmId, Alarm>,
    next_alarm: u64,
    /// `None` without an active session.
    phase: Option<Phase>,
    /// Scratch list of the (device, rule) pairs a measurement touched; kept to avoid an
    /// allocation per reading.
    judged: Vec<(usize, usize)>,
}

impl Engine {
    pub fn new(rules: Vec<Rule>, devices: &[DeviceSpec], now: Mono) -> Self {
        let mut rules_by_vital: [Vec<usize>; Vital::ALL.len()] = Default::default();
        for (index, rule) in rules.iter().enumerate() {
            for clause in &rule.clauses {
                let slot = &mut rules_by_vital[clause.vital as usize];
                if !slot.contains(&index) {
                    slot.push(index);
                }
            }
        }
        let mut engine = Engine {
            rules,
            rules_by_vital,
            devices: Vec::new(),
            device_index: HashMap::new(),
            alarms: BTreeMap::new(),
            next_alarm: 1,
            phase: None,
            judged: Vec::new(),
        };
        for spec in devices {
            engine.add_device(spec, now);
        }
        engine
    }

    fn add_device(&mut self, spec: &DeviceSpec, now: Mono) -> usize {
        let mut state = DeviceState::new(spec, self.rules.len(), now);
        for (rule_state, rule) in state.rules.iter_mut().zip(&self.rules) {
            rule_state.clause_holds = vec![false; rule.clauses.len()];
        }
        let index = self.devices.len();
        self.device_index.insert(spec.id.clone(), index);
        self.devices.push(state);
        index
    }

    fn device_slot(&mut self, id: &DeviceId, now: Mono) -> usize {
        match self.device_index.get(id) {
            Some(index) => *index,
            None => self.add_device(
                &DeviceSpec {
                    id: id.clone(),
                    silent_after: DEFAULT_SILENT_AFTER,
                },
                now,
            ),
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn devices(&self) -> &[DeviceState] {
        &self.devices
    }

    pub fn phase(&self) -> Option<Phase> {
        self.phase
    }

    /// Active alarms, oldest first.
    pub fn active_alarms(&self) -> impl Iterator<Item = &Alarm> {
        self.alarms.values()
    }

    /// Feeds one reading received at `now`.
    pub fn observe(&mut self, reading: &Reading, now: Mono) -> Vec<AlarmTransition> {
        self.observe_measurement(std::slice::from_ref(reading), now)
    }

    /// Feeds readings taken together: one oximeter sample, one cuff measurement. Every rule is
    /// judged once on all of them, so the order in which a measurement's readings come never
    /// changes the outcome (a BP alarm confirmed on diastolic alone escalates, it does not end
    /// on the systolic reading and come back as a new alarm).
    pub fn observe_measurement(&mut self, readings: &[Reading], now: Mono) -> Vec<AlarmTransition> {
        let mut out = Vec::new();
        let mut judged = std::mem::take(&mut self.judged);
        judged.clear();
        for reading in readings {
            let slot = self.device_slot(&reading.device, now);
            let device = &mut self.devices[slot];
            device.last_heard = Some(now);
            device.latest[reading.vital as usize] = Some(reading.clone());
            self.observe_quality(
                slot,
                reading.quality,
                reading.value.is_some(),
                now,
                &mut out,
            );
            self.end_technical(slot, TechnicalCondition::DeviceSilent, now, &mut out);

            let Some(phase) = self.phase else { continue };
            let clinical = reading.clinical_value();
            for &rule_index in &self.rules_by_vital[reading.vital as usize] {
                let rule = &self.rules[rule_index];
                if !rule.armed.contains(phase) {
                    continue;
                }
                let state = &mut self.devices[slot].rules[rule_index];
                let Some(value) = clinical else {
                    // No trustworthy value: nothing confirms a pending condition, and nothing
                    // clears an active alarm either.
                    if state.alarm.is_none() {
                        state.onset = None;
                    }
                    continue;
                };
                evaluate_clauses(rule, state, reading.vital, value, reading.received);
                if !judged.contains(&(slot, rule_index)) {
                    judged.push((slot, rule_index));
                }
            }
        }
        for &(slot, rule_index) in &judged {
            conclude_rule(
                &self.rules[rule_index],
                &mut self.devices[slot].rules[rule_index],
                now,
            );
            self.settle_rule(slot, rule_index, now, &mut out);
        }
        self.judged = judged;
        out
    }

    /// A transport reports its link state.
    pub fn link(
        &mut self,
        device: &DeviceId,
        state: LinkState,
        detail: Option<String>,
        now: Mono,
    ) -> Vec<AlarmTransition> {
        let mut out = Vec::new();
        let slot = self.device_slot(device, now);
        let dev = &mut self.devices[slot];
        dev.link = state;
        dev.link_detail = detail;
        dev.last_heard = Some(now);
        let lost = &mut dev.technical[TechnicalCondition::Disconnected.index()];
        match state {
            LinkState::Lost => {
                lost.since.get_or_insert(now);
            }
            LinkState::Connected | LinkState::Connecting => {
                lost.since = None;
                self.end_technical(slot, TechnicalCondition::Disconnected, now, &mut out);
            }
        }
        self.settle_technical(slot, now, &mut out);
        out
    }

    /// The drain loop reports the device ring's drop counter (a running total).
    pub fn ring_dropped(
        &mut self,
        device: &DeviceId,
        total: u64,
        now: Mono,
    ) -> Vec<AlarmTransition> {
        let mut out = Vec::new();
        let slot = self.device_slot(device, now);
        let dev = &mut self.devices[slot];
        if total > dev.ring_dropped_seen {
            dev.ring_dropped_seen = total;
            dev.ring_dropped_at = Some(now);
            dev.technical[TechnicalCondition::RingOverflow.index()]
                .since
                .get_or_insert(now);
            self.settle_technical(slot, now, &mut out);
        }
        out
    }

    /// Moves to a session phase (`None`: no active session). Rules that the new phase disarms
    /// end their alarms and forget their pending conditions.
    pub fn set_phase(&mut self, phase: Option<Phase>, now: Mono) -> Vec<AlarmTransition> {
        let phase = phase.filter(|p| *p != Phase::Ended);
        let mut out = Vec::new();
        self.phase = phase;
        for slot in 0..self.devices.len() {
            for rule_index in 0..self.rules.len() {
                let armed = phase.is_some_and(|p| self.rules[rule_index].armed.contains(p));
                if !armed {
                    let state = &mut self.devices[slot].rules[rule_index];
                    let alarm = state.alarm.take();
                    let clauses = state.clause_holds.len();
                    *state = RuleState {
                        clause_holds: vec![false; clauses],
                        ..RuleState::default()
                    };
                    if let Some(id) = alarm {
                        self.end_alarm(id, now, &mut out);
                    }
                }
            }
            if phase.is_none() {
                for condition in TechnicalCondition::ALL {
                    self.end_technical(slot, condition, now, &mut out);
                }
            }
        }
        // Conditions that began before the session (a sensor already off) count from their start.
        out.extend(self.tick(now));
        out
    }

    /// Advances time: raises alarms whose condition delay has passed and technical alarms for
    /// silence; ends overflow alarms after a quiet spell.
    pub fn tick(&mut self, now: Mono) -> Vec<AlarmTransition> {
        let mut out = Vec::new();
        for slot in 0..self.devices.len() {
            let dev = &mut self.devices[slot];
            let heard = dev.last_heard.unwrap_or(dev.watched_since);
            let silent = &mut dev.technical[TechnicalCondition::DeviceSilent.index()];
            if now.saturating_since(heard) >= dev.silent_after {
                silent.since.get_or_insert(heard + dev.silent_after);
            } else {
                silent.since = None;
            }
            if let Some(at) = dev.ring_dropped_at
                && now.saturating_since(at) >= RING_OVERFLOW_HOLD
            {
                dev.ring_dropped_at = None;
                dev.technical[TechnicalCondition::RingOverflow.index()].since = None;
                self.end_technical(slot, TechnicalCondition::RingOverflow, now, &mut out);
            }
            self.settle_technical(slot, now, &mut out);

            if let Some(phase) = self.phase {
                let silent_after = self.devices[slot].silent_after;
                for rule_index in 0..self.rules.len() {
                    if !self.rules[rule_index].armed.contains(phase) {
                        continue;
                    }
                    let state = &self.devices[slot].rules[rule_index];
                    // A pending condition is only raised on fresh data: a device that went
                    // quiet is the silence alarm's business, not a reason to alarm on an old value.
                    let fresh = state
                        .last_reading
                        .is_some_and(|at| now.saturating_since(at) <= silent_after);
                    if state.alarm.is_none() && state.onset.is_some() && fresh {
                        self.settle_rule(slot, rule_index, now, &mut out);
                    }
                }
            }
        }
        out
    }

    fn observe_quality(
        &mut self,
        slot: usize,
        quality: Quality,
        has_value: bool,
        now: Mono,
        out: &mut Vec<AlarmTransition>,
    ) {
        let sensor_off = quality.intersects(Quality::SENSOR_OFF | Quality::SEARCHING);
        let poor = quality.intersects(Quality::ARTEFACT | Quality::LOW_PERFUSION);
        let good = quality.is_good() && has_value;
        let dev = &mut self.devices[slot];
        for (condition, flagged) in [
            (TechnicalCondition::SensorOff, sensor_off),
            (TechnicalCondition::PoorSignal, poor),
        ] {
            let state = &mut dev.technical[condition.index()];
            if flagged {
                state.since.get_or_insert(now);
            } else if good {
                state.since = None;
            }
        }
        if good {
            for condition in [
                TechnicalCondition::SensorOff,
                TechnicalCondition::PoorSignal,
            ] {
                self.end_technical(slot, condition, now, out);
            }
        }
        self.settle_technical(slot, now, out);
    }

    /// Raises technical alarms whose condition has lasted its delay (only in a session).
    fn settle_technical(&mut self, slot: usize, now: Mono, out: &mut Vec<AlarmTransition>) {
        if self.phase.is_none() {
            return;
        }
        let disconnected = self.devices[slot].technical[TechnicalCondition::Disconnected.index()]
            .since
            .is_some();
        for condition in TechnicalCondition::ALL {
            // A lost link is the cause of the silence: one alarm for one condition.
            if condition == TechnicalCondition::DeviceSilent && disconnected {
                continue;
            }
            let (priority, delay) = condition.defaults();
            let dev = &self.devices[slot];
            let state = &dev.technical[condition.index()];
            let Some(since) = state.since else { continue };
            if state.alarm.is_some() || now.saturating_since(since) < delay {
                continue;
            }
            let device = dev.id.clone();
            let id = self.raise(
                Alarm {
                    id: AlarmId(0),
                    kind: AlarmKind::Technical,
                    source: AlarmSource::Technical { condition },
                    priority,
                    device: device.clone(),
                    vital: None,
                    value: None,
                    limit: None,
                    message: format!("{device}: {}", condition.message()),
                    advice: None,
                    raised_at: now,
                },
                now,
                out,
            );
            self.devices[slot].technical[condition.index()].alarm = Some(id);
        }
        if disconnected {
            self.end_technical(slot, TechnicalCondition::DeviceSilent, now, out);
        }
    }

    fn end_technical(
        &mut self,
        slot: usize,
        condition: TechnicalCondition,
        now: Mono,
        out: &mut Vec<AlarmTransition>,
    ) {
        let state = &mut self.devices[slot].technical[condition.index()];
        if condition == TechnicalCondition::DeviceSilent {
            state.since = None;
        }
        if let Some(id) = state.alarm.take() {
            self.end_alarm(id, now, out);
        }
    }

    /// Applies a rule's evaluated state: raise, escalate or end its alarm.
    fn settle_rule(
        &mut self,
        slot: usize,
        rule_index: usize,
        now: Mono,
        out: &mut Vec<AlarmTransition>,
    ) {
        let rule = &self.rules[rule_index];
        let device = self.devices[slot].id.clone();
        let state = &self.devices[slot].rules[rule_index];
        let holds = state.clause_holds.iter().any(|h| *h);
        let clause = &rule.clauses[state.last_clause];
        let value = state.last_value;

        match (state.alarm, holds) {
            (Some(id), false) => {
                self.devices[slot].rules[rule_index].alarm = None;
                self.end_alarm(id, now, out);
            }
            (None, true) => {
                let Some(onset) = state.onset else { return };
                if now.saturating_since(onset) < rule.delay {
                    return;
                }
                let confirmed = state.confirmed;
                let (priority, advice) = self.rule_priority_and_advice(rule, confirmed);
                let alarm = Alarm {
                    id: AlarmId(0),
                    kind: AlarmKind::Physiological,
                    source: AlarmSource::Rule {
                        rule: rule.id.clone(),
                    },
                    priority,
                    device: device.clone(),
                    vital: Some(clause.vital),
                    value: Some(value),
                    limit: Some(clause.limit),
                    message: describe(rule, clause, value, confirmed),
                    advice,
                    raised_at: now,
                };
                let id = self.raise(alarm, now, out);
                self.devices[slot].rules[rule_index].alarm = Some(id);
            }
            (Some(id), true) => {
                if !state.confirmed {
                    return;
                }
                let (priority, advice) = self.rule_priority_and_advice(rule, true);
                let message = describe(rule, clause, value, true);
                let vital = clause.vital;
                let limit = clause.limit;
                let Some(alarm) = self.alarms.get_mut(&id) else {
                    return;
                };
                if alarm.priority >= priority {
                    return;
                }
                let from = alarm.priority;
                alarm.priority = priority;
                alarm.advice = advice;
                alarm.message = message;
                alarm.vital = Some(vital);
                alarm.value = Some(value);
                alarm.limit = Some(limit);
                out.push(AlarmTransition {
                    change: Change::Escalated { from },
                    alarm: alarm.clone(),
                    at: now,
                });
            }
            (None, false) => {}
        }
    }

    fn rule_priority_and_advice(&self, rule: &Rule, confirmed: bool) -> (Priority, Option<String>) {
        let (priority, advice) = match (&rule.confirmation, confirmed) {
            (Some(confirmation), true) => (
                confirmation.priority.max(rule.priority),
                confirmation.advice.clone().or_else(|| rule.advice.clone()),
            ),
            _ => (rule.priority, rule.advice.clone()),
        };
        // Advice is about the infusion: it travels with the alarm only while one runs.
        let advice = advice.filter(|_| self.phase == Some(Phase::Infusion));
        (priority, advice)
    }

    /// Gives `alarm` its id, makes it active and reports it raised.
    fn raise(&mut self, mut alarm: Alarm, now: Mono, out: &mut Vec<AlarmTransition>) -> AlarmId {
        let id = AlarmId(self.next_alarm);
        self.next_alarm += 1;
        alarm.id = id;
        out.push(AlarmTransition {
            change: Change::Raised,
            alarm: alarm.clone(),
            at: now,
        });
        self.alarms.insert(id, alarm);
        id
    }

    fn end_alarm(&mut self, id: AlarmId, now: Mono, out: &mut Vec<AlarmTransition>) {
        if let Some(alarm) = self.alarms.remove(&id) {
            out.push(AlarmTransition {
                change: Change::Ended,
                alarm,
                at: now,
            });
        }
    }
}

/// Updates a rule's clauses with one clinical value of `vital`. Once every reading of the
/// measurement is in, `conclude_rule` derives the condition and the caller settles it.
fn evaluate_clauses(rule: &Rule, state: &mut RuleState, vital: Vital, value: f64, received: Mono) {
    if state.measurement_at != Some(received) {
        state.previous_measurement_at = state.measurement_at;
        state.previous_measurement_crossed = state.measurement_crossed;
        state.measurement_at = Some(received);
        state.measurement_crossed = false;
    }
    state.last_reading = Some(received);
    let alarming = state.alarm.is_some();
    for (index, clause) in rule.clauses.iter().enumerate() {
        if clause.vital != vital {
            continue;
        }
        let met = clause.is_met(value);
        let holds = if alarming && state.clause_holds[index] {
            !clause.is_cleared(value, rule.hysteresis)
        } else {
            met
        };
        state.measurement_crossed |= met;
        if holds != state.clause_holds[index] || met {
            state.last_clause = index;
            state.last_value = value;
        }
        state.clause_holds[index] = holds;
    }
}

/// Derives a rule's condition (onset, confirmation) from its clauses after a measurement.
fn conclude_rule(rule: &Rule, state: &mut RuleState, now: Mono) {
    if state.clause_holds.iter().any(|h| *h) {
        state.onset.get_or_insert(now);
    } else {
        state.onset = None;
        state.confirmed = false;
    }
    if let Some(confirmation) = &rule.confirmation
        && state.measurement_crossed
        && state.previous_measurement_crossed
        && let (Some(current), Some(previous)) =
            (state.measurement_at, state.previous_measurement_at)
        && current.saturating_since(previous) <= confirmation.within
    {
        state.confirmed = true;
    }
}

fn describe(rule: &Rule, clause: &super::rules::Clause, value: f64, confirmed: bool) -> String {
    let confirmed = if confirmed { ", confirmed" } else { "" };
    format!(
        "{}: {} {} {} (limit {} {}{confirmed})",
        rule.name,
        clause.vital,
        value,
        clause.vital.unit(),
        clause.comparison.symbol(),
        clause.limit,
    )
}
