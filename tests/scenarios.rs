//! Scenario-driven alarm tests in virtual time: each shipped scenario replayed through the
//! engine with the shipped rules (`config/rules/default.toml`), against its expected alarm
//! timeline, entry by entry: time since the scenario's start, change, priority, rule or
//! technical condition, device.
//!
//! Where the numbers come from: the scenario files (`config/scenarios/*.toml`: step times,
//! `[session]` phase times, `duration_s`), the rule file (delays, limits, the cuff schedule),
//! and replay's devices (`ox1` samples every second, `cuff1` measures every 300 s, at 0, 300,
//! 600 s...). Values that depend on the seeded noise are read from the simulated device
//! itself, which is a pure function of the scenario.

use std::sync::Arc;
use std::time::Duration;

use vitalwatch::acquire::scenario::{Role, Scenario};
use vitalwatch::acquire::sim::SimulatedDevice;
use vitalwatch::config::{DEFAULT_RULES, Source, load_scenario, parse_rule_set};
use vitalwatch::engine::{AlarmKind, Change, Priority, RuleSet, TechnicalCondition};
use vitalwatch::replay::{SummaryRow, Timeline, change_name, replay};
use vitalwatch::vitals::{DeviceId, DeviceMessage, Mono, Phase, Quality, Vital};

use Priority::{High, Low, Medium};

fn rules() -> RuleSet {
    parse_rule_set(&Source::built_in(
        "config/rules/default.toml",
        DEFAULT_RULES,
    ))
    .expect("the shipped rules")
}

fn scenario(name: &str) -> Arc<Scenario> {
    Arc::new(load_scenario(&Source::built_in("test", ""), name).expect("a shipped scenario"))
}

fn replayed(name: &str) -> Timeline {
    replay(scenario(name), rules()).expect("replay")
}

/// One expected entry: seconds since the start, change, priority, source, device.
type Expected = (u64, &'static str, Priority, &'static str, &'static str);

/// The timeline's entries in the form of `Expected` (every entry falls on a whole second).
fn entries(timeline: &Timeline) -> Vec<(u64, &'static str, Priority, String, String)> {
    timeline
        .entries
        .iter()
        .map(|e| {
            assert_eq!(e.at.subsec_nanos(), 0, "{e}");
            (
                e.at.as_secs(),
                change_name(&e.change),
                e.priority,
                e.source_name().to_string(),
                e.device.to_string(),
            )
        })
        .collect()
}

fn assert_timeline(timeline: &Timeline, expected: &[Expected]) {
    let expected: Vec<_> = expected
        .iter()
        .map(|(at, change, priority, source, device)| {
            (
                *at,
                *change,
                *priority,
                source.to_string(),
                device.to_string(),
            )
        })
        .collect();
    assert_eq!(entries(timeline), expected, "\n{timeline}");
}

/// The phase changes a scenario's `[session]` table gives, in seconds.
fn phases(timeline: &Timeline) -> Vec<(u64, Phase)> {
    timeline
        .phases
        .iter()
        .map(|(at, phase)| (at.as_secs(), *phase))
        .collect()
}

/// The cuff's systolic reading of the measurement at `t` seconds, as replay's cuff sends it.
fn cuff_systolic(name: &str, t: u64) -> f64 {
    let cuff = SimulatedDevice {
        id: DeviceId::new("cuff1"),
        role: Role::BpCuff,
        scenario: scenario(name),
        interval: Duration::from_secs(300),
    };
    cuff.messages_at(t / 300, true, Mono::ZERO, chrono::DateTime::UNIX_EPOCH)
        .into_iter()
        .find_map(|m| match m {
            DeviceMessage::Readings(readings) => readings
                .into_iter()
                .find(|r| r.vital == Vital::Systolic)
                .and_then(|r| r.value),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{name}: no systolic reading at {t} s"))
}

fn entry_at<'a>(timeline: &'a Timeline, at: u64, source: &str) -> &'a vitalwatch::replay::Entry {
    timeline
        .entries
        .iter()
        .find(|e| e.at == Duration::from_secs(at) && e.source_name() == source)
        .unwrap_or_else(|| panic!("no {source} entry at {at} s:\n{timeline}"))
}

#[test]
fn typical_infusion_raises_no_alarm_at_all() {
    let timeline = replayed("typical-infusion");
    // typical-infusion.toml [session]: infusion at 600 s, recovery at 3000 s (a 40-minute
    // infusion), ended at 7800 s (2 h after the infusion started) = duration_s.
    assert_eq!(
        phases(&timeline),
        [
            (0, Phase::Baseline),
            (600, Phase::Infusion),
            (3000, Phase::Recovery),
            (7800, Phase::Ended)
        ]
    );
    assert_eq!(timeline.duration, Duration::from_secs(7800));
    // BP peaks around +16/+11 mmHg: far from every limit, so not even a low-priority alarm
    // (and in particular no high-priority one).
    assert_timeline(&timeline, &[]);
    assert_eq!(timeline.summary, []);
}

#[test]
fn typical_infusion_alarms_under_a_tighter_bp_limit_on_the_first_reading_past_it() {
    // The same scenario under a rule file whose bp_high limit is 130 mmHg instead of 180:
    // replay feeds every cuff reading of the infusion through the engine, so bp_high is
    // raised on the first infusion reading at or above 130.
    let tight = DEFAULT_RULES.replacen(
        "{ vital = \"systolic\", at_or_above = 180 }",
        "{ vital = \"systolic\", at_or_above = 130 }",
        1,
    );
    assert_ne!(tight, DEFAULT_RULES);
    let rules = parse_rule_set(&Source::built_in("tight", &tight)).unwrap();
    let timeline = replay(scenario("typical-infusion"), rules).unwrap();
    // Cuff readings every 300 s from the infusion's start (600 s) to recovery (3000 s).
    let first = (600..3000)
        .step_by(300)
        .find(|t| cuff_systolic("typical-infusion", *t) >= 130.0)
        .expect("typical-infusion reaches 130 mmHg during the infusion");
    let raised = &timeline.entries[0];
    assert_eq!(
        (
            raised.at,
            change_name(&raised.change),
            raised.priority,
            raised.source_name()
        ),
        (Duration::from_secs(first), "raised", Medium, "bp_high"),
        "\n{timeline}"
    );
    assert_eq!(raised.value, Some(cuff_systolic("typical-infusion", first)));
    assert_eq!(raised.limit, Some(130.0));
}

#[test]
fn hypertensive_response_raises_bp_high_at_medium_then_escalates_it_on_the_confirming_reading() {
    let timeline = replayed("hypertensive-response");
    // hypertensive-response.toml [session]: infusion at 120 s, recovery at 2520 s, ended at
    // 7320 s = duration_s.
    assert_eq!(
        phases(&timeline),
        [
            (0, Phase::Baseline),
            (120, Phase::Infusion),
            (2520, Phase::Recovery),
            (7320, Phase::Ended)
        ]
    );
    // Systolic ramps from 132 at 300 s to 192 at 1200 s: every cuff reading before 1200 s is
    // below 180 (the one at 900 s: level 172 plus noise), the one at 1200 s is at or above it.
    for t in (0..1200).step_by(300) {
        assert!(cuff_systolic("hypertensive-response", t) < 180.0, "{t} s");
    }
    assert!(cuff_systolic("hypertensive-response", 1200) >= 180.0);
    assert!(cuff_systolic("hypertensive-response", 1500) >= 180.0);
    assert_timeline(
        &timeline,
        &[
            // bp_rise (low, infusion only): SBP > baseline + 30 %; the baseline is the one
            // baseline-phase reading, 132 at 0 s, so the limit is 171.6; the reading at 900 s
            // (level 172 plus noise) is the first above it.
            (900, "raised", Low, "bp_rise", "cuff1"),
            // The first cuff reading >= 180 mmHg: medium.
            (1200, "raised", Medium, "bp_high", "cuff1"),
            // The confirming reading 300 s later (confirm.within_s = 300): high, with advice.
            (1500, "escalated", High, "bp_high", "cuff1"),
            // Recovery at 2520 s disarms bp_rise, and the pause advice goes (it is about the
            // infusion).
            (2520, "ended", Low, "bp_rise", "cuff1"),
            (2520, "advice", High, "bp_high", "cuff1"),
            // Systolic falls from 192 at 2400 s towards 145: the reading at 3000 s (173) is
            // the first at or below 175 (180 minus hysteresis 5). bp_high is high, so it
            // latches until acknowledged, and replay acknowledges nothing.
            (3000, "latched", High, "bp_high", "cuff1"),
            // The session ends (ended_s = 7320): every alarm ends with it.
            (7320, "ended", High, "bp_high", "cuff1"),
        ],
    );
    assert!(cuff_systolic("hypertensive-response", 2700) > 175.0);
    assert!(cuff_systolic("hypertensive-response", 3000) <= 175.0);

    let raised = entry_at(&timeline, 1200, "bp_high");
    assert_eq!(
        raised.value,
        Some(cuff_systolic("hypertensive-response", 1200))
    );
    assert_eq!(raised.limit, Some(180.0));
    assert_eq!(raised.advice, None);
    let escalated = entry_at(&timeline, 1500, "bp_high");
    assert_eq!(escalated.change, Change::Escalated { from: Medium });
    assert_eq!(escalated.alarm, raised.alarm, "the same alarm escalates");
    assert_eq!(
        escalated.value,
        Some(cuff_systolic("hypertensive-response", 1500))
    );
    assert_eq!(
        escalated.advice.as_deref(),
        Some("Consider pausing the infusion: BP high on two consecutive readings.")
    );
    assert_eq!(entry_at(&timeline, 2520, "bp_high").advice, None);
}

#[test]
fn critical_bp_raises_a_high_alarm_at_once_with_advice() {
    let timeline = replayed("critical-bp");
    // critical-bp.toml: infusion at 600 s; systolic ramps from 134 at 900 s to 212 at 1200 s,
    // then to 150 at 1500 s; duration_s = 2400, no end of session.
    assert_eq!(
        phases(&timeline),
        [(0, Phase::Baseline), (600, Phase::Infusion)]
    );
    let peak = cuff_systolic("critical-bp", 1200);
    assert!(peak >= 200.0, "{peak}");
    assert_timeline(
        &timeline,
        &[
            // The reading at 1200 s crosses every high limit at once (no delay, no confirming
            // reading needed): bp_high (>= 180, medium), bp_critical (>= 200, high) and
            // bp_rise (> 1.3 × the baseline median of 132 and 136 = 174.2, low).
            (1200, "raised", Medium, "bp_high", "cuff1"),
            (1200, "raised", High, "bp_critical", "cuff1"),
            (1200, "raised", Low, "bp_rise", "cuff1"),
            // The next reading (1500 s, level 150) is back under every limit and hysteresis:
            // bp_high and bp_rise end; bp_critical is high, so it latches.
            (1500, "ended", Medium, "bp_high", "cuff1"),
            (1500, "latched", High, "bp_critical", "cuff1"),
            (1500, "ended", Low, "bp_rise", "cuff1"),
        ],
    );
    let critical = entry_at(&timeline, 1200, "bp_critical");
    assert_eq!(critical.kind, AlarmKind::Physiological);
    assert_eq!(critical.value, Some(peak));
    assert_eq!(critical.limit, Some(200.0));
    assert_eq!(
        critical.advice.as_deref(),
        Some("Consider pausing the infusion: BP at the critical limit.")
    );
    // The latched alarm is still active at the end (2400 s): 1200 s in alarm, counted to the
    // end.
    let row = timeline
        .summary
        .iter()
        .find(|r| r.source == "bp_critical")
        .unwrap();
    assert_eq!(
        *row,
        SummaryRow {
            source: "bp_critical".into(),
            kind: AlarmKind::Physiological,
            low: 0,
            medium: 0,
            high: 1,
            time_in_alarm: Duration::from_secs(2400 - 1200),
        }
    );
}

#[test]
fn desaturation_raises_spo2_low_exactly_15_s_after_the_onset_and_nothing_for_the_short_dip() {
    let timeline = replayed("desaturation");
    // desaturation.toml: infusion at 600 s, duration_s = 1800.
    assert_eq!(
        phases(&timeline),
        [(0, Phase::Baseline), (600, Phase::Infusion)]
    );
    assert_timeline(
        &timeline,
        &[
            // Nothing for the dip to 88 % at 300 s: it lasts 5 s, less than spo2_low's
            // 15 s delay.
            // SpO2 86 % from 900 s for 40 s: spo2_low (< 90 %, delay_s = 15) at 900 + 15.
            (915, "raised", Medium, "spo2_low", "ox1"),
            // Back to about 97 % at 940 s, past 90 + hysteresis 1.
            (940, "ended", Medium, "spo2_low", "ox1"),
        ],
    );
    let raised = entry_at(&timeline, 915, "spo2_low");
    assert_eq!((raised.value, raised.limit), (Some(86.0), Some(90.0)));
    assert_eq!(raised.message, "SpO2 low: spo2 86 % (limit spo2 < 90 %)");
    assert_eq!(
        timeline.summary,
        [SummaryRow {
            source: "spo2_low".into(),
            kind: AlarmKind::Physiological,
            low: 0,
            medium: 1,
            high: 0,
            time_in_alarm: Duration::from_secs(940 - 915),
        }]
    );
}

#[test]
fn critical_desaturation_raises_spo2_critical_at_once() {
    let timeline = replayed("critical-desaturation");
    // critical-desaturation.toml: infusion at 600 s; SpO2 82 % from 1200 s for 30 s.
    assert_eq!(
        phases(&timeline),
        [(0, Phase::Baseline), (600, Phase::Infusion)]
    );
    assert_timeline(
        &timeline,
        &[
            // spo2_critical: < 85 %, delay 0: at the first 82 % sample.
            (1200, "raised", High, "spo2_critical", "ox1"),
            // spo2_low: < 90 %, delay 15 s.
            (1215, "raised", Medium, "spo2_low", "ox1"),
            // SpO2 back at 1230 s: spo2_low ends; spo2_critical is high and latches.
            (1230, "ended", Medium, "spo2_low", "ox1"),
            (1230, "latched", High, "spo2_critical", "ox1"),
        ],
    );
    let critical = entry_at(&timeline, 1200, "spo2_critical");
    assert_eq!((critical.value, critical.limit), (Some(82.0), Some(85.0)));
}

#[test]
fn sensor_off_raises_technical_alarms_only() {
    let timeline = replayed("sensor-off");
    // sensor-off.toml: sensor off from 300 s for 60 s, artefact from 900 s for 30 s; the
    // infusion starts at 600 s. Technical alarms are armed for the whole session.
    assert_timeline(
        &timeline,
        &[
            // sensor_off: delay_s = 10.
            (310, "raised", Medium, "sensor_off", "ox1"),
            // The first good sample after the span ends it.
            (360, "ended", Medium, "sensor_off", "ox1"),
            // poor_signal: delay_s = 15.
            (915, "raised", Low, "poor_signal", "ox1"),
            (930, "ended", Low, "poor_signal", "ox1"),
        ],
    );
    assert!(
        timeline
            .entries
            .iter()
            .all(|e| e.kind == AlarmKind::Technical),
        "\n{timeline}"
    );
}

#[test]
fn motion_artefact_raises_poor_signal_and_no_spo2_alarm() {
    let timeline = replayed("motion-artefact");
    // The artefact values look like a critical desaturation: only their flag keeps them from
    // alarming.
    let ox = SimulatedDevice {
        id: DeviceId::new("ox1"),
        role: Role::Oximeter,
        scenario: scenario("motion-artefact"),
        interval: Duration::from_secs(1),
    };
    let sample = ox.messages_at(1200, true, Mono::ZERO, chrono::DateTime::UNIX_EPOCH);
    let spo2 = sample
        .iter()
        .find_map(|m| match m {
            DeviceMessage::Readings(r) => r.iter().find(|r| r.vital == Vital::Spo2),
            _ => None,
        })
        .unwrap();
    assert_eq!(spo2.quality, Quality::ARTEFACT);
    assert!(spo2.value.unwrap() < 85.0, "{spo2:?}");

    assert_timeline(
        &timeline,
        &[
            // motion-artefact.toml: artefact from 1200 s for 120 s; poor_signal delay_s = 15.
            (1215, "raised", Low, "poor_signal", "ox1"),
            // The first good sample, at 1320 s, ends it.
            (1320, "ended", Low, "poor_signal", "ox1"),
        ],
    );
}

#[test]
fn a_device_lost_during_the_infusion_escalates_after_60_s_and_ends_on_reconnection() {
    let timeline = replayed("device-lost");
    // device-lost.toml: infusion at 300 s; the oximeter disconnects at 600 s for 120 s.
    assert_eq!(
        phases(&timeline),
        [(0, Phase::Baseline), (300, Phase::Infusion)]
    );
    assert_timeline(
        &timeline,
        &[
            // device_disconnected: medium, delay 0.
            (600, "raised", Medium, "device_disconnected", "ox1"),
            // escalate = { after_s = 60, priority = "high", phases = ["infusion"] }.
            (660, "escalated", High, "device_disconnected", "ox1"),
            // Reconnected at 720 s. No device_silent alarm in between: the lost link is the
            // cause of the silence.
            (720, "ended", High, "device_disconnected", "ox1"),
        ],
    );
    assert_eq!(
        entry_at(&timeline, 660, "device_disconnected").change,
        Change::Escalated { from: Medium }
    );
}

#[test]
fn a_silent_cuff_during_the_infusion_is_bp_overdue_after_the_interval_and_2_minutes() {
    let rules = rules();
    let interval = rules.bp_schedule.infusion.as_secs();
    let grace = rules
        .technical(TechnicalCondition::BpOverdue)
        .delay
        .as_secs();
    // default.toml: bp_schedule.infusion_s = 600, bp_overdue delay_s = 120.
    assert_eq!((interval, grace), (600, 120));
    // bp-overdue.toml: infusion at 600 s; the cuff is silent from 1000 s for 1200 s, so its
    // last reading is at 900 s and the next at 2400 s.
    let timeline = replayed("bp-overdue");
    assert_eq!(
        phases(&timeline),
        [(0, Phase::Baseline), (600, Phase::Infusion)]
    );
    assert_timeline(
        &timeline,
        &[
            (900 + 600 + 120, "raised", Low, "bp_overdue", "cuff1"),
            (2400, "ended", Low, "bp_overdue", "cuff1"),
        ],
    );
}

#[test]
fn the_long_session_has_one_alarm_of_each_kind_of_trouble() {
    // long-session.toml (the benchmark's input); each row's time comes from its step.
    let timeline = replayed("long-session");
    assert_eq!(timeline.duration, Duration::from_secs(4 * 3600));
    let row = |source: &str, kind, [low, medium, high]: [usize; 3], seconds| SummaryRow {
        source: source.into(),
        kind,
        low,
        medium,
        high,
        time_in_alarm: Duration::from_secs(seconds),
    };
    use AlarmKind::{Physiological, Technical};
    assert_eq!(
        timeline.summary,
        [
            // 83 % from 10000 s: raised at once, latched at 10020 s, ended with the session
            // at 14400 s.
            row("spo2_critical", Physiological, [0, 0, 1], 14400 - 10000),
            // 87 % from 1500 s for 25 s: 1515..1525; 83 % from 10000 s for 20 s: 10015..10020.
            row("spo2_low", Physiological, [0, 2, 0], 10 + 5),
            // Cuff silent from 6000 s (recovery, interval 900 s): last reading 5700 s, raised
            // at 5700 + 900 + 120, ended by the reading at 8400 s.
            row("bp_overdue", Technical, [1, 0, 0], 8400 - 6720),
            // Disconnected 2000..2090 s during the infusion: escalated at 2060 s.
            row("device_disconnected", Technical, [0, 0, 1], 90),
            // Artefact 2600..2640 s: raised at 2615 s.
            row("poor_signal", Technical, [1, 0, 0], 2640 - 2615),
            // Sensor off 5000..5045 s: raised at 5010 s.
            row("sensor_off", Technical, [0, 1, 0], 5045 - 5010),
        ]
    );
}
