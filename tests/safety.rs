//! Traceability of the safety case: every test SAFETY.md names exists, so the hazard table
//! cannot silently rot when a test is renamed or removed, and every hazard's mitigation has
//! been removed once to watch a test fail (the table of those removals).

use std::path::{Path, PathBuf};

/// The hazards the table must have a row for (issue: safety case).
const HAZARDS: [&str; 12] = [
    "H1", "H2", "H3", "H4", "H5", "H6", "H7", "H8", "H9", "H10", "H11", "H12",
];

/// A hazard row: its number and the tests it names.
#[derive(Debug)]
struct Row {
    hazard: String,
    tests: Vec<String>,
}

/// The rows of the hazard table: lines `| H<n> | ... | tests |`, tests in backticks in the
/// last column.
fn rows(markdown: &str) -> Vec<Row> {
    markdown
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split(" | ").collect();
            let hazard = cells.first()?.trim();
            if !(hazard.starts_with('H') && hazard[1..].chars().all(|c| c.is_ascii_digit())) {
                return None;
            }
            let tests = cells
                .last()?
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect();
            Some(Row {
                hazard: hazard.to_string(),
                tests,
            })
        })
        .collect()
}

/// Every Rust source under `dirs`, with its text.
fn sources(dirs: &[PathBuf]) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "node_modules") {
                    continue;
                }
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && let Ok(text) = std::fs::read_to_string(&path)
            {
                out.push((path, text));
            }
        }
    }
    out
}

/// Whether a test called `name` is defined: `fn name(` (or a proptest `property!(name,`). A
/// qualified name (`berrymed::tests::vectors`) must be in a file whose path holds its module
/// names.
fn defined(name: &str, sources: &[(PathBuf, String)]) -> bool {
    let mut parts: Vec<&str> = name.split("::").collect();
    let Some(function) = parts.pop() else {
        return false;
    };
    parts.retain(|p| *p != "tests");
    sources.iter().any(|(path, text)| {
        let path = path.to_string_lossy();
        parts.iter().all(|module| path.contains(module))
            && (text.contains(&format!("fn {function}("))
                || text.contains(&format!("property!({function},")))
    })
}

/// The named tests that do not exist.
fn missing(rows: &[Row], sources: &[(PathBuf, String)]) -> Vec<String> {
    rows.iter()
        .flat_map(|row| row.tests.iter().map(move |t| (row, t)))
        .filter(|(_, test)| !defined(test, sources))
        .map(|(row, test)| format!("{}: {test}", row.hazard))
        .collect()
}

/// The lines of `markdown` under the heading `heading`, up to the next heading of its level.
fn section<'a>(markdown: &'a str, heading: &str) -> &'a str {
    let Some(start) = markdown.find(&format!("\n{heading}\n")) else {
        panic!("no section `{heading}`");
    };
    let body = &markdown[start + heading.len() + 2..];
    let level = heading.split(' ').next().unwrap_or("##");
    body.find(&format!("\n{level} "))
        .map_or(body, |end| &body[..end])
}

const HAZARD_TABLE: &str = "## Hazard table";
const REMOVALS: &str = "## Mitigations removed to watch their tests fail";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn repository_sources() -> Vec<(PathBuf, String)> {
    sources(&[root().join("src"), root().join("tests")])
}

#[test]
fn every_test_the_safety_case_names_exists() {
    let text = std::fs::read_to_string(root().join("SAFETY.md")).expect("SAFETY.md");
    let rows = rows(section(&text, HAZARD_TABLE));
    let found: Vec<&str> = rows.iter().map(|r| r.hazard.as_str()).collect();
    assert_eq!(found, HAZARDS, "the hazard table's rows");
    for row in &rows {
        assert!(!row.tests.is_empty(), "{} names no test", row.hazard);
    }
    let removals = rows_of_removals(&text);
    let sources = repository_sources();
    let missing: Vec<String> = missing(&rows, &sources)
        .into_iter()
        .chain(missing(&removals, &sources))
        .collect();
    assert!(
        missing.is_empty(),
        "SAFETY.md names tests that do not exist (renamed or removed?): {missing:#?}"
    );
}

fn rows_of_removals(text: &str) -> Vec<Row> {
    rows(section(text, REMOVALS))
}

#[test]
fn every_hazards_mitigation_was_removed_once_and_a_test_failed() {
    let text = std::fs::read_to_string(root().join("SAFETY.md")).expect("SAFETY.md");
    let removals = rows_of_removals(&text);
    let untried: Vec<&str> = HAZARDS
        .into_iter()
        .filter(|hazard| {
            !removals
                .iter()
                .any(|row| row.hazard == *hazard && !row.tests.is_empty())
        })
        .collect();
    assert!(
        untried.is_empty(),
        "no mitigation of {untried:?} has been removed to watch a test fail"
    );
}

#[test]
fn a_renamed_test_is_caught() {
    let sources = repository_sources();
    let table = "| H1 | x | y | z | r | `phases_only_move_forward`, `phases_only_move_forwards` |\n\
                 | H2 | x | y | z | r | `berrymed::tests::vectors`, `nonin::tests::vectors` |";
    let rows = rows(table);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        missing(&rows, &sources),
        ["H1: phases_only_move_forwards", "H2: nonin::tests::vectors"]
    );
}

#[test]
fn the_readme_links_the_safety_case_and_says_what_vitalwatch_is_not() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    assert!(readme.contains("(SAFETY.md)"), "README links SAFETY.md");
    assert!(readme.contains("not a certified medical device"));
}
