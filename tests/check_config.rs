//! `vitalwatch check-config`: one clear error per problem, naming file, line and key.

mod common;

use std::process::Command;

use common::repo_root;

struct Checked {
    success: bool,
    stdout: String,
    stderr: String,
}

fn check(text: &str) -> (Checked, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clinic.toml");
    std::fs::write(&path, text).unwrap();
    (check_path(&path), path, dir)
}

fn check_path(path: &std::path::Path) -> Checked {
    let output = Command::new(env!("CARGO_BIN_EXE_vitalwatch"))
        .arg("check-config")
        .arg(path)
        .output()
        .expect("run check-config");
    Checked {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Asserts exactly one error, at `file:line`, naming `key`, and returns its text.
fn one_error(checked: &Checked, file: &std::path::Path, line: usize, key: &str) -> String {
    assert!(
        !checked.success,
        "check-config accepted it: {}",
        checked.stdout
    );
    let errors: Vec<&str> = checked
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", checked.stderr);
    let expected = format!("error: {}:{line}:", file.display());
    assert!(
        errors[0].starts_with(&expected),
        "expected {expected}…, got {}",
        errors[0]
    );
    assert!(errors[0].contains(&format!("key `{key}`")), "{}", errors[0]);
    errors[0].to_string()
}

const DEVICE: &str =
    "[[device]]\nid = \"ox1\"\nprofile = \"simulated-oximeter\"\nscenario = \"typical-infusion\"\n";

#[test]
fn an_unknown_key_is_one_error_naming_its_line() {
    let (checked, path, _dir) = check(&format!("{DEVICE}baud_rat = 9600\n"));
    let error = one_error(&checked, &path, 5, "baud_rat");
    assert!(error.contains("unknown field"), "{error}");
}

#[test]
fn a_wrong_type_is_one_error_naming_its_line() {
    let (checked, path, _dir) = check(&format!("[simulator]\nspeed = \"fast\"\n\n{DEVICE}"));
    let error = one_error(&checked, &path, 2, "speed");
    assert!(error.contains("invalid type"), "{error}");
}

#[test]
fn an_unknown_profile_is_one_error_naming_its_line() {
    let (checked, path, _dir) = check(
        "[[device]]\nid = \"ox1\"\nprofile = \"masimo-rad-99\"\nscenario = \"typical-infusion\"\n",
    );
    let error = one_error(&checked, &path, 3, "profile");
    assert!(
        error.contains("unknown device profile `masimo-rad-99`"),
        "{error}"
    );
    assert!(
        error.contains("simulated-oximeter"),
        "lists known profiles: {error}"
    );
}

#[test]
fn a_bad_rule_file_is_reported_at_its_own_line() {
    // The shipped rules with one delay made negative.
    let shipped = std::fs::read_to_string(repo_root().join("config/rules/default.toml")).unwrap();
    let line = shipped
        .lines()
        .position(|l| l == "delay_s = 15")
        .expect("spo2_low's delay in the shipped rules")
        + 1;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, shipped.replacen("delay_s = 15", "delay_s = -15", 1)).unwrap();
    let config = dir.path().join("clinic.toml");
    std::fs::write(
        &config,
        format!("[alarms]\nrules = \"rules.toml\"\n\n{DEVICE}"),
    )
    .unwrap();
    let checked = check_path(&config);
    let error = one_error(&checked, &rules, line, "delay_s");
    assert!(error.contains("≥ 0"), "{error}");
}

#[test]
fn the_shipped_config_checks_clean() {
    let checked = check_path(&repo_root().join("config/vitalwatch.toml"));
    assert!(checked.success, "{}", checked.stderr);
    assert!(
        checked
            .stdout
            .contains("OK: 2 device(s): ox1 (simulated-oximeter), cuff1 (simulated-bp-cuff)"),
        "{}",
        checked.stdout
    );
    let rules = repo_root().join("config/rules/default.toml");
    let (checked, _, _dir) = check(&format!(
        "[alarms]\nrules = \"{}\"\n\n{DEVICE}",
        rules.display()
    ));
    assert!(checked.success, "{}", checked.stderr);
    assert!(checked.stdout.contains("10 rule(s)"), "{}", checked.stdout);
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let checked = check_path(std::path::Path::new("/nonexistent/vitalwatch.toml"));
    assert!(!checked.success);
    assert!(
        checked
            .stderr
            .contains("/nonexistent/vitalwatch.toml: cannot read"),
        "{}",
        checked.stderr
    );
}

#[test]
fn a_clinics_own_profile_directory_is_searched_first() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    std::fs::write(
        profiles.join("ward-oximeter.toml"),
        "name = \"ward-oximeter\"\ndescription = \"A ward's oximeter\"\nvitals = [\"spo2\", \"pulse_rate\"]\ninterval_s = 2\nsilent_after_s = 12\n\n[simulator]\nrole = \"oximeter\"\n",
    )
    .unwrap();
    std::fs::write(
        profiles.join("misnamed.toml"),
        "name = \"something-else\"\ndescription = \"x\"\nvitals = [\"spo2\"]\ninterval_s = 1\n\n[simulator]\nrole = \"oximeter\"\n",
    )
    .unwrap();
    let config = dir.path().join("clinic.toml");
    let device = |profile: &str| {
        format!(
            "[[device]]\nid = \"ox1\"\nprofile = \"{profile}\"\nscenario = \"typical-infusion\"\n"
        )
    };
    std::fs::write(
        &config,
        format!(
            "[profiles]\ndir = \"profiles\"\n\n{}",
            device("ward-oximeter")
        ),
    )
    .unwrap();
    let checked = check_path(&config);
    assert!(checked.success, "{}", checked.stderr);
    assert!(
        checked.stdout.contains("ox1 (ward-oximeter)"),
        "{}",
        checked.stdout
    );

    std::fs::write(
        &config,
        format!("[profiles]\ndir = \"profiles\"\n\n{}", device("misnamed")),
    )
    .unwrap();
    let checked = check_path(&config);
    one_error(&checked, &profiles.join("misnamed.toml"), 1, "name");

    std::fs::write(
        &config,
        format!("[profiles]\ndir = \"profiles\"\n\n{}", device("nope")),
    )
    .unwrap();
    let checked = check_path(&config);
    let error = one_error(&checked, &config, 6, "profile");
    // The directory's profiles first, then the built-in ones.
    assert!(
        error.contains("known profiles: misnamed, ward-oximeter, "),
        "{error}"
    );
    assert!(error.contains("simulated-oximeter"), "{error}");
}
