//! The pure alarm engine: readings, nurse actions and time in, alarm transitions out.
//!
//! No I/O, no clock, no async: every call takes `now`, so tests drive it through any timeline
//! in virtual time, and replay runs a whole session as fast as the CPU allows. The engine task
//! (`engine::task`) is the thin shell that feeds it.
//!
//! An alarm's life cycle (IEC 60601-1-8, as real monitors implement it):
//! raised → (acknowledged | audio paused) → ended. An audio pause lasts the rule set's
//! `audio_pause`, then the alarm sounds again if it is still there. High-priority physiological
//! alarms latch: when their condition ends they stay (condition ended) until acknowledged.
//! Acknowledging silences an alarm until its condition ends; it never hides a condition that
//! is still present. An alarm left unacknowledged escalates where its rule says so.
//!
//! Physiological alarms are armed only while a session is active and in a phase the rule
//! names; technical alarms are armed for the whole of an active session, so an idle box
//! between patients stays quiet.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::rules::{
    BpSchedule, Clause, Escalation, Measure, Priority, Rule, RuleSet, TechnicalCondition,
    TechnicalRule,
};
use crate::vitals::{DeviceId, DeviceMessage, LinkState, Mono, Phase, Quality, Reading, Vital};

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

impl AlarmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmKind::Physiological => "physiological",
            AlarmKind::Technical => "technical",
        }
    }
}

/// Overflow is a burst, not a state: the alarm's condition ends after this long without new
/// drops.
const RING_OVERFLOW_HOLD: Duration = Duration::from_secs(30);

/// Baseline readings kept per vital: hours of a 1 Hz oximeter; beyond it the median is of the
/// first ones, which is what a baseline is.
const BASELINE_SAMPLES_MAX: usize = 20_000;

/// What raised an alarm.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum AlarmSource {
    Rule { rule: Arc<str> },
    Technical { condition: TechnicalCondition },
}

impl AlarmSource {
    /// The rule's name, or the technical condition's: what the alarm is, as a label.
    pub fn name(&self) -> &str {
        match self {
            AlarmSource::Rule { rule } => rule,
            AlarmSource::Technical { condition } => condition.as_str(),
        }
    }
}

/// One alarm instance, as sinks and the status API see it (times on the monotonic clock are
/// turned into UTC by the views in `events`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alarm {
    pub id: AlarmId,
    pub kind: AlarmKind,
    #[serde(flatten)]
    pub source: AlarmSource,
    pub priority: Priority,
    pub device: DeviceId,
    pub vital: Option<Vital>,
    /// The value behind the latest change (for a rate rule: how far the vital moved).
    pub value: Option<f64>,
    /// The limit it crossed, in the vital's unit.
    pub limit: Option<f64>,
    pub message: String,
    /// What to consider doing, carried as data while the infusion runs.
    pub advice: Option<String>,
    /// Whether the alarm condition is present now; false for a latched alarm whose condition
    /// has ended and that waits for an acknowledgement.
    pub condition_present: bool,
    /// A latching alarm stays until acknowledged, even when its condition ends.
    pub latching: bool,
    /// Who acknowledged it (the token's name); the alarm is then silent until it ends.
    pub acknowledged_by: Option<String>,
    /// Who paused its audio; silent until `audio_paused_until`.
    pub audio_paused_by: Option<String>,
    #[serde(skip)]
    pub audio_paused_until: Option<Mono>,
    #[serde(skip)]
    pub raised_at: Mono,
    /// Since when it has been escalating (active, unacknowledged, in an escalation phase).
    #[serde(skip)]
    escalating_since: Option<Mono>,
}

impl Alarm {
    /// Whether it should sound now: not acknowledged, and no audio pause running.
    pub fn is_audible(&self, now: Mono) -> bool {
        self.acknowledged_by.is_none() && self.audio_paused_until.is_none_or(|until| now >= until)
    }
}

/// What happened to an alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum Change {
    Raised,
    /// Its priority rose: a confirmed crossing, or an escalation of a persisting alarm.
    Escalated {
        from: Priority,
    },
    /// A latching alarm's condition ended; the alarm stays until acknowledged.
    ConditionEnded,
    /// The condition of a latched alarm came back before it was acknowledged.
    ConditionReturned,
    Acknowledged {
        by: String,
    },
    AudioPaused {
        by: String,
    },
    /// An audio pause ran out and the alarm sounds again.
    AudioResumed,
    /// The advice it carries changed with the session's phase.
    AdviceChanged,
    Ended,
}

impl Change {
    /// The change's name, as in the event stream and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::Raised => "raised",
            Change::Escalated { .. } => "escalated",
            Change::ConditionEnded => "condition_ended",
            Change::ConditionReturned => "condition_returned",
            Change::Acknowledged { .. } => "acknowledged",
            Change::AudioPaused { .. } => "audio_paused",
            Change::AudioResumed => "audio_resumed",
            Change::AdviceChanged => "advice_changed",
            Change::Ended => "ended",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmTransition {
    #[serde(flatten)]
    pub change: Change,
    pub alarm: Alarm,
    #[serde(skip)]
    pub at: Mono,
}

/// Why a nurse action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("no active alarm has id {0}")]
    NoSuchAlarm(u64),
}

/// What the engine needs to know of a configured device.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub id: DeviceId,
    /// After this long without any message the device-silent technical alarm is raised.
    /// `None` for intermittent devices (a cuff), whose silence is BP overdue instead.
    pub silent_after: Option<Duration>,
    /// It measures blood pressure, so the BP-overdue schedule applies to it.
    pub measures_bp: bool,
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
    /// The measured value, limit and clause behind the latest change, for the alarm's text.
    last_value: f64,
    last_limit: f64,
    last_clause: usize,
    /// Confirmation bookkeeping: the current and previous measurement and whether each
    /// crossed a limit.
    measurement_at: Option<Mono>,
    measurement_crossed: bool,
    previous_measurement_at: Option<Mono>,
    previous_measurement_crossed: bool,
    confirmed: bool,
    /// The rule's alarm, active or latched.
    alarm: Option<AlarmId>,
}

impl RuleState {
    fn new(clauses: usize) -> Self {
        RuleState {
            clause_holds: vec![false; clauses],
            ..RuleState::default()
        }
    }
}

#[derive(Debug, Clone, Default)]
struct TechnicalState {
    since: Option<Mono>,
    alarm: Option<AlarmId>,
}

#[derive(Debug)]
pub struct DeviceState {
    pub id: DeviceId,
    pub silent_after: Option<Duration>,
    pub measures_bp: bool,
    pub link: LinkState,
    pub link_detail: Option<String>,
    /// Latest message of any kind.
    pub last_heard: Option<Mono>,
    /// Latest blood-pressure measurement.
    pub last_bp: Option<Mono>,
    /// When the engine started watching it (silence counts from here until first heard).
    watched_since: Mono,
    latest: [Option<Reading>; Vital::ALL.len()],
    /// Recent clinical values of the vitals that rate rules watch.
    history: [VecDeque<(Mono, f64)>; Vital::ALL.len()],
    rules: Vec<RuleState>,
    technical: [TechnicalState; TechnicalCondition::ALL.len()],
    ring_dropped_seen: u64,
    ring_dropped_at: Option<Mono>,
    /// When the latest decode errors happened, within the decode-errors rule's window: at
    /// most its `count`, the only ones that decide whether it holds, so a device sending
    /// garbage as fast as it can never grows the queue.
    decode_errors: VecDeque<Mono>,
    decode_errors_total: u64,
}

impl DeviceState {
    /// The latest reading of each vital this device has sent.
    pub fn latest_readings(&self) -> impl Iterator<Item = &Reading> {
        self.latest.iter().flatten()
    }

    pub fn ring_dropped(&self) -> u64 {
        self.ring_dropped_seen
    }

    /// Decode errors reported by its driver since the daemon started.
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors_total
    }

    /// How many decode errors' times the engine keeps for the rate.
    #[cfg(test)]
    pub(crate) fn decode_error_times_kept(&self) -> usize {
        self.decode_errors.len()
    }
}

/// Who owns an alarm: the state that raised it and clears it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Owner {
    Rule {
        slot: usize,
        rule: usize,
    },
    Technical {
        slot: usize,
        condition: TechnicalCondition,
    },
    /// One of the daemon's own conditions (recording or forwarding failing).
    Daemon(DaemonCondition),
}

/// The daemon's own technical conditions: not a device's, and raised on the daemon's say-so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonCondition {
    /// The session recorder cannot write.
    Recording,
    /// Alarms cannot be forwarded to the clinic's Alertmanager.
    Forwarding,
}

impl DaemonCondition {
    const ALL: [DaemonCondition; 2] = [DaemonCondition::Recording, DaemonCondition::Forwarding];

    fn technical(self) -> TechnicalCondition {
        match self {
            DaemonCondition::Recording => TechnicalCondition::RecordingFailure,
            DaemonCondition::Forwarding => TechnicalCondition::ForwardingFailure,
        }
    }

    /// The alarm's device field: what failed.
    fn device(self) -> &'static str {
        match self {
            DaemonCondition::Recording => "recorder",
            DaemonCondition::Forwarding => "alertmanager",
        }
    }
}

/// A daemon condition's state, and why it holds.
#[derive(Debug, Default)]
struct DaemonState {
    state: TechnicalState,
    why: String,
}

/// The alarm engine's whole state.
pub struct Engine {
    rules: Vec<Rule>,
    technical: Vec<TechnicalRule>,
    audio_pause: Duration,
    bp_schedule: BpSchedule,
    /// For each vital (by `Vital as usize`), the rules with a clause on it.
    rules_by_vital: [Vec<usize>; Vital::ALL.len()],
    /// For each vital, the longest window a rate clause on it needs.
    history_window: [Duration; Vital::ALL.len()],
    devices: Vec<DeviceState>,
    device_index: HashMap<DeviceId, usize>,
    alarms: BTreeMap<AlarmId, (Alarm, Owner)>,
    next_alarm: u64,
    /// `None` without an active session.
    phase: Option<Phase>,
    phase_since: Mono,
    /// Clinical values seen during the baseline phase, and their medians once it ends.
    baseline_samples: [Vec<f64>; Vital::ALL.len()],
    baseline: [Option<f64>; Vital::ALL.len()],
    /// Scratch list of the (device, rule) pairs a measurement touched; kept to avoid an
    /// allocation per reading.
    judged: Vec<(usize, usize)>,
    /// The daemon's own technical conditions, by `DaemonCondition as usize`.
    daemon: [DaemonState; 2],
}

impl Engine {
    pub fn new(rule_set: RuleSet, devices: &[DeviceSpec], now: Mono) -> Self {
        let mut rules_by_vital: [Vec<usize>; Vital::ALL.len()] = Default::default();
        let mut history_window = [Duration::ZERO; Vital::ALL.len()];
        for (index, rule) in rule_set.rules.iter().enumerate() {
            for clause in &rule.clauses {
                let vital = clause.vital as usize;
                if !rules_by_vital[vital].contains(&index) {
                    rules_by_vital[vital].push(index);
                }
                if let Some(window) = clause.window() {
                    history_window[vital] = history_window[vital].max(window);
                }
            }
        }
        let mut engine = Engine {
            rules: rule_set.rules,
            technical: rule_set.technical,
            audio_pause: rule_set.audio_pause,
            bp_schedule: rule_set.bp_schedule,
            rules_by_vital,
            history_window,
            devices: Vec::new(),
            device_index: HashMap::new(),
            alarms: BTreeMap::new(),
            next_alarm: 1,
            phase: None,
            phase_since: now,
            baseline_samples: Default::default(),
            baseline: [None; Vital::ALL.len()],
            judged: Vec::new(),
            daemon: Default::default(),
        };
        for spec in devices {
            engine.add_device(spec, now);
        }
        engine
    }

    fn add_device(&mut self, spec: &DeviceSpec, now: Mono) -> usize {
        let index = self.devices.len();
        self.device_index.insert(spec.id.clone(), index);
        self.devices.push(DeviceState {
            id: spec.id.clone(),
            silent_after: spec.silent_after,
            measures_bp: spec.measures_bp,
            link: LinkState::Connecting,
            link_detail: None,
            last_heard: None,
            last_bp: None,
            watched_since: now,
            latest: Default::default(),
            history: Default::default(),
            rules: self
                .rules
                .iter()
                .map(|r| RuleState::new(r.clauses.len()))
                .collect(),
            technical: Default::default(),
            ring_dropped_seen: 0,
            ring_dropped_at: None,
            decode_errors: VecDeque::new(),
            decode_errors_total: 0,
        });
        index
    }

    fn device_slot(&mut self, id: &DeviceId, now: Mono) -> usize {
        match self.device_index.get(id) {
            Some(index) => *index,
            None => self.add_device(
                &DeviceSpec {
                    id: id.clone(),
                    silent_after: Some(DEFAULT_SILENT_AFTER),
                    measures_bp: false,
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

    /// The session's baseline of `vital`: the median of its baseline-phase readings, known
    /// once the baseline phase has ended.
    pub fn baseline(&self, vital: Vital) -> Option<f64> {
        self.baseline[vital as usize]
    }

    /// Active alarms (latched ones included), oldest first.
    pub fn active_alarms(&self) -> impl Iterator<Item = &Alarm> {
        self.alarms.values().map(|(alarm, _)| alarm)
    }

    pub fn alarm(&self, id: AlarmId) -> Option<&Alarm> {
        self.alarms.get(&id).map(|(alarm, _)| alarm)
    }

    /// Feeds whatever a driver sent through its ring, received at `now`.
    pub fn accept(&mut self, message: &DeviceMessage, now: Mono) -> Vec<AlarmTransition> {
        match message {
            DeviceMessage::Readings(readings) => self.observe_measurement(readings, now),
            DeviceMessage::Link {
                device,
                state,
                detail,
                ..
            } => self.link(device, *state, detail.clone(), now),
            DeviceMessage::DecodeError { device, .. } => self.decode_error(device, now),
        }
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
            let vital = reading.vital as usize;
            let clinical = reading.clinical_value();
            let device = &mut self.devices[slot];
            device.last_heard = Some(now);
            if reading.vital == Vital::Systolic && clinical.is_some() {
                device.last_bp = Some(now);
            }
            device.latest[vital] = Some(reading.clone());
            if let Some(value) = clinical
                && !self.history_window[vital].is_zero()
            {
                let history = &mut device.history[vital];
                history.push_back((reading.received, value));
                while history.front().is_some_and(|(at, _)| {
                    reading.received.saturating_since(*at) > self.history_window[vital]
                }) {
                    history.pop_front();
                }
            }
            self.observe_quality(
                slot,
                reading.quality,
                reading.value.is_some(),
                now,
                &mut out,
            );
            self.devices[slot].technical[TechnicalCondition::DeviceSilent.index()].since = None;
            self.end_technical(slot, TechnicalCondition::DeviceSilent, now, &mut out);
            if reading.vital == Vital::Systolic && clinical.is_some() {
                self.devices[slot].technical[TechnicalCondition::BpOverdue.index()].since = None;
                self.end_technical(slot, TechnicalCondition::BpOverdue, now, &mut out);
            }

            let Some(phase) = self.phase else { continue };
            if let (Phase::Baseline, Some(value)) = (phase, clinical) {
                self.add_baseline_sample(reading.vital, value);
            }
            for &rule_index in &self.rules_by_vital[vital] {
                let rule = &self.rules[rule_index];
                if !rule.armed.contains(phase) {
                    continue;
                }
                let device = &mut self.devices[slot];
                let state = &mut device.rules[rule_index];
                let Some(value) = clinical else {
                    // No trustworthy value: nothing confirms a pending condition, and nothing
                    // clears an active alarm either.
                    if state.alarm.is_none() {
                        state.onset = None;
                    }
                    continue;
                };
                let context = MeasureContext {
                    history: &device.history[vital],
                    baseline: self.baseline[vital],
                    at: reading.received,
                };
                evaluate_clauses(rule, state, reading.vital, value, &context);
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
        // Hearing from the device at all means it is not silent.
        dev.last_heard = Some(now);
        dev.technical[TechnicalCondition::DeviceSilent.index()].since = None;
        let lost = &mut dev.technical[TechnicalCondition::DeviceDisconnected.index()];
        match state {
            LinkState::Lost => {
                lost.since.get_or_insert(now);
            }
            LinkState::Connected | LinkState::Connecting | LinkState::Idle => {
                lost.since = None;
                self.end_technical(slot, TechnicalCondition::DeviceDisconnected, now, &mut out);
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

    /// The driver could not decode some of the device's bytes. Errors above the decode-errors
    /// rule's rate raise a technical alarm: a device sending garbage is not monitoring.
    pub fn decode_error(&mut self, device: &DeviceId, now: Mono) -> Vec<AlarmTransition> {
        let mut out = Vec::new();
        let slot = self.device_slot(device, now);
        let threshold = self.technical[TechnicalCondition::DecodeErrors.index()].threshold;
        let dev = &mut self.devices[slot];
        dev.decode_errors_total += 1;
        if let Some(threshold) = threshold {
            // Whether `count` errors fall within the window depends on the `count`-th latest
            // alone: older times are never needed.
            dev.decode_errors.push_back(now);
            while dev.decode_errors.len() > threshold.count as usize {
                dev.decode_errors.pop_front();
            }
        }
        self.update_decode_errors(slot, now, &mut out);
        self.settle_technical(slot, now, &mut out);
        out
    }

    /// The daemon reports that one of its own functions fails (`Some(why)`) or works again
    /// (`None`): recording, or forwarding alarms. Failing raises the condition's technical
    /// alarm during a session; monitoring goes on.
    pub fn daemon_failure(
        &mut self,
        condition: DaemonCondition,
        failure: Option<&str>,
        now: Mono,
    ) -> Vec<AlarmTransition> {
        let mut out = Vec::new();
        let daemon = &mut self.daemon[condition as usize];
        match failure {
            Some(why) => {
                daemon.state.since.get_or_insert(now);
                daemon.why = why.to_string();
                self.settle_daemon(now, &mut out);
            }
            None => {
                daemon.state.since = None;
                if let Some(id) = daemon.state.alarm.take() {
                    self.end_alarm(id, now, &mut out);
                }
            }
        }
        out
    }

    fn settle_daemon(&mut self, now: Mono, out: &mut Vec<AlarmTransition>) {
        for daemon_condition in DaemonCondition::ALL {
            let condition = daemon_condition.technical();
            let TechnicalRule {
                priority, delay, ..
            } = self.technical[condition.index()];
            let daemon = &self.daemon[daemon_condition as usize];
            let Some(since) = daemon.state.since else {
                continue;
            };
            if self.phase.is_none()
                || daemon.state.alarm.is_some()
                || now.saturating_since(since) < delay
            {
                continue;
            }
            let alarm = Alarm {
                id: AlarmId(0),
                kind: AlarmKind::Technical,
                source: AlarmSource::Technical { condition },
                priority,
                device: DeviceId::new(daemon_condition.device()),
                vital: None,
                value: None,
                limit: None,
                message: format!("{}: {}", condition.message(), daemon.why),
                advice: None,
                condition_present: true,
                latching: false,
                acknowledged_by: None,
                audio_paused_by: None,
                audio_paused_until: None,
                raised_at: now,
                escalating_since: None,
            };
            let id = self.raise(alarm, Owner::Daemon(daemon_condition), now, out);
            self.daemon[daemon_condition as usize].state.alarm = Some(id);
        }
    }

    /// Keeps the decode-error window and the condition in step with `now`.
    fn update_decode_errors(&mut self, slot: usize, now: Mono, out: &mut Vec<AlarmTransition>) {
        let condition = TechnicalCondition::DecodeErrors;
        let Some(threshold) = self.technical[condition.index()].threshold else {
            return;
        };
        let dev = &mut self.devices[slot];
        while dev
            .decode_errors
            .front()
            .is_some_and(|at| now.saturating_since(*at) > threshold.within)
        {
            dev.decode_errors.pop_front();
        }
        let state = &mut dev.technical[condition.index()];
        if dev.decode_errors.len() >= threshold.count as usize {
            state.since.get_or_insert(now);
        } else if state.since.take().is_some() {
            self.end_technical(slot, condition, now, out);
        }
    }

    fn add_baseline_sample(&mut self, vital: Vital, value: f64) {
        let samples = &mut self.baseline_samples[vital as usize];
        if samples.len() < BASELINE_SAMPLES_MAX {
            samples.push(value);
        }
    }

    /// The baseline phase is over: each vital's baseline is the median of its samples.
    fn settle_baseline(&mut self) {
        for (vital, samples) in self.baseline_samples.iter_mut().enumerate() {
            self.baseline[vital] = median(samples);
        }
    }

    /// Numbers the alarms raised from now on after `highest` (the highest id an earlier run
    /// recorded), so that an id never names two alarms: an acknowledgement sent for an alarm
    /// of the run that died cannot reach another alarm of this one.
    pub fn continue_alarm_ids_after(&mut self, highest: u64) {
        self.next_alarm = self.next_alarm.max(highest.saturating_add(1));
    }

    /// Resumes a session after the daemon restarted: in `phase`, with the clinical values its
    /// baseline phase recorded (`baseline`, in the order received), so that the baseline is
    /// what it was before the restart (or, still in the baseline phase, goes on from them) and
    /// the rules relative to it stay armed.
    pub fn resume_session(
        &mut self,
        phase: Phase,
        baseline: impl IntoIterator<Item = (Vital, f64)>,
        now: Mono,
    ) -> Vec<AlarmTransition> {
        let out = self.set_phase(Some(phase), now);
        for (vital, value) in baseline {
            self.add_baseline_sample(vital, value);
        }
        if phase != Phase::Baseline {
            self.settle_baseline();
        }
        out
    }

    /// Moves to a session phase (`None`: no active session). Rules that the new phase disarms
    /// end their alarms and forget their pending conditions; advice follows the phase.
    pub fn set_phase(&mut self, phase: Option<Phase>, now: Mono) -> Vec<AlarmTransition> {
        let phase = phase.filter(|p| *p != Phase::Ended);
        let previous = self.phase;
        let mut out = Vec::new();
        if previous.is_none() && phase.is_some() {
            // A new session: a new baseline, and no rate measured against the last patient.
            self.baseline_samples.iter_mut().for_each(Vec::clear);
            self.baseline = [None; Vital::ALL.len()];
            for device in &mut self.devices {
                device.history.iter_mut().for_each(VecDeque::clear);
            }
        }
        if previous == Some(Phase::Baseline) && phase != Some(Phase::Baseline) {
            self.settle_baseline();
        }
        self.phase = phase;
        if previous != phase {
            self.phase_since = now;
        }
        for slot in 0..self.devices.len() {
            for rule_index in 0..self.rules.len() {
                let armed = phase.is_some_and(|p| self.rules[rule_index].armed.contains(p));
                if armed {
                    continue;
                }
                let state = &mut self.devices[slot].rules[rule_index];
                let alarm = state.alarm.take();
                *state = RuleState::new(state.clause_holds.len());
                if let Some(id) = alarm {
                    self.end_alarm(id, now, &mut out);
                }
            }
            if phase.is_none() {
                for condition in TechnicalCondition::ALL {
                    self.end_technical(slot, condition, now, &mut out);
                }
            }
        }
        if phase.is_none() {
            for daemon in DaemonCondition::ALL {
                if let Some(id) = self.daemon[daemon as usize].state.alarm.take() {
                    self.end_alarm(id, now, &mut out);
                }
            }
        }
        self.refresh_advice(now, &mut out);
        // Conditions that began before the session (a sensor already off) count from their start.
        out.extend(self.tick(now));
        out
    }

    /// Acknowledges an alarm: silent until its condition ends. A latched alarm whose condition
    /// has already ended is thereby reset.
    pub fn acknowledge(
        &mut self,
        id: AlarmId,
        by: &str,
        now: Mono,
    ) -> Result<Vec<AlarmTransition>, ActionError> {
        let (alarm, _) = self
            .alarms
            .get_mut(&id)
            .ok_or(ActionError::NoSuchAlarm(id.0))?;
        if alarm.acknowledged_by.is_some() {
            return Ok(Vec::new());
        }
        alarm.acknowledged_by = Some(by.to_string());
        alarm.audio_paused_by = None;
        alarm.audio_paused_until = None;
        alarm.escalating_since = None;
        let mut out = vec![AlarmTransition {
            change: Change::Acknowledged { by: by.to_string() },
            alarm: alarm.clone(),
            at: now,
        }];
        if !alarm.condition_present {
            self.end_alarm(id, now, &mut out);
        }
        Ok(out)
    }

    /// Pauses the audio of one alarm, or of every active one (`None`), for the rule set's
    /// audio-pause time. Acknowledged alarms are silent already and are left as they are.
    pub fn audio_pause(
        &mut self,
        target: Option<AlarmId>,
        by: &str,
        now: Mono,
    ) -> Result<Vec<AlarmTransition>, ActionError> {
        let ids: Vec<AlarmId> = match target {
            Some(id) if self.alarms.contains_key(&id) => vec![id],
            Some(id) => return Err(ActionError::NoSuchAlarm(id.0)),
            None => self.alarms.keys().copied().collect(),
        };
        let until = now + self.audio_pause;
        let mut out = Vec::new();
        for id in ids {
            let Some((alarm, _)) = self.alarms.get_mut(&id) else {
                continue;
            };
            if alarm.acknowledged_by.is_some() {
                continue;
            }
            alarm.audio_paused_by = Some(by.to_string());
            alarm.audio_paused_until = Some(until);
            out.push(AlarmTransition {
                change: Change::AudioPaused { by: by.to_string() },
                alarm: alarm.clone(),
                at: now,
            });
        }
        Ok(out)
    }

    /// Advances time: raises alarms whose condition delay has passed and technical alarms for
    /// silence and overdue measurements, ends audio pauses that ran out, and escalates alarms
    /// that persisted unacknowledged.
    pub fn tick(&mut self, now: Mono) -> Vec<AlarmTransition> {
        let mut out = Vec::new();
        for slot in 0..self.devices.len() {
            self.update_time_conditions(slot, now, &mut out);
            self.settle_technical(slot, now, &mut out);

            let Some(phase) = self.phase else { continue };
            let fresh_for = self.devices[slot].silent_after.unwrap_or(Duration::MAX);
            for rule_index in 0..self.rules.len() {
                if !self.rules[rule_index].armed.contains(phase) {
                    continue;
                }
                let state = &self.devices[slot].rules[rule_index];
                // A pending condition is only raised on fresh data: a device that went quiet
                // is the silence alarm's business, not a reason to alarm on an old value.
                let fresh = state
                    .last_reading
                    .is_some_and(|at| now.saturating_since(at) <= fresh_for);
                if state.alarm.is_none() && state.onset.is_some() && fresh {
                    self.settle_rule(slot, rule_index, now, &mut out);
                }
            }
        }
        self.settle_daemon(now, &mut out);
        self.resume_audio(now, &mut out);
        self.escalate(now, &mut out);
        out
    }

    /// Conditions defined by the passing of time: silence, an overdue cuff, an overflow that
    /// has stopped.
    fn update_time_conditions(&mut self, slot: usize, now: Mono, out: &mut Vec<AlarmTransition>) {
        let (phase, phase_since) = (self.phase, self.phase_since);
        let interval = phase.and_then(|p| self.bp_schedule.interval(p));
        let dev = &mut self.devices[slot];
        if let Some(silent_after) = dev.silent_after {
            let heard = dev.last_heard.unwrap_or(dev.watched_since);
            let silent = &mut dev.technical[TechnicalCondition::DeviceSilent.index()];
            silent.since =
                (now.saturating_since(heard) >= silent_after).then_some(heard + silent_after);
        }
        let mut overdue_over = false;
        if dev.measures_bp {
            let overdue = &mut dev.technical[TechnicalCondition::BpOverdue.index()];
            overdue.since = interval.and_then(|interval| {
                let reference = dev.last_bp.map_or(phase_since, |bp| bp.max(phase_since));
                let due = reference + interval;
                (now >= due).then_some(due)
            });
            overdue_over = overdue.since.is_none();
        }
        let mut overflow_over = false;
        if let Some(at) = dev.ring_dropped_at
            && now.saturating_since(at) >= RING_OVERFLOW_HOLD
        {
            dev.ring_dropped_at = None;
            dev.technical[TechnicalCondition::RingOverflow.index()].since = None;
            overflow_over = true;
        }
        if overdue_over {
            self.end_technical(slot, TechnicalCondition::BpOverdue, now, out);
        }
        self.update_decode_errors(slot, now, out);
        if overflow_over {
            self.end_technical(slot, TechnicalCondition::RingOverflow, now, out);
        }
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
        let disconnected = self.devices[slot].technical
            [TechnicalCondition::DeviceDisconnected.index()]
        .since
        .is_some();
        for condition in TechnicalCondition::ALL {
            if condition == TechnicalCondition::DeviceSilent && disconnected {
                continue;
            }
            let TechnicalRule {
                priority, delay, ..
            } = self.technical[condition.index()];
            let dev = &self.devices[slot];
            let state = &dev.technical[condition.index()];
            let Some(since) = state.since else { continue };
            if state.alarm.is_some() || now.saturating_since(since) < delay {
                continue;
            }
            let device = dev.id.clone();
            let alarm = Alarm {
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
                condition_present: true,
                latching: false,
                acknowledged_by: None,
                audio_paused_by: None,
                audio_paused_until: None,
                raised_at: now,
                escalating_since: None,
            };
            let id = self.raise(alarm, Owner::Technical { slot, condition }, now, out);
            self.devices[slot].technical[condition.index()].alarm = Some(id);
        }
        if disconnected {
            // A lost link is the cause of the silence: one alarm for one condition. Ended
            // after the disconnection alarm is raised, so no moment passes without an alarm.
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
        if let Some(id) = self.devices[slot].technical[condition.index()].alarm.take() {
            self.end_alarm(id, now, out);
        }
    }

    /// Applies a rule's evaluated state: raise, escalate, latch or end its alarm.
    fn settle_rule(
        &mut self,
        slot: usize,
        rule_index: usize,
        now: Mono,
        out: &mut Vec<AlarmTransition>,
    ) {
        let rule = &self.rules[rule_index];
        let state = &self.devices[slot].rules[rule_index];
        let holds = state.clause_holds.iter().any(|h| *h);
        let clause = &rule.clauses[state.last_clause];
        let (value, limit, confirmed) = (state.last_value, state.last_limit, state.confirmed);

        match (state.alarm, holds) {
            (None, true) => {
                let Some(onset) = state.onset else { return };
                if now.saturating_since(onset) < rule.delay {
                    return;
                }
                let (priority, advice) = self.rule_priority_and_advice(rule, confirmed);
                let alarm = Alarm {
                    id: AlarmId(0),
                    kind: AlarmKind::Physiological,
                    source: AlarmSource::Rule {
                        rule: rule.id.clone(),
                    },
                    priority,
                    device: self.devices[slot].id.clone(),
                    vital: Some(clause.vital),
                    value: Some(value),
                    limit: Some(limit),
                    message: describe(rule, clause, value, limit, confirmed),
                    advice,
                    condition_present: true,
                    latching: latches(AlarmKind::Physiological, priority),
                    acknowledged_by: None,
                    audio_paused_by: None,
                    audio_paused_until: None,
                    raised_at: now,
                    escalating_since: None,
                };
                let id = self.raise(
                    alarm,
                    Owner::Rule {
                        slot,
                        rule: rule_index,
                    },
                    now,
                    out,
                );
                self.devices[slot].rules[rule_index].alarm = Some(id);
            }
            (Some(id), true) => {
                let phase = self.phase;
                let (priority, advice) = self.rule_priority_and_advice(rule, confirmed);
                let message = describe(rule, clause, value, limit, confirmed);
                let vital = clause.vital;
                let Some((alarm, _)) = self.alarms.get_mut(&id) else {
                    return;
                };
                if !alarm.condition_present {
                    alarm.condition_present = true;
                    alarm.value = Some(value);
                    alarm.limit = Some(limit);
                    alarm.message = message.clone();
                    out.push(transition(Change::ConditionReturned, alarm, now));
                }
                if confirmed && priority > alarm.priority {
                    let from = alarm.priority;
                    alarm.advice = advice;
                    alarm.message = message;
                    alarm.vital = Some(vital);
                    alarm.value = Some(value);
                    alarm.limit = Some(limit);
                    raise_priority(alarm, priority);
                    // A new alarm signal: its escalation clock, if it still has one, starts now.
                    if rule
                        .escalation
                        .as_ref()
                        .is_some_and(|escalation| may_escalate(alarm, escalation, phase))
                    {
                        alarm.escalating_since = Some(now);
                    }
                    out.push(transition(Change::Escalated { from }, alarm, now));
                }
            }
            (Some(id), false) => {
                let Some((alarm, _)) = self.alarms.get_mut(&id) else {
                    return;
                };
                if !alarm.condition_present {
                    return; // latched, waiting for an acknowledgement
                }
                if alarm.latching && alarm.acknowledged_by.is_none() {
                    alarm.condition_present = false;
                    out.push(transition(Change::ConditionEnded, alarm, now));
                } else {
                    self.devices[slot].rules[rule_index].alarm = None;
                    self.end_alarm(id, now, out);
                }
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

    /// After a phase change: rule alarms carry the advice the new phase calls for.
    fn refresh_advice(&mut self, now: Mono, out: &mut Vec<AlarmTransition>) {
        let ids: Vec<AlarmId> = self.alarms.keys().copied().collect();
        for id in ids {
            let Some((_, Owner::Rule { slot, rule })) = self.alarms.get(&id) else {
                continue;
            };
            let (slot, rule) = (*slot, *rule);
            let confirmed = self.devices[slot].rules[rule].confirmed;
            let (_, advice) = self.rule_priority_and_advice(&self.rules[rule], confirmed);
            if let Some((alarm, _)) = self.alarms.get_mut(&id)
                && alarm.advice != advice
            {
                alarm.advice = advice;
                out.push(transition(Change::AdviceChanged, alarm, now));
            }
        }
    }

    fn resume_audio(&mut self, now: Mono, out: &mut Vec<AlarmTransition>) {
        for (alarm, _) in self.alarms.values_mut() {
            if alarm.audio_paused_until.is_some_and(|until| now >= until) {
                alarm.audio_paused_until = None;
                alarm.audio_paused_by = None;
                out.push(transition(Change::AudioResumed, alarm, now));
            }
        }
    }

    /// Escalates alarms that stayed unacknowledged in an escalation phase for long enough.
    fn escalate(&mut self, now: Mono, out: &mut Vec<AlarmTransition>) {
        let phase = self.phase;
        for (alarm, owner) in self.alarms.values_mut() {
            let Some(escalation) = escalation_of(&self.rules, &self.technical, owner) else {
                continue;
            };
            if !may_escalate(alarm, escalation, phase) {
                alarm.escalating_since = None;
                continue;
            }
            let since = *alarm.escalating_since.get_or_insert(now);
            if now.saturating_since(since) >= escalation.after {
                let from = alarm.priority;
                raise_priority(alarm, escalation.priority);
                out.push(transition(Change::Escalated { from }, alarm, now));
            }
        }
    }

    /// Gives `alarm` its id, makes it active and reports it raised.
    fn raise(
        &mut self,
        mut alarm: Alarm,
        owner: Owner,
        now: Mono,
        out: &mut Vec<AlarmTransition>,
    ) -> AlarmId {
        let id = AlarmId(self.next_alarm);
        self.next_alarm += 1;
        alarm.id = id;
        // The escalation clock runs from the raise, not from the next tick.
        if escalation_of(&self.rules, &self.technical, &owner)
            .is_some_and(|escalation| may_escalate(&alarm, escalation, self.phase))
        {
            alarm.escalating_since = Some(now);
        }
        out.push(transition(Change::Raised, &alarm, now));
        self.alarms.insert(id, (alarm, owner));
        id
    }

    fn end_alarm(&mut self, id: AlarmId, now: Mono, out: &mut Vec<AlarmTransition>) {
        let Some((mut alarm, owner)) = self.alarms.remove(&id) else {
            return;
        };
        match owner {
            Owner::Rule { slot, rule } => {
                let state = &mut self.devices[slot].rules[rule];
                if state.alarm == Some(id) {
                    state.alarm = None;
                }
            }
            Owner::Technical { slot, condition } => {
                let state = &mut self.devices[slot].technical[condition.index()];
                if state.alarm == Some(id) {
                    state.alarm = None;
                }
            }
            Owner::Daemon(daemon) => {
                let state = &mut self.daemon[daemon as usize].state;
                if state.alarm == Some(id) {
                    state.alarm = None;
                }
            }
        }
        alarm.condition_present = false;
        out.push(AlarmTransition {
            change: Change::Ended,
            alarm,
            at: now,
        });
    }
}

/// The escalation of the rule or technical condition that owns an alarm, if it has one.
fn escalation_of<'a>(
    rules: &'a [Rule],
    technical: &'a [TechnicalRule],
    owner: &Owner,
) -> Option<&'a Escalation> {
    match owner {
        Owner::Rule { rule, .. } => rules[*rule].escalation.as_ref(),
        Owner::Technical { condition, .. } => technical[condition.index()].escalation.as_ref(),
        Owner::Daemon(daemon) => technical[daemon.technical().index()].escalation.as_ref(),
    }
}

/// Whether the escalation clock of `alarm` runs: unacknowledged, below the escalation's
/// priority, in one of its phases.
fn may_escalate(alarm: &Alarm, escalation: &Escalation, phase: Option<Phase>) -> bool {
    alarm.acknowledged_by.is_none()
        && alarm.priority < escalation.priority
        && phase.is_some_and(|p| escalation.phases.contains(p))
}

fn transition(change: Change, alarm: &Alarm, at: Mono) -> AlarmTransition {
    AlarmTransition {
        change,
        alarm: alarm.clone(),
        at,
    }
}

/// High-priority physiological alarms latch (clinical notes: latching).
fn latches(kind: AlarmKind, priority: Priority) -> bool {
    kind == AlarmKind::Physiological && priority == Priority::High
}

/// A higher priority is a new alarm signal: it sounds again, whatever pause or acknowledgement
/// the lower one had.
fn raise_priority(alarm: &mut Alarm, priority: Priority) {
    alarm.priority = priority;
    alarm.latching = latches(alarm.kind, priority);
    alarm.acknowledged_by = None;
    alarm.audio_paused_by = None;
    alarm.audio_paused_until = None;
    alarm.escalating_since = None;
}

fn median(samples: &mut [f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let middle = samples.len() / 2;
    Some(if samples.len() % 2 == 1 {
        samples[middle]
    } else {
        (samples[middle - 1] + samples[middle]) / 2.0
    })
}

/// What a clause may need beyond the reading's value.
struct MeasureContext<'a> {
    history: &'a VecDeque<(Mono, f64)>,
    baseline: Option<f64>,
    at: Mono,
}

impl MeasureContext<'_> {
    /// The clause's measure of `value` (the value itself, or how far it moved in the window).
    fn measure(&self, clause: &Clause, value: f64) -> f64 {
        let within = |window: Duration| {
            self.history
                .iter()
                .filter(move |(t, _)| self.at.saturating_since(*t) <= window)
                .map(|(_, v)| *v)
        };
        match clause.measure {
            Measure::Value => value,
            Measure::FallWithin(window) => within(window).fold(value, f64::max) - value,
            Measure::RiseWithin(window) => value - within(window).fold(value, f64::min),
        }
    }
}

/// Updates a rule's clauses with one clinical value of `vital`. Once every reading of the
/// measurement is in, `conclude_rule` derives the condition and the caller settles it.
fn evaluate_clauses(
    rule: &Rule,
    state: &mut RuleState,
    vital: Vital,
    value: f64,
    context: &MeasureContext,
) {
    if state.measurement_at != Some(context.at) {
        state.previous_measurement_at = state.measurement_at;
        state.previous_measurement_crossed = state.measurement_crossed;
        state.measurement_at = Some(context.at);
        state.measurement_crossed = false;
    }
    state.last_reading = Some(context.at);
    let alarming = state.alarm.is_some();
    for (index, clause) in rule.clauses.iter().enumerate() {
        if clause.vital != vital {
            continue;
        }
        // A baseline-relative limit is unknown until the session has a baseline.
        let Some(limit) = clause.resolve_limit(context.baseline) else {
            state.clause_holds[index] = false;
            continue;
        };
        let measured = context.measure(clause, value);
        let met = clause.is_met(measured, limit);
        let holds = if alarming && state.clause_holds[index] {
            !clause.is_cleared(measured, limit, rule.hysteresis)
        } else {
            met
        };
        state.measurement_crossed |= met;
        if holds != state.clause_holds[index] || met {
            state.last_clause = index;
            state.last_value = measured;
            state.last_limit = limit;
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

fn describe(rule: &Rule, clause: &Clause, value: f64, limit: f64, confirmed: bool) -> String {
    let unit = clause.vital.unit();
    let confirmed = if confirmed { ", confirmed" } else { "" };
    let shown = match clause.measure {
        Measure::Value => format!("{} {value} {unit}", clause.vital),
        Measure::FallWithin(_) => format!("{} fell {value} {unit}", clause.vital),
        Measure::RiseWithin(_) => format!("{} rose {value} {unit}", clause.vital),
    };
    let resolved = match clause.limit {
        super::rules::Limit::BaselinePercent(_) => format!(" = {limit:.0} {unit}"),
        super::rules::Limit::Absolute(_) => String::new(),
    };
    format!(
        "{}: {shown} (limit {clause}{resolved}{confirmed})",
        rule.name
    )
}
