//! Serial devices end to end through real pseudo-terminal pairs: a test "device" writes
//! frames to the master end, the real daemon reads the slave end through tokio-serial with the
//! device's profile, and the test sees the readings on the status API and the event stream.
//!
//! The daemon's config names a symlink to the slave, so unplugging (closing the master) and
//! plugging a new device at the same path (a new pair, the link re-pointed) work as with USB.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::frames::df2_packet;
use common::pty::FakeDevice;
use common::{Daemon, SseEvent};
use serde_json::json;

/// A daemon reading one serial device `profile` at the symlink `port`; extra config lines
/// (tokens, a profile dir) before the device.
fn daemon_with(port: &Path, profile: &str, extra: &str) -> Daemon {
    Daemon::start(
        &format!(
            "{extra}\n[[device]]\nid = \"dev1\"\nprofile = \"{profile}\"\nport = \"{}\"\n",
            port.display()
        ),
        &[],
    )
}

fn deadline(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

fn reading_of(event: &SseEvent, vital: &str) -> Option<f64> {
    (event.name == "reading" && event.data["device"] == "dev1" && event.data["vital"] == vital)
        .then(|| event.data["value"].as_f64())
        .flatten()
}

/// Sends `frame` every 100 ms until an event satisfies `predicate` (or 20 s pass).
async fn send_until(
    device: &mut FakeDevice,
    events: &mut common::EventStream,
    frame: &[u8],
    mut predicate: impl FnMut(&SseEvent) -> bool,
) -> SseEvent {
    let end = deadline(20);
    loop {
        device.send(frame);
        let step = Instant::now() + Duration::from_millis(100);
        if let Some(event) = events.until(step, |_| {}, &mut predicate).await {
            return event;
        }
        assert!(
            Instant::now() < end,
            "no matching event within 20 s of sending frames"
        );
    }
}

/// Checks `/api/v1/status` shows the serial device connected with these latest values.
async fn assert_status(daemon: &Daemon, expected: &[(&str, f64)]) {
    let device = daemon.device_status("dev1").await;
    assert_eq!(device["link"], "connected", "{device:#}");
    for (vital, value) in expected {
        assert_eq!(
            device["readings"][vital]["value"].as_f64(),
            Some(*value),
            "{vital}: {device:#}"
        );
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    port: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let port = dir.path().join("ttyDEV");
    Setup { port, _dir: dir }
}

#[tokio::test]
async fn nonin_df8_frames_become_readings_and_the_format_is_selected_on_connect() {
    let setup = setup();
    let mut device = FakeDevice::plug(&setup.port);
    let daemon = daemon_with(&setup.port, "nonin-df8", "");
    let mut events = daemon.events().await;
    daemon
        .wait_link("dev1", "connected", Duration::from_secs(30))
        .await;
    // The profile's on-connect command selects Data Format #8.
    let sent = device.received(Duration::from_millis(500));
    assert_eq!(sent, [0x02, 0x70, 0x02, 0x02, 0x08, 0x03]);
    // DF8: status, HR 72, SpO2 97, status 2 (protocols.md §5.6 vector 7).
    let frame = [0x80, 0x48, 0x61, 0x00];
    send_until(&mut device, &mut events, &frame, |e| {
        reading_of(e, "spo2") == Some(97.0)
    })
    .await;
    assert_status(&daemon, &[("spo2", 97.0), ("pulse_rate", 72.0)]).await;
}

#[tokio::test]
async fn nonin_df2_packets_become_readings() {
    let setup = setup();
    let mut device = FakeDevice::plug(&setup.port);
    let daemon = daemon_with(&setup.port, "nonin-df2", "");
    let mut events = daemon.events().await;
    daemon
        .wait_link("dev1", "connected", Duration::from_secs(30))
        .await;
    // One 25-frame DF2 packet carrying HR 72 and SpO2 97.
    let packet = df2_packet(72, 97);
    send_until(&mut device, &mut events, &packet, |e| {
        reading_of(e, "pulse_rate") == Some(72.0)
    })
    .await;
    assert_status(&daemon, &[("spo2", 97.0), ("pulse_rate", 72.0)]).await;
}

#[tokio::test]
async fn contec_v7_is_started_and_kept_alive_and_its_live_packets_become_readings() {
    let setup = setup();
    // The shipped profile with a fast keep-alive, so the test need not wait 5 s per command.
    let profiles = setup.port.parent().unwrap().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    let shipped =
        std::fs::read_to_string(common::repo_root().join("device-profiles/contec-cms50d-v7.toml"))
            .unwrap();
    std::fs::write(
        profiles.join("contec-fast.toml"),
        shipped
            .replace("name = \"contec-cms50d-v7\"", "name = \"contec-fast\"")
            .replace("every_s = 5", "every_s = 0.3"),
    )
    .unwrap();
    let mut device = FakeDevice::plug(&setup.port);
    let daemon = daemon_with(
        &setup.port,
        "contec-fast",
        &format!("[profiles]\ndir = \"{}\"\n", profiles.display()),
    );
    let mut events = daemon.events().await;
    daemon
        .wait_link("dev1", "connected", Duration::from_secs(30))
        .await;
    let sent = device.received(Duration::from_millis(1500));
    let start = [0x7D, 0x81, 0xA1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80];
    let keep_alive = [0x7D, 0x81, 0xAF, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80];
    assert_eq!(
        sent[..9],
        start,
        "the start command comes first: {sent:02X?}"
    );
    let keep_alives = sent[9..].chunks(9).filter(|c| *c == keep_alive).count();
    assert!(
        keep_alives >= 2,
        "expected keep-alives every 0.3 s, got {sent:02X?}"
    );
    assert_eq!((sent.len() - 9) % 9, 0, "only whole commands: {sent:02X?}");
    // protocols.md §6.3 vector 4: SpO2 99, PR 61.
    let live = [0x01, 0xE0, 0x85, 0xD5, 0x9A, 0xBD, 0xE3, 0xFF, 0xFF];
    send_until(&mut device, &mut events, &live, |e| {
        reading_of(e, "spo2") == Some(99.0)
    })
    .await;
    assert_status(&daemon, &[("spo2", 99.0), ("pulse_rate", 61.0)]).await;
}

#[tokio::test]
async fn contec_legacy_frames_become_readings() {
    let setup = setup();
    let mut device = FakeDevice::plug(&setup.port);
    let daemon = daemon_with(&setup.port, "contec-cms50d-legacy", "");
    let mut events = daemon.events().await;
    daemon
        .wait_link("dev1", "connected", Duration::from_secs(30))
        .await;
    // Signal 5, pleth 50, bargraph 6, PR 72, SpO2 97 (protocols.md §6.1 layout).
    let frame = [0x85, 0x32, 0x06, 0x48, 0x61];
    send_until(&mut device, &mut events, &frame, |e| {
        reading_of(e, "pulse_rate") == Some(72.0)
    })
    .await;
    assert_status(&daemon, &[("spo2", 97.0), ("pulse_rate", 72.0)]).await;
}

#[tokio::test]
async fn masimo_ascii1_lines_become_readings_by_tag() {
    let setup = setup();
    let mut device = FakeDevice::plug(&setup.port);
    let daemon = daemon_with(&setup.port, "masimo-rad8-ascii1", "");
    let mut events = daemon.events().await;
    daemon
        .wait_link("dev1", "connected", Duration::from_secs(30))
        .await;
    let line = b"11/25/26 19:00:00 SN=0000093112 SPO2=096% BPM=071 PI=04.50% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800\r\n";
    send_until(&mut device, &mut events, line, |e| {
        reading_of(e, "perfusion_index") == Some(4.5)
    })
    .await;
    assert_status(
        &daemon,
        &[
            ("spo2", 96.0),
            ("pulse_rate", 71.0),
            ("perfusion_index", 4.5),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_generic_line_profile_reads_a_text_printing_bp_monitor() {
    let setup = setup();
    let mut device = FakeDevice::plug(&setup.port);
    let daemon = daemon_with(&setup.port, "generic-line-bp", "");
    let mut events = daemon.events().await;
    daemon
        .wait_link("dev1", "connected", Duration::from_secs(30))
        .await;
    send_until(
        &mut device,
        &mut events,
        b"SYS=128 DIA=82 MAP=97 PR=71\r\n",
        |e| reading_of(e, "mean_arterial") == Some(97.0),
    )
    .await;
    assert_status(
        &daemon,
        &[
            ("systolic", 128.0),
            ("diastolic", 82.0),
            ("mean_arterial", 97.0),
            ("pulse_rate", 71.0),
        ],
    )
    .await;
}

#[tokio::test]
async fn unplugging_raises_the_link_lost_alarm_and_a_new_device_at_the_same_path_reconnects() {
    let setup = setup();
    let mut device = FakeDevice::plug(&setup.port);
    // A simulated oximeter beside it: whatever the port does, it must keep being read.
    let simulated = "[[device]]\nid = \"sim1\"\nprofile = \"simulated-oximeter\"\nscenario = \"typical-infusion\"\n";
    let daemon = daemon_with(&setup.port, "nonin-df8", simulated);
    let mut events = daemon.events().await;
    daemon.start_session("KAP-SERIAL-1").await;
    daemon
        .wait_link("dev1", "connected", Duration::from_secs(30))
        .await;
    let frame = [0x80, 0x48, 0x61, 0x00];
    send_until(&mut device, &mut events, &frame, |e| {
        reading_of(e, "spo2") == Some(97.0)
    })
    .await;

    // Unplug.
    drop(device);
    let alarm = events
        .until(
            deadline(20),
            |_| {},
            |e| {
                e.name == "alarm"
                    && e.data["change"] == "raised"
                    && e.data["alarm"]["condition"] == "device_disconnected"
            },
        )
        .await
        .expect("the link-lost technical alarm");
    assert_eq!(alarm.data["alarm"]["kind"], "technical");
    // The other device goes on: its next sample (1 s) arrives while dev1 is gone.
    events
        .until(
            deadline(5),
            |_| {},
            |e| e.name == "reading" && e.data["device"] == "sim1",
        )
        .await
        .expect("the simulated oximeter keeps reporting while the serial port is gone");

    assert_eq!(alarm.data["alarm"]["device"], "dev1");
    let dev = daemon.device_status("dev1").await;
    assert_eq!(dev["link"], "lost", "{dev:#}");

    // A new device appears at the same path: the driver finds it by itself.
    let mut device = FakeDevice::plug(&setup.port);
    daemon
        .wait_link("dev1", "connected", Duration::from_secs(30))
        .await;
    let mut ended = false;
    let frame = [0x80, 0x49, 0x62, 0x00]; // HR 73, SpO2 98
    send_until(&mut device, &mut events, &frame, |e| {
        ended |= e.name == "alarm"
            && e.data["change"] == "ended"
            && e.data["alarm"]["condition"] == "device_disconnected";
        reading_of(e, "spo2") == Some(98.0)
    })
    .await;
    assert!(ended, "the link-lost alarm ends when the device is back");
    assert_status(&daemon, &[("spo2", 98.0), ("pulse_rate", 73.0)]).await;
}

#[tokio::test]
async fn garbage_between_frames_is_counted_and_every_valid_frame_still_decodes() {
    let setup = setup();
    let mut device = FakeDevice::plug(&setup.port);
    let daemon = daemon_with(&setup.port, "nonin-df8", "");
    let mut events = daemon.events().await;
    daemon
        .wait_link("dev1", "connected", Duration::from_secs(30))
        .await;
    device.received(Duration::from_millis(300)); // the on-connect command
    // 20 DF8 frames with SpO2 80..99, each followed by garbage that cannot start a frame
    // (bit 7 clear), then one clean frame to flush the last garbage run.
    let mut stream = Vec::new();
    let garbage = [0x13, 0x37, 0x00, 0x7F, 0x42];
    for spo2 in 80u8..100 {
        stream.extend_from_slice(&[0x80, 0x48, spo2, 0x00]);
        stream.extend_from_slice(&garbage);
    }
    stream.extend_from_slice(&[0x80, 0x48, 0x64, 0x00]); // SpO2 100: the end marker
    device.send(&stream);
    let mut seen = Vec::new();
    events
        .until(
            deadline(20),
            |e| {
                if let Some(v) = reading_of(e, "spo2") {
                    seen.push(v);
                }
            },
            |e| reading_of(e, "spo2") == Some(100.0),
        )
        .await
        .expect("the end marker frame");
    let expected: Vec<f64> = (80..=100).map(f64::from).collect();
    assert_eq!(seen, expected, "every valid frame decodes, in order");

    let metrics = daemon.get_text("/metrics").await;
    let errors: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("vitalwatch_decode_errors_total{") && l.contains("device=\"dev1\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(errors, 20.0, "one decode error per garbage run:\n{metrics}");
    let dev = daemon.device_status("dev1").await;
    assert_eq!(dev["decode_errors"], json!(20), "{dev:#}");
}
