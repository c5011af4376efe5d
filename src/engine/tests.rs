//! Behaviour of the pure alarm engine, driven in virtual time: every call takes an explicit
//! `Mono`, nothing sleeps. Each test asserts the exact transitions (change, priority, rule or
//! technical condition, time), so a raise that comes a second early or late fails.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::core::{
    ActionError, AlarmId, AlarmKind, AlarmSource, AlarmTransition, Change, DaemonCondition,
    DeviceSpec, Engine,
};
use super::rules::{
    Clause, Comparison, Escalation, Limit, Measure, PhaseSet, Priority, Rule, RuleSet,
    TechnicalCondition,
};
use crate::config::{DEFAULT_RULES, Source, parse_rule_set};
use crate::vitals::{DeviceId, LinkState, Mono, Phase, Quality, Reading, Vital};

use Priority::{High, Low, Medium};

/// A continuous pulse oximeter (SpO2 and pulse at 1 Hz).
const OX: &str = "ox1";
/// A blood-pressure cuff (one measurement every few minutes).
const CUFF: &str = "bp1";
const PAUSE_ADVICE: &str = "Consider pausing the infusion";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn t(secs: f64) -> Mono {
    Mono::from_secs_f64(secs)
}

/// A reading received at `at` seconds.
fn reading(device: &str, vital: Vital, value: Option<f64>, quality: Quality, at: f64) -> Reading {
    Reading {
        device: DeviceId::new(device),
        vital,
        value,
        quality,
        device_time: None,
        received: t(at),
        received_utc: DateTime::<Utc>::default(),
    }
}

fn good(device: &str, vital: Vital, value: f64, at: f64) -> Reading {
    reading(device, vital, Some(value), Quality::GOOD, at)
}

/// The shipped default rule set (`config/rules/default.toml`): the default-rule and
/// technical-alarm tables of `clinical.md`.
fn clinical_rule_set() -> RuleSet {
    parse_rule_set(&Source::built_in("default", DEFAULT_RULES)).expect("the default rules load")
}

fn clinical_rules() -> Vec<Rule> {
    clinical_rule_set().rules
}

/// The default rule set with only the rules with these ids.
fn pick(ids: &[&str]) -> Vec<Rule> {
    clinical_rules()
        .into_iter()
        .filter(|rule| ids.contains(&&*rule.id))
        .collect()
}

/// An engine started at t = 0 watching `devices`, with the default technical alarms, audio
/// pause and cuff schedule: the oximeter goes silent after 10 s (`clinical.md`); the cuff has
/// no silence limit, only the BP-overdue schedule.
fn engine(rules: Vec<Rule>, devices: &[&str]) -> Engine {
    let specs: Vec<DeviceSpec> = devices
        .iter()
        .map(|&id| DeviceSpec {
            id: DeviceId::new(id),
            silent_after: (id != CUFF).then_some(Duration::from_secs(10)),
            measures_bp: id == CUFF,
        })
        .collect();
    Engine::new(
        RuleSet {
            rules,
            ..clinical_rule_set()
        },
        &specs,
        Mono::ZERO,
    )
}

/// Feeds readings in order, each at its receive time with a tick half a second later (the
/// daemon ticks between messages), and collects every transition.
fn feed_readings(
    engine: &mut Engine,
    readings: impl IntoIterator<Item = Reading>,
) -> Vec<AlarmTransition> {
    let mut out = Vec::new();
    for reading in readings {
        let at = reading.received;
        out.extend(engine.observe(&reading, at));
        out.extend(engine.tick(at + Duration::from_millis(500)));
    }
    out
}

/// Good readings of `vital` from the oximeter at 1 Hz from `start`.
fn feed(engine: &mut Engine, vital: Vital, start: f64, values: &[f64]) -> Vec<AlarmTransition> {
    let readings = values.iter().enumerate();
    feed_readings(
        engine,
        readings.map(|(i, value)| good(OX, vital, *value, start + i as f64)),
    )
}

/// `seconds` oximeter SpO2 readings at 1 Hz from `start`, each flagged `quality` and carrying
/// `value`.
fn feed_flagged(
    engine: &mut Engine,
    quality: Quality,
    value: Option<f64>,
    start: f64,
    seconds: u32,
) -> Vec<AlarmTransition> {
    let times = (0..seconds).map(|i| start + f64::from(i));
    feed_readings(
        engine,
        times.map(|at| reading(OX, Vital::Spo2, value, quality, at)),
    )
}

fn feed_spo2(engine: &mut Engine, start: f64, values: &[f64]) -> Vec<AlarmTransition> {
    feed(engine, Vital::Spo2, start, values)
}

/// One cuff measurement: systolic, diastolic and mean readings sharing one receive time,
/// delivered together as the cuff's driver delivers them.
fn cuff(engine: &mut Engine, systolic: f64, diastolic: f64, at: f64) -> Vec<AlarmTransition> {
    engine.observe_measurement(&cuff_measurement(systolic, diastolic, at), t(at))
}

fn cuff_measurement(systolic: f64, diastolic: f64, at: f64) -> Vec<Reading> {
    let mean = diastolic + (systolic - diastolic) / 3.0;
    [
        (Vital::Systolic, systolic),
        (Vital::Diastolic, diastolic),
        (Vital::MeanArterial, mean),
    ]
    .map(|(vital, value)| good(CUFF, vital, value, at))
    .to_vec()
}

/// Whether the alarm carries the advice to pause the infusion.
fn pause_advice(alarm: &super::core::Alarm) -> bool {
    alarm
        .advice
        .as_deref()
        .is_some_and(|advice| advice.starts_with(PAUSE_ADVICE))
}

/// What the tests assert of a transition: change, priority, rule id or technical condition
/// name, and time in seconds.
type Seen = (Change, Priority, String, f64);

fn seen(transitions: &[AlarmTransition]) -> Vec<Seen> {
    transitions
        .iter()
        .map(|tr| {
            let source = match &tr.alarm.source {
                AlarmSource::Rule { rule } => rule.to_string(),
                AlarmSource::Technical { condition } => condition.as_str().to_string(),
            };
            (
                tr.change.clone(),
                tr.alarm.priority,
                source,
                tr.at.since_start().as_secs_f64(),
            )
        })
        .collect()
}

fn raised(priority: Priority, source: &str, at: f64) -> Seen {
    (Change::Raised, priority, source.to_string(), at)
}

/// A latching (high-priority physiological) alarm whose condition ended: it stays until
/// acknowledged.
fn condition_ended(priority: Priority, source: &str, at: f64) -> Seen {
    (Change::ConditionEnded, priority, source.to_string(), at)
}

fn condition_returned(priority: Priority, source: &str, at: f64) -> Seen {
    (Change::ConditionReturned, priority, source.to_string(), at)
}

fn ended(priority: Priority, source: &str, at: f64) -> Seen {
    (Change::Ended, priority, source.to_string(), at)
}

fn escalated(from: Priority, to: Priority, source: &str, at: f64) -> Seen {
    (Change::Escalated { from }, to, source.to_string(), at)
}

fn repeat(value: f64, times: usize) -> Vec<f64> {
    vec![value; times]
}

fn acknowledged(by: &str, priority: Priority, source: &str, at: f64) -> Seen {
    let change = Change::Acknowledged { by: by.to_string() };
    (change, priority, source.to_string(), at)
}

fn audio_paused(by: &str, priority: Priority, source: &str, at: f64) -> Seen {
    let change = Change::AudioPaused { by: by.to_string() };
    (change, priority, source.to_string(), at)
}

fn audio_resumed(priority: Priority, source: &str, at: f64) -> Seen {
    (Change::AudioResumed, priority, source.to_string(), at)
}

fn advice_changed(priority: Priority, source: &str, at: f64) -> Seen {
    (Change::AdviceChanged, priority, source.to_string(), at)
}

/// Ticks at every whole second from `from` to `to` (both included), as the daemon's 1 s tick
/// does, and collects every transition.
fn tick_every_second(engine: &mut Engine, from: u32, to: u32) -> Vec<AlarmTransition> {
    (from..=to)
        .flat_map(|second| engine.tick(t(f64::from(second))))
        .collect()
}

/// The ids of the active alarms (latched ones included), oldest first.
fn active_ids(engine: &Engine) -> Vec<AlarmId> {
    engine.active_alarms().map(|alarm| alarm.id).collect()
}

/// The default rule `id` alone, made to escalate to `priority` when left unacknowledged for
/// `after_s` seconds in `phases`.
fn escalating(id: &str, after_s: u64, priority: Priority, phases: PhaseSet) -> Vec<Rule> {
    let mut rules = pick(&[id]);
    rules[0].escalation = Some(Escalation {
        after: Duration::from_secs(after_s),
        priority,
        phases,
    });
    rules
}

/// A rate-of-change rule, `{ spo2 falls_by 4 within 60 s }`: medium, at once, no hysteresis,
/// armed for the whole session.
fn spo2_fall_rule() -> Rule {
    Rule {
        id: "spo2_fall".into(),
        name: "SpO2 falling".to_string(),
        priority: Medium,
        clauses: vec![Clause {
            vital: Vital::Spo2,
            measure: Measure::FallWithin(Duration::from_secs(60)),
            comparison: Comparison::AtOrAbove,
            limit: Limit::Absolute(4.0),
        }],
        delay: Duration::ZERO,
        hysteresis: 0.0,
        armed: PhaseSet::WHOLE_SESSION,
        confirmation: None,
        escalation: None,
        advice: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Condition delay (acceptance criterion 1)
// ---------------------------------------------------------------------------------------------

#[test]
fn alarms_are_numbered_after_the_highest_id_an_earlier_run_recorded() {
    let mut engine = engine(pick(&["bp_high"]), &[CUFF]);
    engine.continue_alarm_ids_after(41);
    engine.continue_alarm_ids_after(7); // never backwards
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let out = cuff(&mut engine, 185.0, 95.0, 60.0);
    assert_eq!(seen(&out), [raised(Medium, "bp_high", 60.0)]);
    assert_eq!(out[0].alarm.id, AlarmId(42));
}

#[test]
fn a_5_s_spo2_dip_below_90_raises_nothing() {
    let mut engine = engine(pick(&["spo2_low", "spo2_critical"]), &[OX]);
    assert_eq!(seen(&engine.set_phase(Some(Phase::Baseline), t(0.0))), []);
    let values = [repeat(97.0, 10), repeat(88.0, 5), repeat(97.0, 20)].concat();
    assert_eq!(seen(&feed_spo2(&mut engine, 0.0, &values)), []);
}

#[test]
fn a_20_s_spo2_dip_below_90_raises_medium_exactly_15_s_after_onset_and_ends_on_recovery() {
    let mut engine = engine(pick(&["spo2_low", "spo2_critical"]), &[OX]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    // Onset at t = 10, 20 s below 90 (t = 10..29), back to 97 at t = 30.
    let values = [repeat(97.0, 10), repeat(88.0, 20), repeat(97.0, 5)].concat();
    let out = feed_spo2(&mut engine, 0.0, &values);
    assert_eq!(
        seen(&out),
        [
            raised(Medium, "spo2_low", 25.0),
            ended(Medium, "spo2_low", 30.0)
        ]
    );
    let alarm = &out[0].alarm;
    assert_eq!(alarm.kind, AlarmKind::Physiological);
    assert_eq!(alarm.device, DeviceId::new(OX));
    assert_eq!(
        (alarm.vital, alarm.value, alarm.limit),
        (Some(Vital::Spo2), Some(88.0), Some(90.0))
    );
    assert_eq!(out[1].alarm.id, alarm.id);
}

#[test]
fn a_reading_back_at_the_limit_restarts_the_condition_delay() {
    let mut engine = engine(pick(&["spo2_low"]), &[OX]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    // 10 s below, one reading at exactly 90 (not < 90), then below again from t = 11.
    let values = [repeat(88.0, 10), vec![90.0], repeat(88.0, 16)].concat();
    assert_eq!(
        seen(&feed_spo2(&mut engine, 0.0, &values)),
        [raised(Medium, "spo2_low", 26.0)]
    );
}

#[test]
fn spo2_below_85_raises_high_at_once_and_the_90_rule_still_waits_its_delay() {
    let mut engine = engine(pick(&["spo2_low", "spo2_critical"]), &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let values = [vec![97.0], repeat(82.0, 16), vec![95.0]].concat();
    let out = feed_spo2(&mut engine, 0.0, &values);
    assert_eq!(
        seen(&out),
        [
            raised(High, "spo2_critical", 1.0),
            raised(Medium, "spo2_low", 16.0),
            ended(Medium, "spo2_low", 17.0),
            condition_ended(High, "spo2_critical", 17.0),
        ]
    );
}

#[test]
fn tick_raises_a_pending_spo2_condition_on_time_while_its_data_is_fresh() {
    let mut engine = engine(pick(&["spo2_low"]), &[OX]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    // Below 90 from t = 0 to t = 9; the next reading is late, but the last one is only 5 s old
    // when the delay runs out at t = 15.
    assert_eq!(seen(&feed_spo2(&mut engine, 0.0, &repeat(88.0, 10))), []);
    assert_eq!(seen(&engine.tick(t(14.9))), []);
    assert_eq!(
        seen(&engine.tick(t(15.0))),
        [raised(Medium, "spo2_low", 15.0)]
    );
}

#[test]
fn tick_does_not_raise_a_pending_spo2_condition_once_the_data_stopped() {
    let mut engine = engine(pick(&["spo2_low"]), &[OX]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    // Below 90 from t = 0 to t = 3, then nothing: at t = 15 the last value is 12 s old, older
    // than the oximeter's 10 s silence limit. The silence alarm reports it instead.
    assert_eq!(seen(&feed_spo2(&mut engine, 0.0, &repeat(88.0, 4))), []);
    assert_eq!(
        seen(&engine.tick(t(13.0))),
        [raised(Medium, "device_silent", 13.0)]
    );
    assert_eq!(seen(&engine.tick(t(15.0))), []);
    assert_eq!(seen(&engine.tick(t(60.0))), []);
}

// ---------------------------------------------------------------------------------------------
// Hysteresis (acceptance criterion 2)
// ---------------------------------------------------------------------------------------------

/// 16 s below 90 (raised at t = 15), then SpO2 hovering around 90 until it reaches 91 at t = 22.
fn hovering_around_90() -> Vec<f64> {
    [
        repeat(88.0, 16),
        vec![89.6, 90.2, 89.8, 90.4, 89.9, 90.8, 91.0, 92.0],
    ]
    .concat()
}

#[test]
fn spo2_hovering_at_90_keeps_one_alarm_until_it_reaches_limit_plus_hysteresis() {
    let mut engine = engine(pick(&["spo2_low"]), &[OX]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    assert_eq!(
        seen(&feed_spo2(&mut engine, 0.0, &hovering_around_90())),
        [
            raised(Medium, "spo2_low", 15.0),
            ended(Medium, "spo2_low", 22.0)
        ]
    );
}

#[test]
fn without_hysteresis_the_same_hovering_spo2_ends_the_alarm_at_the_first_90_2() {
    let mut rules = pick(&["spo2_low"]);
    rules[0].hysteresis = 0.0;
    let mut engine = engine(rules, &[OX]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    assert_eq!(
        seen(&feed_spo2(&mut engine, 0.0, &hovering_around_90())),
        [
            raised(Medium, "spo2_low", 15.0),
            ended(Medium, "spo2_low", 17.0)
        ]
    );
}

#[test]
fn hysteresis_stops_a_critical_spo2_alarm_flapping_around_85() {
    let hovering = [97.0, 84.6, 85.2, 84.8, 85.4, 84.9, 86.0, 97.0];
    let run = |hysteresis: f64| {
        let mut rules = pick(&["spo2_critical"]);
        rules[0].hysteresis = hysteresis;
        let mut engine = engine(rules, &[OX]);
        engine.set_phase(Some(Phase::Infusion), t(0.0));
        seen(&feed_spo2(&mut engine, 0.0, &hovering))
    };
    assert_eq!(
        run(1.0),
        [
            raised(High, "spo2_critical", 1.0),
            condition_ended(High, "spo2_critical", 6.0)
        ]
    );
    assert_eq!(
        run(0.0),
        [
            raised(High, "spo2_critical", 1.0),
            condition_ended(High, "spo2_critical", 2.0),
            condition_returned(High, "spo2_critical", 3.0),
            condition_ended(High, "spo2_critical", 4.0),
            condition_returned(High, "spo2_critical", 5.0),
            condition_ended(High, "spo2_critical", 6.0),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Phase arming (acceptance criterion 3)
// ---------------------------------------------------------------------------------------------

#[test]
fn bp_high_ignores_190_in_baseline_and_raises_it_in_infusion() {
    let mut engine = engine(pick(&["bp_high", "bp_critical", "hypotension"]), &[CUFF]);
    assert_eq!(seen(&engine.set_phase(Some(Phase::Baseline), t(0.0))), []);
    assert_eq!(seen(&cuff(&mut engine, 190.0, 100.0, 60.0)), []);
    assert_eq!(seen(&cuff(&mut engine, 192.0, 100.0, 180.0)), []);
    // The baseline readings are not carried into the infusion: nothing until a new one.
    assert_eq!(seen(&engine.set_phase(Some(Phase::Infusion), t(200.0))), []);
    let out = cuff(&mut engine, 190.0, 100.0, 300.0);
    assert_eq!(seen(&out), [raised(Medium, "bp_high", 300.0)]);
    assert_eq!(
        out[0].alarm.advice, None,
        "an unconfirmed crossing carries no advice"
    );
    assert_eq!(
        (out[0].alarm.value, out[0].alarm.limit),
        (Some(190.0), Some(180.0))
    );
}

#[test]
fn bp_alarm_survives_infusion_to_recovery_and_ends_when_the_session_ends() {
    let mut engine = engine(pick(&["bp_high"]), &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    assert_eq!(
        seen(&cuff(&mut engine, 190.0, 100.0, 60.0)),
        [raised(Medium, "bp_high", 60.0)]
    );
    assert_eq!(seen(&engine.set_phase(Some(Phase::Recovery), t(120.0))), []);
    assert_eq!(
        seen(&engine.set_phase(Some(Phase::Ended), t(180.0))),
        [ended(Medium, "bp_high", 180.0)]
    );
    assert_eq!(engine.active_alarms().count(), 0);
}

#[test]
fn moving_to_a_phase_that_disarms_a_rule_ends_its_alarm() {
    let mut rules = pick(&["bp_high"]);
    rules[0].armed = PhaseSet::of(&[Phase::Infusion]);
    let mut engine = engine(rules, &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    assert_eq!(
        seen(&cuff(&mut engine, 190.0, 100.0, 60.0)),
        [raised(Medium, "bp_high", 60.0)]
    );
    assert_eq!(
        seen(&engine.set_phase(Some(Phase::Recovery), t(120.0))),
        [ended(Medium, "bp_high", 120.0)]
    );
    // Disarmed: a crossing in recovery raises nothing.
    assert_eq!(seen(&cuff(&mut engine, 195.0, 100.0, 240.0)), []);
}

#[test]
fn ending_the_session_ends_physiological_and_technical_alarms() {
    let mut engine = engine(pick(&["spo2_critical"]), &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    assert_eq!(
        seen(&feed_spo2(&mut engine, 0.0, &[80.0])),
        [raised(High, "spo2_critical", 0.0)]
    );
    assert_eq!(
        seen(&engine.ring_dropped(&DeviceId::new(OX), 4, t(1.0))),
        [raised(Low, "ring_overflow", 1.0)]
    );
    assert_eq!(
        seen(&engine.set_phase(None, t(2.0))),
        [
            ended(High, "spo2_critical", 2.0),
            ended(Low, "ring_overflow", 2.0)
        ]
    );
    assert_eq!(engine.active_alarms().count(), 0);
}

#[test]
fn without_a_session_nothing_physiological_is_raised() {
    let mut engine = engine(clinical_rules(), &[OX, CUFF]);
    assert_eq!(seen(&feed_spo2(&mut engine, 0.0, &repeat(75.0, 30))), []);
    assert_eq!(
        seen(&feed(
            &mut engine,
            Vital::PulseRate,
            30.0,
            &repeat(170.0, 70)
        )),
        []
    );
    assert_eq!(seen(&cuff(&mut engine, 215.0, 125.0, 100.0)), []);
    assert_eq!(seen(&cuff(&mut engine, 215.0, 125.0, 200.0)), []);
    assert_eq!(seen(&cuff(&mut engine, 80.0, 50.0, 300.0)), []);
    assert_eq!(engine.active_alarms().count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Device silence (acceptance criterion 4)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_silent_oximeter_raises_device_silent_via_tick_and_it_ends_when_a_reading_arrives() {
    let mut engine = engine(pick(&["spo2_low"]), &[OX]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    assert_eq!(seen(&feed_spo2(&mut engine, 0.0, &repeat(97.0, 5))), []);
    // Last reading at t = 4; silent_after is 10 s.
    assert_eq!(seen(&engine.tick(t(13.9))), []);
    let out = engine.tick(t(14.0));
    assert_eq!(seen(&out), [raised(Medium, "device_silent", 14.0)]);
    assert_eq!(out[0].alarm.kind, AlarmKind::Technical);
    assert_eq!(out[0].alarm.device, DeviceId::new(OX));
    assert_eq!(
        seen(&engine.tick(t(30.0))),
        [],
        "raised once, not on every tick"
    );
    assert_eq!(
        seen(&feed_spo2(&mut engine, 31.0, &[97.0])),
        [ended(Medium, "device_silent", 31.0)]
    );
}

#[test]
fn device_silence_is_not_raised_without_a_session() {
    let mut engine = engine(pick(&["spo2_low"]), &[OX]);
    for second in 0..=120 {
        assert_eq!(
            seen(&engine.tick(t(f64::from(second)))),
            [],
            "at {second} s"
        );
    }
    // A session that starts while the device is still silent reports it at once.
    assert_eq!(
        seen(&engine.set_phase(Some(Phase::Baseline), t(121.0))),
        [raised(Medium, "device_silent", 121.0)]
    );
}

// ---------------------------------------------------------------------------------------------
// Confirmation of blood-pressure crossings
// ---------------------------------------------------------------------------------------------

#[test]
fn a_bp_crossing_confirmed_within_5_min_escalates_to_high_with_pause_advice() {
    let mut engine = engine(pick(&["bp_high"]), &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let first = cuff(&mut engine, 185.0, 100.0, 60.0);
    assert_eq!(seen(&first), [raised(Medium, "bp_high", 60.0)]);
    assert_eq!(first[0].alarm.advice, None);
    let second = cuff(&mut engine, 182.0, 104.0, 300.0);
    assert_eq!(seen(&second), [escalated(Medium, High, "bp_high", 300.0)]);
    assert_eq!(
        second[0].alarm.id, first[0].alarm.id,
        "the same alarm, escalated"
    );
    assert!(
        pause_advice(&second[0].alarm),
        "{:?}",
        second[0].alarm.advice
    );
    assert_eq!(second[0].alarm.value, Some(182.0));
    // A third crossing changes nothing more.
    assert_eq!(seen(&cuff(&mut engine, 183.0, 100.0, 540.0)), []);
}

#[test]
fn the_readings_of_one_cuff_measurement_do_not_confirm_each_other() {
    let mut engine = engine(pick(&["bp_high"]), &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    // Systolic and diastolic both cross, in one measurement: still unconfirmed.
    assert_eq!(
        seen(&cuff(&mut engine, 190.0, 115.0, 60.0)),
        [raised(Medium, "bp_high", 60.0)]
    );
    // Even a repeat of the same measurement (same receive time) is not a second measurement.
    assert_eq!(seen(&cuff(&mut engine, 190.0, 115.0, 60.0)), []);
    assert_eq!(
        seen(&cuff(&mut engine, 190.0, 115.0, 180.0)),
        [escalated(Medium, High, "bp_high", 180.0)]
    );
}

#[test]
fn a_second_bp_crossing_after_the_6_min_window_does_not_escalate() {
    let mut engine = engine(pick(&["bp_high"]), &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    assert_eq!(
        seen(&cuff(&mut engine, 185.0, 100.0, 60.0)),
        [raised(Medium, "bp_high", 60.0)]
    );
    assert_eq!(seen(&cuff(&mut engine, 186.0, 100.0, 421.0)), []);
    let active: Vec<_> = engine.active_alarms().map(|a| a.priority).collect();
    assert_eq!(active, [Medium]);
}

#[test]
fn a_bp_reading_that_does_not_cross_breaks_the_confirmation() {
    let mut engine = engine(pick(&["bp_high"]), &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    assert_eq!(
        seen(&cuff(&mut engine, 185.0, 100.0, 60.0)),
        [raised(Medium, "bp_high", 60.0)]
    );
    // 178 is under the limit but within the 5 mmHg hysteresis: the alarm stays, unconfirmed.
    assert_eq!(seen(&cuff(&mut engine, 178.0, 100.0, 180.0)), []);
    // The next crossing follows a measurement that did not cross: no escalation.
    assert_eq!(seen(&cuff(&mut engine, 185.0, 100.0, 300.0)), []);
    // 170 clears the limit and its hysteresis.
    assert_eq!(
        seen(&cuff(&mut engine, 170.0, 100.0, 420.0)),
        [ended(Medium, "bp_high", 420.0)]
    );
}

#[test]
fn confirmed_bp_in_recovery_escalates_without_infusion_advice() {
    let mut engine = engine(pick(&["bp_high"]), &[CUFF]);
    engine.set_phase(Some(Phase::Recovery), t(0.0));
    assert_eq!(
        seen(&cuff(&mut engine, 185.0, 100.0, 60.0)),
        [raised(Medium, "bp_high", 60.0)]
    );
    let out = cuff(&mut engine, 185.0, 100.0, 240.0);
    assert_eq!(seen(&out), [escalated(Medium, High, "bp_high", 240.0)]);
    assert_eq!(out[0].alarm.advice, None);
}

#[test]
fn critical_bp_raises_high_at_once_with_advice_during_infusion() {
    let mut engine = engine(pick(&["bp_high", "bp_critical"]), &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let out = cuff(&mut engine, 205.0, 100.0, 60.0);
    assert_eq!(
        seen(&out),
        [
            raised(Medium, "bp_high", 60.0),
            raised(High, "bp_critical", 60.0)
        ]
    );
    assert!(pause_advice(&out[1].alarm), "{:?}", out[1].alarm.advice);
}

#[test]
fn hypotension_is_armed_for_the_whole_session_including_baseline() {
    let mut engine = engine(pick(&["hypotension"]), &[CUFF]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    // 95/55 (MAP ≈ 68) is above both limits; 86/50 crosses on the systolic reading.
    assert_eq!(seen(&cuff(&mut engine, 95.0, 55.0, 60.0)), []);
    assert_eq!(
        seen(&cuff(&mut engine, 86.0, 50.0, 120.0)),
        [raised(Medium, "hypotension", 120.0)]
    );
}

// ---------------------------------------------------------------------------------------------
// Pulse
// ---------------------------------------------------------------------------------------------

#[test]
fn pulse_above_150_raises_high_after_10_s_and_above_120_medium_after_60_s() {
    let mut engine = engine(pick(&["pulse_high", "pulse_critical_high"]), &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let values = [vec![80.0], repeat(155.0, 61), vec![90.0]].concat();
    assert_eq!(
        seen(&feed(&mut engine, Vital::PulseRate, 0.0, &values)),
        [
            raised(High, "pulse_critical_high", 11.0),
            raised(Medium, "pulse_high", 61.0),
            ended(Medium, "pulse_high", 62.0),
            condition_ended(High, "pulse_critical_high", 62.0),
        ]
    );
}

#[test]
fn pulse_below_40_raises_high_after_10_s_and_below_50_medium_after_30_s() {
    let mut engine = engine(pick(&["pulse_low", "pulse_critical_low"]), &[OX]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    let values = [vec![70.0], repeat(38.0, 31), vec![45.0], vec![60.0]].concat();
    assert_eq!(
        seen(&feed(&mut engine, Vital::PulseRate, 0.0, &values)),
        [
            raised(High, "pulse_critical_low", 11.0),
            raised(Medium, "pulse_low", 31.0),
            condition_ended(High, "pulse_critical_low", 32.0),
            ended(Medium, "pulse_low", 33.0),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Flagged readings and signal-quality technical alarms
// ---------------------------------------------------------------------------------------------

#[test]
fn artefact_or_low_perfusion_readings_never_raise_spo2_alarms_but_raise_poor_signal_after_15_s() {
    for flag in [Quality::ARTEFACT, Quality::LOW_PERFUSION] {
        let mut engine = engine(pick(&["spo2_low", "spo2_critical"]), &[OX]);
        engine.set_phase(Some(Phase::Baseline), t(0.0));
        let mut out = feed_flagged(&mut engine, flag, Some(70.0), 0.0, 20);
        out.extend(feed_spo2(&mut engine, 20.0, &[97.0]));
        assert_eq!(
            seen(&out),
            [
                raised(Low, "poor_signal", 15.0),
                ended(Low, "poor_signal", 20.0)
            ],
            "{flag:?}"
        );
    }
}

#[test]
fn sensor_off_or_searching_readings_never_raise_spo2_alarms_but_raise_sensor_off_after_10_s() {
    for (flag, value) in [(Quality::SENSOR_OFF, None), (Quality::SEARCHING, Some(0.0))] {
        let mut engine = engine(pick(&["spo2_low", "spo2_critical"]), &[OX]);
        engine.set_phase(Some(Phase::Baseline), t(0.0));
        let mut out = feed_flagged(&mut engine, flag, value, 0.0, 13);
        out.extend(feed_spo2(&mut engine, 13.0, &[97.0]));
        assert_eq!(
            seen(&out),
            [
                raised(Medium, "sensor_off", 10.0),
                ended(Medium, "sensor_off", 13.0)
            ],
            "{flag:?}"
        );
    }
}

#[test]
fn a_flagged_reading_cancels_a_pending_spo2_onset() {
    let mut engine = engine(pick(&["spo2_low"]), &[OX]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    let mut out = feed_spo2(&mut engine, 0.0, &repeat(88.0, 10));
    out.extend(feed_flagged(
        &mut engine,
        Quality::ARTEFACT,
        Some(88.0),
        10.0,
        1,
    ));
    // Below 90 again from t = 11: the delay counts from there, not from t = 0.
    out.extend(feed_spo2(&mut engine, 11.0, &repeat(88.0, 16)));
    assert_eq!(seen(&out), [raised(Medium, "spo2_low", 26.0)]);
}

#[test]
fn a_value_less_reading_cancels_a_pending_spo2_onset() {
    let mut engine = engine(pick(&["spo2_low"]), &[OX]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    let mut out = feed_spo2(&mut engine, 0.0, &repeat(88.0, 10));
    out.extend(feed_flagged(&mut engine, Quality::GOOD, None, 10.0, 1));
    out.extend(feed_spo2(&mut engine, 11.0, &repeat(88.0, 16)));
    assert_eq!(seen(&out), [raised(Medium, "spo2_low", 26.0)]);
}

#[test]
fn flagged_readings_never_clear_an_active_spo2_alarm() {
    let mut engine = engine(pick(&["spo2_low"]), &[OX]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    let mut out = feed_spo2(&mut engine, 0.0, &repeat(88.0, 16));
    out.extend(feed_flagged(
        &mut engine,
        Quality::ARTEFACT,
        Some(98.0),
        16.0,
        1,
    ));
    out.extend(feed_flagged(
        &mut engine,
        Quality::SENSOR_OFF,
        None,
        17.0,
        1,
    ));
    out.extend(feed_flagged(&mut engine, Quality::GOOD, None, 18.0, 1));
    out.extend(feed_spo2(&mut engine, 19.0, &[98.0]));
    assert_eq!(
        seen(&out),
        [
            raised(Medium, "spo2_low", 15.0),
            ended(Medium, "spo2_low", 19.0)
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Link and ring technical alarms
// ---------------------------------------------------------------------------------------------

#[test]
fn a_lost_link_raises_disconnected_at_once_and_suppresses_the_silence_alarm() {
    let mut engine = engine(pick(&["spo2_low"]), &[OX]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    let ox = DeviceId::new(OX);
    assert_eq!(seen(&feed_spo2(&mut engine, 0.0, &repeat(97.0, 5))), []);
    let lost = engine.link(&ox, LinkState::Lost, Some("port gone".into()), t(5.0));
    assert_eq!(seen(&lost), [raised(Medium, "device_disconnected", 5.0)]);
    assert_eq!(lost[0].alarm.kind, AlarmKind::Technical);
    for second in 6..=70 {
        assert_eq!(
            seen(&engine.tick(t(f64::from(second)))),
            [],
            "at {second} s"
        );
    }
    assert_eq!(
        seen(&engine.link(&ox, LinkState::Connected, None, t(71.0))),
        [ended(Medium, "device_disconnected", 71.0)]
    );
    assert_eq!(
        seen(&feed_spo2(&mut engine, 72.0, &[97.0])),
        [],
        "no stale silence alarm on reconnection"
    );
}

#[test]
fn a_lost_link_replaces_an_active_silence_alarm() {
    let mut engine = engine(pick(&["spo2_low"]), &[OX]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    let ox = DeviceId::new(OX);
    assert_eq!(seen(&feed_spo2(&mut engine, 0.0, &repeat(97.0, 5))), []);
    assert_eq!(
        seen(&engine.tick(t(14.0))),
        [raised(Medium, "device_silent", 14.0)]
    );
    assert_eq!(
        seen(&engine.link(&ox, LinkState::Lost, None, t(20.0))),
        [
            raised(Medium, "device_disconnected", 20.0),
            ended(Medium, "device_silent", 20.0)
        ]
    );
}

#[test]
fn ring_overflow_raises_low_at_once_and_ends_after_30_s_without_new_drops() {
    let mut engine = engine(Vec::new(), &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let bp = DeviceId::new(CUFF);
    let out = engine.ring_dropped(&bp, 3, t(10.0));
    assert_eq!(seen(&out), [raised(Low, "ring_overflow", 10.0)]);
    assert_eq!(out[0].alarm.kind, AlarmKind::Technical);
    assert_eq!(
        seen(&engine.ring_dropped(&bp, 3, t(20.0))),
        [],
        "same total: no new drops"
    );
    assert_eq!(
        seen(&engine.ring_dropped(&bp, 5, t(25.0))),
        [],
        "already active"
    );
    assert_eq!(
        seen(&engine.tick(t(54.9))),
        [],
        "30 s counts from the last new drop"
    );
    assert_eq!(
        seen(&engine.tick(t(55.0))),
        [ended(Low, "ring_overflow", 55.0)]
    );
    assert_eq!(
        seen(&engine.ring_dropped(&bp, 6, t(60.0))),
        [raised(Low, "ring_overflow", 60.0)]
    );
}

#[test]
fn ring_overflow_is_not_raised_without_a_session() {
    let mut engine = engine(Vec::new(), &[CUFF]);
    let bp = DeviceId::new(CUFF);
    assert_eq!(seen(&engine.ring_dropped(&bp, 3, t(10.0))), []);
    assert_eq!(seen(&engine.tick(t(40.0))), []);
    // Over before the session started: nothing to report when it does.
    assert_eq!(seen(&engine.set_phase(Some(Phase::Baseline), t(50.0))), []);
}

/// The second measurement 170/112 crosses on diastolic only. Judged reading by reading, the
/// systolic 170 would end the alarm and the diastolic 112 raise a new one (a false "ended" in
/// the log, and a new id that loses any acknowledgement); judged as one measurement, the same
/// alarm escalates.
#[test]
fn a_confirming_measurement_that_crosses_only_on_diastolic_escalates_the_same_alarm() {
    let mut engine = engine(pick(&["bp_high"]), &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    assert_eq!(
        seen(&cuff(&mut engine, 190.0, 100.0, 60.0)),
        [raised(Medium, "bp_high", 60.0)]
    );
    assert_eq!(
        seen(&cuff(&mut engine, 170.0, 112.0, 180.0)),
        [escalated(Medium, High, "bp_high", 180.0)]
    );
}

#[test]
fn the_order_of_a_measurements_readings_does_not_change_the_outcome() {
    let run = |reverse: bool| {
        let mut engine = engine(pick(&["bp_high"]), &[CUFF]);
        engine.set_phase(Some(Phase::Infusion), t(0.0));
        let mut out = Vec::new();
        for (systolic, diastolic, at) in [
            (190.0, 100.0, 60.0),
            (170.0, 112.0, 180.0),
            (150.0, 90.0, 300.0),
        ] {
            let mut measurement = cuff_measurement(systolic, diastolic, at);
            if reverse {
                measurement.reverse();
            }
            out.extend(engine.observe_measurement(&measurement, t(at)));
        }
        seen(&out)
    };
    let expected = [
        raised(Medium, "bp_high", 60.0),
        escalated(Medium, High, "bp_high", 180.0),
        condition_ended(High, "bp_high", 300.0),
    ];
    assert_eq!(run(false), expected);
    assert_eq!(run(true), expected);
}

// ---------------------------------------------------------------------------------------------
// Latching (clinical notes: high-priority physiological alarms stay until acknowledged)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_critical_spo2_alarm_latches_when_its_condition_ends_and_sounds_until_acknowledged() {
    let mut engine = engine(pick(&["spo2_critical"]), &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let out = feed_spo2(&mut engine, 0.0, &[97.0, 80.0, 80.0, 97.0]);
    assert_eq!(
        seen(&out),
        [
            raised(High, "spo2_critical", 1.0),
            condition_ended(High, "spo2_critical", 3.0)
        ]
    );
    let id = out[0].alarm.id;
    assert!(out[0].alarm.latching);
    assert_eq!(out[1].alarm.id, id);
    assert!(!out[1].alarm.condition_present);

    // A minute of normal readings: the latched alarm stays, and it still sounds.
    assert_eq!(seen(&feed_spo2(&mut engine, 4.0, &repeat(97.0, 57))), []);
    assert_eq!(active_ids(&engine), [id]);
    let alarm = engine.alarm(id).expect("the latched alarm is still active");
    assert!(!alarm.condition_present);
    assert_eq!(alarm.acknowledged_by, None);
    assert!(alarm.is_audible(t(60.5)));

    // Acknowledging it resets it.
    let out = engine.acknowledge(id, "nurse", t(61.0)).unwrap();
    assert_eq!(
        seen(&out),
        [
            acknowledged("nurse", High, "spo2_critical", 61.0),
            ended(High, "spo2_critical", 61.0)
        ]
    );
    assert!(out.iter().all(|tr| tr.alarm.id == id));
    assert_eq!(out[1].alarm.acknowledged_by.as_deref(), Some("nurse"));
    assert_eq!(active_ids(&engine), []);
}

#[test]
fn a_latched_alarm_whose_condition_returns_is_the_same_alarm_and_acknowledging_keeps_it() {
    let mut engine = engine(pick(&["spo2_critical"]), &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let out = feed_spo2(&mut engine, 0.0, &[97.0, 80.0, 97.0, 97.0, 82.0]);
    assert_eq!(
        seen(&out),
        [
            raised(High, "spo2_critical", 1.0),
            condition_ended(High, "spo2_critical", 2.0),
            condition_returned(High, "spo2_critical", 4.0),
        ]
    );
    let id = out[0].alarm.id;
    assert!(out.iter().all(|tr| tr.alarm.id == id));
    assert!(out[2].alarm.condition_present);
    assert_eq!(out[2].alarm.value, Some(82.0));
    assert_eq!(active_ids(&engine), [id]);

    // Acknowledged while the condition is back: silenced, not reset.
    assert_eq!(
        seen(&engine.acknowledge(id, "nurse", t(4.7)).unwrap()),
        [acknowledged("nurse", High, "spo2_critical", 4.7)]
    );
    let alarm = engine
        .alarm(id)
        .expect("a present condition is never hidden");
    assert!(alarm.condition_present);
    assert!(!alarm.is_audible(t(4.7)));

    // Once acknowledged it no longer latches: it ends with its condition.
    assert_eq!(
        seen(&feed_spo2(&mut engine, 5.0, &[82.0, 97.0])),
        [ended(High, "spo2_critical", 6.0)]
    );
    assert_eq!(active_ids(&engine), []);
}

#[test]
fn a_medium_spo2_alarm_does_not_latch() {
    let mut engine = engine(pick(&["spo2_low"]), &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let values = [repeat(88.0, 16), vec![97.0]].concat();
    let out = feed_spo2(&mut engine, 0.0, &values);
    assert_eq!(
        seen(&out),
        [
            raised(Medium, "spo2_low", 15.0),
            ended(Medium, "spo2_low", 16.0)
        ]
    );
    assert!(!out[0].alarm.latching);
    assert_eq!(active_ids(&engine), []);
}

// ---------------------------------------------------------------------------------------------
// Acknowledge (clinical notes: audio off until it ends, visual while the condition exists)
// ---------------------------------------------------------------------------------------------

#[test]
fn acknowledging_a_present_condition_silences_the_alarm_and_keeps_it_until_the_condition_ends() {
    let mut engine = engine(pick(&["spo2_low"]), &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let out = feed_spo2(&mut engine, 0.0, &repeat(88.0, 16));
    assert_eq!(seen(&out), [raised(Medium, "spo2_low", 15.0)]);
    let id = out[0].alarm.id;
    assert!(out[0].alarm.is_audible(t(15.0)));

    let out = engine.acknowledge(id, "nurse", t(15.7)).unwrap();
    assert_eq!(
        seen(&out),
        [acknowledged("nurse", Medium, "spo2_low", 15.7)]
    );
    assert_eq!(out[0].alarm.acknowledged_by.as_deref(), Some("nurse"));
    assert!(out[0].alarm.condition_present);
    assert!(!out[0].alarm.is_audible(t(15.7)));

    // Still below 90 for 25 s: visible, silent, nothing new.
    assert_eq!(seen(&feed_spo2(&mut engine, 16.0, &repeat(88.0, 25))), []);
    let alarm = engine
        .alarm(id)
        .expect("visible while the condition exists");
    assert!(alarm.condition_present);
    assert!(!alarm.is_audible(t(40.5)));

    let out = feed_spo2(&mut engine, 41.0, &[97.0]);
    assert_eq!(seen(&out), [ended(Medium, "spo2_low", 41.0)]);
    assert_eq!(out[0].alarm.id, id);
    assert_eq!(active_ids(&engine), []);
}

#[test]
fn an_acknowledged_critical_alarm_ends_with_its_condition_instead_of_latching() {
    let mut engine = engine(pick(&["spo2_critical"]), &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let out = feed_spo2(&mut engine, 0.0, &[97.0, 80.0]);
    assert_eq!(seen(&out), [raised(High, "spo2_critical", 1.0)]);
    let id = out[0].alarm.id;
    assert_eq!(
        seen(&engine.acknowledge(id, "nurse", t(1.7)).unwrap()),
        [acknowledged("nurse", High, "spo2_critical", 1.7)]
    );
    assert_eq!(active_ids(&engine), [id], "acknowledging hides nothing");
    assert_eq!(
        seen(&feed_spo2(&mut engine, 2.0, &[80.0, 80.0, 97.0])),
        [ended(High, "spo2_critical", 4.0)]
    );
    assert_eq!(active_ids(&engine), []);
}

#[test]
fn acknowledging_twice_is_a_no_op_and_an_unknown_or_ended_alarm_is_refused() {
    let mut engine = engine(pick(&["spo2_low"]), &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let out = feed_spo2(&mut engine, 0.0, &repeat(88.0, 16));
    let id = out[0].alarm.id;
    assert_eq!(
        seen(&engine.acknowledge(id, "nurse", t(15.7)).unwrap()),
        [acknowledged("nurse", Medium, "spo2_low", 15.7)]
    );
    assert_eq!(
        seen(&engine.acknowledge(id, "doctor", t(15.8)).unwrap()),
        []
    );
    let alarm = engine.alarm(id).unwrap();
    assert_eq!(alarm.acknowledged_by.as_deref(), Some("nurse"));

    let unknown = AlarmId(id.0 + 100);
    assert_eq!(
        engine.acknowledge(unknown, "nurse", t(15.9)),
        Err(ActionError::NoSuchAlarm(unknown.0))
    );
    assert_eq!(
        engine.audio_pause(Some(unknown), "nurse", t(15.9)),
        Err(ActionError::NoSuchAlarm(unknown.0))
    );

    assert_eq!(
        seen(&feed_spo2(&mut engine, 16.0, &[97.0])),
        [ended(Medium, "spo2_low", 16.0)]
    );
    assert_eq!(
        engine.acknowledge(id, "nurse", t(17.0)),
        Err(ActionError::NoSuchAlarm(id.0))
    );
}

#[test]
fn an_acknowledged_technical_alarm_stays_while_its_condition_lasts() {
    let mut engine = engine(Vec::new(), &[OX]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    let ox = DeviceId::new(OX);
    let out = engine.link(&ox, LinkState::Lost, None, t(5.0));
    assert_eq!(seen(&out), [raised(Medium, "device_disconnected", 5.0)]);
    let id = out[0].alarm.id;
    assert_eq!(
        seen(&engine.acknowledge(id, "nurse", t(6.0)).unwrap()),
        [acknowledged("nurse", Medium, "device_disconnected", 6.0)]
    );
    assert_eq!(seen(&tick_every_second(&mut engine, 7, 100)), []);
    let alarm = engine.alarm(id).expect("still disconnected: still shown");
    assert!(alarm.condition_present);
    assert!(!alarm.is_audible(t(100.0)));
    assert_eq!(
        seen(&engine.link(&ox, LinkState::Connected, None, t(101.0))),
        [ended(Medium, "device_disconnected", 101.0)]
    );
}

// ---------------------------------------------------------------------------------------------
// Audio pause (clinical notes: per alarm, 120 s; a new alarm of higher priority sounds anyway)
// ---------------------------------------------------------------------------------------------

#[test]
fn an_audio_pause_silences_an_alarm_for_exactly_120_s_then_it_sounds_again() {
    let mut engine = engine(pick(&["bp_high"]), &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let out = cuff(&mut engine, 185.0, 100.0, 60.0);
    assert_eq!(seen(&out), [raised(Medium, "bp_high", 60.0)]);
    let id = out[0].alarm.id;

    let out = engine.audio_pause(Some(id), "nurse", t(70.0)).unwrap();
    assert_eq!(seen(&out), [audio_paused("nurse", Medium, "bp_high", 70.0)]);
    assert_eq!(out[0].alarm.audio_paused_by.as_deref(), Some("nurse"));
    assert_eq!(out[0].alarm.acknowledged_by, None);
    assert!(!out[0].alarm.is_audible(t(70.0)));
    assert!(!out[0].alarm.is_audible(t(189.9)));

    assert_eq!(seen(&tick_every_second(&mut engine, 71, 189)), []);
    let out = engine.tick(t(190.0));
    assert_eq!(seen(&out), [audio_resumed(Medium, "bp_high", 190.0)]);
    assert_eq!(out[0].alarm.id, id);
    assert_eq!(out[0].alarm.audio_paused_by, None);
    assert!(out[0].alarm.condition_present);
    assert!(engine.alarm(id).unwrap().is_audible(t(190.0)));
    assert_eq!(seen(&tick_every_second(&mut engine, 191, 300)), [], "once");
}

#[test]
fn an_alarm_that_ends_during_its_audio_pause_does_not_resume() {
    let mut engine = engine(pick(&["bp_high"]), &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let id = cuff(&mut engine, 185.0, 100.0, 60.0)[0].alarm.id;
    engine.audio_pause(Some(id), "nurse", t(70.0)).unwrap();
    assert_eq!(
        seen(&cuff(&mut engine, 150.0, 90.0, 120.0)),
        [ended(Medium, "bp_high", 120.0)]
    );
    assert_eq!(seen(&tick_every_second(&mut engine, 121, 300)), []);
}

#[test]
fn pausing_all_pauses_every_active_unacknowledged_alarm() {
    // Recovery: the disconnection alarm does not escalate, so nothing but the pause changes.
    let mut engine = engine(pick(&["bp_high", "bp_critical"]), &[OX, CUFF]);
    engine.set_phase(Some(Phase::Recovery), t(0.0));
    let lost = engine.link(&DeviceId::new(OX), LinkState::Lost, None, t(10.0));
    assert_eq!(seen(&lost), [raised(Medium, "device_disconnected", 10.0)]);
    let out = cuff(&mut engine, 205.0, 100.0, 20.0);
    assert_eq!(
        seen(&out),
        [
            raised(Medium, "bp_high", 20.0),
            raised(High, "bp_critical", 20.0)
        ]
    );
    let critical = out[1].alarm.id;
    engine.acknowledge(critical, "nurse", t(25.0)).unwrap();

    let out = engine.audio_pause(None, "nurse", t(30.0)).unwrap();
    assert_eq!(
        seen(&out),
        [
            audio_paused("nurse", Medium, "device_disconnected", 30.0),
            audio_paused("nurse", Medium, "bp_high", 30.0),
        ],
        "the acknowledged alarm is silent already"
    );
    assert!(
        engine
            .active_alarms()
            .all(|alarm| !alarm.is_audible(t(30.0)))
    );
    assert_eq!(engine.alarm(critical).unwrap().audio_paused_by, None);

    assert_eq!(seen(&tick_every_second(&mut engine, 31, 149)), []);
    assert_eq!(
        seen(&engine.tick(t(150.0))),
        [
            audio_resumed(Medium, "device_disconnected", 150.0),
            audio_resumed(Medium, "bp_high", 150.0),
        ]
    );
    let audible: Vec<_> = engine
        .active_alarms()
        .map(|alarm| (alarm.id, alarm.is_audible(t(150.0))))
        .collect();
    assert_eq!(
        audible,
        [
            (lost[0].alarm.id, true),
            (out[1].alarm.id, true),
            (critical, false)
        ]
    );
}

#[test]
fn a_higher_priority_alarm_raised_during_an_audio_pause_sounds() {
    let mut engine = engine(pick(&["spo2_critical", "bp_high"]), &[OX, CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    assert_eq!(seen(&feed_spo2(&mut engine, 0.0, &repeat(97.0, 30))), []);
    let bp = cuff(&mut engine, 185.0, 100.0, 30.0);
    assert_eq!(seen(&bp), [raised(Medium, "bp_high", 30.0)]);
    assert_eq!(
        seen(&engine.audio_pause(None, "nurse", t(30.0)).unwrap()),
        [audio_paused("nurse", Medium, "bp_high", 30.0)]
    );

    let values = [repeat(97.0, 10), vec![80.0]].concat();
    let out = feed_spo2(&mut engine, 30.0, &values);
    assert_eq!(seen(&out), [raised(High, "spo2_critical", 40.0)]);
    assert_eq!(out[0].alarm.audio_paused_by, None);
    assert!(engine.alarm(out[0].alarm.id).unwrap().is_audible(t(40.0)));
    assert!(!engine.alarm(bp[0].alarm.id).unwrap().is_audible(t(40.0)));
}

#[test]
fn a_bp_confirmation_to_high_clears_the_audio_pause() {
    let mut engine = engine(pick(&["bp_high"]), &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let id = cuff(&mut engine, 185.0, 100.0, 60.0)[0].alarm.id;
    engine.audio_pause(Some(id), "nurse", t(70.0)).unwrap();
    let out = cuff(&mut engine, 182.0, 104.0, 180.0);
    assert_eq!(seen(&out), [escalated(Medium, High, "bp_high", 180.0)]);
    assert_eq!(out[0].alarm.audio_paused_by, None);
    assert!(engine.alarm(id).unwrap().is_audible(t(180.0)));
    assert_eq!(
        seen(&tick_every_second(&mut engine, 181, 300)),
        [],
        "no pause left to run out"
    );
}

// ---------------------------------------------------------------------------------------------
// Escalation of alarms left unacknowledged
// ---------------------------------------------------------------------------------------------

#[test]
fn device_disconnected_in_infusion_escalates_to_high_exactly_60_s_later() {
    let mut engine = engine(Vec::new(), &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let ox = DeviceId::new(OX);
    let out = engine.link(&ox, LinkState::Lost, None, t(10.0));
    assert_eq!(seen(&out), [raised(Medium, "device_disconnected", 10.0)]);
    let id = out[0].alarm.id;

    assert_eq!(seen(&tick_every_second(&mut engine, 11, 69)), []);
    let out = engine.tick(t(70.0));
    assert_eq!(
        seen(&out),
        [escalated(Medium, High, "device_disconnected", 70.0)]
    );
    assert_eq!(out[0].alarm.id, id);
    assert_eq!(out[0].alarm.kind, AlarmKind::Technical);
    assert!(!out[0].alarm.latching, "technical alarms never latch");
    assert_eq!(seen(&tick_every_second(&mut engine, 71, 200)), [], "once");
    assert_eq!(
        seen(&engine.link(&ox, LinkState::Connected, None, t(201.0))),
        [ended(High, "device_disconnected", 201.0)]
    );
}

#[test]
fn device_disconnected_raised_in_baseline_escalates_60_s_after_the_infusion_starts() {
    let mut engine = engine(Vec::new(), &[OX]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    let lost = engine.link(&DeviceId::new(OX), LinkState::Lost, None, t(10.0));
    assert_eq!(seen(&lost), [raised(Medium, "device_disconnected", 10.0)]);
    assert_eq!(seen(&tick_every_second(&mut engine, 11, 299)), []);
    assert_eq!(seen(&engine.set_phase(Some(Phase::Infusion), t(300.0))), []);
    assert_eq!(seen(&tick_every_second(&mut engine, 301, 359)), []);
    assert_eq!(
        seen(&engine.tick(t(360.0))),
        [escalated(Medium, High, "device_disconnected", 360.0)]
    );
}

#[test]
fn device_disconnected_does_not_escalate_once_the_infusion_has_ended() {
    let mut engine = engine(Vec::new(), &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let lost = engine.link(&DeviceId::new(OX), LinkState::Lost, None, t(10.0));
    assert_eq!(seen(&lost), [raised(Medium, "device_disconnected", 10.0)]);
    assert_eq!(seen(&tick_every_second(&mut engine, 11, 50)), []);
    assert_eq!(seen(&engine.set_phase(Some(Phase::Recovery), t(50.5))), []);
    assert_eq!(seen(&tick_every_second(&mut engine, 51, 600)), []);
    assert_eq!(engine.alarm(lost[0].alarm.id).unwrap().priority, Medium);
}

#[test]
fn acknowledging_device_disconnected_stops_its_escalation() {
    let mut engine = engine(Vec::new(), &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let lost = engine.link(&DeviceId::new(OX), LinkState::Lost, None, t(10.0));
    let id = lost[0].alarm.id;
    assert_eq!(seen(&tick_every_second(&mut engine, 11, 40)), []);
    assert_eq!(
        seen(&engine.acknowledge(id, "nurse", t(40.5)).unwrap()),
        [acknowledged("nurse", Medium, "device_disconnected", 40.5)]
    );
    assert_eq!(seen(&tick_every_second(&mut engine, 41, 600)), []);
    let alarm = engine.alarm(id).unwrap();
    assert_eq!(alarm.priority, Medium);
    assert!(alarm.condition_present);
}

#[test]
fn an_escalation_clears_the_audio_pause_of_the_alarm() {
    let mut engine = engine(Vec::new(), &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let lost = engine.link(&DeviceId::new(OX), LinkState::Lost, None, t(10.0));
    let id = lost[0].alarm.id;
    assert_eq!(
        seen(&engine.audio_pause(Some(id), "nurse", t(20.0)).unwrap()),
        [audio_paused("nurse", Medium, "device_disconnected", 20.0)]
    );
    assert_eq!(seen(&tick_every_second(&mut engine, 21, 69)), []);
    let out = engine.tick(t(70.0));
    assert_eq!(
        seen(&out),
        [escalated(Medium, High, "device_disconnected", 70.0)]
    );
    assert_eq!(out[0].alarm.audio_paused_by, None);
    assert!(out[0].alarm.is_audible(t(70.0)));
    assert_eq!(
        seen(&tick_every_second(&mut engine, 71, 200)),
        [],
        "the pause that would have run out at 140 s is gone"
    );
}

#[test]
fn a_physiological_rule_with_an_escalation_escalates_when_left_unacknowledged() {
    let rules = escalating("hypotension", 120, High, PhaseSet::WHOLE_SESSION);
    let mut engine = engine(rules, &[CUFF]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    let out = cuff(&mut engine, 85.0, 50.0, 60.0);
    assert_eq!(seen(&out), [raised(Medium, "hypotension", 60.0)]);
    let id = out[0].alarm.id;
    assert!(!out[0].alarm.latching);

    assert_eq!(seen(&tick_every_second(&mut engine, 61, 179)), []);
    let out = engine.tick(t(180.0));
    assert_eq!(seen(&out), [escalated(Medium, High, "hypotension", 180.0)]);
    assert_eq!(out[0].alarm.id, id);
    assert!(out[0].alarm.latching, "now a high physiological alarm");

    assert_eq!(
        seen(&cuff(&mut engine, 120.0, 80.0, 300.0)),
        [condition_ended(High, "hypotension", 300.0)]
    );
    assert_eq!(
        seen(&engine.acknowledge(id, "nurse", t(310.0)).unwrap()),
        [
            acknowledged("nurse", High, "hypotension", 310.0),
            ended(High, "hypotension", 310.0)
        ]
    );
}

/// A rule whose confirmation and escalation both raise the priority: low, confirmed to medium,
/// escalating to high after 60 s. The confirmation is a new alarm signal, so the escalation
/// clock starts again from it (not from the raise, not from the next tick).
#[test]
fn a_confirmation_restarts_the_escalation_clock() {
    let mut rules = escalating("bp_high", 60, High, PhaseSet::of(&[Phase::Infusion]));
    rules[0].priority = Low;
    rules[0].confirmation.as_mut().unwrap().priority = Medium;
    let mut engine = engine(rules, &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    assert_eq!(
        seen(&cuff(&mut engine, 185.0, 100.0, 60.0)),
        [raised(Low, "bp_high", 60.0)]
    );
    assert_eq!(seen(&tick_every_second(&mut engine, 61, 99)), []);
    assert_eq!(
        seen(&cuff(&mut engine, 185.0, 100.0, 100.0)),
        [escalated(Low, Medium, "bp_high", 100.0)]
    );
    assert_eq!(seen(&tick_every_second(&mut engine, 101, 159)), []);
    assert_eq!(
        seen(&engine.tick(t(160.0))),
        [escalated(Medium, High, "bp_high", 160.0)]
    );
}

#[test]
fn an_acknowledged_physiological_alarm_does_not_escalate() {
    let rules = escalating("hypotension", 120, High, PhaseSet::WHOLE_SESSION);
    let mut engine = engine(rules, &[CUFF]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    let id = cuff(&mut engine, 85.0, 50.0, 60.0)[0].alarm.id;
    assert_eq!(seen(&tick_every_second(&mut engine, 61, 100)), []);
    engine.acknowledge(id, "nurse", t(100.5)).unwrap();
    assert_eq!(seen(&tick_every_second(&mut engine, 101, 500)), []);
    assert_eq!(engine.alarm(id).unwrap().priority, Medium);
}

// ---------------------------------------------------------------------------------------------
// Baseline-relative limits (bp_rise: SBP > baseline + 30 %)
// ---------------------------------------------------------------------------------------------

#[test]
fn bp_rise_is_judged_against_the_median_of_the_baseline_cuff_readings() {
    let mut engine = engine(pick(&["bp_rise"]), &[CUFF]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    assert_eq!(seen(&cuff(&mut engine, 118.0, 76.0, 60.0)), []);
    assert_eq!(seen(&cuff(&mut engine, 122.0, 78.0, 240.0)), []);
    // An artefact is no part of the baseline (counted, the median would be 121).
    let artefact = reading(CUFF, Vital::Systolic, Some(200.0), Quality::ARTEFACT, 300.0);
    assert_eq!(seen(&engine.observe(&artefact, t(300.0))), []);
    assert_eq!(seen(&cuff(&mut engine, 120.0, 80.0, 420.0)), []);
    assert_eq!(
        engine.baseline(Vital::Systolic),
        None,
        "unknown until it ends"
    );

    assert_eq!(seen(&engine.set_phase(Some(Phase::Infusion), t(600.0))), []);
    assert_eq!(engine.baseline(Vital::Systolic), Some(120.0));
    // The limit is 120 × 1.3 = 156: a reading at it is not above it.
    assert_eq!(seen(&cuff(&mut engine, 156.0, 90.0, 700.0)), []);
    let out = cuff(&mut engine, 157.0, 90.0, 1000.0);
    assert_eq!(seen(&out), [raised(Low, "bp_rise", 1000.0)]);
    let alarm = &out[0].alarm;
    assert_eq!(
        (alarm.vital, alarm.value, alarm.limit),
        (Some(Vital::Systolic), Some(157.0), Some(156.0))
    );
    assert!(alarm.message.contains("= 156 mmHg"), "{}", alarm.message);
}

#[test]
fn a_session_resumed_after_a_restart_keeps_its_baseline_and_bp_rise_stays_armed() {
    // The daemon died during the infusion; the record had three baseline readings.
    let recorded = [
        (Vital::Systolic, 118.0),
        (Vital::Diastolic, 76.0),
        (Vital::Systolic, 122.0),
        (Vital::Systolic, 120.0),
    ];
    let mut resumed = engine(pick(&["bp_rise"]), &[CUFF]);
    assert_eq!(
        seen(&resumed.resume_session(Phase::Infusion, recorded, t(0.0))),
        []
    );
    assert_eq!(resumed.baseline(Vital::Systolic), Some(120.0));
    assert_eq!(resumed.baseline(Vital::Diastolic), Some(76.0));
    assert_eq!(seen(&cuff(&mut resumed, 156.0, 90.0, 60.0)), []);
    assert_eq!(
        seen(&cuff(&mut resumed, 157.0, 90.0, 300.0)),
        [raised(Low, "bp_rise", 300.0)]
    );

    // Resumed still in the baseline phase, the baseline goes on from the recorded readings.
    let mut in_baseline = engine(pick(&["bp_rise"]), &[CUFF]);
    in_baseline.resume_session(Phase::Baseline, [(Vital::Systolic, 100.0)], t(0.0));
    assert_eq!(
        in_baseline.baseline(Vital::Systolic),
        None,
        "unknown until it ends"
    );
    cuff(&mut in_baseline, 110.0, 70.0, 60.0);
    cuff(&mut in_baseline, 104.0, 70.0, 120.0);
    in_baseline.set_phase(Some(Phase::Infusion), t(600.0));
    assert_eq!(in_baseline.baseline(Vital::Systolic), Some(104.0));
}

#[test]
fn without_baseline_readings_bp_rise_raises_nothing() {
    let mut engine = engine(pick(&["bp_rise"]), &[CUFF]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    assert_eq!(seen(&engine.set_phase(Some(Phase::Infusion), t(600.0))), []);
    assert_eq!(engine.baseline(Vital::Systolic), None);
    assert_eq!(seen(&cuff(&mut engine, 200.0, 100.0, 700.0)), []);
    assert_eq!(seen(&cuff(&mut engine, 210.0, 100.0, 800.0)), []);
}

#[test]
fn baseline_readings_do_not_leak_into_the_next_session() {
    let mut engine = engine(pick(&["bp_rise"]), &[CUFF]);
    // Session 1: baseline 100, limit 130.
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    for at in [60.0, 120.0, 180.0] {
        cuff(&mut engine, 100.0, 60.0, at);
    }
    engine.set_phase(Some(Phase::Infusion), t(600.0));
    assert_eq!(engine.baseline(Vital::Systolic), Some(100.0));
    assert_eq!(
        seen(&cuff(&mut engine, 135.0, 80.0, 700.0)),
        [raised(Low, "bp_rise", 700.0)]
    );
    assert_eq!(
        seen(&engine.set_phase(None, t(800.0))),
        [ended(Low, "bp_rise", 800.0)]
    );

    // Session 2: one baseline reading of 140, limit 182. With session 1's readings mixed in
    // the median would be 100 and 160 would raise.
    engine.set_phase(Some(Phase::Baseline), t(1000.0));
    assert_eq!(engine.baseline(Vital::Systolic), None, "a new session");
    cuff(&mut engine, 140.0, 85.0, 1060.0);
    engine.set_phase(Some(Phase::Infusion), t(1200.0));
    assert_eq!(engine.baseline(Vital::Systolic), Some(140.0));
    assert_eq!(seen(&cuff(&mut engine, 160.0, 90.0, 1300.0)), []);
    assert_eq!(
        seen(&engine.set_phase(None, t(1400.0))),
        [],
        "nothing was raised"
    );

    // Session 3: no baseline readings, so no baseline (not session 2's 140).
    engine.set_phase(Some(Phase::Baseline), t(2000.0));
    engine.set_phase(Some(Phase::Infusion), t(2600.0));
    assert_eq!(engine.baseline(Vital::Systolic), None);
    assert_eq!(seen(&cuff(&mut engine, 200.0, 100.0, 2700.0)), []);
    engine.set_phase(None, t(2800.0));

    // Session 4 has a baseline of 140 (limit 182); session 5 starts straight in the infusion,
    // so it has no baseline at all.
    engine.set_phase(Some(Phase::Baseline), t(3000.0));
    cuff(&mut engine, 140.0, 85.0, 3060.0);
    engine.set_phase(Some(Phase::Infusion), t(3600.0));
    engine.set_phase(None, t(3700.0));
    engine.set_phase(Some(Phase::Infusion), t(4000.0));
    assert_eq!(engine.baseline(Vital::Systolic), None);
    assert_eq!(seen(&cuff(&mut engine, 200.0, 100.0, 4100.0)), []);
}

// ---------------------------------------------------------------------------------------------
// Rate of change ({ spo2 falls_by 4 within 60 s })
// ---------------------------------------------------------------------------------------------

#[test]
fn spo2_falling_by_4_within_60_s_raises_the_rate_alarm() {
    let mut engine = engine(vec![spo2_fall_rule()], &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    // 97 → 92 in steps of 10 s: 93 at t = 40 is 4 below the 97 of t = 0..9. The alarm ends at
    // t = 80, when the last 96 (t = 19) has left the window and the fall is 3.
    let values = [
        repeat(97.0, 10),
        repeat(96.0, 10),
        repeat(95.0, 10),
        repeat(94.0, 10),
        repeat(93.0, 10),
        repeat(92.0, 40),
    ]
    .concat();
    let out = feed_spo2(&mut engine, 0.0, &values);
    assert_eq!(
        seen(&out),
        [
            raised(Medium, "spo2_fall", 40.0),
            ended(Medium, "spo2_fall", 80.0)
        ]
    );
    let alarm = &out[0].alarm;
    assert_eq!(
        (alarm.vital, alarm.value, alarm.limit),
        (Some(Vital::Spo2), Some(4.0), Some(4.0))
    );
    assert!(alarm.message.contains("fell 4 %"), "{}", alarm.message);
}

#[test]
fn the_same_spo2_fall_spread_over_90_s_raises_nothing() {
    let mut engine = engine(vec![spo2_fall_rule()], &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    // 97 → 92 evenly over 90 s: at most 3.3 within any 60 s.
    let falling = (0..=90).map(|second| 97.0 - 5.0 * f64::from(second) / 90.0);
    let values: Vec<f64> = falling.chain(repeat(92.0, 60)).collect();
    assert_eq!(seen(&feed_spo2(&mut engine, 0.0, &values)), []);
}

#[test]
fn flagged_readings_never_count_towards_a_fall() {
    let mut engine = engine(vec![spo2_fall_rule()], &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let mut out = feed_spo2(&mut engine, 0.0, &repeat(97.0, 10));
    // A flagged dip to 90 (a fall of 7, were it counted) ...
    out.extend(feed_flagged(
        &mut engine,
        Quality::ARTEFACT,
        Some(90.0),
        10.0,
        3,
    ));
    // ... and a flagged spike to 99 before 94 (a fall of 5 from it, 3 from the good 97).
    out.extend(feed_spo2(&mut engine, 13.0, &repeat(97.0, 5)));
    out.extend(feed_flagged(
        &mut engine,
        Quality::LOW_PERFUSION,
        Some(99.0),
        18.0,
        1,
    ));
    out.extend(feed_spo2(&mut engine, 19.0, &repeat(94.0, 10)));
    assert_eq!(seen(&out), []);
}

// ---------------------------------------------------------------------------------------------
// BP overdue (no cuff reading within the phase's interval + the technical rule's 120 s)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_silent_cuff_in_infusion_raises_bp_overdue_720_s_after_its_last_reading() {
    let mut engine = engine(Vec::new(), &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    assert_eq!(seen(&cuff(&mut engine, 120.0, 80.0, 100.0)), []);
    assert_eq!(seen(&tick_every_second(&mut engine, 101, 819)), []);
    let out = engine.tick(t(820.0));
    assert_eq!(seen(&out), [raised(Low, "bp_overdue", 820.0)]);
    let alarm = &out[0].alarm;
    assert_eq!(alarm.kind, AlarmKind::Technical);
    assert_eq!(alarm.device, DeviceId::new(CUFF));
    assert_eq!(
        alarm.source,
        AlarmSource::Technical {
            condition: TechnicalCondition::BpOverdue
        }
    );
    assert_eq!(seen(&tick_every_second(&mut engine, 821, 899)), [], "once");

    // A measurement ends it, and the schedule counts from it.
    assert_eq!(
        seen(&cuff(&mut engine, 120.0, 80.0, 900.0)),
        [ended(Low, "bp_overdue", 900.0)]
    );
    assert_eq!(seen(&tick_every_second(&mut engine, 901, 1619)), []);
    assert_eq!(
        seen(&engine.tick(t(1620.0))),
        [raised(Low, "bp_overdue", 1620.0)]
    );
}

#[test]
fn a_phase_change_ends_bp_overdue_and_restarts_the_schedule() {
    let mut engine = engine(Vec::new(), &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    cuff(&mut engine, 120.0, 80.0, 100.0);
    assert_eq!(
        seen(&tick_every_second(&mut engine, 101, 849)),
        [raised(Low, "bp_overdue", 820.0)]
    );
    assert_eq!(
        seen(&engine.set_phase(Some(Phase::Recovery), t(850.0))),
        [ended(Low, "bp_overdue", 850.0)]
    );
    // Recovery: every 900 s, from the phase's start.
    assert_eq!(seen(&tick_every_second(&mut engine, 851, 1869)), []);
    assert_eq!(
        seen(&engine.tick(t(1870.0))),
        [raised(Low, "bp_overdue", 1870.0)]
    );
}

#[test]
fn a_phase_change_restarts_a_pending_bp_schedule() {
    // Never measured: due 600 s after the baseline starts, alarm 120 s later (720 s) ...
    let mut engine = engine(Vec::new(), &[CUFF]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    assert_eq!(seen(&tick_every_second(&mut engine, 1, 649)), []);
    // ... but the infusion starts at 650 s, overdue since 600 s: counted again from 650 s.
    assert_eq!(seen(&engine.set_phase(Some(Phase::Infusion), t(650.0))), []);
    assert_eq!(seen(&tick_every_second(&mut engine, 651, 1369)), []);
    assert_eq!(
        seen(&engine.tick(t(1370.0))),
        [raised(Low, "bp_overdue", 1370.0)]
    );
}

// ---------------------------------------------------------------------------------------------
// Advice follows the phase
// ---------------------------------------------------------------------------------------------

#[test]
fn a_confirmed_bp_high_alarm_loses_its_pause_advice_when_the_infusion_ends() {
    let mut engine = engine(pick(&["bp_high", "bp_critical"]), &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let out = cuff(&mut engine, 205.0, 100.0, 60.0);
    assert_eq!(
        seen(&out),
        [
            raised(Medium, "bp_high", 60.0),
            raised(High, "bp_critical", 60.0)
        ]
    );
    let (high, critical) = (out[0].alarm.id, out[1].alarm.id);
    let out = cuff(&mut engine, 202.0, 100.0, 300.0);
    assert_eq!(seen(&out), [escalated(Medium, High, "bp_high", 300.0)]);
    assert!(pause_advice(&out[0].alarm), "{:?}", out[0].alarm.advice);
    assert!(pause_advice(engine.alarm(critical).unwrap()));

    let out = engine.set_phase(Some(Phase::Recovery), t(400.0));
    assert_eq!(
        seen(&out),
        [
            advice_changed(High, "bp_high", 400.0),
            advice_changed(High, "bp_critical", 400.0)
        ]
    );
    assert_eq!((out[0].alarm.id, out[1].alarm.id), (high, critical));
    assert!(out.iter().all(|tr| tr.alarm.advice.is_none()));
    assert!(out.iter().all(|tr| tr.alarm.condition_present));
    assert!(engine.active_alarms().all(|alarm| alarm.advice.is_none()));
    assert_eq!(
        seen(&engine.set_phase(Some(Phase::Recovery), t(500.0))),
        [],
        "the same phase again changes nothing"
    );
}

#[test]
fn a_flagged_cuff_measurement_does_not_count_as_the_overdue_bp() {
    let mut engine = engine(Vec::new(), &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    cuff(&mut engine, 120.0, 80.0, 0.0);
    // A measurement flagged as artefact at 700 s is no usable blood pressure: the schedule
    // still counts from 0 s, so BP is overdue at 0 + 600 (infusion) + 120 (delay) s.
    let flagged = reading(CUFF, Vital::Systolic, Some(125.0), Quality::ARTEFACT, 700.0);
    engine.observe(&flagged, t(700.0));
    let overdue = |transitions: Vec<AlarmTransition>| -> Vec<Seen> {
        seen(&transitions)
            .into_iter()
            .filter(|s| s.2 == "bp_overdue")
            .collect()
    };
    assert_eq!(overdue(tick_every_second(&mut engine, 701, 719)), []);
    assert_eq!(
        overdue(engine.tick(t(720.0))),
        [raised(Low, "bp_overdue", 720.0)]
    );
}

#[test]
fn a_fall_that_began_in_the_last_session_does_not_count_in_the_next() {
    let mut engine = engine(vec![spo2_fall_rule()], &[OX]);
    engine.set_phase(Some(Phase::Baseline), t(0.0));
    assert_eq!(seen(&feed_spo2(&mut engine, 0.0, &repeat(97.0, 10))), []);
    engine.set_phase(None, t(10.0));
    engine.set_phase(Some(Phase::Baseline), t(11.0));
    // 92 is 5 below the last patient's 97, within 60 s: not a fall of this patient's SpO2.
    assert_eq!(seen(&feed_spo2(&mut engine, 12.0, &[92.0, 92.0])), []);
}

#[test]
fn decode_errors_above_the_rate_raise_a_technical_alarm_that_ends_when_the_rate_falls() {
    let mut engine = engine(Vec::new(), &[OX]);
    let ox = DeviceId::new(OX);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    // The default threshold: 5 within 60 s. Four stray errors are not worth an alarm.
    for at in [10.0, 20.0, 30.0, 40.0] {
        assert_eq!(seen(&engine.decode_error(&ox, t(at))), []);
    }
    assert_eq!(
        seen(&engine.decode_error(&ox, t(50.0))),
        [raised(Low, "decode_errors", 50.0)]
    );
    // At 70 s the error of 10 s leaves the window: four remain, the condition is over. (The
    // oximeter is also silent by then: garbage is no data, a separate alarm.)
    let decode = |transitions: Vec<AlarmTransition>| -> Vec<Seen> {
        seen(&transitions)
            .into_iter()
            .filter(|s| s.2 == "decode_errors")
            .collect()
    };
    assert_eq!(decode(engine.tick(t(69.0))), []);
    assert_eq!(
        decode(engine.tick(t(70.5))),
        [ended(Low, "decode_errors", 70.5)]
    );
    assert_eq!(engine.devices()[0].decode_errors(), 5);
}

#[test]
fn a_flood_of_decode_errors_keeps_only_the_times_the_rate_needs_and_alarms_as_before() {
    let mut engine = engine(Vec::new(), &[OX]);
    let ox = DeviceId::new(OX);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    // 20 000 errors within 0.2 s (garbage at full speed): one alarm, five times kept (the
    // default threshold is 5 within 60 s), every error counted.
    let mut transitions = Vec::new();
    for i in 0..20_000 {
        transitions.extend(engine.decode_error(&ox, t(10.0 + f64::from(i) * 1e-5)));
        assert!(engine.devices()[0].decode_error_times_kept() <= 5);
    }
    assert_eq!(seen(&transitions), [raised(Low, "decode_errors", 10.00004)]);
    assert_eq!(engine.devices()[0].decode_errors(), 20_000);
    // It ends when the fifth-latest error (at 10.19995 s) leaves the 60 s window, as it would
    // with every time kept.
    let decode = |transitions: Vec<AlarmTransition>| -> Vec<Seen> {
        seen(&transitions)
            .into_iter()
            .filter(|s| s.2 == "decode_errors")
            .collect()
    };
    assert_eq!(decode(engine.tick(t(70.1999))), []);
    assert_eq!(
        decode(engine.tick(t(70.2))),
        [ended(Low, "decode_errors", 70.2)]
    );
}

#[test]
fn the_next_reading_of_a_5_min_cuff_cycle_confirms_even_when_it_comes_a_little_late() {
    // A 5-minute cycle delivers its next reading about 5 min later, give or take the
    // measurement's own duration: 5 min 20 s must still confirm.
    let mut engine = engine(pick(&["bp_high"]), &[CUFF]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    assert_eq!(
        seen(&cuff(&mut engine, 185.0, 100.0, 60.0)),
        [raised(Medium, "bp_high", 60.0)]
    );
    assert_eq!(
        seen(&cuff(&mut engine, 186.0, 100.0, 380.0)),
        [escalated(Medium, High, "bp_high", 380.0)]
    );
}

#[test]
fn the_daemons_own_failures_alarm_during_a_session_after_their_delay_and_end_when_fixed() {
    let mut engine = engine(pick(&[]), &[OX]);
    // Outside a session: no alarm, but the condition counts from when it began.
    let out = engine.daemon_failure(
        DaemonCondition::Forwarding,
        Some("connection refused"),
        t(0.0),
    );
    assert!(out.is_empty());
    engine.set_phase(Some(Phase::Infusion), t(10.0));
    // The default forwarding delay is 30 s.
    assert!(seen(&engine.tick(t(29.0))).is_empty());
    let raised = engine.tick(t(30.0));
    let alarm = &raised[0].alarm;
    assert_eq!(raised[0].change, Change::Raised);
    assert_eq!(
        alarm.source,
        AlarmSource::Technical {
            condition: TechnicalCondition::ForwardingFailure
        }
    );
    assert_eq!(alarm.device.as_str(), "alertmanager");
    assert_eq!(alarm.priority, Priority::Low);
    assert!(
        alarm.message.ends_with("connection refused"),
        "{}",
        alarm.message
    );
    // Recording failing at the same time is a separate alarm (delay 0).
    let recording = engine.daemon_failure(DaemonCondition::Recording, Some("disk full"), t(31.0));
    assert_eq!(recording[0].alarm.device.as_str(), "recorder");
    let ended = engine.daemon_failure(DaemonCondition::Forwarding, None, t(40.0));
    assert_eq!(ended[0].change, Change::Ended);
    assert_eq!(ended[0].alarm.id, alarm.id);
    let daemon: Vec<&str> = engine
        .active_alarms()
        .map(|a| a.device.as_str())
        .filter(|d| ["recorder", "alertmanager"].contains(d))
        .collect();
    assert_eq!(daemon, ["recorder"]);
}

#[test]
fn a_devices_own_clock_never_times_an_alarm_the_receive_time_does() {
    // A monitor whose clock rolled over (two-digit years, a flat battery) stamps its readings
    // in 2000, and one far in the future: the engine judges by when each reading arrived.
    let mut engine = engine(pick(&["spo2_low"]), &[OX]);
    engine.set_phase(Some(Phase::Infusion), t(0.0));
    let stamped = |at: f64, year: i32| {
        let mut reading = good(OX, Vital::Spo2, 88.0, at);
        reading.device_time = chrono::NaiveDate::from_ymd_opt(year, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc());
        reading
    };
    let readings = (0..20).map(|i| stamped(f64::from(i), if i % 2 == 0 { 2000 } else { 2099 }));
    assert_eq!(
        seen(&feed_readings(&mut engine, readings)),
        [raised(Medium, "spo2_low", 15.0)]
    );
}
