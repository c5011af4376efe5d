//! systemd integration: the unit file passes `systemd-analyze verify` and `security`, and the
//! real daemon speaks the notify protocol (READY=1 with STATUS, WATCHDOG=1, STOPPING=1) to a
//! `NOTIFY_SOCKET`. That the watchdog is fed by the engine loop's tick and nothing else is a unit
//! test in `src/engine/task.rs`.
//!
//! `systemd-analyze` (Debian package `systemd`) must be installed: these tests fail without it;
//! `scripts/test` installs it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{repo_root, require_tool, simulated_config};

/// The shipped unit, with its `ExecStart` pointing at the binary under test (verify needs an
/// existing executable), written as `vitalwatch.service` into `dir`.
fn unit_under_test(dir: &Path) -> PathBuf {
    let shipped = std::fs::read_to_string(repo_root().join("systemd/vitalwatch.service"))
        .expect("read systemd/vitalwatch.service");
    let exec_start = shipped
        .lines()
        .filter(|line| line.starts_with("ExecStart="))
        .collect::<Vec<_>>();
    assert_eq!(exec_start.len(), 1, "one ExecStart: {exec_start:?}");
    let arguments = exec_start[0]
        .strip_prefix("ExecStart=/usr/local/bin/vitalwatch ")
        .expect("ExecStart runs /usr/local/bin/vitalwatch");
    let unit = shipped.replace(
        exec_start[0],
        &format!("ExecStart={} {arguments}", env!("CARGO_BIN_EXE_vitalwatch")),
    );
    let path = dir.join("vitalwatch.service");
    std::fs::write(&path, unit).expect("write the unit");
    path
}

/// Everything `systemd-analyze verify` says about `unit` (stdout and stderr): it exits 0 even
/// for unknown keys and bad values, so any output at all is a failure.
fn verify(unit: &Path) -> String {
    let output = Command::new(require_tool("systemd-analyze"))
        .arg("verify")
        .arg(unit)
        .output()
        .expect("run systemd-analyze verify");
    let mut said = String::from_utf8_lossy(&output.stdout).into_owned();
    said.push_str(&String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        said.push_str(&format!("\n(exit status {})", output.status));
    }
    said
}

/// The overall exposure level `systemd-analyze security --offline=true` gives `unit`.
fn exposure(unit: &Path) -> f64 {
    let output = Command::new(require_tool("systemd-analyze"))
        .args(["security", "--offline=true"])
        .arg(unit)
        .output()
        .expect("run systemd-analyze security");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|line| line.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no overall exposure level in:\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    // "→ Overall exposure level for vitalwatch.service: 1.5 OK 🙂"
    line.rsplit(':')
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|level| level.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the level in {line:?}"))
}

#[test]
fn the_unit_verifies_without_a_word() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = unit_under_test(dir.path());
    let said = verify(&unit);
    assert!(said.is_empty(), "systemd-analyze verify says:\n{said}");

    // The check catches what verify only warns about (and still exits 0 for).
    let text = std::fs::read_to_string(&unit).expect("read the unit");
    std::fs::write(&unit, text.replace("WatchdogSec=", "WatchdogSecs=")).expect("write");
    let said = verify(&unit);
    assert!(
        said.contains("WatchdogSecs"),
        "a typo went unnoticed: {said:?}"
    );
}

#[test]
fn the_unit_is_hardened() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = unit_under_test(dir.path());
    let level = exposure(&unit);
    assert!(level <= 2.0, "exposure level {level} > 2.0");

    // The parse reads a real level: an unhardened unit scores high.
    std::fs::write(
        &unit,
        format!(
            "[Service]\nExecStart={}\n",
            env!("CARGO_BIN_EXE_vitalwatch")
        ),
    )
    .expect("write");
    let bare = exposure(&unit);
    assert!(bare > 5.0, "an unhardened unit scores {bare}");
}

/// Waits for the next datagram on `socket` until `deadline`.
fn next_datagram(socket: &UnixDatagram, deadline: Instant) -> Option<String> {
    let left = deadline.checked_duration_since(Instant::now())?;
    socket
        .set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .expect("set the read timeout");
    let mut buffer = [0u8; 4096];
    let length = socket.recv(&mut buffer).ok()?;
    Some(String::from_utf8_lossy(&buffer[..length]).into_owned())
}

/// The status line of `GET /api/v1/status` on `addr`.
fn http_status_line(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the daemon's HTTP port");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set the read timeout");
    write!(
        stream,
        "GET /api/v1/status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_string()
}

#[test]
fn the_daemon_speaks_the_notify_protocol_and_feeds_the_watchdog() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    let config = dir.path().join("vitalwatch.toml");
    std::fs::write(&config, simulated_config("typical-infusion", "")).expect("write the config");

    let mut child = Command::new(env!("CARGO_BIN_EXE_vitalwatch"))
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("VITALWATCH_LOG", "info")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "2000000")
        .env_remove("WATCHDOG_PID")
        .env_remove("STATE_DIRECTORY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vitalwatch");
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[daemon] {line}");
        }
    });
    let start = Instant::now();

    // READY=1 with a STATUS naming the devices and the address, which answers at once.
    let mut before_ready = Vec::new();
    let ready = loop {
        let message = next_datagram(&socket, start + Duration::from_secs(30));
        let Some(message) = message else {
            let _ = child.kill();
            panic!("no READY=1 within 30 s; got {before_ready:?}");
        };
        if message.lines().any(|line| line == "READY=1") {
            break message;
        }
        before_ready.push(message);
    };
    assert!(
        before_ready.iter().all(|m| m == "WATCHDOG=1\n"),
        "before READY=1: {before_ready:?}"
    );
    let status = ready
        .lines()
        .find_map(|line| line.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS with READY=1: {ready:?}"));
    assert!(
        status.starts_with("monitoring 2 device(s), listening on 127.0.0.1:"),
        "{status:?}"
    );
    let addr = status.rsplit(' ').next().expect("the address");
    let answer = http_status_line(addr);
    assert!(answer.contains(" 200 "), "GET /api/v1/status: {answer:?}");

    // The watchdog: WATCHDOG_USEC=2 s, so a ping about every second.
    let ready_at = Instant::now();
    let mut pings = Vec::new();
    while pings.len() < 3 {
        match next_datagram(&socket, ready_at + Duration::from_secs(5)) {
            Some(message) => {
                assert_eq!(message, "WATCHDOG=1\n");
                pings.push(Instant::now());
            }
            None => break,
        }
    }
    assert!(
        pings.len() >= 3,
        "{} WATCHDOG=1 within 5 s of READY=1",
        pings.len()
    );
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap > Duration::from_millis(500) && gap < Duration::from_millis(1600),
            "pings {gap:?} apart for a 2 s watchdog"
        );
    }

    // SIGTERM: STOPPING=1, then a clean exit.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after_term = Vec::new();
    while let Some(message) = next_datagram(&socket, deadline) {
        let stopping = message.lines().any(|line| line == "STOPPING=1");
        after_term.push(message);
        if stopping {
            break;
        }
    }
    assert!(
        after_term.last().is_some_and(|m| m == "STOPPING=1\n"),
        "after SIGTERM: {after_term:?}"
    );
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait for the daemon") {
            break exit;
        }
        assert!(Instant::now() < deadline, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "the daemon exited with {exit}");
}
