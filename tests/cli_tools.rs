//! The offline tools: `vitalwatch decode` and `vitalwatch devices`.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

fn vitalwatch(args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vitalwatch"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vitalwatch");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn decode_prints_a_json_line_per_reading_then_a_summary() {
    // A Masimo ASCII 1 capture: a good line, a line of noise, a line with the sensor off.
    let capture = b"11/25/26 19:00:00 SPO2=096% BPM=071 PI=04.50% ALARM=0000 EXC=000800\r\n\
                    \x01\x02garbage\r\n\
                    11/25/26 19:00:01 SPO2=---% BPM=--- PI=--.--% ALARM=0000 EXC=000020\r\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capture.txt");
    std::fs::write(&file, capture).unwrap();
    let (ok, stdout, stderr) = vitalwatch(
        &[
            "decode",
            "--profile",
            "masimo-rad8-ascii1",
            file.to_str().unwrap(),
        ],
        b"",
    );
    assert!(ok, "{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["frames"], 2, "{stdout}");
    assert_eq!(summary["readings"], 6, "{stdout}");
    assert_eq!(summary["decode_errors"], 1, "{stdout}");
    assert!(stderr.contains("decode error"), "{stderr}");
    let first = &lines[0];
    assert_eq!(
        (
            first["vital"].as_str(),
            first["value"].as_f64(),
            first["unit"].as_str()
        ),
        (Some("spo2"), Some(96.0), Some("%"))
    );
    assert_eq!(first["device_time"], "2026-11-25T19:00:00Z");
    let off: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["quality"]
                .as_array()
                .is_some_and(|q| q.iter().any(|f| f == "sensor_off"))
        })
        .collect();
    assert_eq!(off.len(), 3, "{stdout}");
    assert!(off.iter().all(|l| l["value"].is_null()));

    // The same from standard input.
    let (ok, from_stdin, _) =
        vitalwatch(&["decode", "--profile", "masimo-rad8-ascii1", "-"], capture);
    assert!(ok);
    assert_eq!(from_stdin, stdout);
}

#[test]
fn decode_refuses_an_unknown_or_simulated_profile() {
    let (ok, _, stderr) = vitalwatch(&["decode", "--profile", "nonin-9999"], b"");
    assert!(!ok);
    assert!(
        stderr.contains("unknown device profile `nonin-9999`") && stderr.contains("nonin-df8"),
        "{stderr}"
    );
    let (ok, _, stderr) = vitalwatch(&["decode", "--profile", "simulated-oximeter"], b"");
    assert!(!ok);
    assert!(stderr.contains("simulated"), "{stderr}");
}

#[test]
fn devices_lists_ports_or_says_there_are_none() {
    let (ok, stdout, stderr) = vitalwatch(&["devices"], b"");
    assert!(ok, "{stderr}");
    let listed: Vec<&str> = stdout.lines().collect();
    assert!(!listed.is_empty());
    assert!(
        listed
            .iter()
            .all(|l| l.starts_with("/dev/") && l.split('\t').count() == 4)
            || stdout.starts_with("no serial ports found"),
        "{stdout}"
    );
}

/// The JSON lines of a successful `decode` run.
fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn decode_reads_a_gatt_payload_by_its_characteristic() {
    // protocols.md §2.4 vector 9: 120/80/90 mmHg, pulse NaN (unavailable, not a number).
    let (ok, stdout, stderr) = vitalwatch(
        &[
            "decode",
            "--characteristic",
            "2a35",
            "--hex",
            "1C 78 00 50 00 5A 00 FF 07 12 00 00",
        ],
        b"",
    );
    assert!(ok, "{stderr}");
    let lines = json_lines(&stdout);
    let value = |vital: &str| {
        lines
            .iter()
            .find(|l| l["vital"] == vital)
            .unwrap_or_else(|| panic!("no {vital} in {stdout}"))["value"]
            .clone()
    };
    assert_eq!(value("systolic"), 120.0);
    assert_eq!(value("diastolic"), 80.0);
    assert_eq!(value("mean_arterial"), 90.0);
    assert!(value("pulse_rate").is_null(), "{stdout}");
    assert_eq!(lines.last().unwrap()["summary"]["readings"], 4);

    // The same packet cut short is an error naming what is missing, not a reading.
    let (ok, stdout, stderr) = vitalwatch(
        &[
            "decode",
            "--characteristic",
            "00002a35-0000-1000-8000-00805f9b34fb",
            "--hex",
            "1C78005000 5A00FF071200",
        ],
        b"",
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("need 12 bytes, got 11"), "{stderr}");
    assert_eq!(json_lines(&stdout)[0]["summary"]["decode_errors"], 1);

    // A kPa cuff (§2.4 vector 7 is an intermediate cuff pressure: no vital, its own line).
    let (ok, stdout, stderr) = vitalwatch(
        &[
            "decode",
            "--characteristic",
            "0x2A36",
            "--hex",
            "15 6F F0 00 00 00 00 3C 00 12 00",
        ],
        b"",
    );
    assert!(ok, "{stderr}");
    let mmhg = json_lines(&stdout)[0]["cuff_pressure_mmhg"]
        .as_f64()
        .unwrap();
    assert!((mmhg - 11.1 / 0.133322387415).abs() < 0.01, "{stdout}");
}

#[test]
fn decode_reads_a_vendor_ble_stream_through_its_profile() {
    // protocols.md §8.1, split over two notifications.
    let (ok, stdout, stderr) = vitalwatch(
        &[
            "decode",
            "--profile",
            "berrymed-bm1000",
            "--hex",
            "C5 32 46",
            "--hex",
            "0F 62",
        ],
        b"",
    );
    assert!(ok, "{stderr}");
    let lines = json_lines(&stdout);
    let spo2 = lines.iter().find(|l| l["vital"] == "spo2").unwrap();
    let pulse = lines.iter().find(|l| l["vital"] == "pulse_rate").unwrap();
    assert_eq!(
        (spo2["value"].as_f64(), pulse["value"].as_f64()),
        (Some(98.0), Some(143.0))
    );

    // A GATT profile with two characteristics needs to be told which.
    let (ok, _, stderr) = vitalwatch(
        &[
            "decode",
            "--profile",
            "ble-pulse-oximeter",
            "--hex",
            "00 64 00 5A 00",
        ],
        b"",
    );
    assert!(!ok);
    assert!(stderr.contains("--characteristic"), "{stderr}");
    let (ok, stdout, stderr) = vitalwatch(
        &[
            "decode",
            "--profile",
            "ble-pulse-oximeter",
            "--characteristic",
            "2a5f",
            "--hex",
            "00 64 00 5A 00",
        ],
        b"",
    );
    assert!(ok, "{stderr}");
    assert_eq!(json_lines(&stdout)[0]["value"], 100.0);
}

#[test]
fn decode_refuses_bad_ble_arguments_clearly() {
    for (args, expected) in [
        (
            vec!["decode", "--characteristic", "2a5f", "--hex", "00 6"],
            "odd number of hex digits",
        ),
        (
            vec!["decode", "--characteristic", "2a5f", "--hex", "zz"],
            "not a hex byte",
        ),
        (
            vec!["decode", "--characteristic", "beef", "--hex", "00"],
            "not a characteristic of the Bluetooth SIG services",
        ),
        (
            vec!["decode", "--characteristic", "what", "--hex", "00"],
            "is not a characteristic",
        ),
        (
            vec!["decode", "--profile", "nonin-df8", "--hex", "00"],
            "not a Bluetooth LE device",
        ),
        (
            vec!["decode", "--profile", "wellue-o2ring"],
            "Bluetooth LE device: give its payloads with --hex",
        ),
    ] {
        let (ok, _, stderr) = vitalwatch(&args, b"");
        assert!(!ok, "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
