//! Fault injection against the real daemon: each fault raises its technical alarm, the daemon
//! recovers by itself, nothing recorded is lost beyond the documented 1 s window (the recorder
//! commits at most 200 ms after a record), and the other devices are monitored throughout.
//!
//! Every test runs the real binary with the faulted part beside a healthy simulated oximeter
//! (`ox1`), whose samples must keep coming, on the event stream and in the record, never
//! further apart than its interval plus [`SLACK`]:
//!
//! - a serial oximeter (a real pty) unplugged and replugged again and again;
//! - the daemon killed with SIGKILL 20 times during an infusion and restarted on the same port
//!   and database;
//! - a full disk: covered by `tests/recording.rs`
//!   (`a_full_disk_stops_recording_not_monitoring_and_recording_resumes_when_space_returns`,
//!   on a real tmpfs), not repeated here;
//! - stalled sinks: an event-stream client that never reads, and the database locked by
//!   another process;
//! - megabytes of random bytes on a serial port: a checksummed protocol (DF2) decodes none of
//!   them, one without a checksum (DF8) only into flagged readings that raise no alarm;
//! - a restart with the wall clock an hour behind the session's last record (libfaketime).
//!
//! All run at real speed (no `--speed`): the faults' own timings are real time (the serial
//! driver's backoff, SQLite's busy timeout, TCP buffers), and at real speed a stalled daemon
//! shows as the healthy oximeter's silence. Waits are polls with deadlines.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::frames::{df2_packet, df8};
use common::pty::FakeDevice;
use common::record::{
    LossWindow, ReadingKey, reading_key, recorded_keys, recorded_readings, the_session,
};
use common::{Daemon, EventStream, SseEvent, require_tool};
use tokio::io::AsyncWriteExt;
use vitalwatch::recorder::{EventDetail, Store, StoredEvent};

/// The healthy simulated oximeter every test runs beside the faulted part.
const HEALTHY: &str = "ox1";

/// How much later than its interval a sample of the healthy oximeter may come (real time, and
/// the tests run at real speed): scheduling jitter on a shared two-core machine running the
/// debug build. A daemon stalled by a fault shows as a longer silence.
const SLACK: Duration = Duration::from_millis(500);

/// A test's files: the recording database, a serial port's link, a rules file.
struct Setup {
    dir: tempfile::TempDir,
    database: PathBuf,
    port: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = dir.path().join("sessions.sqlite");
        let port = dir.path().join("ttyDEV");
        Setup {
            dir,
            database,
            port,
        }
    }

    /// A config recording into the database, with the healthy oximeter sampling every
    /// `interval_s` and then `devices` (more `[[device]]` tables, or other tables first).
    fn config(&self, interval_s: f64, devices: &str) -> String {
        format!(
            "[recording]\ndatabase = \"{}\"\n\n{devices}\n\
             [[device]]\nid = \"{HEALTHY}\"\nprofile = \"simulated-oximeter\"\n\
             scenario = \"typical-infusion\"\ninterval_s = {interval_s}\n",
            self.database.display()
        )
    }

    /// A serial device `id` with `profile` at the setup's port.
    fn serial(&self, id: &str, profile: &str) -> String {
        format!(
            "[[device]]\nid = \"{id}\"\nprofile = \"{profile}\"\nport = \"{}\"\n",
            self.port.display()
        )
    }

    /// Writes `text` to `name` in the setup's directory; returns its path.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write a test file");
        path
    }

    fn store(&self) -> Store {
        Store::open_read_only(&self.database).expect("open the recording")
    }

    /// A second connection to the database, as another process would have (`rusqlite`).
    fn connection(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(&self.database).expect("open the database");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn
    }

    /// Takes the database's write lock as another process would, and keeps it until the
    /// connection is dropped (which rolls back); with when it was taken.
    fn lock_database(&self) -> (rusqlite::Connection, DateTime<Utc>, Instant) {
        let locker = self.connection();
        locker
            .execute_batch("BEGIN EXCLUSIVE")
            .expect("BEGIN EXCLUSIVE");
        (locker, Utc::now(), Instant::now())
    }
}

fn secs(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds)
}

fn is_link(event: &SseEvent, device: &str, state: &str) -> bool {
    event.name == "link" && event.data["device"] == device && event.data["state"] == state
}

fn is_alarm(event: &SseEvent, condition: &str, device: &str, change: &str) -> bool {
    event.name == "alarm"
        && event.data["change"] == change
        && event.data["alarm"]["condition"] == condition
        && event.data["alarm"]["device"] == device
}

fn reading_of(event: &SseEvent, device: &str, vital: &str) -> Option<f64> {
    (event.name == "reading" && event.data["device"] == device && event.data["vital"] == vital)
        .then(|| event.data["value"].as_f64())
        .flatten()
}

fn event_time(event: &SseEvent) -> Option<DateTime<Utc>> {
    event.data["time"].as_str()?.parse().ok()
}

/// The daemon's resident memory (KiB), from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// The healthy oximeter's samples as one event-stream client sees them: the longest time
/// between two, by the daemon's timestamps.
struct Steady {
    last: Option<DateTime<Utc>>,
    longest: chrono::TimeDelta,
    samples: usize,
    lagged: bool,
}

impl Steady {
    fn new() -> Steady {
        Steady {
            last: None,
            longest: chrono::TimeDelta::zero(),
            samples: 0,
            lagged: false,
        }
    }

    fn see(&mut self, event: &SseEvent) {
        self.lagged |= event.name == "lagged";
        if reading_of(event, HEALTHY, "spo2").is_none() {
            return;
        }
        let Some(time) = event_time(event) else {
            return;
        };
        if let Some(last) = self.last {
            self.longest = self.longest.max(time - last);
        }
        self.last = Some(time);
        self.samples += 1;
    }

    /// Checks no two samples were further apart than `limit`.
    fn assert_within(&self, limit: Duration, what: &str) {
        assert!(
            !self.lagged,
            "{what}: the test's event stream lagged, so it cannot judge"
        );
        assert!(self.samples > 1, "{what}: no samples of {HEALTHY} seen");
        assert!(
            self.longest.to_std().unwrap_or_default() <= limit,
            "{what}: {HEALTHY} went {:.3} s without a sample on the event stream (limit {:.3} s, {} samples)",
            self.longest.as_seconds_f64(),
            limit.as_secs_f64(),
            self.samples
        );
    }
}

/// An event-stream client that checks the healthy oximeter in every event it reads.
struct Watch {
    events: EventStream,
    steady: Steady,
}

impl Watch {
    async fn open(daemon: &Daemon) -> Watch {
        Watch {
            events: daemon.events().await,
            steady: Steady::new(),
        }
    }

    /// Reads events until `predicate` accepts one; fails saying `what` after `within`.
    async fn expect(
        &mut self,
        within: Duration,
        what: &str,
        mut predicate: impl FnMut(&SseEvent) -> bool,
    ) -> SseEvent {
        let steady = &mut self.steady;
        self.events
            .until(Instant::now() + within, |e| steady.see(e), &mut predicate)
            .await
            .unwrap_or_else(|| panic!("{what}: not within {:.1} s", within.as_secs_f64()))
    }

    /// Reads events for `span`, giving each to `each`.
    async fn pump(&mut self, span: Duration, mut each: impl FnMut(&SseEvent)) {
        let end = Instant::now() + span;
        while let Some(event) = self.events.next(end).await {
            self.steady.see(&event);
            each(&event);
        }
    }

    /// Sends `frame` to `device` every 100 ms until a reading of `vital` from `id` equals
    /// `value`; fails saying `what` after `within`.
    async fn send_until_read(
        &mut self,
        device: &mut FakeDevice,
        frame: &[u8],
        (id, vital, value): (&str, &str, f64),
        within: Duration,
        what: &str,
    ) {
        let end = Instant::now() + within;
        loop {
            device.send(frame);
            let step = Instant::now() + secs(0.1);
            let steady = &mut self.steady;
            let found = self
                .events
                .until(
                    step,
                    |e| steady.see(e),
                    |e| reading_of(e, id, vital) == Some(value),
                )
                .await;
            if found.is_some() {
                return;
            }
            assert!(
                Instant::now() < end,
                "{what}: no reading {vital} {value} from {id}"
            );
        }
    }
}

/// The recorded samples (SpO2 readings) of the healthy oximeter in session `id`, in order.
fn healthy_samples(store: &Store, id: &str) -> Vec<DateTime<Utc>> {
    let session = the_session(store, id);
    recorded_readings(store, session.key)
        .into_iter()
        .filter(|r| r.device.as_str() == HEALTHY && r.vital.to_string() == "spo2")
        .map(|r| r.received)
        .collect()
}

/// Checks the recorded samples of the healthy oximeter in session `id` are never further
/// apart than `limit`, except across the spans in `gaps` (a daemon that was down); returns
/// how many there are.
fn assert_recorded_steadily(
    store: &Store,
    id: &str,
    limit: Duration,
    gaps: &[(DateTime<Utc>, DateTime<Utc>)],
) -> usize {
    let times = healthy_samples(store, id);
    assert!(times.len() > 1, "{HEALTHY}'s readings are not recorded");
    for pair in times.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        let across_a_gap = gaps.iter().any(|(start, end)| from <= *end && to >= *start);
        assert!(
            across_a_gap || (to - from).to_std().unwrap_or_default() <= limit,
            "{HEALTHY} has no recorded reading for {:.3} s after {from} (limit {:.3} s)",
            (to - from).as_seconds_f64(),
            limit.as_secs_f64()
        );
    }
    times.len()
}

/// The gaps recorded in a session: (from, to, why).
fn gaps(events: &[StoredEvent]) -> Vec<(DateTime<Utc>, DateTime<Utc>, String)> {
    events
        .iter()
        .filter_map(|e| match &e.what {
            EventDetail::Gap { to, why } => Some((e.at, *to, why.clone())),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Unplugging and replugging a serial device.

/// How many unplug/replug cycles to run: `VITALWATCH_UNPLUG_CYCLES`, else
/// [`UNPLUG_CYCLES`].
fn unplug_cycles() -> usize {
    std::env::var("VITALWATCH_UNPLUG_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(UNPLUG_CYCLES)
}

/// 32 cycles, about two and a half minutes. The serial driver's reconnection backoff is real
/// time: 0.5 s doubling to 10 s, back to 0.5 s only after a connection that lasted 10 s
/// (src/acquire/report.rs `Backoff`), so back-to-back short connections wait 0.5, 1, 2, 4, 8,
/// then 10 s each. At best a cycle takes about 4.6 s (one 10 s connection every four cycles,
/// as here: waits of 0.5, 1, 2 and 4 s), so 100 cycles take about 8 minutes (16 minutes
/// back to back), against a budget of 3 minutes for this whole file. The default exercises
/// every wait the driver makes up to 4 s, eight times each; `VITALWATCH_UNPLUG_CYCLES=100`
/// runs the full hundred.
const UNPLUG_CYCLES: usize = 32;

/// The serial driver's first reconnection wait, and the connection that resets it.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const GOOD_CONNECTION: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_serial_oximeter_unplugged_and_replugged_again_and_again_alarms_and_recovers_every_time()
{
    let cycles = unplug_cycles();
    let setup = Setup::new();
    let mut device = FakeDevice::plug(&setup.port);
    let daemon = Daemon::start(&setup.config(1.0, &setup.serial("dev1", "nonin-df8")), &[]);
    daemon.wait_link("dev1", "connected", secs(20.0)).await;
    let mut watch = Watch::open(&daemon).await;
    daemon.start_session("KAP-UNPLUG-1").await;

    let started = Instant::now();
    let mut recoveries = Vec::new();
    // The wait the driver's backoff makes before the next reconnection.
    let mut backoff = BACKOFF_FIRST;
    let mut connected_at = Instant::now();
    for cycle in 0..cycles {
        // Readings flow: DF8 frames (a real device sends one a second; here every 100 ms)
        // until this cycle's values come back as readings.
        let (pulse, spo2) = (60 + (cycle % 40) as u8, 90 + (cycle % 10) as u8);
        let frame = df8(pulse, spo2);
        let what = format!("cycle {cycle}");
        watch
            .send_until_read(
                &mut device,
                &frame,
                ("dev1", "spo2", f64::from(spo2)),
                secs(5.0),
                &what,
            )
            .await;
        // One connection in four lasts as long as the driver needs to count it as good, so
        // its backoff falls back to 0.5 s; the others are unplugged at once and it doubles.
        if cycle % 4 == 0 {
            while connected_at.elapsed() < GOOD_CONNECTION + secs(0.2) {
                device.send(&frame);
                watch.pump(secs(0.1), |_| {}).await;
            }
            backoff = BACKOFF_FIRST;
        }

        // Unplug: the link is lost and the technical alarm raised at once.
        drop(device);
        let unplugged = Instant::now();
        watch
            .expect(secs(3.0), &format!("{what}: dev1's link lost"), |e| {
                is_link(e, "dev1", "lost")
            })
            .await;
        let alarm = watch
            .expect(
                secs(3.0),
                &format!("{what}: device_disconnected raised"),
                |e| is_alarm(e, "device_disconnected", "dev1", "raised"),
            )
            .await;
        assert_eq!(alarm.data["alarm"]["kind"], "technical");

        // Replug at once: the driver reconnects after its backoff and the alarm ends.
        device = FakeDevice::plug(&setup.port);
        watch
            .expect(
                backoff + secs(1.5),
                &format!("{what}: dev1 reconnects after {:?}", backoff),
                |e| is_link(e, "dev1", "connected"),
            )
            .await;
        connected_at = Instant::now();
        recoveries.push((backoff, unplugged.elapsed()));
        watch
            .expect(
                secs(3.0),
                &format!("{what}: device_disconnected ends"),
                |e| is_alarm(e, "device_disconnected", "dev1", "ended"),
            )
            .await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
    // The last replug delivers readings again.
    watch
        .send_until_read(
            &mut device,
            &df8(99, 99),
            ("dev1", "spo2", 99.0),
            secs(5.0),
            "after the last replug",
        )
        .await;
    eprintln!(
        "{cycles} unplug/replug cycles in {:.1} s; backoff/recovery (s): {}",
        started.elapsed().as_secs_f64(),
        recoveries
            .iter()
            .map(|(b, r)| format!("{:.1}/{:.2}", b.as_secs_f64(), r.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    watch
        .steady
        .assert_within(secs(1.0) + SLACK, "while dev1 was unplugged and replugged");

    // The record has every unplug, alarm and reconnection, and the healthy oximeter throughout.
    daemon.set_phase("ended").await;
    tokio::time::sleep(secs(0.5)).await; // past a batch window
    let store = setup.store();
    let session = the_session(&store, "KAP-UNPLUG-1");
    let events = store.events(session.key).expect("events");
    let count = |f: &dyn Fn(&EventDetail) -> bool| events.iter().filter(|e| f(&e.what)).count();
    let links = |state: &str| {
        count(&|d| {
            matches!(d, EventDetail::Link { device, state: s, .. }
                if device.as_str() == "dev1" && s.as_str() == state)
        })
    };
    let alarms = |change: &str| {
        count(&|d| {
            matches!(d, EventDetail::Alarm(a)
                if a.source == "device_disconnected" && a.device.as_str() == "dev1" && a.change == change)
        })
    };
    assert_eq!(links("lost"), cycles, "recorded unplugs");
    assert_eq!(links("connected"), cycles, "recorded reconnections");
    assert_eq!(alarms("raised"), cycles, "recorded alarms raised");
    assert_eq!(alarms("ended"), cycles, "recorded alarms ended");
    assert!(
        gaps(&events).is_empty(),
        "nothing lost: {:?}",
        gaps(&events)
    );
    assert_recorded_steadily(&store, "KAP-UNPLUG-1", secs(1.0) + SLACK, &[]);
}

// ---------------------------------------------------------------------------------------------
// SIGKILL during an infusion.

const KILLS: usize = 20;

#[tokio::test]
async fn the_daemon_killed_20_times_during_an_infusion_resumes_it_each_time_with_a_gap_losing_nothing_older_than_a_second()
 {
    let setup = Setup::new();
    // The healthy oximeter at 20 samples a second, so that every run has plenty of readings
    // older than a second at the kill; a simulated cuff beside it.
    let interval = 0.05;
    let config = setup.config(
        interval,
        "[[device]]\nid = \"cuff1\"\nprofile = \"simulated-bp-cuff\"\n\
         scenario = \"typical-infusion\"\ninterval_s = 2\n",
    );
    let mut daemon = Daemon::start(&config, &[]);
    let addr = daemon.addr().to_string();
    daemon.start_session("KAP-KILL-1").await;
    daemon.set_phase("infusion").await;

    for kill in 1..=KILLS {
        if kill > 1 {
            let status = daemon.get_json("/api/v1/status").await;
            assert_eq!(
                status["session"]["id"],
                "KAP-KILL-1",
                "restart {}",
                kill - 1
            );
            assert_eq!(
                status["session"]["phase"],
                "infusion",
                "restart {}: {status:#}",
                kill - 1
            );
        }
        // Watch the readings for 1.5 to 2.5 s (a different moment each time), remembering
        // when each was seen, then kill.
        let jitter = (std::process::id() as usize * 7919 + kill * 104_729) % 1000;
        let run_for = secs(1.5 + jitter as f64 / 1000.0);
        let mut watch = Watch::open(&daemon).await;
        let mut seen: Vec<(Instant, ReadingKey)> = Vec::new();
        watch
            .pump(run_for, |e| {
                if let Some(key) = reading_key(e) {
                    seen.push((Instant::now(), key));
                }
            })
            .await;
        watch
            .steady
            .assert_within(secs(interval) + SLACK, &format!("run {kill}"));
        let window = LossWindow::ask(&daemon).await;
        daemon.kill_now();
        let must_have = window.must_have(&seen, Instant::now());
        assert!(
            must_have.len() > 20,
            "kill {kill}: too few readings to judge ({})",
            must_have.len()
        );

        let store = setup.store();
        store
            .integrity_check()
            .unwrap_or_else(|e| panic!("kill {kill}: PRAGMA integrity_check: {e}"));
        let session = the_session(&store, "KAP-KILL-1");
        assert_eq!(session.ended, None, "kill {kill}: killed, not ended");
        assert_eq!(
            session
                .phases
                .last()
                .map(|p| p.phase.to_string())
                .as_deref(),
            Some("infusion"),
            "kill {kill}"
        );
        let recorded = recorded_keys(&store, session.key);
        let missing: Vec<_> = must_have
            .iter()
            .filter(|key| !recorded.contains(**key))
            .collect();
        assert!(
            missing.is_empty(),
            "kill {kill}: {} of {} readings older than the loss window lost, e.g. {:?}",
            missing.len(),
            must_have.len(),
            missing.first()
        );
        let restarts = gaps(&store.events(session.key).expect("events"));
        assert_eq!(restarts.len(), kill - 1, "kill {kill}: one gap per restart");
        drop(store);

        // Restart on the same port and database.
        daemon = Daemon::start_listening(&config, &addr, &[]);
    }
    let status = daemon.get_json("/api/v1/status").await;
    assert_eq!(status["session"]["phase"], "infusion", "{status:#}");
    let mut watch = Watch::open(&daemon).await;
    watch.pump(secs(1.0), |_| {}).await;
    drop(daemon);

    // The whole record: intact, one gap per restart from the last record before the kill to
    // the restart, and the healthy oximeter recorded steadily between them.
    let store = setup.store();
    store.integrity_check().expect("PRAGMA integrity_check");
    let session = the_session(&store, "KAP-KILL-1");
    let events = store.events(session.key).expect("events");
    let restarts = gaps(&events);
    assert_eq!(restarts.len(), KILLS, "one gap per restart");
    for (from, to, why) in &restarts {
        assert!(from < to, "{from} .. {to}");
        assert_eq!(why, "daemon restarted");
    }
    let spans: Vec<_> = restarts.iter().map(|(from, to, _)| (*from, *to)).collect();
    let samples = assert_recorded_steadily(&store, "KAP-KILL-1", secs(interval) + SLACK, &spans);
    assert_in_time_order(&setup, &session.key);
    eprintln!("{KILLS} kills: {samples} samples of {HEALTHY} recorded");
}

/// Checks that session `session` was recorded in time order: in insertion order (rowid,
/// seq), each device's readings and link changes, and the other events, never go back in
/// time. (Different devices' readings and links may interleave by a few microseconds: a
/// driver stamps a message when it sends it, and the engine drains one device's ring, then the
/// next.)
fn assert_in_time_order(setup: &Setup, session: &vitalwatch::recorder::SessionKey) {
    let conn = setup.connection();
    let rows = |sql: &str| -> Vec<(String, i64)> {
        let mut statement = conn.prepare(sql).expect("prepare");
        statement
            .query_map([session.0], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query")
            .map(|row| row.expect("row"))
            .collect()
    };
    let readings =
        rows("SELECT device, received_us FROM reading WHERE session_key = ?1 ORDER BY rowid");
    // Links by device; every other event in one sequence.
    let events = rows(
        "SELECT CASE kind WHEN 'link' THEN 'link ' || device ELSE 'event' END, at_us \
         FROM event WHERE session_key = ?1 ORDER BY seq",
    );
    assert!(
        !readings.is_empty() && !events.is_empty(),
        "nothing recorded"
    );
    for (what, records) in [("readings", readings), ("events", events)] {
        let mut last: std::collections::HashMap<String, i64> = Default::default();
        for (stream, at) in records {
            if let Some(previous) = last.get(&stream) {
                assert!(
                    at >= *previous,
                    "{what} of {stream}: one at {at} µs recorded after one at {previous} µs"
                );
            }
            last.insert(stream, at);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stalled sinks.

/// The send and receive queues (bytes) of the loopback TCP connection from `local` to
/// `remote`, from /proc/net/tcp.
fn tcp_queues(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> Option<(u64, u64)> {
    let hex = |addr: std::net::SocketAddr| match addr {
        std::net::SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        std::net::SocketAddr::V6(_) => String::new(),
    };
    let (local, remote) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&local.as_str()) || fields.get(2) != Some(&remote.as_str()) {
            return None;
        }
        let (tx, rx) = fields.get(4)?.split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

#[tokio::test]
async fn an_event_stream_client_that_never_reads_stalls_nothing_and_costs_the_daemon_bounded_memory()
 {
    let setup = Setup::new();
    // A fast oximeter floods the event stream: 2000 samples (6000 reading events, about
    // 1 MB) a second.
    let daemon = Daemon::start(
        &setup.config(
            0.1,
            "[[device]]\nid = \"fast1\"\nprofile = \"simulated-oximeter\"\n\
             scenario = \"typical-infusion\"\ninterval_s = 0.0005\nring_capacity = 8192\n",
        ),
        &[],
    );
    daemon.start_session("KAP-STALL-1").await;
    let mut watch = Watch::open(&daemon).await;
    watch.pump(secs(1.0), |_| {}).await; // settle
    let rss_before = rss_kib(daemon.pid());

    // The stalled client: a raw socket with a small receive buffer asks for the stream and
    // never reads a byte.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let server: std::net::SocketAddr = daemon.addr().parse().expect("daemon address");
    let mut stalled = socket.connect(server).await.expect("connect");
    stalled
        .write_all(
            format!(
                "GET /api/v1/events HTTP/1.1\r\nHost: {server}\r\nAccept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("send the request");
    let client = stalled.local_addr().expect("client address");
    let unsent = || tcp_queues(server, client).map_or(0, |(send, _)| send);

    // Meanwhile another client reads everything, the status API answers and readings flow.
    // Checked every half second: `streamed` counts what the other client read.
    struct Meanwhile {
        streamed: usize,
        heartbeats: usize,
        slowest_status: Duration,
        max_rss: u64,
    }
    let mut meanwhile = Meanwhile {
        streamed: 0,
        heartbeats: 0,
        slowest_status: Duration::ZERO,
        max_rss: rss_before,
    };
    async fn half_a_second(daemon: &Daemon, watch: &mut Watch, m: &mut Meanwhile) {
        watch
            .pump(secs(0.5), |e| {
                m.streamed += e.data.to_string().len();
                m.heartbeats += usize::from(e.name == "heartbeat");
            })
            .await;
        let asked = Instant::now();
        let status = tokio::time::timeout(secs(2.0), daemon.get_json("/api/v1/status"))
            .await
            .expect("the status API answers within 2 s while a client stalls");
        m.slowest_status = m.slowest_status.max(asked.elapsed());
        assert_eq!(status["session"]["id"], "KAP-STALL-1");
        m.max_rss = m.max_rss.max(rss_kib(daemon.pid()));
    }

    // First the kernel takes what it can (the socket's send buffer grows to a few MB); once
    // that stops growing, the daemon itself is the one not sending.
    let stalled_at = Instant::now();
    let mut last = (0, Instant::now());
    loop {
        half_a_second(&daemon, &mut watch, &mut meanwhile).await;
        let now = unsent();
        if now > last.0 {
            last = (now, Instant::now());
        } else if now > 0 && last.1.elapsed() >= secs(1.0) {
            break;
        }
        assert!(
            stalled_at.elapsed() < secs(30.0),
            "the daemon's socket to the stalled client never filled ({now} B unsent)"
        );
    }
    let filled_after = stalled_at.elapsed();
    let (rss_full, streamed_full) = (rss_kib(daemon.pid()), meanwhile.streamed);
    meanwhile.max_rss = rss_full;
    let blocked_at = Instant::now();
    while blocked_at.elapsed() < secs(5.0) {
        half_a_second(&daemon, &mut watch, &mut meanwhile).await;
    }
    let streamed_blocked = meanwhile.streamed - streamed_full;
    let (server_unsent, _) = tcp_queues(server, client).expect("the daemon's end in /proc/net/tcp");
    let (_, client_unread) = tcp_queues(client, server).expect("the client's end");
    eprintln!(
        "stalled client: the daemon's socket full after {:.1} s ({server_unsent} B unsent, the client {client_unread} B unread); \
         then 5 s in which the other client read {streamed_blocked} B; RSS {rss_before} KiB before, {rss_full} KiB when full, \
         max {} KiB after; {} heartbeats; slowest status {:.0} ms",
        filled_after.as_secs_f64(),
        meanwhile.max_rss,
        meanwhile.heartbeats,
        meanwhile.slowest_status.as_secs_f64() * 1000.0
    );
    assert!(
        meanwhile.heartbeats as f64 >= stalled_at.elapsed().as_secs_f64() - 2.0,
        "the other client's heartbeats stopped"
    );
    watch
        .steady
        .assert_within(secs(0.1) + SLACK, "while a client stalled");
    // Memory: while the daemon could not send to the stalled client, the other one was sent
    // megabytes; keeping them for the stalled one would grow the daemon by as much. Its bound
    // is the event broadcast's 2048 events (with their JSON), kept whether anyone lags or not,
    // full within the first second of this flood; what the daemon still grows by is the
    // allocator's churn under the flood (0.6 to 1.2 MB here), well under half of what is owed.
    assert!(
        streamed_blocked > 2 << 20,
        "too little streamed to judge: {streamed_blocked} B"
    );
    let grown = meanwhile.max_rss.saturating_sub(rss_full) * 1024;
    assert!(
        (grown as usize) < streamed_blocked / 2,
        "RSS grew {grown} B while the stalled client was owed {streamed_blocked} B more"
    );
    let overall = meanwhile.max_rss.saturating_sub(rss_before) * 1024;
    assert!(overall < 16 << 20, "RSS grew {overall} B in all");

    // Readings were recorded all along.
    drop(stalled);
    tokio::time::sleep(secs(0.5)).await;
    let store = setup.store();
    assert_recorded_steadily(&store, "KAP-STALL-1", secs(0.1) + SLACK, &[]);
    let status = daemon.get_json("/api/v1/status").await;
    assert_eq!(status["session"]["id"], "KAP-STALL-1");
}

/// A scenario whose SpO2 dips to 80 % for 2 s every 4 s: the high-priority `spo2_critical`
/// alarm (no delay) comes back on each dip, so alarms happen throughout a test.
fn dipping_scenario() -> String {
    let mut text = String::from(
        "description = \"SpO2 dips to 80 % for 2 s every 4 s\"\nseed = 5\n\n[baseline]\n\
         spo2 = { value = 97, noise = 0 }\npulse_rate = { value = 76, noise = 0 }\n\
         perfusion_index = { value = 3.2, noise = 0 }\n",
    );
    for at in (4..600).step_by(4) {
        text.push_str(&format!(
            "\n[[step]]\nat_s = {at}\ndip = {{ vital = \"spo2\", to = 80, for_s = 2 }}\n"
        ));
    }
    text
}

#[tokio::test]
async fn a_database_locked_by_another_process_raises_recording_failure_and_what_was_held_back_is_recorded_once_released()
 {
    let setup = Setup::new();
    let scenario = setup.file("dipping.toml", &dipping_scenario());
    let daemon = Daemon::start(
        &setup.config(
            0.25,
            &format!(
                "[[device]]\nid = \"dip1\"\nprofile = \"simulated-oximeter\"\nscenario = \"{}\"\n",
                scenario.display()
            ),
        ),
        &[],
    );
    let mut watch = Watch::open(&daemon).await;
    daemon.start_session("KAP-LOCK-1").await;
    watch.pump(secs(1.0), |_| {}).await;

    // Another process takes the database's write lock and keeps it.
    let (locker, locked_at, locked) = setup.lock_database();
    let mut alarms_while_locked = Vec::new();
    let mut note_alarm = |e: &SseEvent| {
        if e.name == "alarm" && e.data["alarm"]["rule"] == "spo2_critical" {
            alarms_while_locked.push((
                e.data["change"].as_str().unwrap_or_default().to_string(),
                e.data["time"].as_str().unwrap_or_default().to_string(),
            ));
        }
    };
    // The writer waits its 5 s busy timeout, then fails: the technical alarm.
    let failure = watch
        .expect(secs(10.0), "recording_failure raised", |e| {
            note_alarm(e);
            is_alarm(e, "recording_failure", "recorder", "raised")
        })
        .await;
    assert_eq!(failure.data["alarm"]["kind"], "technical");
    let message = failure.data["alarm"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("locked"), "{message}");
    // Held a while longer, past the writer's own 5 s busy timeout (the alarm above comes
    // first, from the records' wait): monitoring and alarms go on.
    watch.pump(secs(4.0), &mut note_alarm).await;
    drop(locker); // rolls back and releases the lock
    let released = Instant::now();
    let released_at = Utc::now();
    eprintln!(
        "database locked for {:.1} s; the alarm after {:.1} s",
        released.duration_since(locked).as_secs_f64(),
        failure_delay(&failure, locked_at)
    );
    assert!(
        alarms_while_locked.len() >= 2,
        "spo2_critical's transitions go on while recording is stalled: {alarms_while_locked:?}"
    );
    watch
        .expect(secs(5.0), "recording_failure ends once released", |e| {
            is_alarm(e, "recording_failure", "recorder", "ended")
        })
        .await;
    watch.pump(secs(1.0), |_| {}).await;
    watch
        .steady
        .assert_within(secs(0.25) + SLACK, "while the database was locked");

    // What was held back is recorded, with no gap: the healthy oximeter's readings through the
    // lock, the alarms raised meanwhile, and readings after the release.
    let store = setup.store();
    let samples = healthy_samples(&store, "KAP-LOCK-1");
    assert!(
        samples.iter().any(|t| *t > locked_at) && samples.iter().any(|t| *t > released_at),
        "readings during and after the lock are recorded"
    );
    assert_recorded_steadily(&store, "KAP-LOCK-1", secs(0.25) + SLACK, &[]);
    let session = the_session(&store, "KAP-LOCK-1");
    let events = store.events(session.key).expect("events");
    assert!(gaps(&events).is_empty(), "no gap: {:?}", gaps(&events));
    // (The store keeps microseconds.)
    let recorded: HashSet<(String, i64)> = events
        .iter()
        .filter_map(|e| match &e.what {
            EventDetail::Alarm(a) if a.source == "spo2_critical" => {
                Some((a.change.clone(), e.at.timestamp_micros()))
            }
            _ => None,
        })
        .collect();
    for (change, time) in &alarms_while_locked {
        let time: DateTime<Utc> = time.parse().expect("alarm time");
        assert!(
            recorded.contains(&(change.clone(), time.timestamp_micros())),
            "the alarm transition {change} at {time} while locked is not recorded: {recorded:?}"
        );
    }
    let failure_recorded = events.iter().any(|e| {
        matches!(&e.what, EventDetail::Alarm(a) if a.source == "recording_failure" && a.change == "ended")
    });
    assert!(failure_recorded, "the recording failure is in the record");
}

#[tokio::test]
async fn commits_held_up_past_3_s_raise_recording_failure_before_the_writer_gives_up_and_it_ends_when_they_go_through()
 {
    let setup = Setup::new();
    let daemon = Daemon::start(&setup.config(0.25, ""), &[]);
    let mut watch = Watch::open(&daemon).await;
    daemon.start_session("KAP-SLOW-1").await;
    watch.pump(secs(1.0), |_| {}).await;

    // Another process holds the write lock for 4.5 s (longer only if the alarm is late), less
    // than the store's 5 s busy timeout: the writer's commit does not fail, it waits, as on a
    // disk that takes its time. The alarm comes on the engine's 1 s tick after the oldest
    // waiting record is 3 s old.
    let (locker, locked_at, locked) = setup.lock_database();
    let slow = watch
        .expect(
            secs(4.8),
            "recording_failure raised while records wait",
            |e| is_alarm(e, "recording_failure", "recorder", "raised"),
        )
        .await;
    let delay = failure_delay(&slow, locked_at);
    let message = slow.data["alarm"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("wait more than 3 s"), "{message}");
    // The oldest waiting record may have been queued up to a batch window (200 ms) before
    // the lock was taken.
    assert!(
        delay >= 2.8,
        "raised {delay:.2} s after the lock: before any record waited 3 s"
    );
    let metrics = daemon.get_text("/metrics").await;
    let lag = common::custom_harness::metric(&metrics, "vitalwatch_recorder_lag_seconds");
    assert!(
        lag.first().is_some_and(|(_, seconds)| *seconds > 3.0),
        "the lag metric: {lag:?}"
    );
    tokio::time::sleep_until((locked + secs(4.5)).into()).await;
    drop(locker);
    watch
        .expect(
            secs(3.0),
            "recording_failure ends once the commits go through",
            |e| is_alarm(e, "recording_failure", "recorder", "ended"),
        )
        .await;
    watch.pump(secs(0.5), |_| {}).await;
    watch
        .steady
        .assert_within(secs(0.25) + SLACK, "while commits were held up");

    // Slow is not lost: no gap, every sample of the healthy oximeter recorded.
    let store = setup.store();
    assert_recorded_steadily(&store, "KAP-SLOW-1", secs(0.25) + SLACK, &[]);
    let session = the_session(&store, "KAP-SLOW-1");
    let events = store.events(session.key).expect("events");
    assert!(gaps(&events).is_empty(), "no gap: {:?}", gaps(&events));
}

/// Seconds from `since` to the alarm event's time.
fn failure_delay(event: &SseEvent, since: DateTime<Utc>) -> f64 {
    event_time(event).map_or(f64::NAN, |t| (t - since).as_seconds_f64())
}

// ---------------------------------------------------------------------------------------------
// A garbage flood on a serial port.

/// `len` pseudo-random bytes (xorshift64; the same every run).
fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        bytes.extend_from_slice(&seed.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Megabytes of garbage, more than the daemon could buffer unnoticed.
const FLOOD: usize = 16 << 20;

#[tokio::test]
async fn sixteen_megabytes_of_random_bytes_on_a_serial_port_raise_decode_errors_decode_to_nothing_and_valid_packets_decode_again()
 {
    let setup = Setup::new();
    // The shipped rules, with the decode-error rate measured over 5 s instead of 60 s so that
    // the alarm's end comes within the test.
    let shipped = std::fs::read_to_string(common::repo_root().join("config/rules/default.toml"))
        .expect("the shipped rules");
    let window = "threshold = { count = 5, within_s = 60 }";
    assert!(shipped.contains(window), "the shipped decode_errors rate");
    let rules = setup.file(
        "rules.toml",
        &shipped.replace(window, "threshold = { count = 5, within_s = 5 }"),
    );
    let mut device = FakeDevice::plug(&setup.port);
    // Nonin DF2: checksummed frames in 25-frame packets.
    let daemon = Daemon::start(
        &setup.config(
            1.0,
            &format!(
                "[alarms]\nrules = \"{}\"\n\n{}",
                rules.display(),
                setup.serial("dev1", "nonin-df2")
            ),
        ),
        &[],
    );
    daemon.wait_link("dev1", "connected", secs(20.0)).await;
    let mut watch = Watch::open(&daemon).await;
    daemon.start_session("KAP-FLOOD-1").await;
    watch
        .send_until_read(
            &mut device,
            &df2_packet(72, 97),
            ("dev1", "spo2", 97.0),
            secs(5.0),
            "before the flood",
        )
        .await;
    watch.pump(secs(1.0), |_| {}).await;
    let rss_before = rss_kib(daemon.pid());

    // The flood, written from a thread as fast as the daemon reads it.
    let flood = random_bytes(FLOOD, 0x9E37_79B9_7F4A_7C15);
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        for chunk in flood.chunks(4096) {
            device.send_within(chunk, secs(10.0));
        }
        device
    });
    let mut garbage_readings = 0;
    let mut raised = false;
    let mut max_rss = rss_before;
    while !writer.is_finished() {
        watch
            .pump(secs(0.2), |e| {
                garbage_readings += usize::from(e.name == "reading" && e.data["device"] == "dev1");
                raised |= is_alarm(e, "decode_errors", "dev1", "raised");
            })
            .await;
        max_rss = max_rss.max(rss_kib(daemon.pid()));
        assert!(started.elapsed() < secs(60.0), "the flood takes too long");
    }
    let mut device = writer.join().expect("the flood's writer");
    let flood_took = started.elapsed();
    if !raised {
        watch
            .expect(secs(3.0), "decode_errors raised", |e| {
                is_alarm(e, "decode_errors", "dev1", "raised")
            })
            .await;
    }
    max_rss = max_rss.max(rss_kib(daemon.pid()));

    // Valid packets decode again, and the alarm ends once the errors' rate falls.
    let mut ended = false;
    let end = Instant::now() + secs(15.0);
    let mut decoded = false;
    while !(decoded && ended) {
        device.send(&df2_packet(73, 98));
        watch
            .pump(secs(0.1), |e| {
                decoded |= reading_of(e, "dev1", "spo2") == Some(98.0);
                garbage_readings += usize::from(
                    e.name == "reading"
                        && e.data["device"] == "dev1"
                        && reading_of(e, "dev1", "spo2") != Some(98.0)
                        && reading_of(e, "dev1", "pulse_rate") != Some(73.0),
                );
                ended |= is_alarm(e, "decode_errors", "dev1", "ended");
            })
            .await;
        assert!(
            Instant::now() < end,
            "after the flood: valid packets decoded {decoded}, decode_errors ended {ended}"
        );
    }
    let dev1 = daemon.device_status("dev1").await;
    eprintln!(
        "{} MiB of garbage in {:.1} s: {} decode errors, {} ring drops; RSS {rss_before} -> max {max_rss} KiB",
        FLOOD >> 20,
        flood_took.as_secs_f64(),
        dev1["decode_errors"],
        dev1["ring_dropped"],
    );
    assert_eq!(
        garbage_readings, 0,
        "random bytes decoded into readings on a checksummed protocol"
    );
    assert_eq!(dev1["readings"]["spo2"]["value"], 98.0, "{dev1:#}");
    let grown = max_rss.saturating_sub(rss_before) * 1024;
    assert!(
        (grown as usize) < FLOOD / 2,
        "RSS grew {grown} B during a {FLOOD} B flood"
    );
    watch
        .steady
        .assert_within(secs(1.0) + SLACK, "during the flood");
    daemon.set_phase("ended").await;
    tokio::time::sleep(secs(0.5)).await;
    assert_recorded_steadily(&setup.store(), "KAP-FLOOD-1", secs(1.0) + SLACK, &[]);
}

/// A smaller, paced flood for DF8: without a checksum, much of the noise decodes into
/// (flagged) readings, and every one must reach the engine and the test's client (no ring
/// drop, no lagged stream) for the test to judge them all: 2 KiB every 50 ms.
const CHECKSUMLESS_FLOOD: usize = 256 << 10;
const CHECKSUMLESS_FLOOD_CHUNK: usize = 2 << 10;
const CHECKSUMLESS_FLOOD_PACE: Duration = Duration::from_millis(50);

#[tokio::test]
async fn random_bytes_on_a_port_without_checksums_never_become_a_trusted_reading_or_a_physiological_alarm()
 {
    let setup = Setup::new();
    let mut device = FakeDevice::plug(&setup.port);
    // Nonin DF8: 4-byte frames without a checksum (protocols.md §5.6), so random bytes often
    // frame; the decoder flags what follows skipped bytes until clean frames prove themselves.
    let daemon = Daemon::start(&setup.config(1.0, &setup.serial("dev1", "nonin-df8")), &[]);
    daemon.wait_link("dev1", "connected", secs(20.0)).await;
    let mut watch = Watch::open(&daemon).await;
    daemon.start_session("KAP-FLOOD-8").await;
    daemon.set_phase("infusion").await;
    watch
        .send_until_read(
            &mut device,
            &df8(72, 97),
            ("dev1", "spo2", 97.0),
            secs(5.0),
            "before the flood",
        )
        .await;
    // The rest of the last good frame (its pulse reading) is not the flood's.
    watch.pump(secs(0.5), |_| {}).await;

    let flood = random_bytes(CHECKSUMLESS_FLOOD, 0x2545_F491_4F6C_DD1D);
    let writer = std::thread::spawn(move || {
        for chunk in flood.chunks(CHECKSUMLESS_FLOOD_CHUNK) {
            device.send_within(chunk, secs(10.0));
            std::thread::sleep(CHECKSUMLESS_FLOOD_PACE);
        }
        device
    });
    let is_dev1_reading = |e: &SseEvent| e.name == "reading" && e.data["device"] == "dev1";
    let trusted = |e: &SseEvent| {
        e.data["quality"]
            .as_array()
            .is_some_and(|flags| flags.is_empty())
    };
    let is_dev1_physiological = |e: &SseEvent| {
        e.name == "alarm"
            && e.data["alarm"]["device"] == "dev1"
            && e.data["alarm"]["kind"] == "physiological"
    };
    let (mut flagged, mut trusted_garbage, mut physiological) = (0usize, Vec::new(), Vec::new());
    let mut judge = |e: &SseEvent| {
        if is_dev1_reading(e) {
            if trusted(e) {
                trusted_garbage.push(e.data.clone());
            } else {
                flagged += 1;
            }
        }
        if is_dev1_physiological(e) {
            physiological.push(e.data.clone());
        }
    };
    let started = Instant::now();
    while !writer.is_finished() {
        watch.pump(secs(0.2), &mut judge).await;
        assert!(started.elapsed() < secs(60.0), "the flood takes too long");
    }
    let mut device = writer.join().expect("the flood's writer");
    watch.pump(secs(0.5), &mut judge).await;
    assert!(
        flagged > 0,
        "the noise framed into no reading at all: this test proves nothing"
    );
    assert!(
        trusted_garbage.is_empty(),
        "random bytes became trusted readings: {trusted_garbage:?}"
    );
    assert!(
        physiological.is_empty(),
        "random bytes raised physiological alarms: {physiological:?}"
    );

    // Valid frames are trusted again once they proved themselves.
    let end = Instant::now() + secs(15.0);
    let mut trusted_again = false;
    let mut flagged_valid = 0;
    while !trusted_again {
        device.send(&df8(73, 98));
        watch
            .pump(secs(0.1), |e| {
                if is_dev1_reading(e) && reading_of(e, "dev1", "spo2") == Some(98.0) {
                    if trusted(e) {
                        trusted_again = true;
                    } else {
                        flagged_valid += 1;
                    }
                }
            })
            .await;
        assert!(
            Instant::now() < end,
            "valid frames after the flood were never trusted again ({flagged_valid} flagged)"
        );
    }
    let dev1 = daemon.device_status("dev1").await;
    eprintln!(
        "{} KiB of noise on DF8 in {:.1} s: {flagged} flagged readings, none trusted; \
         valid frames flagged {flagged_valid} times before trusted; {} decode errors",
        CHECKSUMLESS_FLOOD >> 10,
        started.elapsed().as_secs_f64(),
        dev1["decode_errors"]
    );
    assert_eq!(
        dev1["ring_dropped"], 0,
        "readings were dropped, so not all were judged: {dev1:#}"
    );
    watch
        .steady
        .assert_within(secs(1.0) + SLACK, "during the flood");
}

// ---------------------------------------------------------------------------------------------
// A wall clock behind the record.

/// The environment that makes the daemon's wall clock read an hour behind (libfaketime,
/// preloaded; the monotonic clock is left alone, as a stepped system clock leaves it).
/// `faketime`'s wrapper forks, so the tests preload the library themselves and SIGKILL
/// reaches the daemon.
fn an_hour_behind() -> Vec<(&'static str, String)> {
    require_tool("faketime");
    let library = ["/usr/lib", "/usr/lib64", "/lib"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).into_iter().flatten().flatten())
        .map(|entry| entry.path().join("faketime/libfaketimeMT.so.1"))
        .chain(std::iter::once(PathBuf::from(
            "/usr/lib/faketime/libfaketimeMT.so.1",
        )))
        .find(|path| path.is_file())
        .expect("libfaketimeMT.so.1 is not installed: run scripts/test, which installs faketime");
    vec![
        ("LD_PRELOAD", library.display().to_string()),
        ("FAKETIME", "-1h".to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
    ]
}

#[tokio::test]
async fn a_restart_with_the_wall_clock_an_hour_behind_keeps_the_session_record_in_time_order() {
    let setup = Setup::new();
    let config = setup.config(
        0.1,
        "[[device]]\nid = \"cuff1\"\nprofile = \"simulated-bp-cuff\"\n\
         scenario = \"typical-infusion\"\ninterval_s = 1\n",
    );
    let mut daemon = Daemon::start(&config, &[]);
    let addr = daemon.addr().to_string();
    daemon.start_session("KAP-CLOCK-1").await;
    daemon.set_phase("infusion").await;
    let mut watch = Watch::open(&daemon).await;
    watch.pump(secs(1.5), |_| {}).await;
    daemon.kill_now();

    // Where the record stood at the kill.
    let store = setup.store();
    let session = the_session(&store, "KAP-CLOCK-1");
    let last_record = store
        .open_session()
        .expect("query")
        .expect("the session is open")
        .last_record;
    drop(store);
    let conn = setup.connection();
    let last_rowid: i64 = conn
        .query_row("SELECT max(rowid) FROM reading", [], |row| row.get(0))
        .expect("readings");
    drop(conn);

    // Restart an hour behind.
    let env = an_hour_behind();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let daemon = Daemon::start_with_env(&config, &addr, &[], &env);
    let status = daemon.get_json("/api/v1/status").await;
    assert_eq!(status["session"]["id"], "KAP-CLOCK-1", "{status:#}");
    assert_eq!(status["session"]["phase"], "infusion");
    let mut watch = Watch::open(&daemon).await;
    watch.pump(secs(1.5), |_| {}).await;
    daemon.set_phase("recovery").await;
    watch.pump(secs(0.5), |_| {}).await;
    watch
        .steady
        .assert_within(secs(0.1) + SLACK, "after the restart behind");
    drop(daemon);

    let store = setup.store();
    store.integrity_check().expect("PRAGMA integrity_check");
    let conn = setup.connection();
    // The restarted daemon did see a wall clock an hour behind (it notes its run's opening).
    let (runs, opened_us): (i64, i64) = conn
        .query_row(
            "SELECT count(*), (SELECT opened_us FROM run ORDER BY run DESC LIMIT 1) FROM run",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("runs");
    assert_eq!(runs, 2);
    let behind = last_record.timestamp_micros() - opened_us;
    assert!(
        behind > 3_500_000_000,
        "the restarted daemon's wall clock was not behind: {behind} µs"
    );
    // The restart's gap, from the last record, saying why the times go on from there.
    let events = store.events(session.key).expect("events");
    let restarts = gaps(&events);
    assert_eq!(restarts.len(), 1, "{restarts:?}");
    let (from, to, why) = &restarts[0];
    assert_eq!(*from, last_record);
    assert!(
        *to >= last_record + chrono::TimeDelta::seconds(1)
            && *to < last_record + chrono::TimeDelta::seconds(3),
        "the gap ends a step after the last record: {to}"
    );
    assert!(
        why.starts_with("daemon restarted") && why.contains("behind"),
        "{why}"
    );
    // Everything recorded after the restart is later than everything before it.
    let earliest_after: i64 = conn
        .query_row(
            "SELECT min(received_us) FROM reading WHERE rowid > ?1",
            [last_rowid],
            |row| row.get(0),
        )
        .expect("readings after the restart");
    assert!(
        earliest_after > last_record.timestamp_micros(),
        "a reading recorded after the restart is earlier than the last record"
    );
    let earliest_event_after: i64 = conn
        .query_row(
            "SELECT min(at_us) FROM event WHERE run = (SELECT max(run) FROM run)",
            [],
            |row| row.get(0),
        )
        .expect("events after the restart");
    assert!(
        earliest_event_after >= last_record.timestamp_micros(),
        "an event recorded after the restart is earlier than the last record"
    );
    let recovery = session_phase_time(&store, "KAP-CLOCK-1", "recovery");
    assert!(recovery > last_record, "recovery recorded at {recovery}");
    assert_in_time_order(&setup, &session.key);
}

/// When session `id` entered `phase`.
fn session_phase_time(store: &Store, id: &str, phase: &str) -> DateTime<Utc> {
    the_session(store, id)
        .phases
        .iter()
        .find(|p| p.phase.to_string() == phase)
        .map(|p| p.at)
        .unwrap_or_else(|| panic!("no {phase} phase recorded"))
}
