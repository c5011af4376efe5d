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
