//! End-to-end alarm latency of the real daemon: from the `write()` of a frame crossing an alarm
//! limit on a serial device's pseudo-terminal to the `alarm` event (`raised`) arriving at an
//! event-stream client, beside the floor: the same write on a bare pseudo-terminal pair to
//! its read on the other end, in a thread of this process waiting for it.
//!
//! `cargo test` runs 100 crossings and fails only when the p99 is over a generous 50 ms (a
//! regression, never the 5 ms target: the machine may be shared). The documented run:
//!
//! ```sh
//! cargo test --release --test latency -- --crossings 2000
//! ```
//!
//! Options: `--crossings N` (default 100), `--gap-ms N` (pause after each event and between
//! writes, default 25: the daemon is idle when a crossing arrives, as with a 1 Hz device),
//! `--max-p99-ms N` (the failure bound, default 50), `--report PATH` (markdown, or JSON when
//! PATH ends in `.json`).
//!
//! The device is a Nonin DF8 oximeter (4-byte frames). The rules are one threshold rule,
//! SpO2 below 85 % with no delay and a hysteresis of 1, of **medium** priority: high
//! physiological alarms latch until acknowledged, and a latched alarm whose condition returns
//! is `condition_returned`, not a new alarm, so a high rule would need an acknowledgement
//! between crossings. At medium, SpO2 80 raises the alarm and SpO2 97 (past the hysteresis)
//! ends it, so every crossing raises a new one. The technical conditions are the default
//! rules' (the file must configure each).

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::custom_harness::{self as harness, Spread};
use common::pty::FakeDevice;
use common::{Daemon, EventStream, repo_root};
use serialport::{SerialPort, TTYPort};

const NAME: &str =
    "every_crossing_frame_written_to_a_serial_line_reaches_an_event_stream_client_as_an_alarm";
const RULE: &str = "latency_spo2_low";
/// DF8 frames (protocols.md §5.6): HR 72, SpO2 80 (crossing) or 97 (normal).
const CROSSING: [u8; 4] = [0x80, 0x48, 80, 0x00];
const NORMAL: [u8; 4] = [0x80, 0x48, 97, 0x00];
/// Longest wait for one event before the run fails.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    harness::main_with(
        NAME,
        &["--crossings", "--gap-ms", "--max-p99-ms", "--report"],
        &[],
        |options| {
            let options = Options {
                crossings: harness::option(options, "--crossings", 100)?,
                gap: Duration::from_millis(harness::option(options, "--gap-ms", 25)?),
                max_p99_ms: harness::option(options, "--max-p99-ms", 50.0)?,
                report: options.get("--report").map(PathBuf::from),
            };
            if options.crossings == 0 {
                return Err("--crossings must be at least 1".into());
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("tokio runtime: {e}"))?;
            runtime.block_on(every_crossing_frame_written_to_a_serial_line_reaches_an_event_stream_client_as_an_alarm(&options))
        },
    )
}

struct Options {
    crossings: usize,
    gap: Duration,
    max_p99_ms: f64,
    report: Option<PathBuf>,
}

/// The rule file: one medium threshold rule, and the default rules' technical conditions.
fn rules() -> Result<String, String> {
    let default = std::fs::read_to_string(repo_root().join("config/rules/default.toml"))
        .map_err(|e| format!("read config/rules/default.toml: {e}"))?;
    let technical = default
        .find("[[technical]]")
        .map(|at| &default[at..])
        .ok_or("config/rules/default.toml has no [[technical]] table")?;
    Ok(format!(
        "audio_pause_s = 120\n\n[bp_schedule]\nbaseline_s = 600\ninfusion_s = 600\nrecovery_s = 900\n\n\
         [[rule]]\nid = \"{RULE}\"\nname = \"SpO2 below 85 (latency test)\"\n\
         when = [{{ vital = \"spo2\", below = 85 }}]\ndelay_s = 0\nhysteresis = 1\n\
         priority = \"medium\"\narmed = [\"baseline\", \"infusion\", \"recovery\"]\n\n{technical}"
    ))
}

/// Reads events until an `alarm` event of the test's rule with `change`; when it arrived.
async fn alarm_event(events: &mut EventStream, change: &str) -> Result<Instant, String> {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while let Some(event) = events.next(deadline).await {
        if event.name == "alarm"
            && event.data["change"] == change
            && event.data["alarm"]["rule"] == RULE
        {
            return Ok(Instant::now());
        }
        if event.name == "lagged" {
            return Err(format!("the event stream lagged: {}", event.data));
        }
    }
    Err(format!(
        "no `{change}` alarm event within {} s",
        EVENT_TIMEOUT.as_secs()
    ))
}

/// A bare pseudo-terminal pair: the floor under the daemon's path. A thread blocks in
/// `read()` on the slave, as the daemon's driver waits on its port, and reports when each
/// frame came.
struct PtyFloor {
    master: TTYPort,
    arrivals: std::sync::mpsc::Receiver<Instant>,
}

impl PtyFloor {
    fn open() -> Result<PtyFloor, String> {
        let (master, mut slave) = TTYPort::pair().map_err(|e| format!("openpty: {e}"))?;
        slave
            .set_timeout(Duration::from_secs(3600))
            .map_err(|e| e.to_string())?;
        let (tx, arrivals) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut frame = [0u8; NORMAL.len()];
            // Ends when the master closes (the read fails) or the receiver is gone.
            while slave.read_exact(&mut frame).is_ok() {
                if tx.send(Instant::now()).is_err() {
                    return;
                }
            }
        });
        Ok(PtyFloor { master, arrivals })
    }

    /// One frame from master to slave: how long from the write to the read's return.
    fn round(&mut self, frame: &[u8]) -> Result<Duration, String> {
        let written = Instant::now();
        self.master
            .write_all(frame)
            .map_err(|e| format!("write to the bare pty: {e}"))?;
        let arrived = self
            .arrivals
            .recv_timeout(EVENT_TIMEOUT)
            .map_err(|_| "the bare pty's reader got nothing".to_string())?;
        Ok(arrived.saturating_duration_since(written))
    }
}

#[derive(serde::Serialize)]
struct Report {
    profile: &'static str,
    cores: usize,
    load_average_before: String,
    load_average_after: String,
    machine_busy_percent_of_all_cores: f64,
    gap_ms: f64,
    pty_floor: Spread,
    write_to_sse_raised: Spread,
    write_to_sse_ended: Spread,
    daemon_histogram: harness::DaemonLatency,
}

async fn every_crossing_frame_written_to_a_serial_line_reaches_an_event_stream_client_as_an_alarm(
    options: &Options,
) -> Result<(), String> {
    let load_before = harness::load_average();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let rules_path = dir.path().join("rules.toml");
    std::fs::write(&rules_path, rules()?).map_err(|e| e.to_string())?;
    let port = dir.path().join("ttyLATENCY");
    let mut device = FakeDevice::plug(&port);
    let daemon = Daemon::start(
        &format!(
            "[alarms]\nrules = \"{}\"\n\n[[device]]\nid = \"ox\"\nprofile = \"nonin-df8\"\nport = \"{}\"\n",
            rules_path.display(),
            port.display()
        ),
        &[],
    );
    let mut events = daemon.events().await;
    let connected_by = Instant::now() + Duration::from_secs(30);
    loop {
        let status = daemon.get_json("/api/v1/status").await;
        if status["devices"][0]["link"] == "connected" {
            break;
        }
        if Instant::now() > connected_by {
            return Err(format!("the device never connected: {status:#}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.start_session("KAP-LATENCY").await;
    daemon.set_phase("infusion").await;
    // The DF8 format command the daemon sends on connect waits in the master's input: it
    // is the daemon's business, not read here. A first normal frame warms the path.
    device.send(&NORMAL);
    tokio::time::sleep(options.gap).await;

    let mut floor = PtyFloor::open()?;
    let mut raised = Vec::with_capacity(options.crossings);
    let mut ended = Vec::with_capacity(options.crossings);
    let mut floors = Vec::with_capacity(options.crossings * 2);
    let machine_from = harness::machine_cpu();
    for crossing in 0..options.crossings {
        for (frame, change, times) in [
            (&CROSSING, "raised", &mut raised),
            (&NORMAL, "ended", &mut ended),
        ] {
            let written = Instant::now();
            device.send(frame);
            let at = alarm_event(&mut events, change)
                .await
                .map_err(|e| format!("crossing {crossing}, waiting for `{change}`: {e}"))?;
            times.push(at.saturating_duration_since(written));
            tokio::time::sleep(options.gap).await;
            // The floor under the same conditions, between the daemon's rounds.
            floors.push(floor.round(frame)?);
            tokio::time::sleep(options.gap).await;
        }
    }
    let machine_to = harness::machine_cpu();
    let metrics = daemon.get_text("/metrics").await;

    let report = Report {
        profile: harness::profile(),
        cores: harness::cores(),
        load_average_before: load_before,
        load_average_after: harness::load_average(),
        machine_busy_percent_of_all_cores: harness::machine_busy_percent(machine_from, machine_to),
        gap_ms: options.gap.as_secs_f64() * 1e3,
        pty_floor: Spread::of(&floors),
        write_to_sse_raised: Spread::of(&raised),
        write_to_sse_ended: Spread::of(&ended),
        daemon_histogram: harness::daemon_latency(&metrics),
    };
    harness::publish_report(&report, markdown(&report), options.report.as_deref())?;
    if report.write_to_sse_raised.p99_ms > options.max_p99_ms {
        return Err(format!(
            "p99 of write → `raised` at the client is {:.2} ms, over the bound of {} ms",
            report.write_to_sse_raised.p99_ms, options.max_p99_ms
        ));
    }
    Ok(())
}

fn markdown(report: &Report) -> String {
    let row = |what: &str, s: &Spread| {
        format!(
            "| {what} | {} | {:.3} ms | {:.3} ms | {:.3} ms |\n",
            s.count, s.p50_ms, s.p99_ms, s.max_ms
        )
    };
    let h = &report.daemon_histogram;
    let bound = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("≤ {v} ms"));
    let mut out = String::from("# vitalwatch end-to-end alarm latency\n\n");
    out.push_str("| path | count | p50 | p99 | max |\n|---|---|---|---|---|\n");
    out.push_str(&row(
        "floor: write on a bare pty master → read() returns on its slave",
        &report.pty_floor,
    ));
    out.push_str(&row(
        "write of the crossing DF8 frame → `alarm` `raised` at the SSE client",
        &report.write_to_sse_raised,
    ));
    out.push_str(&row(
        "write of the normal frame → `alarm` `ended` at the SSE client",
        &report.write_to_sse_ended,
    ));
    out.push_str(&format!(
        "| daemon's histogram: reading arrival → event published (mean {:.3} ms) | {} | {} | {} | |\n",
        h.mean_ms,
        h.count,
        bound(h.p50_at_most_ms),
        bound(h.p99_at_most_ms)
    ));
    out.push_str(&format!(
        "\n{} build, {} cores, {} ms between writes; load average before {}, after {}; \
         machine busy {:.0} % of all cores during the run.\n",
        report.profile,
        report.cores,
        report.gap_ms,
        report.load_average_before,
        report.load_average_after,
        report.machine_busy_percent_of_all_cores
    ));
    out
}
