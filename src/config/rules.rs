//! Rule files: the alarm rules a clinic's medical director sets, in TOML.
//!
//! ```toml
//! [[rule]]
//! id = "spo2_low"
//! name = "SpO2 low"
//! when = [{ vital = "spo2", below = 90 }]
//! delay_s = 15
//! hysteresis = 1
//! priority = "medium"
//! armed = ["baseline", "infusion", "recovery"]
//! ```
//!
//! Every rule is checked here (limits possible for the vital, exactly one comparison per
//! clause, delays and hysteresis not negative, phases armed); the engine trusts what it gets.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::source::{ConfigErrors, Source};
use crate::engine::{Clause, Comparison, Confirmation, PhaseSet, Priority, Rule};
use crate::vitals::{Phase, Vital};

/// The default rule set (`config/rules/default.toml`), built into the binary.
pub const DEFAULT_RULES: &str = include_str!("../../config/rules/default.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<toml::Spanned<RuleConfig>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClauseConfig {
    vital: Vital,
    below: Option<f64>,
    at_or_below: Option<f64>,
    above: Option<f64>,
    at_or_above: Option<f64>,
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
    advice: Option<String>,
}

/// Parses and checks a rule file; all problems are reported at once.
pub fn parse_rules(source: &Source) -> Result<Vec<Rule>, ConfigErrors> {
    let file: RuleFile = source.parse()?;
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    let mut ids = HashSet::new();
    for spanned in &file.rule {
        let span = spanned.span();
        let config = spanned.get_ref();
        let error = |key: &str, message: String| source.error_at_key(span.clone(), key, message);
        if !ids.insert(config.id.clone()) {
            errors.push(error(
                "id",
                format!("rule id `{}` is used twice", config.id),
            ));
        }
        if !valid_id(&config.id) {
            errors.push(error(
                "id",
                format!("rule id `{}` may hold only a-z, 0-9 and `_`", config.id),
            ));
        }
        let before = errors.len();
        let clauses = clauses(&config.when, &mut |m| errors.push(error("when", m)));
        if !(config.delay_s.is_finite() && config.delay_s >= 0.0) {
            errors.push(error(
                "delay_s",
                format!("delay_s must be ≥ 0 seconds, got {}", config.delay_s),
            ));
        }
        if !(config.hysteresis.is_finite() && config.hysteresis >= 0.0) {
            errors.push(error(
                "hysteresis",
                format!("hysteresis must be ≥ 0, got {}", config.hysteresis),
            ));
        }
        if config.armed.is_empty() || config.armed.contains(&Phase::Ended) {
            errors.push(error(
                "armed",
                "armed must name at least one of baseline, infusion, recovery (and not ended)"
                    .to_string(),
            ));
        }
        let confirmation = match &config.confirm {
            None => None,
            Some(confirm) => {
                if !(confirm.within_s.is_finite() && confirm.within_s > 0.0) {
                    errors.push(error(
                        "confirm",
                        "confirm.within_s must be > 0 seconds".into(),
                    ));
                }
                if confirm.priority <= config.priority {
                    errors.push(error(
                        "confirm",
                        format!(
                            "confirm.priority ({}) must be higher than the rule's priority ({})",
                            confirm.priority, config.priority
                        ),
                    ));
                }
                Some(Confirmation {
                    within: Duration::from_secs_f64(confirm.within_s.max(0.0)),
                    priority: confirm.priority,
                    advice: confirm.advice.clone(),
                })
            }
        };
        if errors.len() > before {
            continue;
        }
        rules.push(Rule {
            id: Arc::from(config.id.as_str()),
            name: config.name.clone(),
            priority: config.priority,
            clauses,
            delay: Duration::from_secs_f64(config.delay_s),
            hysteresis: config.hysteresis,
            armed: PhaseSet::of(&config.armed),
            confirmation,
            advice: config.advice.clone(),
        });
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn clauses(configs: &[ClauseConfig], report: &mut dyn FnMut(String)) -> Vec<Clause> {
    if configs.is_empty() {
        report("when needs at least one condition".to_string());
    }
    let mut clauses = Vec::new();
    for config in configs {
        let given: Vec<(Comparison, f64)> = [
            (Comparison::Below, config.below),
            (Comparison::AtOrBelow, config.at_or_below),
            (Comparison::Above, config.above),
            (Comparison::AtOrAbove, config.at_or_above),
        ]
        .into_iter()
        .filter_map(|(comparison, limit)| limit.map(|l| (comparison, l)))
        .collect();
        let [(comparison, limit)] = given[..] else {
            report(format!(
                "a condition on {} needs exactly one of below, at_or_below, above, at_or_above",
                config.vital
            ));
            continue;
        };
        let (low, high) = config.vital.plausible_range();
        if !(low..=high).contains(&limit) {
            report(format!(
                "limit {limit} is impossible for {} (possible values lie in {low}..={high} {})",
                config.vital,
                config.vital.unit()
            ));
            continue;
        }
        clauses.push(Clause {
            vital: config.vital,
            comparison,
            limit,
        });
    }
    clauses
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Rule>, ConfigErrors> {
        parse_rules(&Source::built_in("rules", text))
    }

    #[test]
    fn the_default_rules_load_and_cover_the_clinical_table() {
        let rules = parse(DEFAULT_RULES).unwrap();
        let ids: Vec<&str> = rules.iter().map(|r| &*r.id).collect();
        for id in [
            "spo2_low",
            "spo2_critical",
            "pulse_high",
            "pulse_critical_high",
            "pulse_low",
            "pulse_critical_low",
            "bp_high",
            "bp_critical",
            "hypotension",
        ] {
            assert!(ids.contains(&id), "default rules lack {id}: {ids:?}");
        }
        let spo2_low = rules.iter().find(|r| &*r.id == "spo2_low").unwrap();
        assert_eq!(spo2_low.delay, Duration::from_secs(15));
        assert_eq!(spo2_low.priority, Priority::Medium);
        let bp_high = rules.iter().find(|r| &*r.id == "bp_high").unwrap();
        assert!(!bp_high.armed.contains(Phase::Baseline));
        let confirmation = bp_high.confirmation.as_ref().unwrap();
        assert_eq!(confirmation.priority, Priority::High);
        assert_eq!(confirmation.within, Duration::from_secs(300));
        assert!(confirmation.advice.is_some());
    }

    #[test]
    fn bad_rules_are_reported_together_each_on_its_line() {
        let text = r#"
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
"#;
        let errors = parse(text).unwrap_err();
        let lines: Vec<_> = errors.0.iter().map(|e| (e.line, e.key.clone())).collect();
        assert_eq!(
            lines,
            [
                (Some(5), Some("when".into())),
                (Some(12), Some("when".into())),
                (Some(13), Some("delay_s".into())),
                (Some(15), Some("armed".into())),
            ],
            "{errors}"
        );
        assert!(errors.0[0].message.contains("impossible for spo2"));
    }

    #[test]
    fn an_unknown_vital_is_named_with_its_line() {
        let errors = parse(
            "[[rule]]\nid = \"x\"\nname = \"X\"\nwhen = [{ vital = \"spo3\", below = 90 }]\npriority = \"low\"\narmed = [\"baseline\"]\n",
        )
        .unwrap_err();
        assert_eq!(errors.0[0].line, Some(4), "{errors}");
        assert!(errors.0[0].message.contains("spo3"), "{errors}");
    }
}
