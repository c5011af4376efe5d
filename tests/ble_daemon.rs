//! The daemon with Bluetooth LE devices configured: against a mocked BlueZ on a private bus
//! (the real btleplug code path) it reads an oximeter and a cuff and recovers a dropped link;
//! on a machine without BlueZ it stays up, reports the BLE devices' error as a lost link (a
//! technical alarm), and keeps monitoring the others.

mod common;

use std::time::{Duration, Instant};

use common::Daemon;
use common::bluez::{MockBluez, MockDevice};
use serde_json::{Value, json};
use vitalwatch::acquire::ble::sig_uuid;

const OX: &str = "AA:BB:CC:DD:EE:01";
const CUFF: &str = "AA:BB:CC:DD:EE:02";

fn device<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["devices"]
        .as_array()
        .and_then(|devices| devices.iter().find(|d| d["id"] == id))
        .unwrap_or_else(|| panic!("no device {id} in {status}"))
}

/// `id`'s device-disconnected technical alarm, if active.
fn alarm<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["alarms"]
        .as_array()?
        .iter()
        .find(|a| a["device"] == id && a["condition"] == "device_disconnected")
}

#[tokio::test]
async fn without_bluez_the_ble_devices_alarm_and_the_others_keep_working() {
    let config = common::simulated_config(
        "typical-infusion",
        "[[device]]\nid = \"ox-ble\"\nprofile = \"ble-pulse-oximeter\"\naddress = \"AA:BB:CC:DD:EE:01\"\n\
         [[device]]\nid = \"ring\"\nprofile = \"wellue-o2ring\"\naddress = \"AA:BB:CC:DD:EE:02\"\n",
    );
    let dir = tempfile::tempdir().unwrap();
    // A system bus address where nothing listens: BlueZ is unreachable.
    let bus = format!("unix:path={}", dir.path().join("no-bus").display());
    let mut daemon = Daemon::start_with_env(
        &config,
        "127.0.0.1:0",
        &["--speed", "10"],
        &[("DBUS_SYSTEM_BUS_ADDRESS", &bus)],
    );
    // Alarms sound during a session.
    daemon.start_session("s-ble").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status = daemon.get_json("/api/v1/status").await;
        let ble_lost = ["ox-ble", "ring"]
            .iter()
            .all(|id| device(&status, id)["link"] == "lost" && alarm(&status, id).is_some());
        let simulated_reading = device(&status, "ox1")["readings"]["spo2"]["value"].is_number();
        if ble_lost && simulated_reading {
            break status;
        }
        assert!(Instant::now() < deadline, "never settled: {status:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for id in ["ox-ble", "ring"] {
        let detail = device(&status, id)["link_detail"]
            .as_str()
            .unwrap_or_default();
        assert!(
            detail.starts_with("Bluetooth LE is unavailable: cannot reach BlueZ"),
            "{id}: {detail}"
        );
        assert_eq!(alarm(&status, id).unwrap()["kind"], "technical");
    }
    assert!(
        device(&status, "cuff1")["link"] == "connected",
        "{status:#}"
    );
    assert!(daemon.is_running());
}

/// Polls the status until `ready` holds of it (20 s at most, while the peripheral keeps
/// doing `act`): the status that satisfied it.
async fn status_when(
    daemon: &Daemon,
    what: &str,
    mut act: impl FnMut(),
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        act();
        let status = daemon.get_json("/api/v1/status").await;
        if ready(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "never {what}: {status:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn reading(status: &Value, id: &str, vital: &str) -> Option<f64> {
    device(status, id)["readings"][vital]["value"].as_f64()
}

#[tokio::test]
async fn the_daemon_reads_a_mocked_oximeter_and_cuff_and_recovers_a_dropped_link() {
    let bluez = MockBluez::with_adapter();
    bluez.device(&MockDevice::oximeter(OX));
    bluez.device(&MockDevice::bp_cuff(CUFF));
    let config = format!(
        "[[device]]\nid = \"ox-ble\"\nprofile = \"ble-pulse-oximeter\"\naddress = \"{OX}\"\n\
         [[device]]\nid = \"cuff-ble\"\nprofile = \"ble-blood-pressure\"\naddress = \"{}\"\nadvertised_name = \"BPCuff\"\n",
        CUFF.to_lowercase()
    );
    let daemon = Daemon::start_with_env(
        &config,
        "127.0.0.1:0",
        &[],
        &[("DBUS_SYSTEM_BUS_ADDRESS", &bluez.bus_address())],
    );
    daemon.start_session("s-ble").await;
    let notify = |address: &str, characteristic: u16, value: &[u8]| {
        // Refused until the daemon has subscribed: then it is tried again.
        let _ = bluez.try_command(json!({
            "cmd": "notify",
            "address": address,
            "characteristic": sig_uuid(characteristic).to_string(),
            "value": value.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "),
        }));
    };

    // PLX continuous 97 % / 72 bpm.
    let status = status_when(
        &daemon,
        "read the oximeter",
        || notify(OX, 0x2A5F, &[0x00, 0x61, 0x00, 0x48, 0x00]),
        |s| reading(s, "ox-ble", "spo2") == Some(97.0),
    )
    .await;
    assert_eq!(reading(&status, "ox-ble", "pulse_rate"), Some(72.0));
    let detail = device(&status, "ox-ble")["link_detail"]
        .as_str()
        .unwrap_or_default();
    assert!(detail.contains("battery 90 %"), "{detail}");

    // The cuff indicates one measurement: 120/80 mmHg, MAP 90, pulse 72.
    let status = status_when(
        &daemon,
        "read the cuff",
        || {
            notify(
                CUFF,
                0x2A35,
                &[0x04, 0x78, 0x00, 0x50, 0x00, 0x5A, 0x00, 0x48, 0x00],
            )
        },
        |s| reading(s, "cuff-ble", "systolic") == Some(120.0),
    )
    .await;
    for (vital, value) in [
        ("diastolic", 80.0),
        ("mean_arterial", 90.0),
        ("pulse_rate", 72.0),
    ] {
        assert_eq!(reading(&status, "cuff-ble", vital), Some(value), "{vital}");
    }

    // The oximeter drops the link: lost, with its technical alarm ...
    bluez.disconnect(OX);
    status_when(
        &daemon,
        "saw the link lost",
        || {},
        |s| device(s, "ox-ble")["link"] == "lost" && alarm(s, "ox-ble").is_some(),
    )
    .await;
    // ... then the daemon connects again, and readings flow again.
    let status = status_when(
        &daemon,
        "recovered",
        || notify(OX, 0x2A5F, &[0x00, 0x60, 0x00, 0x48, 0x00]),
        |s| reading(s, "ox-ble", "spo2") == Some(96.0),
    )
    .await;
    assert_eq!(device(&status, "ox-ble")["link"], "connected");
    assert!(alarm(&status, "ox-ble").is_none(), "{status:#}");
    assert!(bluez.is_connected(OX));
}

#[test]
fn devices_ble_lists_what_the_scan_sees_with_the_matching_profiles() {
    let bluez = MockBluez::with_adapter();
    bluez.device(&MockDevice::oximeter(OX).rssi(-48));
    bluez.device(&MockDevice::bp_cuff(CUFF).rssi(-70));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vitalwatch"))
        .args(["devices", "--ble", "--seconds", "1"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bluez.bus_address())
        .output()
        .expect("run vitalwatch");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    // Nearest first.
    assert!(
        lines[0].starts_with(&format!("{OX}\tPulseOx\trssi -48 dBm")),
        "{stdout}"
    );
    assert!(
        lines[0].contains("00001822-0000-1000-8000-00805f9b34fb"),
        "{stdout}"
    );
    assert!(
        lines[0].ends_with("profiles: ble-pulse-oximeter"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with(&format!("{CUFF}\tBPCuff\trssi -70 dBm")),
        "{stdout}"
    );
    assert!(
        lines[1].ends_with("profiles: ble-blood-pressure"),
        "{stdout}"
    );

    // Without BlueZ: a clear error, not a crash.
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vitalwatch"))
        .args(["devices", "--ble", "--seconds", "1"])
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}", dir.path().join("none").display()),
        )
        .output()
        .expect("run vitalwatch");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("Bluetooth LE is unavailable"), "{stderr}");
}

#[tokio::test]
async fn with_bluez_but_no_adapter_the_ble_device_says_so_and_connects_once_one_appears() {
    let bluez = MockBluez::start();
    let config = common::simulated_config(
        "typical-infusion",
        &format!(
            "[[device]]\nid = \"ox-ble\"\nprofile = \"ble-pulse-oximeter\"\naddress = \"{OX}\"\n"
        ),
    );
    let daemon = Daemon::start_with_env(
        &config,
        "127.0.0.1:0",
        &[],
        &[("DBUS_SYSTEM_BUS_ADDRESS", &bluez.bus_address())],
    );
    let status = status_when(
        &daemon,
        "saw no adapter",
        || {},
        |s| device(s, "ox-ble")["link"] == "lost" && reading(s, "ox1", "spo2").is_some(),
    )
    .await;
    assert_eq!(
        device(&status, "ox-ble")["link_detail"],
        "Bluetooth LE is unavailable: no Bluetooth adapter found"
    );
    // An adapter is plugged in and the oximeter is in range: the daemon connects by itself.
    bluez.adapter("hci0");
    bluez.device(&MockDevice::oximeter(OX));
    let notify = || {
        let _ = bluez.try_command(json!({
            "cmd": "notify",
            "address": OX,
            "characteristic": sig_uuid(0x2A5F).to_string(),
            "value": "00 61 00 48 00",
        }));
    };
    status_when(&daemon, "read the oximeter", notify, |s| {
        reading(s, "ox-ble", "spo2") == Some(97.0)
    })
    .await;
}
