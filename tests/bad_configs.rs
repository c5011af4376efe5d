//! The malformed-config corpus: `vitalwatch check-config` refuses every file in
//! `tests/bad-configs/`, and its one error names the file, line and key at fault.
//!
//! Each `*.toml` directly in the directory is one entry: a config with one mistake, in itself
//! or in a rule file, profile or scenario it refers to (those live in `rules/`, `profiles/` and
//! `scenarios/`). Its first line says what `check-config` must answer:
//!
//! ```text
//! # expect: FILE:LINE: KEY: MESSAGE
//! ```
//!
//! `FILE` relative to the corpus directory (the entry itself, or the file it refers to that
//! holds the mistake), `LINE` 1-based (the expect line is line 1, so an entry's own text starts
//! at 2), `KEY` the key the error names, or `-` when it names none (a syntax error, a table
//! header), and `MESSAGE` a distinctive part of the message.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::repo_root;

/// An entry's expected error.
#[derive(Debug)]
struct Expected {
    file: String,
    line: u32,
    key: Option<String>,
    message: String,
}

fn corpus_dir() -> PathBuf {
    repo_root().join("tests/bad-configs")
}

/// The entries: the `*.toml` files directly in the corpus directory, sorted.
fn entries() -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("read tests/bad-configs")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == "toml"))
        .collect();
    entries.sort();
    entries
}

/// Parses `# expect: FILE:LINE: KEY: MESSAGE`.
fn expected(entry: &Path) -> Result<Expected, String> {
    let text = std::fs::read_to_string(entry).map_err(|e| e.to_string())?;
    let first = text.lines().next().unwrap_or_default();
    let rest = first
        .strip_prefix("# expect: ")
        .ok_or_else(|| format!("the first line is not `# expect: ...`: {first:?}"))?;
    // The message, last, may itself hold ": ".
    let mut parts = rest.splitn(3, ": ");
    let (Some(place), Some(key), Some(message)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("not `FILE:LINE: KEY: MESSAGE`: {rest:?}"));
    };
    let (file, line) = place
        .rsplit_once(':')
        .ok_or_else(|| format!("no `:LINE` in {place:?}"))?;
    Ok(Expected {
        file: file.to_string(),
        line: line
            .parse()
            .map_err(|_| format!("`{line}` is not a line number"))?,
        key: (key != "-").then(|| key.to_string()),
        message: message.trim().to_string(),
    })
}

/// Runs `check-config` on `entry` (in `dir`) and says what is wrong with its answer, if
/// anything.
fn check(dir: &Path, entry: &Path) -> Result<(), String> {
    let expected = expected(entry)?;
    let output = Command::new(env!("CARGO_BIN_EXE_vitalwatch"))
        .arg("check-config")
        .arg(entry)
        .output()
        .map_err(|e| format!("cannot run check-config: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => return Err("accepted (exit 0)".into()),
        Some(_) => {}
        None => return Err(format!("killed by a signal: {}", output.status)),
    }
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    let [error] = errors[..] else {
        return Err(format!(
            "{} errors, expected exactly one:\n{stderr}",
            errors.len()
        ));
    };
    let place = format!(
        "error: {}:{}:",
        dir.join(&expected.file).display(),
        expected.line
    );
    if !error.starts_with(&place) {
        return Err(format!("expected `{place}…`, got:\n{error}"));
    }
    match &expected.key {
        Some(key) if !error.contains(&format!(": key `{key}`: ")) => {
            return Err(format!("expected key `{key}`, got:\n{error}"));
        }
        None if error.contains(": key `") => {
            return Err(format!("expected no key, got:\n{error}"));
        }
        _ => {}
    }
    if !error.contains(&expected.message) {
        return Err(format!(
            "expected the message to hold {:?}, got:\n{error}",
            expected.message
        ));
    }
    Ok(())
}

#[test]
fn every_malformed_config_is_refused_with_one_error_naming_its_file_line_key_and_message() {
    let failures: Vec<String> = entries()
        .iter()
        .filter_map(|entry| {
            check(&corpus_dir(), entry).err().map(|why| {
                format!(
                    "{}: {why}",
                    entry.file_name().unwrap_or_default().to_string_lossy()
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} malformed configs were not refused as expected:\n\n{}",
        failures.len(),
        entries().len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_malformed_config_corpus_holds_at_least_30_entries() {
    let count = entries().len();
    assert!(count >= 30, "only {count} entries in tests/bad-configs");
}

#[test]
fn the_corpus_check_refuses_a_wrong_line_key_or_message() {
    // The check itself: an expectation that is off in any part must fail, so a passing corpus
    // means lines, keys and messages were compared.
    let dir = tempfile::tempdir().unwrap();
    let body = "[site]\nchair = \"Mrs Smith\"\n";
    let entry = dir.path().join("chair.toml");
    let with = |expect: &str| {
        std::fs::write(&entry, format!("# expect: {expect}\n{body}")).unwrap();
        check(dir.path(), &entry)
    };
    with("chair.toml:3: chair: never a patient's name").unwrap();
    for wrong in [
        "chair.toml:2: chair: never a patient's name",
        "chair.toml:3: site: never a patient's name",
        "chair.toml:3: -: never a patient's name",
        "chair.toml:3: chair: a patient's name is fine",
        "other.toml:3: chair: never a patient's name",
    ] {
        assert!(with(wrong).is_err(), "{wrong} passed");
    }
    std::fs::write(
        &entry,
        "# expect: chair.toml:2: -: anything\n[site]\nchair = \"chair-3\"\n",
    )
    .unwrap();
    let accepted = check(dir.path(), &entry).unwrap_err();
    assert!(accepted.contains("accepted"), "{accepted}");
}
