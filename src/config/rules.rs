//! Rule files: the alarm rules a clinic's medical director sets, in TOML.
//!
//! A rule file holds the physiological rules (`[[rule]]`), how each technical condition
//! alarms (`[[technical]]`, every condition exactly once), how long an audio pause lasts, and
//! the expected cuff schedule per phase. `config/rules/default.toml` documents every key.
//!
//! Everything is checked here (limits possible for the vital, exactly one comparison per
//! clause, delays and hysteresis not negative, phases armed, no two rules whose limits
//! contradict each other); the engine trusts what it gets.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::source::{ConfigError, ConfigErrors, Source};
use crate::engine::{
    BpSchedule, Clause, Comparison, Confirmation, Escalation, Limit, Measure, PhaseSet, Priority,
    RateThreshold, Rule, RuleSet, TechnicalCondition, TechnicalRule,
};
use crate::vitals::{Phase, Vital};

/// The default rule set (`config/rules/default.toml`), built into the binary.
pub const DEFAULT_RULES: &str = include_str!("../../config/rules/default.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    audio_pause_s: f64,
    bp_schedule: BpScheduleConfig,
    #[serde(default)]
    rule: Vec<toml::Spanned<RuleConfig>>,
    #[serde(default)]
    technical: Vec<toml::Spanned<TechnicalConfig>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BpScheduleConfig {
    baseline_s: f64,
    infusion_s: f64,
    recovery_s: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClauseConfig {
    vital: Vital,
    below: Option<f64>,
    at_or_below: Option<f64>,
    above: Option<f64>,
    at_or_above: Option<f64>,
    above_baseline_by_percent: Option<f64>,
    below_baseline_by_percent: Option<f64>,
    falls_by: Option<f64>,
    rises_by: Option<f64>,
    within_s: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmConfig {
    within_s: f64,
    priority: Priority,
    advice: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalateConfig {
    after_s: f64,
    priority: Priority,
    /// Escalation only while the session is in these phases (default: all of it).
    phases: Option<Vec<Phase>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    id: String,
    name: String,
    when: Vec<ClauseConfig>,
    #[serde(default)]
    delay_s: f64,
    #[serde(default)]
    hysteresis: f64,
    priority: Priority,
    armed: Vec<Phase>,
    confirm: Option<ConfirmConfig>,
    escalate: Option<EscalateConfig>,
    advice: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TechnicalConfig {
    condition: TechnicalCondition,
    priority: Priority,
    #[serde(default)]
    delay_s: f64,
    escalate: Option<EscalateConfig>,
    threshold: Option<ThresholdConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdConfig {
    count: u32,
    within_s: f64,
}

/// Collects a file's problems, each pointing at its key in the table it belongs to.
struct Problems<'a> {
    source: &'a Source,
    errors: Vec<ConfigError>,
}

impl Problems<'_> {
    fn at(&mut self, table: &Range<usize>, key: &str, message: impl Into<String>) {
        self.errors
            .push(self.source.error_at_key(table.clone(), key, message));
    }

    /// A non-negative, finite number of seconds (strictly positive if `positive`).
    fn seconds(&mut self, table: &Range<usize>, key: &str, value: f64, positive: bool) -> Duration {
        let ok = value.is_finite() && if positive { value > 0.0 } else { value >= 0.0 };
        if !ok {
            let bound = if positive { "> 0" } else { "≥ 0" };
            self.at(
                table,
                key,
                format!("{key} must be {bound} seconds, got {value}"),
            );
            return Duration::ZERO;
        }
        Duration::from_secs_f64(value)
    }

    fn escalation(
        &mut self,
        table: &Range<usize>,
        config: &EscalateConfig,
        priority: Priority,
    ) -> Escalation {
        let after = self.seconds(table, "escalate", config.after_s, true);
        if config.priority <= priority {
            self.at(
                table,
                "escalate",
                format!(
                    "escalate.priority ({}) must be higher than the alarm's priority ({priority})",
                    config.priority
                ),
            );
        }
        let phases = match &config.phases {
            None => PhaseSet::WHOLE_SESSION,
            Some(phases) if phases.is_empty() || phases.contains(&Phase::Ended) => {
                self.at(
                    table,
                    "escalate",
                    "escalate.phases must name baseline, infusion or recovery",
                );
                PhaseSet::WHOLE_SESSION
            }
            Some(phases) => PhaseSet::of(phases),
        };
        Escalation {
            after,
            priority: config.priority,
            phases,
        }
    }
}

/// Parses and checks a rule file; all problems are reported at once.
pub fn parse_rule_set(source: &Source) -> Result<RuleSet, ConfigErrors> {
    let file: RuleFile = source.parse()?;
    let whole = 0..source.text.len();
    let mut problems = Problems {
        source,
        errors: Vec::new(),
    };
    let audio_pause = problems.seconds(&whole, "audio_pause_s", file.audio_pause_s, true);
    let bp_schedule = BpSchedule {
        baseline: problems.seconds(&whole, "baseline_s", file.bp_schedule.baseline_s, true),
        infusion: problems.seconds(&whole, "infusion_s", file.bp_schedule.infusion_s, true),
        recovery: problems.seconds(&whole, "recovery_s", file.bp_schedule.recovery_s, true),
    };

    let mut rules = Vec::new();
    let mut spans = Vec::new();
    let mut ids = HashSet::new();
    for spanned in &file.rule {
        let span = spanned.span();
        let before = problems.errors.len();
        let rule = parse_rule(&mut problems, &span, spanned.get_ref(), &mut ids);
        if problems.errors.len() == before {
            rules.push(rule);
            spans.push(span);
        }
    }
    check_contradictions(&mut problems, &rules, &spans);

    let mut technical: HashMap<TechnicalCondition, TechnicalRule> = HashMap::new();
    for spanned in &file.technical {
        let span = spanned.span();
        let config = spanned.get_ref();
        let delay = problems.seconds(&span, "delay_s", config.delay_s, false);
        let escalation = config
            .escalate
            .as_ref()
            .map(|e| problems.escalation(&span, e, config.priority));
        let threshold = match (&config.threshold, config.condition) {
            (Some(threshold), TechnicalCondition::DecodeErrors) => {
                let within = problems.seconds(&span, "threshold", threshold.within_s, true);
                if threshold.count == 0 {
                    problems.at(&span, "threshold", "threshold.count must be at least 1");
                }
                Some(RateThreshold {
                    count: threshold.count,
                    within,
                })
            }
            (None, TechnicalCondition::DecodeErrors) => {
                problems.at(
                    &span,
                    "condition",
                    "decode_errors needs a threshold = { count = ..., within_s = ... }",
                );
                None
            }
            (Some(_), condition) => {
                problems.at(
                    &span,
                    "threshold",
                    format!(
                        "threshold applies only to decode_errors, not {}",
                        condition.as_str()
                    ),
                );
                None
            }
            (None, _) => None,
        };
        let rule = TechnicalRule {
            priority: config.priority,
            delay,
            escalation,
            threshold,
        };
        if technical.insert(config.condition, rule).is_some() {
            problems.at(
                &span,
                "condition",
                format!(
                    "technical condition `{}` is configured twice",
                    config.condition.as_str()
                ),
            );
        }
    }
    let missing: Vec<&str> = TechnicalCondition::ALL
        .iter()
        .filter(|c| !technical.contains_key(c))
        .map(|c| c.as_str())
        .collect();
    if !missing.is_empty() {
        // Point at the last [[technical]] table, after which the missing ones belong (or at
        // the file's start when there is none).
        let place = file.technical.last().map_or(0..0, toml::Spanned::span);
        let mut error = source.error_at(
            place,
            format!(
                "every technical alarm must be configured with a [[technical]] table; missing: {}",
                missing.join(", ")
            ),
        );
        error.key = None;
        problems.errors.push(error);
    }

    if !problems.errors.is_empty() {
        return Err(ConfigErrors(problems.errors));
    }
    let mut technical_rules = Vec::with_capacity(TechnicalCondition::ALL.len());
    for condition in TechnicalCondition::ALL {
        match technical.remove(&condition) {
            Some(rule) => technical_rules.push(rule),
            None => {
                return Err(
                    ConfigError::whole_file(&source.name, "technical rules incomplete").into(),
                );
            }
        }
    }
    Ok(RuleSet {
        rules,
        technical: technical_rules,
        audio_pause,
        bp_schedule,
    })
}

fn parse_rule(
    problems: &mut Problems,
    span: &Range<usize>,
    config: &RuleConfig,
    ids: &mut HashSet<String>,
) -> Rule {
    if !ids.insert(config.id.clone()) {
        problems.at(span, "id", format!("rule id `{}` is used twice", config.id));
    }
    let id_ok = !config.id.is_empty()
        && config
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !id_ok {
        problems.at(
            span,
            "id",
            format!("rule id `{}` may hold only a-z, 0-9 and `_`", config.id),
        );
    }
    if config.when.is_empty() {
        problems.at(span, "when", "when needs at least one condition");
    }
    let clauses = config
        .when
        .iter()
        .filter_map(|clause| match clause_of(clause) {
            Ok(clause) => Some(clause),
            Err(message) => {
                problems.at(span, "when", message);
                None
            }
        })
        .collect();
    let delay = problems.seconds(span, "delay_s", config.delay_s, false);
    if !(config.hysteresis.is_finite() && config.hysteresis >= 0.0) {
        problems.at(
            span,
            "hysteresis",
            format!("hysteresis must be ≥ 0, got {}", config.hysteresis),
        );
    }
    if config.armed.is_empty() || config.armed.contains(&Phase::Ended) {
        problems.at(
            span,
            "armed",
            "armed must name at least one of baseline, infusion, recovery (and not ended)",
        );
    }
    let confirmation = config.confirm.as_ref().map(|confirm| {
        let within = problems.seconds(span, "confirm", confirm.within_s, true);
        if confirm.priority <= config.priority {
            problems.at(
                span,
                "confirm",
                format!(
                    "confirm.priority ({}) must be higher than the rule's priority ({})",
                    confirm.priority, config.priority
                ),
            );
        }
        Confirmation {
            within,
            priority: confirm.priority,
            advice: confirm.advice.clone(),
        }
    });
    let escalation = config
        .escalate
        .as_ref()
        .map(|e| problems.escalation(span, e, config.priority));
    Rule {
        id: Arc::from(config.id.as_str()),
        name: config.name.clone(),
        priority: config.priority,
        clauses,
        delay,
        hysteresis: config.hysteresis,
        armed: PhaseSet::of(&config.armed),
        confirmation,
        escalation,
        advice: config.advice.clone(),
    }
}

fn clause_of(config: &ClauseConfig) -> Result<Clause, String> {
    let vital = config.vital;
    let given: Vec<(&str, f64)> = [
        ("below", config.below),
        ("at_or_below", config.at_or_below),
        ("above", config.above),
        ("at_or_above", config.at_or_above),
        (
            "above_baseline_by_percent",
            config.above_baseline_by_percent,
        ),
        (
            "below_baseline_by_percent",
            config.below_baseline_by_percent,
        ),
        ("falls_by", config.falls_by),
        ("rises_by", config.rises_by),
    ]
    .into_iter()
    .filter_map(|(key, limit)| limit.map(|l| (key, l)))
    .collect();
    let [(key, limit)] = given[..] else {
        return Err(format!(
            "a condition on {vital} needs exactly one of below, at_or_below, above, at_or_above, \
             above_baseline_by_percent, below_baseline_by_percent, falls_by, rises_by"
        ));
    };
    if !limit.is_finite() {
        return Err(format!("{key} on {vital} must be a number"));
    }
    let rate = matches!(key, "falls_by" | "rises_by");
    let window = match (rate, config.within_s) {
        (true, Some(w)) if w.is_finite() && w > 0.0 => Duration::from_secs_f64(w),
        (true, _) => return Err(format!("{key} on {vital} needs within_s > 0 seconds")),
        (false, Some(_)) => {
            return Err(format!(
                "within_s goes only with falls_by or rises_by ({vital})"
            ));
        }
        (false, None) => Duration::ZERO,
    };
    let (low, high) = vital.plausible_range();
    let unit = vital.unit();
    let (measure, comparison, limit) = match key {
        "falls_by" | "rises_by" => {
            if !(limit > 0.0 && limit <= high - low) {
                return Err(format!(
                    "{key} {limit} is impossible for {vital} (0 < {key} ≤ {} {unit})",
                    high - low
                ));
            }
            let measure = if key == "falls_by" {
                Measure::FallWithin(window)
            } else {
                Measure::RiseWithin(window)
            };
            (measure, Comparison::AtOrAbove, Limit::Absolute(limit))
        }
        "above_baseline_by_percent" | "below_baseline_by_percent" => {
            if !(limit > 0.0 && limit < 100.0) {
                return Err(format!("{key} must lie between 0 and 100, got {limit}"));
            }
            if key == "above_baseline_by_percent" {
                (
                    Measure::Value,
                    Comparison::Above,
                    Limit::BaselinePercent(limit),
                )
            } else {
                (
                    Measure::Value,
                    Comparison::Below,
                    Limit::BaselinePercent(-limit),
                )
            }
        }
        _ => {
            if !(low..=high).contains(&limit) {
                return Err(format!(
                    "limit {limit} is impossible for {vital} (possible values lie in {low}..={high} {unit})"
                ));
            }
            let comparison = match key {
                "below" => Comparison::Below,
                "at_or_below" => Comparison::AtOrBelow,
                "above" => Comparison::Above,
                _ => Comparison::AtOrAbove,
            };
            (Measure::Value, comparison, Limit::Absolute(limit))
        }
    };
    Ok(Clause {
        vital,
        measure,
        comparison,
        limit,
    })
}

/// A low limit above a high limit on the same vital means every value between them alarms:
/// almost certainly a typo that would make the alarm system useless.
fn check_contradictions(problems: &mut Problems, rules: &[Rule], spans: &[Range<usize>]) {
    let mut lows = Vec::new();
    let mut highs = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        for clause in &rule.clauses {
            match clause.absolute_value_limit() {
                Some((true, limit)) => lows.push((index, clause.vital, limit)),
                Some((false, limit)) => highs.push((index, clause.vital, limit)),
                None => {}
            }
        }
    }
    for &(low_rule, vital, low) in &lows {
        for &(high_rule, high_vital, high) in &highs {
            if vital == high_vital && low > high {
                let message = format!(
                    "rule `{}` alarms when {vital} is below {low} and rule `{}` when it is above {high}: \
                     every value between {high} and {low} would alarm",
                    rules[low_rule].id, rules[high_rule].id
                );
                problems.at(&spans[low_rule], "when", message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RuleSet, ConfigErrors> {
        parse_rule_set(&Source::built_in("rules", text))
    }

    /// The non-rule parts of a valid file, for tests about rules.
    fn with_rules(rules: &str) -> String {
        let technical: String = TechnicalCondition::ALL
            .iter()
            .map(|c| {
                let threshold = match c {
                    TechnicalCondition::DecodeErrors => {
                        "threshold = { count = 5, within_s = 60 }\n"
                    }
                    _ => "",
                };
                format!(
                    "[[technical]]\ncondition = \"{}\"\npriority = \"low\"\n{threshold}",
                    c.as_str()
                )
            })
            .collect();
        format!(
            "audio_pause_s = 120\n[bp_schedule]\nbaseline_s = 600\ninfusion_s = 600\nrecovery_s = 900\n{rules}\n{technical}"
        )
    }

    #[test]
    fn the_default_rules_load_and_cover_the_clinical_tables() {
        let set = parse(DEFAULT_RULES).unwrap();
        let ids: Vec<&str> = set.rules.iter().map(|r| &*r.id).collect();
        for id in [
            "spo2_low",
            "spo2_critical",
            "pulse_high",
            "pulse_critical_high",
            "pulse_low",
            "pulse_critical_low",
            "bp_high",
            "bp_critical",
            "bp_rise",
            "hypotension",
        ] {
            assert!(ids.contains(&id), "default rules lack {id}: {ids:?}");
        }
        let rule = |id: &str| set.rules.iter().find(|r| &*r.id == id).unwrap();
        assert_eq!(rule("spo2_low").delay, Duration::from_secs(15));
        assert_eq!(rule("spo2_low").priority, Priority::Medium);
        assert!(!rule("bp_high").armed.contains(Phase::Baseline));
        let confirmation = rule("bp_high").confirmation.as_ref().unwrap();
        assert_eq!(confirmation.priority, Priority::High);
        assert_eq!(confirmation.within, Duration::from_secs(360));
        assert!(confirmation.advice.is_some());
        assert_eq!(
            rule("bp_rise").clauses[0].limit,
            Limit::BaselinePercent(30.0)
        );
        assert_eq!(set.audio_pause, Duration::from_secs(120));
        let disconnected = set.technical(TechnicalCondition::DeviceDisconnected);
        let escalation = disconnected.escalation.as_ref().unwrap();
        assert_eq!(
            (escalation.after, escalation.priority),
            (Duration::from_secs(60), Priority::High)
        );
        assert!(
            escalation.phases.contains(Phase::Infusion)
                && !escalation.phases.contains(Phase::Baseline)
        );
        assert_eq!(
            set.technical(TechnicalCondition::SensorOff).delay,
            Duration::from_secs(10)
        );
        assert_eq!(set.bp_schedule.recovery, Duration::from_secs(900));
    }

    #[test]
    fn bad_rules_are_reported_together_each_on_its_line() {
        let text = with_rules(
            r#"
[[rule]]
id = "a"
name = "A"
when = [{ vital = "spo2", below = 190 }]
priority = "medium"
armed = ["baseline"]

[[rule]]
id = "b"
name = "B"
when = [{ vital = "spo2", below = 90, above = 99 }]
delay_s = -3
priority = "low"
armed = []
"#,
        );
        let errors = parse(&text).unwrap_err();
        let lines: Vec<_> = errors.0.iter().map(|e| (e.line, e.key.clone())).collect();
        assert_eq!(
            lines,
            [
                (Some(10), Some("when".into())),
                (Some(17), Some("when".into())),
                (Some(18), Some("delay_s".into())),
                (Some(20), Some("armed".into())),
            ],
            "{errors}"
        );
        assert!(errors.0[0].message.contains("impossible for spo2"));
    }

    #[test]
    fn an_unknown_vital_is_named_with_its_line() {
        let errors = parse(&with_rules(
            "[[rule]]\nid = \"x\"\nname = \"X\"\nwhen = [{ vital = \"spo3\", below = 90 }]\npriority = \"low\"\narmed = [\"baseline\"]\n",
        ))
        .unwrap_err();
        assert_eq!(errors.0[0].line, Some(9), "{errors}");
        assert!(errors.0[0].message.contains("spo3"), "{errors}");
    }

    #[test]
    fn a_low_limit_above_a_high_limit_is_refused() {
        let errors = parse(&with_rules(
            r#"
[[rule]]
id = "low"
name = "Low"
when = [{ vital = "pulse_rate", below = 130 }]
priority = "medium"
armed = ["infusion"]

[[rule]]
id = "high"
name = "High"
when = [{ vital = "pulse_rate", above = 120 }]
priority = "medium"
armed = ["infusion"]
"#,
        ))
        .unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.0[0].line, Some(10), "{errors}");
        assert!(
            errors.0[0]
                .message
                .contains("every value between 120 and 130"),
            "{errors}"
        );
    }

    #[test]
    fn rate_and_baseline_clauses_need_their_parts() {
        let errors = parse(&with_rules(
            r#"
[[rule]]
id = "r"
name = "R"
when = [{ vital = "spo2", falls_by = 4 }, { vital = "systolic", above = 150, within_s = 60 }, { vital = "systolic", above_baseline_by_percent = 130 }]
priority = "low"
armed = ["infusion"]
"#,
        ))
        .unwrap_err();
        let messages: Vec<&str> = errors.0.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages.len(), 3, "{errors}");
        assert!(messages[0].contains("needs within_s"));
        assert!(messages[1].contains("within_s goes only with"));
        assert!(messages[2].contains("between 0 and 100"));
    }

    #[test]
    fn every_technical_condition_must_be_configured_once() {
        let text = "audio_pause_s = 120\n[bp_schedule]\nbaseline_s = 600\ninfusion_s = 600\nrecovery_s = 900\n\
                    [[technical]]\ncondition = \"sensor_off\"\npriority = \"medium\"\n\
                    [[technical]]\ncondition = \"sensor_off\"\npriority = \"low\"\n";
        let errors = parse(text).unwrap_err();
        assert!(errors.0[0].message.contains("configured twice"), "{errors}");
        assert!(
            errors.0[1].message.contains("missing: device_silent"),
            "{errors}"
        );
        // At the last [[technical]] table, where the missing ones go.
        assert_eq!(errors.0[1].line, Some(9), "{errors}");
    }

    #[test]
    fn a_rule_file_without_technical_tables_is_refused_at_a_line() {
        let text = "audio_pause_s = 120\n[bp_schedule]\nbaseline_s = 600\ninfusion_s = 600\nrecovery_s = 900\n";
        let errors = parse(text).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(
            (errors.0[0].line, errors.0[0].key.as_deref()),
            (Some(1), None),
            "{errors}"
        );
        assert!(
            errors.0[0].message.contains("missing: device_silent"),
            "{errors}"
        );
    }

    #[test]
    fn escalation_must_raise_the_priority() {
        let errors = parse(&with_rules(
            "[[rule]]\nid = \"x\"\nname = \"X\"\nwhen = [{ vital = \"spo2\", below = 90 }]\npriority = \"high\"\narmed = [\"infusion\"]\nescalate = { after_s = 60, priority = \"medium\" }\n",
        ))
        .unwrap_err();
        assert!(errors.0[0].message.contains("must be higher"), "{errors}");
        assert_eq!(errors.0[0].key.as_deref(), Some("escalate"));
    }
}
