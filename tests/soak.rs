//! Soak and load run of the real daemon, bounded in time, on loopback only.
//!
//! `cargo test` runs the short version (5 s idle, 20 s of load). The documented full run:
//!
//! ```sh
//! cargo test --release --test soak -- --seconds 600 --idle-seconds 60 --report soak.md
//! ```
//!
//! Options: `--seconds N` (load phase, default 20), `--idle-seconds N` (idle phase, default
//! 5), `--panels N` (default 50), `--startup-runs N` (extra spawn-to-ready measurements before
//! the run, default 0), `--report PATH` (markdown, or JSON when PATH ends in `.json`).
//!
//! Setup: 16 devices. Ten serial devices on real pseudo-terminals at their real frame rates:
//! four Nonin DF8 (a 4-byte frame a second), two Nonin DF2 (75 frames a second, a 25-frame
//! packet every third of a second), two Contec CMS50D+ legacy (60 frames a second), two Masimo
//! Rad-8 ASCII 1 (a line a second). Six simulated devices: four oximeters and two cuffs (every
//! 5 s and every 30 s). A session in the infusion phase, recorded to SQLite.
//!
//! 1. Start-up: spawn → the "listening on" log line → the first answer of `/api/v1/status` →
//!    `READY=1` on a `NOTIFY_SOCKET` → every serial device connected.
//! 2. Idle: the devices stream, no client is connected and no alarm is active: the daemon's
//!    CPU and memory at rest.
//! 3. Load: `--panels` clients read the whole event stream, `/metrics` is scraped every second,
//!    and the serial devices send desaturations at known times: SpO2 80 % for 3 s every 10 s
//!    (`spo2_critical`: high, no delay, latching: a "nurse" acknowledges it once its condition
//!    ends) and SpO2 87 % for 17 s every 60 s (`spo2_low`: medium after 15 s).
//! 4. Stop: the devices stop, the daemon catches up, the panels disconnect, SIGTERM (the
//!    recorder flushes), and the session database is read back with rusqlite.
//!
//! Pass bar: every reading the serial devices sent was received by the engine and recorded;
//! no ring drop and no decode error; every expected alarm raised, and no other; every panel
//! got every alarm event, none lagged, none went 4 s without a heartbeat (the panel's MONITOR
//! OFFLINE); a clean exit on SIGTERM. Timings and resources are reported, never asserted: the
//! machine may be shared.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::custom_harness::{self as harness, ProcessSample, Spread};
use common::pty::FakeDevice;
use common::{Daemon, EventStream};
use serde::Serialize;
use serde_json::{Value, json};

const NAME: &str =
    "sixteen_devices_fifty_panels_and_a_scrape_a_second_lose_no_reading_and_miss_no_alarm";

fn main() -> ExitCode {
    harness::main_with(
        NAME,
        &[
            "--seconds",
            "--idle-seconds",
            "--panels",
            "--report",
            "--startup-runs",
        ],
        &[],
        |options| {
            let options = Options {
                load: Duration::from_secs(harness::option(options, "--seconds", 20)?),
                idle: Duration::from_secs(harness::option(options, "--idle-seconds", 5)?),
                panels: harness::option(options, "--panels", 50)?,
                startup_runs: harness::option(options, "--startup-runs", 0)?,
                report: options.get("--report").map(PathBuf::from),
            };
            if options.load < Duration::from_secs(10) {
                return Err("--seconds must be at least 10 (the alarm episodes need it)".into());
            }
            sixteen_devices_fifty_panels_and_a_scrape_a_second_lose_no_reading_and_miss_no_alarm(
                &options,
            )
        },
    )
}

struct Options {
    load: Duration,
    idle: Duration,
    panels: usize,
    startup_runs: usize,
    report: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// The devices

/// A serial protocol as the test's fake device writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
enum Wire {
    NoninDf8,
    NoninDf2,
    ContecLegacy,
    MasimoAscii1,
}

impl Wire {
    fn profile(self) -> &'static str {
        match self {
            Wire::NoninDf8 => "nonin-df8",
            Wire::NoninDf2 => "nonin-df2",
            Wire::ContecLegacy => "contec-cms50d-legacy",
            Wire::MasimoAscii1 => "masimo-rad8-ascii1",
        }
    }

    /// The device's real output rate.
    fn frames_per_second(self) -> f64 {
        match self {
            Wire::NoninDf8 | Wire::MasimoAscii1 => 1.0,
            Wire::NoninDf2 => 75.0,
            Wire::ContecLegacy => 60.0,
        }
    }

    /// Frames that make one sample (one decoded measurement): a DF2 packet is 25 frames.
    fn frames_per_sample(self) -> u64 {
        match self {
            Wire::NoninDf2 => 25,
            _ => 1,
        }
    }

    /// Readings per sample: SpO2 and pulse; Masimo adds the perfusion index.
    fn readings_per_sample(self) -> u64 {
        match self {
            Wire::MasimoAscii1 => 3,
            _ => 2,
        }
    }

    /// Frame `frame_in_sample` of sample number `sample`, carrying `spo2` and a pulse of 72.
    fn frame(self, spo2: u8, frame_in_sample: u64, sample: u64) -> Vec<u8> {
        const PULSE: u16 = 72;
        match self {
            // protocols.md §5.6: status (bit 7, HR bits 8-7), HR, SpO2, status 2.
            Wire::NoninDf8 => vec![
                0x80 | ((PULSE >> 7) & 3) as u8,
                (PULSE & 0x7F) as u8,
                spo2,
                0,
            ],
            // protocols.md §5.2: `01 STATUS PLETH FLOAT CHK`; SYNC on frame 1, green
            // perfusion on the rest; SpO2-D in frame 9, HR-D in frames 20-21.
            Wire::NoninDf2 => {
                let index = frame_in_sample as usize;
                let float = match index {
                    8 => spo2 & 0x7F,
                    19 => ((PULSE >> 7) & 3) as u8,
                    20 => (PULSE & 0x7F) as u8,
                    _ => 0,
                };
                let status: u8 = if index == 0 { 0x81 } else { 0x82 };
                let pleth = 0x20 + (index as u8 * 3);
                let check = 0x01u8
                    .wrapping_add(status)
                    .wrapping_add(pleth)
                    .wrapping_add(float);
                vec![0x01, status, pleth, float, check]
            }
            // protocols.md §6.1: signal strength, pleth, bargraph, PR, SpO2; bit 7 on the first
            // byte only. The profile has XON/XOFF flow control, so the line discipline would
            // swallow 0x11 and 0x13 as flow control: the pleth stays within 0x20..0x5F (real
            // devices are subject to the same, which is the profile's business).
            Wire::ContecLegacy => vec![
                0x85,
                0x20 + (sample % 64) as u8,
                0x06,
                (PULSE & 0x7F) as u8,
                spo2,
            ],
            Wire::MasimoAscii1 => {
                let (h, m, s) = (sample / 3600 % 24, sample / 60 % 60, sample % 60);
                format!(
                    "11/25/26 {h:02}:{m:02}:{s:02} SN=0000093112 SPO2={spo2:03}% BPM={PULSE:03} PI=04.50% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800\r\n"
                )
                .into_bytes()
            }
        }
    }
}

const SERIAL_DEVICES: [(&str, Wire); 10] = [
    ("df8-1", Wire::NoninDf8),
    ("df8-2", Wire::NoninDf8),
    ("df8-3", Wire::NoninDf8),
    ("df8-4", Wire::NoninDf8),
    ("df2-1", Wire::NoninDf2),
    ("df2-2", Wire::NoninDf2),
    ("contec-1", Wire::ContecLegacy),
    ("contec-2", Wire::ContecLegacy),
    ("masimo-1", Wire::MasimoAscii1),
    ("masimo-2", Wire::MasimoAscii1),
];

/// Simulated devices: id, profile, reporting interval override.
const SIMULATED_DEVICES: [(&str, &str, Option<u32>); 6] = [
    ("sim-ox-1", "simulated-oximeter", None),
    ("sim-ox-2", "simulated-oximeter", None),
    ("sim-ox-3", "simulated-oximeter", None),
    ("sim-ox-4", "simulated-oximeter", None),
    ("sim-cuff-1", "simulated-bp-cuff", Some(5)),
    ("sim-cuff-2", "simulated-bp-cuff", Some(30)),
];

const NORMAL_SPO2: u8 = 97;

fn config(dir: &Path, database: &Path) -> String {
    let mut text = format!(
        "[site]\nchair = \"soak\"\n\n[recording]\ndatabase = \"{}\"\n",
        database.display()
    );
    for (id, wire) in SERIAL_DEVICES {
        text.push_str(&format!(
            "\n[[device]]\nid = \"{id}\"\nprofile = \"{}\"\nport = \"{}\"\n",
            wire.profile(),
            dir.join(id).display()
        ));
    }
    for (id, profile, interval) in SIMULATED_DEVICES {
        text.push_str(&format!(
            "\n[[device]]\nid = \"{id}\"\nprofile = \"{profile}\"\nscenario = \"typical-infusion\"\n"
        ));
        if let Some(interval) = interval {
            text.push_str(&format!("interval_s = {interval}\n"));
        }
    }
    text
}

// ---------------------------------------------------------------------------------------------
// The alarm workload

/// A stretch of low SpO2 on one serial device, and the alarm it must raise.
#[derive(Debug, Clone)]
struct Episode {
    index: usize,
    device: &'static str,
    spo2: u8,
    rule: &'static str,
    starts: Instant,
    ends: Instant,
}

/// SpO2 80 % for 3 s: `spo2_critical` (below 85, no delay, high, latching) at once.
const CRITICAL: (u8, &str, Duration, Duration) = (
    80,
    "spo2_critical",
    Duration::from_secs(3),
    Duration::from_secs(10),
);
/// SpO2 87 % for 17 s: `spo2_low` (below 90 for 15 s, medium); not critical (85).
const LOW: (u8, &str, Duration, Duration) = (
    87,
    "spo2_low",
    Duration::from_secs(17),
    Duration::from_secs(60),
);
const CRITICAL_DEVICES: [&str; 8] = [
    "df8-1", "df2-1", "contec-1", "masimo-1", "df8-2", "df2-2", "contec-2", "masimo-2",
];
const LOW_DEVICES: [&str; 2] = ["df8-3", "df8-4"];
/// Every episode ends this long before the devices stop, so its alarm ends while watched.
const EPISODE_MARGIN: Duration = Duration::from_secs(2);

/// The episodes of a load phase of `length` from `start`: critical ones every 10 s from 3 s
/// (rotating over eight devices of all four protocols), low ones every 60 s from 1 s (on two
/// DF8 devices of their own, so the two kinds never overlap on a device).
fn plan_episodes(start: Instant, length: Duration) -> Vec<Episode> {
    let mut episodes = Vec::new();
    for ((spo2, rule, lasts, every), first, devices) in [
        (CRITICAL, Duration::from_secs(3), &CRITICAL_DEVICES[..]),
        (LOW, Duration::from_secs(1), &LOW_DEVICES[..]),
    ] {
        let mut offset = first;
        let mut turn = 0;
        while offset + lasts + EPISODE_MARGIN <= length {
            episodes.push(Episode {
                index: 0,
                device: devices[turn % devices.len()],
                spo2,
                rule,
                starts: start + offset,
                ends: start + offset + lasts,
            });
            offset += every;
            turn += 1;
        }
    }
    episodes.sort_by_key(|e| e.starts);
    for (index, episode) in episodes.iter_mut().enumerate() {
        episode.index = index;
    }
    episodes
}

/// The SpO2 `device` sends at `now`, and the episode it belongs to.
fn spo2_at(episodes: Option<&Vec<Episode>>, device: &str, now: Instant) -> (u8, Option<usize>) {
    episodes
        .into_iter()
        .flatten()
        .find(|e| e.device == device && e.starts <= now && now < e.ends)
        .map_or((NORMAL_SPO2, None), |e| (e.spo2, Some(e.index)))
}

// ---------------------------------------------------------------------------------------------
// The serial devices' writers

/// What one fake serial device sent.
#[derive(Debug, Default)]
struct Sent {
    frames: u64,
    samples: u64,
    readings: u64,
    bytes: u64,
    /// Per episode: when the write that completed its first low sample returned.
    crossings: Vec<(usize, Instant)>,
    /// How far behind its schedule a write ever was (the test machine being busy).
    max_late: Duration,
}

/// Writes `wire` frames at the device's real rate until `stop` (at a sample boundary, so every
/// sample sent is whole), taking SpO2 from the episodes once they are planned. Gives the
/// device back: it must stay plugged in until the daemon has read everything (closing a pty's
/// master hangs up the slave, and bytes not yet read are lost) and has stopped (or the link
/// loss is a technical alarm).
fn write_frames(
    mut device: FakeDevice,
    id: &'static str,
    wire: Wire,
    episodes: Arc<OnceLock<Vec<Episode>>>,
    stop: Arc<AtomicBool>,
) -> (Sent, FakeDevice) {
    let period = Duration::from_secs_f64(1.0 / wire.frames_per_second());
    let mut sent = Sent::default();
    let mut next = Instant::now();
    let (mut spo2, mut episode) = (NORMAL_SPO2, None);
    loop {
        let frame_in_sample = sent.frames % wire.frames_per_sample();
        if frame_in_sample == 0 {
            if stop.load(Ordering::Relaxed) {
                return (sent, device);
            }
            // A sample's values are fixed at its first frame, as a device's would be.
            (spo2, episode) = spo2_at(episodes.get(), id, Instant::now());
        }
        let now = Instant::now();
        match next.checked_duration_since(now) {
            Some(wait) => std::thread::sleep(wait),
            None => sent.max_late = sent.max_late.max(now - next),
        }
        let bytes = wire.frame(spo2, frame_in_sample, sent.samples);
        device.send(&bytes);
        let written = Instant::now();
        sent.frames += 1;
        sent.bytes += bytes.len() as u64;
        if frame_in_sample + 1 == wire.frames_per_sample() {
            sent.samples += 1;
            sent.readings += wire.readings_per_sample();
            if let Some(index) = episode
                && !sent.crossings.iter().any(|(i, _)| *i == index)
            {
                sent.crossings.push((index, written));
            }
        }
        next += period;
    }
}

// ---------------------------------------------------------------------------------------------
// The panels, the scraper and the nurse

/// An alarm event as a panel received it.
#[derive(Debug, Clone)]
struct AlarmSeen {
    id: u64,
    change: String,
    /// The rule or technical condition.
    source: String,
    device: String,
    priority: String,
    at: Instant,
}

impl AlarmSeen {
    fn of(data: &Value, at: Instant) -> AlarmSeen {
        let alarm = &data["alarm"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        AlarmSeen {
            id: alarm["id"].as_u64().unwrap_or(u64::MAX),
            change: text(&data["change"]),
            source: text(if alarm["rule"].is_string() {
                &alarm["rule"]
            } else {
                &alarm["condition"]
            }),
            device: text(&alarm["device"]),
            priority: text(&alarm["priority"]),
            at,
        }
    }
}

/// What one panel received.
#[derive(Debug, Default)]
struct PanelLog {
    events: u64,
    readings: u64,
    heartbeats: u64,
    lagged: u64,
    alarms: Vec<AlarmSeen>,
    max_heartbeat_gap: Duration,
    /// The stream ended before the test closed it.
    cut_off: bool,
}

/// Reads everything from the event stream until `stop`; panel 0 also hands its alarm events to
/// the nurse.
async fn panel(
    mut stream: EventStream,
    stop: Arc<AtomicBool>,
    nurse: Option<tokio::sync::mpsc::UnboundedSender<AlarmSeen>>,
) -> PanelLog {
    let mut log = PanelLog::default();
    let mut last_heartbeat: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let deadline = Instant::now() + Duration::from_millis(250);
        let Some(event) = stream.next(deadline).await else {
            if Instant::now() < deadline {
                log.cut_off = true;
                break;
            }
            continue;
        };
        let at = Instant::now();
        log.events += 1;
        match event.name.as_str() {
            "reading" => log.readings += 1,
            "heartbeat" => {
                log.heartbeats += 1;
                if let Some(last) = last_heartbeat {
                    log.max_heartbeat_gap = log.max_heartbeat_gap.max(at - last);
                }
                last_heartbeat = Some(at);
            }
            "lagged" => log.lagged += 1,
            "alarm" => {
                let seen = AlarmSeen::of(&event.data, at);
                if let Some(nurse) = &nurse {
                    let _ = nurse.send(seen.clone());
                }
                log.alarms.push(seen);
            }
            _ => {}
        }
    }
    log
}

/// Acknowledges each latched alarm (a high alarm whose condition ended) as a nurse would.
async fn nurse(
    base: String,
    mut alarms: tokio::sync::mpsc::UnboundedReceiver<AlarmSeen>,
) -> (u64, Vec<String>) {
    // The daemon closes a keep-alive connection idle for 10 s (its header-read timeout), and
    // the nurse acknowledges about every 10 s: a pooled connection could be closed just as a
    // request went out on it (2 of 720 acknowledgements failed so in a 2-hour run). A client
    // lets idle connections go first, as a client of any server with an idle timeout should.
    let client = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let (mut acknowledged, mut errors) = (0, Vec::new());
    while let Some(alarm) = alarms.recv().await {
        if alarm.change != "condition_ended" {
            continue;
        }
        let url = format!("{base}/api/v1/alarms/{}/acknowledge", alarm.id);
        match client.post(&url).json(&json!({})).send().await {
            Ok(response) if response.status().is_success() => acknowledged += 1,
            Ok(response) => errors.push(format!("acknowledge {}: {}", alarm.id, response.status())),
            Err(error) => errors.push(format!("acknowledge {}: {error}", alarm.id)),
        }
    }
    (acknowledged, errors)
}

/// Scrapes `/metrics` every second until `stop`, as Prometheus would: how long each took.
async fn scraper(base: String, stop: Arc<AtomicBool>) -> (Vec<Duration>, u64) {
    let client = reqwest::Client::new();
    let (mut took, mut failures) = (Vec::new(), 0);
    let mut every = tokio::time::interval(Duration::from_secs(1));
    while !stop.load(Ordering::Relaxed) {
        every.tick().await;
        let started = Instant::now();
        let body = match client.get(format!("{base}/metrics")).send().await {
            Ok(response) if response.status().is_success() => response.text().await.ok(),
            _ => None,
        };
        match body {
            Some(text) if text.contains("vitalwatch_readings_total") => {
                took.push(started.elapsed())
            }
            _ => failures += 1,
        }
    }
    (took, failures)
}

// ---------------------------------------------------------------------------------------------
// Metrics text

/// Metric `name` summed per device.
fn per_device(text: &str, name: &str) -> BTreeMap<String, u64> {
    let mut sums = BTreeMap::new();
    for (labels, value) in harness::metric(text, name) {
        if let Some(device) = labels.get("device") {
            *sums.entry(device.clone()).or_insert(0) += value as u64;
        }
    }
    sums
}

// ---------------------------------------------------------------------------------------------
// Resources

/// The daemon's memory sampled every second, with the phase it was in.
#[derive(Debug, Clone, Serialize)]
struct RssSample {
    seconds: f64,
    phase: &'static str,
    rss_kib: u64,
}

/// The daemon's and the machine's CPU and memory over one phase.
#[derive(Debug, Clone, Serialize)]
struct PhaseResources {
    phase: &'static str,
    seconds: f64,
    daemon_cpu_percent_of_one_core: f64,
    daemon_rss_kib_end: u64,
    daemon_rss_kib_max: u64,
    daemon_threads: u64,
    /// The test process itself (device writers, panels, scraper): it shares the machine.
    test_process_cpu_percent_of_one_core: f64,
    machine_busy_percent_of_all_cores: f64,
    load_average_end: String,
}

/// Snapshots at a phase boundary.
#[derive(Clone)]
struct Mark {
    daemon: ProcessSample,
    me: ProcessSample,
    machine: harness::MachineCpu,
    load_average: String,
}

fn mark(pid: u32) -> Result<Mark, String> {
    Ok(Mark {
        daemon: harness::process_sample(&pid.to_string())
            .ok_or("the daemon is gone: cannot read /proc/<pid>")?,
        me: harness::process_sample("self").ok_or("cannot read /proc/self")?,
        machine: harness::machine_cpu(),
        load_average: harness::load_average(),
    })
}

fn phase_resources(
    phase: &'static str,
    from: &Mark,
    to: &Mark,
    samples: &[RssSample],
    ticks: f64,
) -> PhaseResources {
    PhaseResources {
        phase,
        seconds: to.daemon.at.duration_since(from.daemon.at).as_secs_f64(),
        daemon_cpu_percent_of_one_core: harness::cpu_percent(&from.daemon, &to.daemon, ticks),
        daemon_rss_kib_end: to.daemon.rss_kib,
        daemon_rss_kib_max: samples
            .iter()
            .filter(|s| s.phase == phase)
            .map(|s| s.rss_kib)
            .chain([to.daemon.rss_kib])
            .max()
            .unwrap_or(0),
        daemon_threads: to.daemon.threads,
        test_process_cpu_percent_of_one_core: harness::cpu_percent(&from.me, &to.me, ticks),
        machine_busy_percent_of_all_cores: harness::machine_busy_percent(from.machine, to.machine),
        load_average_end: to.load_average.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Start-up

#[derive(Debug, Clone, Serialize)]
struct Startup {
    /// Spawn → the "listening on" log line read by the test.
    listening_ms: f64,
    /// Spawn → the first 200 from /api/v1/status.
    first_status_ms: f64,
    /// Spawn → READY=1 received on the NOTIFY_SOCKET.
    ready_ms: Option<f64>,
    /// Spawn → every serial device's link connected (the status API).
    all_connected_ms: f64,
}

/// A `NOTIFY_SOCKET` the daemon says READY=1 on: its path, and when READY=1 came.
struct NotifySocket {
    path: PathBuf,
    ready: std::sync::mpsc::Receiver<Instant>,
}

fn notify_socket(dir: &Path, name: &str) -> Result<NotifySocket, String> {
    let path = dir.join(name);
    let socket = UnixDatagram::bind(&path).map_err(|e| format!("bind {}: {e}", path.display()))?;
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let (tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        // Ends at the first READY=1, or when nothing comes for a minute.
        while let Ok(n) = socket.recv(&mut buffer) {
            let at = Instant::now();
            if String::from_utf8_lossy(&buffer[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                let _ = tx.send(at);
                return;
            }
        }
    });
    Ok(NotifySocket { path, ready })
}

async fn start_daemon(
    config_text: &str,
    dir: &Path,
    run: usize,
) -> Result<(Daemon, Startup), String> {
    let notify = notify_socket(dir, &format!("notify-{run}.sock"))?;
    let notify_path = notify.path.display().to_string();
    let client = reqwest::Client::new();
    let daemon = Daemon::start_with_env(
        config_text,
        "127.0.0.1:0",
        &[],
        &[("NOTIFY_SOCKET", notify_path.as_str())],
    );
    let since_spawn = |at: Instant| at.duration_since(daemon.spawned).as_secs_f64() * 1e3;
    let give_up = Instant::now() + Duration::from_secs(30);
    let first_status = loop {
        if let Ok(response) = client.get(daemon.url("/api/v1/status")).send().await
            && response.status().is_success()
        {
            break Instant::now();
        }
        if Instant::now() > give_up {
            return Err("/api/v1/status never answered within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let all_connected = loop {
        let status: Value = match client.get(daemon.url("/api/v1/status")).send().await {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let connected = status["devices"].as_array().is_some_and(|devices| {
            SERIAL_DEVICES.iter().all(|(id, _)| {
                devices
                    .iter()
                    .any(|d| d["id"] == *id && d["link"] == "connected")
            })
        });
        if connected {
            break Instant::now();
        }
        if Instant::now() > give_up {
            return Err(format!(
                "the serial devices did not all connect within 30 s: {status:#}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let ready = notify.ready.recv_timeout(Duration::from_secs(5)).ok();
    let startup = Startup {
        listening_ms: since_spawn(daemon.listening),
        first_status_ms: since_spawn(first_status),
        ready_ms: ready.map(since_spawn),
        all_connected_ms: since_spawn(all_connected),
    };
    Ok((daemon, startup))
}

// ---------------------------------------------------------------------------------------------
// The report

#[derive(Debug, Serialize)]
struct DeviceRow {
    device: String,
    profile: String,
    /// Readings the test's fake device sent (`None` for a simulated device).
    sent: Option<u64>,
    frames: Option<u64>,
    bytes: Option<u64>,
    /// `vitalwatch_readings_total` once the daemon caught up.
    received: u64,
    /// Rows in the session database's `reading` table.
    recorded: u64,
    dropped: u64,
    decode_errors: u64,
    /// Furthest behind its schedule a write of the test's device ever was.
    writer_max_late_ms: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
struct AlarmSummary {
    expected: usize,
    raised_as_expected: usize,
    missed: Vec<String>,
    unexpected: Vec<String>,
    /// Alarm events (every change) in the session database, and those every panel got.
    recorded_events: usize,
    events_seen_by_every_panel: usize,
    acknowledged_by_the_nurse: u64,
    active_at_the_end: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
struct PanelSummary {
    panels: usize,
    events_min: u64,
    events_max: u64,
    events_per_second_all_panels: f64,
    lagged_events: u64,
    cut_off: usize,
    max_heartbeat_gap_ms: f64,
    panels_missing_alarm_events: usize,
    scrapes: usize,
    scrape_failures: u64,
    scrape: Spread,
}

#[derive(Debug, Serialize)]
struct Report {
    passed: bool,
    failures: Vec<String>,
    profile: &'static str,
    cores: usize,
    load_average_before: String,
    load_average_after: String,
    idle_seconds: f64,
    load_seconds: f64,
    startups: Vec<Startup>,
    devices: Vec<DeviceRow>,
    alarms: AlarmSummary,
    /// From the write of a crossing frame to the `raised` event at the panels, for every
    /// `spo2_critical` episode: at every panel, at the first and at the last panel to get it,
    /// and at every panel by the device's protocol.
    alarm_latency_write_to_panel: Spread,
    alarm_latency_write_to_first_panel: Spread,
    alarm_latency_write_to_last_panel: Spread,
    alarm_latency_by_protocol: BTreeMap<String, Spread>,
    alarm_latency_daemon_histogram: harness::DaemonLatency,
    panels: PanelSummary,
    resources: Vec<PhaseResources>,
    shutdown_ms: Option<f64>,
    exit_status: String,
    rss_samples: Vec<RssSample>,
}

fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "# vitalwatch soak: {}\n",
        if report.passed { "PASSED" } else { "FAILED" }
    ));
    for failure in &report.failures {
        line(format!("- FAILED: {failure}"));
    }
    line(format!(
        "\n{} build, {} cores; load average before {}, after {}; idle {:.0} s, load {:.0} s.\n",
        report.profile,
        report.cores,
        report.load_average_before,
        report.load_average_after,
        report.idle_seconds,
        report.load_seconds
    ));
    line("## Start-up (ms from spawn)\n".into());
    line(
        "| listening log line | first /api/v1/status | READY=1 | all serial devices connected |"
            .into(),
    );
    line("|---|---|---|---|".into());
    for s in &report.startups {
        line(format!(
            "| {:.1} | {:.1} | {} | {:.1} |",
            s.listening_ms,
            s.first_status_ms,
            s.ready_ms.map_or("none".into(), |r| format!("{r:.1}")),
            s.all_connected_ms
        ));
    }
    if report.startups.len() > 1 {
        let median = |f: fn(&Startup) -> Option<f64>| {
            let values: Vec<f64> = report.startups.iter().filter_map(f).collect();
            harness::percentile(&values, 50.0).map_or("-".into(), |v| format!("**{v:.1}**"))
        };
        line(format!(
            "| {} | {} | {} | {} | (median of {})",
            median(|s| Some(s.listening_ms)),
            median(|s| Some(s.first_status_ms)),
            median(|s| s.ready_ms),
            median(|s| Some(s.all_connected_ms)),
            report.startups.len()
        ));
    }
    line("\n## Readings\n".into());
    line("| device | profile | sent | received | recorded | dropped | decode errors | frames | bytes | writer max late (ms) |".into());
    line("|---|---|---|---|---|---|---|---|---|---|".into());
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    for d in &report.devices {
        line(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            d.device,
            d.profile,
            opt(d.sent),
            d.received,
            d.recorded,
            d.dropped,
            d.decode_errors,
            opt(d.frames),
            opt(d.bytes),
            d.writer_max_late_ms
                .map_or("-".to_string(), |v| format!("{v:.1}"))
        ));
    }
    let a = &report.alarms;
    line("\n## Alarms\n".into());
    line(format!(
        "expected {}, raised as expected {}, missed {}, unexpected {}; alarm events recorded {}, \
         seen by every panel {}; acknowledged by the nurse {}; active at the end {}",
        a.expected,
        a.raised_as_expected,
        a.missed.len(),
        a.unexpected.len(),
        a.recorded_events,
        a.events_seen_by_every_panel,
        a.acknowledged_by_the_nurse,
        a.active_at_the_end.len()
    ));
    for what in a
        .missed
        .iter()
        .chain(&a.unexpected)
        .chain(&a.active_at_the_end)
    {
        line(format!("- {what}"));
    }
    let h = &report.alarm_latency_daemon_histogram;
    let bound = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("≤ {v} ms"));
    line("\n## Alarm-signal latency\n".into());
    line("| measured | count | p50 | p99 | max |".into());
    line("|---|---|---|---|---|".into());
    let mut spreads = vec![
        (
            "write of the crossing frame → `raised` at each panel".to_string(),
            &report.alarm_latency_write_to_panel,
        ),
        (
            "… at the first panel to get it".to_string(),
            &report.alarm_latency_write_to_first_panel,
        ),
        (
            "… at the last panel to get it".to_string(),
            &report.alarm_latency_write_to_last_panel,
        ),
    ];
    for (wire, spread) in &report.alarm_latency_by_protocol {
        spreads.push((format!("… at each panel, {wire} devices"), spread));
    }
    for (what, w) in spreads {
        line(format!(
            "| {what} | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
            w.count, w.p50_ms, w.p99_ms, w.max_ms
        ));
    }
    line(format!(
        "| daemon histogram (reading arrival → event published; mean {:.3} ms) | {} | {} | {} | |",
        h.mean_ms,
        h.count,
        bound(h.p50_at_most_ms),
        bound(h.p99_at_most_ms)
    ));
    let p = &report.panels;
    line("\n## Panels and scrapes\n".into());
    line(format!(
        "{} panels: {} to {} events each ({:.0} events/s over all panels), lagged events {}, \
         streams cut off {}, longest heartbeat gap {:.0} ms, panels missing an alarm event {}; \
         {} scrapes of /metrics (failures {}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        p.panels,
        p.events_min,
        p.events_max,
        p.events_per_second_all_panels,
        p.lagged_events,
        p.cut_off,
        p.max_heartbeat_gap_ms,
        p.panels_missing_alarm_events,
        p.scrapes,
        p.scrape_failures,
        p.scrape.p50_ms,
        p.scrape.p99_ms,
        p.scrape.max_ms
    ));
    line("\n## Resources\n".into());
    line("| phase | seconds | daemon CPU (% of one core) | daemon RSS end / max (MiB) | daemon threads | test process CPU (% of one core) | machine busy (% of all cores) | load average at end |".into());
    line("|---|---|---|---|---|---|---|---|".into());
    for r in &report.resources {
        line(format!(
            "| {} | {:.1} | {:.2} | {:.1} / {:.1} | {} | {:.1} | {:.0} | {} |",
            r.phase,
            r.seconds,
            r.daemon_cpu_percent_of_one_core,
            r.daemon_rss_kib_end as f64 / 1024.0,
            r.daemon_rss_kib_max as f64 / 1024.0,
            r.daemon_threads,
            r.test_process_cpu_percent_of_one_core,
            r.machine_busy_percent_of_all_cores,
            r.load_average_end
        ));
    }
    line(format!(
        "\nSIGTERM → exit: {} ({})",
        report
            .shutdown_ms
            .map_or("did not exit".to_string(), |ms| format!("{ms:.0} ms")),
        report.exit_status
    ));
    out
}

// ---------------------------------------------------------------------------------------------
// The run

fn sixteen_devices_fifty_panels_and_a_scrape_a_second_lose_no_reading_and_miss_no_alarm(
    options: &Options,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(soak_async(options))
}

async fn soak_async(options: &Options) -> Result<(), String> {
    let ticks = harness::clock_ticks_per_second();
    let load_before = harness::load_average();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let database = dir.path().join("soak.sqlite");
    let config_text = config(dir.path(), &database);
    let mut devices: Vec<(&'static str, Wire, FakeDevice)> = SERIAL_DEVICES
        .iter()
        .map(|(id, wire)| (*id, *wire, FakeDevice::plug(&dir.path().join(id))))
        .collect();

    // 1. Start-up, as often as asked, then the run's own.
    let mut startups = Vec::new();
    for run in 0..options.startup_runs {
        let (mut daemon, startup) = start_daemon(&config_text, dir.path(), run).await?;
        startups.push(startup);
        daemon.signal("TERM");
        if daemon.wait_exit(Duration::from_secs(30)).is_none() {
            return Err("a start-up run's daemon did not stop on SIGTERM".into());
        }
    }
    let (mut daemon, startup) =
        start_daemon(&config_text, dir.path(), options.startup_runs).await?;
    startups.push(startup);
    let pid = daemon.pid();
    let base = daemon.base.clone();
    daemon.start_session("KAP-SOAK").await;
    daemon.set_phase("infusion").await;

    // The daemon's memory every second, labelled with the phase.
    let phase: Arc<Mutex<&'static str>> = Arc::new(Mutex::new("idle"));
    let rss_samples: Arc<Mutex<Vec<RssSample>>> = Arc::default();
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (phase, samples, sampling) = (phase.clone(), rss_samples.clone(), sampling.clone());
        let started = Instant::now();
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let Some(sample) = harness::process_sample(&pid.to_string()) else {
                    break;
                };
                let phase = *phase.lock().unwrap();
                samples.lock().unwrap().push(RssSample {
                    seconds: started.elapsed().as_secs_f64(),
                    phase,
                    rss_kib: sample.rss_kib,
                });
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };

    // The serial devices stream from now on: every reading they send is in the session.
    let episodes: Arc<OnceLock<Vec<Episode>>> = Arc::default();
    let stop_writers = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = devices
        .drain(..)
        .map(|(id, wire, device)| {
            let (episodes, stop) = (episodes.clone(), stop_writers.clone());
            (
                id,
                wire,
                std::thread::spawn(move || write_frames(device, id, wire, episodes, stop)),
            )
        })
        .collect();

    // 2. Idle: streaming, no client, no alarm. The first second settles the connections.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_from = mark(pid)?;
    tokio::time::sleep(options.idle).await;
    let idle_to = mark(pid)?;

    // 3. Load.
    *phase.lock().unwrap() = "load";
    let stop_clients = Arc::new(AtomicBool::new(false));
    let (to_nurse, nurse_inbox) = tokio::sync::mpsc::unbounded_channel();
    let mut panels = Vec::new();
    for index in 0..options.panels {
        let stream = EventStream::open(&daemon.url("/api/v1/events")).await;
        let feed = (index == 0).then(|| to_nurse.clone());
        panels.push(tokio::spawn(panel(stream, stop_clients.clone(), feed)));
    }
    drop(to_nurse);
    let nurse = tokio::spawn(nurse(base.clone(), nurse_inbox));
    let scraper = tokio::spawn(scraper(base.clone(), stop_clients.clone()));
    let load_start = Instant::now();
    let planned = plan_episodes(load_start, options.load);
    let _ = episodes.set(planned.clone());
    let load_from = mark(pid)?;
    tokio::time::sleep(options.load).await;
    let load_to = mark(pid)?;

    // 4. Stop: the devices, then wait for the daemon to count every reading they sent.
    *phase.lock().unwrap() = "drain";
    stop_writers.store(true, Ordering::Relaxed);
    let mut sent: BTreeMap<&'static str, (Wire, Sent)> = BTreeMap::new();
    let mut still_plugged = Vec::new();
    let mut failures = Vec::new();
    for (id, wire, writer) in writers {
        match tokio::task::spawn_blocking(move || writer.join()).await {
            Ok(Ok((log, device))) => {
                sent.insert(id, (wire, log));
                still_plugged.push(device);
            }
            _ => failures.push(format!("the writer of {id} failed (see its panic above)")),
        }
    }
    let client = reqwest::Client::new();
    let metrics_url = format!("{base}/metrics");
    let caught_up_by = Instant::now() + Duration::from_secs(10);
    let mut metrics = get_text(&client, &metrics_url).await;
    loop {
        let received = per_device(&metrics, "vitalwatch_readings_total");
        let behind = sent
            .iter()
            .any(|(id, (_, s))| received.get(*id).copied().unwrap_or(0) < s.readings);
        if !behind || Instant::now() > caught_up_by {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        metrics = get_text(&client, &metrics_url).await;
    }
    // Every episode's alarm has ended (the nurse acknowledged the latched ones).
    let alarms_clear_by = Instant::now() + Duration::from_secs(10);
    let active_at_the_end = loop {
        let status = daemon.get_json("/api/v1/status").await;
        let active: Vec<String> = status["alarms"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                format!(
                    "still active: {} {} on {} ({})",
                    a["priority"].as_str().unwrap_or("?"),
                    a["rule"]
                        .as_str()
                        .or(a["condition"].as_str())
                        .unwrap_or("?"),
                    a["device"].as_str().unwrap_or("?"),
                    a["message"].as_str().unwrap_or("")
                )
            })
            .collect();
        if active.is_empty() || Instant::now() > alarms_clear_by {
            break active;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The last alarm events are on their way to the panels.
    tokio::time::sleep(Duration::from_secs(1)).await;
    metrics = get_text(&client, &metrics_url).await;
    // The panels go before the SIGTERM: while an event stream is open the daemon does not
    // stop (axum's graceful shutdown waits for every connection, and the stream never ends).
    stop_clients.store(true, Ordering::Relaxed);
    let panels_connected_for = load_start.elapsed();
    let mut panel_logs = Vec::new();
    for panel in panels {
        panel_logs.push(
            panel
                .await
                .map_err(|e| format!("a panel task failed: {e}"))?,
        );
    }
    let (scrape_times, scrape_failures) = scraper.await.map_err(|e| format!("scraper: {e}"))?;
    let (acknowledged, nurse_errors) = nurse.await.map_err(|e| format!("nurse: {e}"))?;
    failures.extend(nurse_errors);
    let drain_to = mark(pid)?;

    // A clean stop: SIGTERM, and the recorder flushes before the daemon exits.
    let stopping = Instant::now();
    daemon.signal("TERM");
    let exit = tokio::task::block_in_place(|| daemon.wait_exit(Duration::from_secs(30)));
    let shutdown_ms = exit.map(|_| stopping.elapsed().as_secs_f64() * 1e3);
    let exit_status = match exit {
        Some(status) => status.to_string(),
        None => "still running 30 s after SIGTERM".to_string(),
    };
    if exit.is_none_or(|status| !status.success()) {
        failures.push(format!(
            "SIGTERM did not stop the daemon cleanly: {exit_status}"
        ));
    }
    drop(still_plugged);
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let rss_samples = rss_samples.lock().unwrap().clone();

    // The session as recorded, read back with rusqlite.
    let recorded = read_database(&database)?;

    // ----- Judge.
    let received = per_device(&metrics, "vitalwatch_readings_total");
    let dropped = per_device(&metrics, "vitalwatch_ring_dropped_total");
    let decode_errors = per_device(&metrics, "vitalwatch_decode_errors_total");
    let mut rows = Vec::new();
    for (id, (wire, log)) in &sent {
        let row = DeviceRow {
            device: id.to_string(),
            profile: wire.profile().to_string(),
            sent: Some(log.readings),
            frames: Some(log.frames),
            bytes: Some(log.bytes),
            received: received.get(*id).copied().unwrap_or(0),
            recorded: recorded.readings.get(*id).copied().unwrap_or(0),
            dropped: dropped.get(*id).copied().unwrap_or(0),
            decode_errors: decode_errors.get(*id).copied().unwrap_or(0),
            writer_max_late_ms: Some(log.max_late.as_secs_f64() * 1e3),
        };
        if row.sent != Some(row.received) || row.sent != Some(row.recorded) {
            failures.push(format!(
                "{id}: sent {} readings, the engine received {}, the database holds {}",
                log.readings, row.received, row.recorded
            ));
        }
        if row.decode_errors > 0 {
            failures.push(format!("{id}: {} decode errors", row.decode_errors));
        }
        rows.push(row);
    }
    for (id, profile, _) in SIMULATED_DEVICES {
        rows.push(DeviceRow {
            device: id.to_string(),
            profile: profile.to_string(),
            sent: None,
            frames: None,
            bytes: None,
            received: received.get(id).copied().unwrap_or(0),
            recorded: recorded.readings.get(id).copied().unwrap_or(0),
            dropped: dropped.get(id).copied().unwrap_or(0),
            decode_errors: 0,
            writer_max_late_ms: None,
        });
    }
    for row in &rows {
        if row.dropped > 0 {
            failures.push(format!("{}: {} messages dropped", row.device, row.dropped));
        }
    }

    let (alarms, latencies) = judge_alarms(
        load_start,
        &planned,
        &sent,
        &panel_logs,
        &recorded,
        acknowledged,
        active_at_the_end,
        &mut failures,
    );

    let panel_summary = PanelSummary {
        panels: panel_logs.len(),
        events_min: panel_logs.iter().map(|p| p.events).min().unwrap_or(0),
        events_max: panel_logs.iter().map(|p| p.events).max().unwrap_or(0),
        events_per_second_all_panels: panel_logs.iter().map(|p| p.events).sum::<u64>() as f64
            / panels_connected_for.as_secs_f64(),
        lagged_events: panel_logs.iter().map(|p| p.lagged).sum(),
        cut_off: panel_logs.iter().filter(|p| p.cut_off).count(),
        max_heartbeat_gap_ms: panel_logs
            .iter()
            .map(|p| p.max_heartbeat_gap)
            .max()
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3,
        panels_missing_alarm_events: alarms.1,
        scrapes: scrape_times.len(),
        scrape_failures,
        scrape: Spread::of(&scrape_times),
    };
    if panel_summary.lagged_events > 0 {
        failures.push(format!(
            "panels lagged: {} `lagged` events",
            panel_summary.lagged_events
        ));
    }
    if panel_summary.cut_off > 0 {
        failures.push(format!(
            "{} panels' streams ended early",
            panel_summary.cut_off
        ));
    }
    if panel_summary.max_heartbeat_gap_ms >= 4000.0 {
        failures.push(format!(
            "a panel went {:.0} ms without a heartbeat (MONITOR OFFLINE at 4 s)",
            panel_summary.max_heartbeat_gap_ms
        ));
    }
    if scrape_failures > 0 {
        failures.push(format!("{scrape_failures} scrapes of /metrics failed"));
    }

    let every_panel: Vec<Duration> = latencies
        .iter()
        .flat_map(|e| e.at_panels.iter().copied())
        .collect();
    let first_panel: Vec<Duration> = latencies
        .iter()
        .filter_map(|e| e.at_panels.iter().min().copied())
        .collect();
    let last_panel: Vec<Duration> = latencies
        .iter()
        .filter_map(|e| e.at_panels.iter().max().copied())
        .collect();
    let by_protocol: BTreeMap<String, Spread> = SERIAL_DEVICES
        .iter()
        .map(|(_, wire)| *wire)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|wire| {
            let of_wire: Vec<Duration> = latencies
                .iter()
                .filter(|e| e.wire == wire)
                .flat_map(|e| e.at_panels.iter().copied())
                .collect();
            (wire.profile().to_string(), Spread::of(&of_wire))
        })
        .collect();
    let resources = vec![
        phase_resources("idle", &idle_from, &idle_to, &rss_samples, ticks),
        phase_resources("load", &load_from, &load_to, &rss_samples, ticks),
        phase_resources("drain", &load_to, &drain_to, &rss_samples, ticks),
    ];
    let report = Report {
        passed: failures.is_empty(),
        failures,
        profile: harness::profile(),
        cores: harness::cores(),
        load_average_before: load_before,
        load_average_after: harness::load_average(),
        idle_seconds: options.idle.as_secs_f64(),
        load_seconds: options.load.as_secs_f64(),
        startups,
        devices: rows,
        alarms: alarms.0,
        alarm_latency_write_to_panel: Spread::of(&every_panel),
        alarm_latency_write_to_first_panel: Spread::of(&first_panel),
        alarm_latency_write_to_last_panel: Spread::of(&last_panel),
        alarm_latency_by_protocol: by_protocol,
        alarm_latency_daemon_histogram: harness::daemon_latency(&metrics),
        panels: panel_summary,
        resources,
        shutdown_ms,
        exit_status,
        rss_samples,
    };
    harness::publish_report(&report, markdown(&report), options.report.as_deref())?;
    if report.passed {
        Ok(())
    } else {
        Err(report.failures.join("\n"))
    }
}

/// The body of a GET (empty when it fails: the caller judges the content).
async fn get_text(client: &reqwest::Client, url: &str) -> String {
    match client.get(url).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The session as the database holds it.
struct Recorded {
    readings: BTreeMap<String, u64>,
    /// Every alarm event: id, change, rule or condition, device.
    alarm_events: BTreeSet<(u64, String, String, String)>,
}

fn read_database(path: &Path) -> Result<Recorded, String> {
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("open {}: {e}", path.display()))?;
    let sql = |e: rusqlite::Error| format!("reading the session database: {e}");
    let session: i64 = db
        .query_row(
            "SELECT session_key FROM session WHERE id = 'KAP-SOAK'",
            [],
            |row| row.get(0),
        )
        .map_err(sql)?;
    let mut readings = BTreeMap::new();
    let mut query = db
        .prepare("SELECT device, COUNT(*) FROM reading WHERE session_key = ?1 GROUP BY device")
        .map_err(sql)?;
    let rows = query
        .query_map([session], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .map_err(sql)?;
    for row in rows {
        let (device, count) = row.map_err(sql)?;
        readings.insert(device, count as u64);
    }
    let mut alarm_events = BTreeSet::new();
    let mut query = db
        .prepare(
            "SELECT alarm_id, change, source, device FROM event \
             WHERE session_key = ?1 AND kind = 'alarm'",
        )
        .map_err(sql)?;
    let rows = query
        .query_map([session], |row| {
            Ok((
                row.get::<_, i64>(0)? as u64,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .map_err(sql)?;
    for row in rows {
        alarm_events.insert(row.map_err(sql)?);
    }
    Ok(Recorded {
        readings,
        alarm_events,
    })
}

/// Expected alarms against those raised, panels against the database; the measured latency
/// of each `spo2_critical` alarm at each panel. Returns the summary, how many panels missed an
/// alarm event, and the latency of each critical episode.
/// How long one critical episode's alarm took to reach each panel.
struct EpisodeLatency {
    wire: Wire,
    at_panels: Vec<Duration>,
}

#[allow(clippy::too_many_arguments)]
fn judge_alarms(
    load_start: Instant,
    planned: &[Episode],
    sent: &BTreeMap<&'static str, (Wire, Sent)>,
    panels: &[PanelLog],
    recorded: &Recorded,
    acknowledged: u64,
    active_at_the_end: Vec<String>,
    failures: &mut Vec<String>,
) -> ((AlarmSummary, usize), Vec<EpisodeLatency>) {
    // Every alarm raised, as the panels saw it (the earliest arrival).
    let mut raised: BTreeMap<u64, AlarmSeen> = BTreeMap::new();
    for seen in panels.iter().flat_map(|p| &p.alarms) {
        if seen.change == "raised" {
            raised
                .entry(seen.id)
                .and_modify(|first| {
                    if seen.at < first.at {
                        *first = seen.clone();
                    }
                })
                .or_insert_with(|| seen.clone());
        }
    }
    let mut matched: BTreeMap<u64, &Episode> = BTreeMap::new();
    let mut missed = Vec::new();
    for episode in planned {
        let found = raised.values().find(|a| {
            a.source == episode.rule
                && a.device == episode.device
                && a.at >= episode.starts
                && a.at <= episode.ends + Duration::from_secs(3)
                && !matched.contains_key(&a.id)
        });
        match found {
            Some(alarm) => {
                matched.insert(alarm.id, episode);
            }
            None => missed.push(format!(
                "missed: {} on {} (SpO2 {} from {:.1} s into the load phase, for {:.0} s)",
                episode.rule,
                episode.device,
                episode.spo2,
                episode.starts.duration_since(load_start).as_secs_f64(),
                (episode.ends - episode.starts).as_secs_f64()
            )),
        }
    }
    let mut unexpected: Vec<String> = raised
        .values()
        .filter(|a| !matched.contains_key(&a.id))
        .map(|a| format!("unexpected: {} {} on {}", a.priority, a.source, a.device))
        .collect();
    // Raised where no panel could see it (before they connected): only the database knows.
    for (id, change, source, device) in &recorded.alarm_events {
        if change == "raised" && !raised.contains_key(id) {
            unexpected.push(format!(
                "unexpected, before the panels connected: {source} on {device}"
            ));
        }
    }
    // Every panel got every alarm event the daemon recorded.
    let recorded_events: BTreeSet<(u64, String)> = recorded
        .alarm_events
        .iter()
        .map(|(id, change, _, _)| (*id, change.clone()))
        .collect();
    let mut missing_panels = 0;
    let mut seen_by_all = recorded_events.clone();
    for (index, panel) in panels.iter().enumerate() {
        let got: BTreeSet<(u64, String)> = panel
            .alarms
            .iter()
            .map(|a| (a.id, a.change.clone()))
            .collect();
        let missing: Vec<_> = recorded_events.difference(&got).collect();
        if !missing.is_empty() {
            missing_panels += 1;
            if missing_panels <= 3 {
                failures.push(format!(
                    "panel {index} missed {} of the {} recorded alarm events, e.g. {:?}",
                    missing.len(),
                    recorded_events.len(),
                    missing.first()
                ));
            }
        }
        seen_by_all = seen_by_all.intersection(&got).cloned().collect();
    }
    if missed.len() + unexpected.len() > 0 {
        failures.extend(missed.iter().cloned());
        failures.extend(unexpected.iter().cloned());
    }
    failures.extend(active_at_the_end.iter().cloned());
    // Latency: the write that completed the first crossing sample → `raised` at each panel.
    let crossing: HashMap<usize, Instant> = sent
        .values()
        .flat_map(|(_, s)| s.crossings.iter().copied())
        .collect();
    let mut latencies = Vec::new();
    for (id, episode) in &matched {
        if episode.rule != CRITICAL.1 {
            continue; // the low rule has a 15 s delay by design
        }
        let (Some(written), Some((wire, _))) =
            (crossing.get(&episode.index), sent.get(episode.device))
        else {
            continue;
        };
        let at_panels = panels
            .iter()
            .filter_map(|panel| {
                panel
                    .alarms
                    .iter()
                    .find(|a| a.id == *id && a.change == "raised")
            })
            .map(|seen| seen.at.saturating_duration_since(*written))
            .collect();
        latencies.push(EpisodeLatency {
            wire: *wire,
            at_panels,
        });
    }
    let summary = AlarmSummary {
        expected: planned.len(),
        raised_as_expected: matched.len(),
        missed,
        unexpected,
        recorded_events: recorded_events.len(),
        events_seen_by_every_panel: seen_by_all.len(),
        acknowledged_by_the_nurse: acknowledged,
        active_at_the_end,
    };
    ((summary, missing_panels), latencies)
}
