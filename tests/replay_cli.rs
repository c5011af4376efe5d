//! `vitalwatch replay`, the real binary: its timeline is the library's, its errors name file,
//! line and key, and recorded sessions are refused until the recorder exists.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::repo_root;
use vitalwatch::config::{DEFAULT_RULES, Source, load_scenario, parse_rule_set};
use vitalwatch::replay::replay;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn vitalwatch(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_vitalwatch"))
        .args(args)
        .output()
        .expect("run vitalwatch");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The library's rendering of `scenario` replayed under the rules in `rules_text`.
fn library_render(scenario: &str, rules_text: &str) -> String {
    let scenario = load_scenario(&Source::built_in("test", ""), scenario).unwrap();
    let rules = parse_rule_set(&Source::built_in("rules", rules_text)).unwrap();
    replay(Arc::new(scenario), rules).unwrap().render()
}

#[test]
fn replay_prints_the_library_timeline() {
    let run = vitalwatch(&["replay", "--scenario", "desaturation"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, library_render("desaturation", DEFAULT_RULES));
    // The line the README shows, column for column.
    assert!(
        run.stdout.lines().any(|l| l
            == "00:15:15  raised     medium  spo2_low            ox1    SpO2 low: spo2 86 % (limit spo2 < 90 %)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("summary: 1 alarm in 00:30:00"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_scenario_file_replays_like_the_built_in_one() {
    let file = repo_root().join("config/scenarios/desaturation.toml");
    let run = vitalwatch(&["replay", "--scenario", &file.display().to_string()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    // Only the name in the first line differs.
    let built_in = library_render("desaturation", DEFAULT_RULES);
    assert_eq!(
        run.stdout.lines().skip(1).collect::<Vec<_>>(),
        built_in.lines().skip(1).collect::<Vec<_>>()
    );
}

#[test]
fn a_rule_file_gives_its_own_timeline() {
    // Tuning thresholds: spo2_low at < 85 % instead of < 90 %; desaturation's 86 % no longer
    // alarms.
    let tuned = DEFAULT_RULES.replacen(
        "when = [{ vital = \"spo2\", below = 90 }]",
        "when = [{ vital = \"spo2\", below = 85 }]",
        1,
    );
    assert_ne!(tuned, DEFAULT_RULES);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tuned.toml");
    std::fs::write(&path, &tuned).unwrap();
    let run = vitalwatch(&[
        "replay",
        "--scenario",
        "desaturation",
        "--rules",
        &path.display().to_string(),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, library_render("desaturation", &tuned));
    assert!(!run.stdout.contains("spo2_low"), "{}", run.stdout);
    assert!(
        run.stdout.contains("summary: 0 alarms in 00:30:00"),
        "{}",
        run.stdout
    );
}

/// Asserts one `error: FILE:LINE:` naming `key`, a non-zero exit and nothing on stdout.
fn assert_one_error(run: &Run, file: &Path, line: usize, key: &str) -> String {
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    let expected = format!("error: {}:{line}:", file.display());
    assert!(
        errors[0].starts_with(&expected),
        "expected {expected}…, got {}",
        errors[0]
    );
    assert!(errors[0].contains(&format!("key `{key}`")), "{}", errors[0]);
    errors[0].to_string()
}

#[test]
fn a_bad_rule_file_is_an_error_naming_its_file_line_and_key() {
    // The shipped rules with spo2_low's delay made negative.
    let line = DEFAULT_RULES
        .lines()
        .position(|l| l == "delay_s = 15")
        .expect("spo2_low's delay in the shipped rules")
        + 1;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(
        &path,
        DEFAULT_RULES.replacen("delay_s = 15", "delay_s = -15", 1),
    )
    .unwrap();
    let run = vitalwatch(&[
        "replay",
        "--scenario",
        "desaturation",
        "--rules",
        &path.display().to_string(),
    ]);
    let error = assert_one_error(&run, &path, line, "delay_s");
    assert!(
        error.contains("delay_s must be ≥ 0 seconds, got -15"),
        "{error}"
    );
}

#[test]
fn a_scenario_file_with_phases_out_of_order_is_an_error_on_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.toml");
    std::fs::write(
        &path,
        "description = \"x\"\nduration_s = 1800\n\n[session]\ninfusion_s = 900\nrecovery_s = 600\n\n[baseline]\nspo2 = { value = 97 }\n",
    )
    .unwrap();
    let run = vitalwatch(&["replay", "--scenario", &path.display().to_string()]);
    let error = assert_one_error(&run, &path, 6, "recovery_s");
    assert!(
        error.contains("recovery_s (600) must come after infusion_s (900)"),
        "{error}"
    );
}

#[test]
fn an_unknown_scenario_lists_the_built_in_ones() {
    let run = vitalwatch(&["replay", "--scenario", "nope"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains(
            "error: --scenario: unknown scenario `nope`; built-in scenarios: typical-infusion,"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("bp-overdue"), "{}", run.stderr);
}

#[test]
fn a_session_that_is_not_recorded_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("sessions.sqlite");
    // An empty store: opened once for writing so it exists.
    drop(vitalwatch::recorder::Store::open(&database).unwrap());
    let run = vitalwatch(&[
        "replay",
        "--session",
        "KAP-0042",
        "--database",
        database.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("no session `KAP-0042`")
            && run.stderr.contains("recorded sessions: none"),
        "{}",
        run.stderr
    );
}

#[test]
fn replay_needs_exactly_one_of_scenario_and_session() {
    for args in [
        &["replay"][..],
        &["replay", "--scenario", "desaturation", "--session", "KAP-1"],
    ] {
        let run = vitalwatch(args);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout, "");
        assert!(
            run.stderr.contains("Usage: vitalwatch replay"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn the_readme_shows_what_replay_prints() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let example: String = readme
        .lines()
        .skip_while(|l| *l != "$ vitalwatch replay --scenario desaturation")
        .skip(1)
        .take_while(|l| *l != "```")
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!example.is_empty(), "the README's replay example is gone");
    assert_eq!(example, library_render("desaturation", DEFAULT_RULES));
}
