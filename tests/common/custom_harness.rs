//! What the test targets with `harness = false` (the soak and latency runs) share: their own
//! options after `--`, while behaving like a libtest binary under plain `cargo test` (a test
//! name filter, `--list`, libtest's flags accepted, a `test result:` line that `scripts/test`
//! counts); percentiles; the daemon's and the machine's CPU and memory from `/proc`; and
//! how a run's report is shown and kept.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// What the command line asks of a custom-harness test.
pub enum Invocation {
    /// Run, with these options of its own (name → value; a flag's value is empty).
    Run(HashMap<String, String>),
    /// `--list`: name the test, run nothing.
    List,
    /// A name filter that does not match this test, or `--ignored`: run nothing.
    FilteredOut,
}

/// libtest's options that take a value: accepted and ignored, so that `cargo test -- --color
/// never` or `--test-threads 1` given to every test binary does not break this one.
const LIBTEST_WITH_VALUE: [&str; 6] = [
    "--test-threads",
    "--color",
    "--format",
    "-Z",
    "--logfile",
    "--shuffle-seed",
];
const LIBTEST_FLAGS: [&str; 12] = [
    "--nocapture",
    "--no-capture",
    "--show-output",
    "--quiet",
    "-q",
    "--exact",
    "--include-ignored",
    "--test",
    "--bench",
    "--report-time",
    "--ensure-time",
    "--shuffle",
];

/// Parses the arguments after `--` for the test `name`. `own_with_value` are the test's own
/// options that take a value (`--seconds 600` or `--seconds=600`), `own_flags` those that do
/// not. A bare word is a libtest name filter: the test runs when its name contains one of them
/// (or when there is none).
pub fn parse_args(
    name: &str,
    own_with_value: &[&str],
    own_flags: &[&str],
) -> Result<Invocation, String> {
    let mut options = HashMap::new();
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let mut list = false;
    let mut ignored_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((key, value)) if key.starts_with('-') => {
                (key.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |key: &str| -> Result<String, String> {
            match inline.clone() {
                Some(value) => Ok(value),
                None => args.next().ok_or_else(|| format!("{key} needs a value")),
            }
        };
        if own_with_value.contains(&key.as_str()) {
            options.insert(key.clone(), value(&key)?);
        } else if own_flags.contains(&key.as_str()) {
            options.insert(key, String::new());
        } else if key == "--list" {
            list = true;
        } else if key == "--ignored" {
            ignored_only = true;
        } else if key == "--skip" {
            skips.push(value(&key)?);
        } else if LIBTEST_WITH_VALUE.contains(&key.as_str()) {
            value(&key)?;
        } else if LIBTEST_FLAGS.contains(&key.as_str()) {
        } else if key.starts_with('-') {
            let mut known: Vec<&str> = own_with_value.to_vec();
            known.extend(own_flags);
            return Err(format!(
                "unknown option {key}; {name} takes {}",
                known.join(", ")
            ));
        } else {
            filters.push(arg);
        }
    }
    if list {
        return Ok(Invocation::List);
    }
    let filtered = !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str()));
    if ignored_only || filtered || skips.iter().any(|s| name.contains(s.as_str())) {
        return Ok(Invocation::FilteredOut);
    }
    Ok(Invocation::Run(options))
}

/// An option's value parsed as `T`, or `default` when it is absent.
pub fn option<T: std::str::FromStr>(
    options: &HashMap<String, String>,
    key: &str,
    default: T,
) -> Result<T, String> {
    match options.get(key) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("{key}: `{text}` is not a valid value")),
    }
}

/// Prints libtest's summary line for one test (so `scripts/test` counts it) and gives the
/// exit code: 0 on success, 101 (libtest's) on failure.
pub fn finish(name: &str, outcome: Result<(), String>, started: Instant) -> ExitCode {
    let secs = started.elapsed().as_secs_f64();
    match outcome {
        Ok(()) => {
            println!("test {name} ... ok");
            println!(
                "\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in {secs:.2}s\n"
            );
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("\n{name} FAILED:\n{why}");
            println!("test {name} ... FAILED");
            println!(
                "\ntest result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in {secs:.2}s\n"
            );
            ExitCode::from(101)
        }
    }
}

/// Runs `test` as the test `name` with its options, or lists or filters it as libtest would.
pub fn main_with(
    name: &str,
    own_with_value: &[&str],
    own_flags: &[&str],
    test: impl FnOnce(&HashMap<String, String>) -> Result<(), String>,
) -> ExitCode {
    let started = Instant::now();
    match parse_args(name, own_with_value, own_flags) {
        Err(why) => finish(name, Err(why), started),
        Ok(Invocation::List) => {
            println!("{name}: test");
            ExitCode::SUCCESS
        }
        Ok(Invocation::FilteredOut) => {
            println!(
                "\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out; finished in 0.00s\n"
            );
            ExitCode::SUCCESS
        }
        Ok(Invocation::Run(options)) => finish(name, test(&options), started),
    }
}

/// The `p`-th percentile (0 to 100) of `values` by the nearest-rank method (an observed
/// value, never an interpolation); `None` for no values.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50, p99 and max of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Spread {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Spread {
    pub fn of(durations: &[Duration]) -> Spread {
        let ms: Vec<f64> = durations.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        Spread {
            count: ms.len(),
            p50_ms: percentile(&ms, 50.0).unwrap_or(f64::NAN),
            p99_ms: percentile(&ms, 99.0).unwrap_or(f64::NAN),
            max_ms: percentile(&ms, 100.0).unwrap_or(f64::NAN),
        }
    }
}

/// A process's memory and CPU time, from `/proc/<pid>/status` and `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy)]
pub struct ProcessSample {
    pub at: Instant,
    /// Resident set (`VmRSS`) and its peak (`VmHWM`), KiB.
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    pub threads: u64,
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
}

/// `pid`'s sample now (`None` once it has exited). `pid` may be `"self"`.
pub fn process_sample(pid: &str) -> Option<ProcessSample> {
    let at = Instant::now();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces or parentheses: count fields after the last
    // ')'. utime and stime are fields 14 and 15, so the 12th and 13th after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(ProcessSample {
        at,
        rss_kib: field("VmRSS:")?,
        peak_rss_kib: field("VmHWM:")?,
        threads: field("Threads:")?,
        cpu_ticks: utime + stime,
    })
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux this runs on).
pub fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU used between two samples, in percent of one core.
pub fn cpu_percent(from: &ProcessSample, to: &ProcessSample, ticks_per_second: f64) -> f64 {
    let wall = to.at.duration_since(from.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    to.cpu_ticks.saturating_sub(from.cpu_ticks) as f64 / ticks_per_second / wall * 100.0
}

/// The whole machine's CPU counters (`/proc/stat`): busy and total jiffies over all cores.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    pub busy: u64,
    pub total: u64,
}

pub fn machine_cpu() -> MachineCpu {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let numbers: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    let total: u64 = numbers.iter().take(8).sum();
    // idle and iowait are the 4th and 5th.
    let idle = numbers.get(3).copied().unwrap_or(0) + numbers.get(4).copied().unwrap_or(0);
    MachineCpu {
        busy: total.saturating_sub(idle),
        total,
    }
}

/// How busy the whole machine was between two readings, in percent of all its cores.
pub fn machine_busy_percent(from: MachineCpu, to: MachineCpu) -> f64 {
    let total = to.total.saturating_sub(from.total);
    if total == 0 {
        return 0.0;
    }
    to.busy.saturating_sub(from.busy) as f64 / total as f64 * 100.0
}

/// The load averages (1, 5, 15 min) as `/proc/loadavg` gives them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Cores online.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Whether this test binary was built with the release profile (the figures of a debug build
/// are not the daemon's: cargo builds the daemon with the same profile).
pub fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus text

/// The samples of metric `name`: labels and value.
pub fn metric(text: &str, name: &str) -> Vec<(HashMap<String, String>, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let labels = labels
                .split("\",")
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key.to_string(), value.trim_matches('"').to_string()))
                })
                .collect();
            Some((labels, value.parse().ok()?))
        })
        .collect()
}

/// The daemon's alarm-signal latency histogram: count, mean, and the bucket bounds within
/// which its p50 and p99 fall.
#[derive(Debug, Default, serde::Serialize)]
pub struct DaemonLatency {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_at_most_ms: Option<f64>,
    pub p99_at_most_ms: Option<f64>,
}

pub fn daemon_latency(text: &str) -> DaemonLatency {
    let name = "vitalwatch_alarm_signal_latency_seconds";
    let count = metric(text, &format!("{name}_count"))
        .first()
        .map_or(0.0, |(_, v)| *v);
    let sum = metric(text, &format!("{name}_sum"))
        .first()
        .map_or(0.0, |(_, v)| *v);
    let mut buckets: Vec<(f64, f64)> = metric(text, &format!("{name}_bucket"))
        .into_iter()
        .filter_map(|(labels, cumulative)| {
            let le = labels.get("le")?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, cumulative))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let within = |q: f64| {
        buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= q * count && count > 0.0)
            .map(|(bound, _)| bound * 1e3)
    };
    DaemonLatency {
        count: count as u64,
        mean_ms: if count > 0.0 {
            sum / count * 1e3
        } else {
            f64::NAN
        },
        p50_at_most_ms: within(0.5),
        p99_at_most_ms: within(0.99),
    }
}

/// Prints a run's report (`markdown`) and writes it to `path` if asked: JSON (`report`
/// serialised) when the path ends in `.json`, the markdown otherwise.
pub fn publish_report(
    report: &impl serde::Serialize,
    markdown: String,
    path: Option<&Path>,
) -> Result<(), String> {
    println!("\n{markdown}");
    if let Some(path) = path {
        let body = if path.extension().is_some_and(|e| e == "json") {
            serde_json::to_string_pretty(report).map_err(|e| e.to_string())?
        } else {
            markdown
        };
        std::fs::write(path, body).map_err(|e| format!("write {}: {e}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(())
}
