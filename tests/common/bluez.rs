//! A mocked BlueZ on a private system bus, for tests of the BLE transport without radio or
//! kernel Bluetooth: `dbus-daemon` with a system-bus config in a temp dir, python-dbusmock's
//! `bluez5` template owning `org.bluez` there, and `tests/ble/mock_bluez.py` adding adapters and
//! GATT peripherals and playing the peripheral's side (notify, drop the link, refuse a
//! connection). Debian packages: dbus-daemon, python3-dbusmock (with python3-dbus, python3-gi).
//!
//! libdbus reads `DBUS_SYSTEM_BUS_ADDRESS` once per process, so a test that uses btleplug in
//! its own process must run through [`isolated`]: the test binary runs that one test again in
//! a child process whose system bus address points into a fresh temp dir, where
//! [`MockBluez::start`] (or [`PrivateBus::start`]) then puts the bus. A test that only hands
//! the bus to another process (the daemon, through `DBUS_SYSTEM_BUS_ADDRESS`) needs no
//! [`isolated`].

use std::fs::File;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vitalwatch::acquire::ble::{Uuid, sig_uuid};

/// Debian's Python, which has python3-dbus, python3-gi and python3-dbusmock (a pyenv `python3`
/// on PATH has not).
pub const PYTHON: &str = "/usr/bin/python3";
/// In an [`isolated`] child: the name of the test it runs.
const CHILD_TEST: &str = "VITALWATCH_BLE_TEST";
/// In an [`isolated`] child: the dir whose socket `DBUS_SYSTEM_BUS_ADDRESS` names.
const CHILD_BUS_DIR: &str = "VITALWATCH_BLE_BUS_DIR";
const SOCKET: &str = "system_bus_socket";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const CHILD_TIMEOUT: Duration = Duration::from_secs(180);

/// Fails (never skips) when dbus-daemon or python3-dbusmock is missing: `scripts/test`
/// installs them.
pub fn require_mock_tools() {
    super::require_tool("dbus-daemon");
    let python = Path::new(PYTHON);
    assert!(
        python.is_file(),
        "{PYTHON} is not installed: run scripts/test, which installs python3-dbusmock"
    );
    let imports = Command::new(python)
        .args(["-c", "import dbus, gi, dbusmock"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run /usr/bin/python3");
    assert!(
        imports.status.success(),
        "python3-dbusmock (with python3-dbus and python3-gi) is not installed for {PYTHON}: \
         run scripts/test, which installs it\n{}",
        String::from_utf8_lossy(&imports.stderr)
    );
}

/// Runs `body` (on a multi-threaded tokio runtime) in a child process of the test binary whose
/// `DBUS_SYSTEM_BUS_ADDRESS` names a socket in a fresh temp dir; [`MockBluez::start`] and
/// [`PrivateBus::start`] in `body` put the bus there. `test` is the test function's name (its
/// path in the test binary), so the child runs that test alone.
pub fn isolated<F: Future<Output = ()>>(test: &str, body: impl FnOnce() -> F) {
    if std::env::var(CHILD_TEST).ok().as_deref() == Some(test) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(body());
        drop(runtime);
        let dir = std::env::var_os(CHILD_BUS_DIR).expect("the bus dir of an isolated test");
        std::fs::write(Path::new(&dir).join("ran"), test).expect("write the ran marker");
        return;
    }
    require_mock_tools();
    let dir = tempfile::tempdir().expect("temp dir");
    let address = format!("unix:path={}", dir.path().join(SOCKET).display());
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_TEST, test)
        .env(CHILD_BUS_DIR, dir.path())
        .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the test binary again");
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child test") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    eprintln!("--- {test} in its own process (system bus {address}) ---\n{output}");
    let status = status.unwrap_or_else(|| panic!("{test} took over {CHILD_TIMEOUT:?}"));
    assert!(
        status.success(),
        "{test} failed in its own process ({status})"
    );
    assert!(
        dir.path().join("ran").exists(),
        "the test binary has no test named {test:?} (pass the function's name to isolated)"
    );
}

fn drain(from: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    })
}

/// A private system bus (`dbus-daemon`), stopped when dropped.
pub struct PrivateBus {
    daemon: Child,
    address: String,
    dir: PathBuf,
    _own_dir: Option<tempfile::TempDir>,
}

impl PrivateBus {
    /// Starts the bus: in an [`isolated`] child where its `DBUS_SYSTEM_BUS_ADDRESS` points,
    /// elsewhere in a new temp dir.
    pub fn start() -> PrivateBus {
        super::require_tool("dbus-daemon");
        let (dir, own_dir) = match std::env::var_os(CHILD_BUS_DIR) {
            Some(dir) => (PathBuf::from(dir), None),
            None => {
                let own = tempfile::tempdir().expect("temp dir");
                (own.path().to_path_buf(), Some(own))
            }
        };
        let socket = dir.join(SOCKET);
        let config = dir.join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .expect("write the bus config");
        let mut daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(&dir, "dbus-daemon.log"))
            .spawn()
            .expect("start dbus-daemon");
        let stdout = daemon.stdout.take().expect("dbus-daemon stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok));
            // Keep the pipe open (dbus-daemon writes nothing more).
            for _ in lines {}
        });
        let address = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Some(address)) if !address.trim().is_empty() => address.trim().to_string(),
            _ => {
                let _ = daemon.kill();
                let _ = daemon.wait();
                panic!(
                    "dbus-daemon did not start:\n{}",
                    read_log(&dir, "dbus-daemon.log")
                );
            }
        };
        PrivateBus {
            daemon,
            address,
            dir,
            _own_dir: own_dir,
        }
    }

    /// The bus's address (`unix:path=…,guid=…`), for `DBUS_SYSTEM_BUS_ADDRESS`.
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// How many clients are connected to the bus (unique names, not counting the one asking).
    pub fn clients(&self) -> usize {
        let output = Command::new(PYTHON)
            .args([
                "-c",
                "import sys, dbus\n\
                 bus = dbus.bus.BusConnection(sys.argv[1])\n\
                 print(sum(1 for n in bus.list_names() if n.startswith(':')) - 1)",
                &self.address,
            ])
            .output()
            .expect("run /usr/bin/python3");
        let text = String::from_utf8_lossy(&output.stdout);
        text.trim().parse().unwrap_or_else(|_| {
            panic!(
                "cannot count the bus's clients: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }

    /// The temp dir holding the socket, config and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    File::create(dir.join(name))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

fn read_log(dir: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

struct Controller {
    child: Child,
    stdin: ChildStdin,
    answers: mpsc::Receiver<String>,
}

/// BlueZ mocked on a [`PrivateBus`]: no adapter until [`MockBluez::adapter`]. Stopped when
/// dropped; a failing test prints the mock's log.
pub struct MockBluez {
    controller: Mutex<Controller>,
    dbusmock: Child,
    bus: PrivateBus,
}

impl MockBluez {
    /// A private bus with `org.bluez` owned by the mock (no adapter yet).
    pub fn start() -> MockBluez {
        require_mock_tools();
        let bus = PrivateBus::start();
        let dbusmock = Command::new(PYTHON)
            .args(["-m", "dbusmock", "--system", "--template", "bluez5"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .stdin(Stdio::null())
            .stdout(log_file(bus.dir(), "dbusmock.log"))
            .stderr(log_file(bus.dir(), "dbusmock.log"))
            .spawn()
            .expect("start python3 -m dbusmock");
        let script = super::repo_root().join("tests/ble/mock_bluez.py");
        let mut child = Command::new(PYTHON)
            .arg(&script)
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file(bus.dir(), "mock_bluez.log"))
            .spawn()
            .expect("start tests/ble/mock_bluez.py");
        let stdin = child.stdin.take().expect("controller stdin");
        let stdout = child.stdout.take().expect("controller stdout");
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mock = MockBluez {
            controller: Mutex::new(Controller {
                child,
                stdin,
                answers,
            }),
            dbusmock,
            bus,
        };
        // The controller answers once org.bluez is owned on the bus.
        let ready = mock.exchange(None, STARTUP_TIMEOUT);
        match ready {
            Ok(answer) if answer["ready"] == true => mock,
            other => panic!("the mocked BlueZ did not start: {other:?}\n{}", mock.logs()),
        }
    }

    /// Started, with adapter `hci0`.
    pub fn with_adapter() -> MockBluez {
        let mock = MockBluez::start();
        mock.adapter("hci0");
        mock
    }

    /// The bus address, for `DBUS_SYSTEM_BUS_ADDRESS`.
    pub fn bus_address(&self) -> String {
        self.bus.address()
    }

    pub fn bus(&self) -> &PrivateBus {
        &self.bus
    }

    /// The mock's and the bus's logs (their last lines).
    pub fn logs(&self) -> String {
        format!(
            "--- dbusmock.log ---\n{}\n--- mock_bluez.log ---\n{}\n--- dbus-daemon.log ---\n{}",
            read_log(self.bus.dir(), "dbusmock.log"),
            read_log(self.bus.dir(), "mock_bluez.log"),
            read_log(self.bus.dir(), "dbus-daemon.log")
        )
    }

    /// Sends `command` (none: only reads the next answer); the answer, or its error message.
    fn exchange(&self, command: Option<&Value>, timeout: Duration) -> Result<Value, String> {
        let mut controller = self.controller.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(command) = command {
            writeln!(controller.stdin, "{command}")
                .and_then(|()| controller.stdin.flush())
                .map_err(|e| format!("cannot write to mock_bluez.py: {e}"))?;
        }
        let line = controller
            .answers
            .recv_timeout(timeout)
            .map_err(|e| format!("no answer from mock_bluez.py: {e}"))?;
        let answer: Value =
            serde_json::from_str(&line).map_err(|e| format!("{line:?} is not JSON: {e}"))?;
        if answer["ok"] == true {
            Ok(answer)
        } else {
            Err(answer["error"]
                .as_str()
                .unwrap_or("no error message")
                .to_string())
        }
    }

    /// Sends one command to mock_bluez.py; its answer, or its error message.
    pub fn try_command(&self, command: Value) -> Result<Value, String> {
        self.exchange(Some(&command), COMMAND_TIMEOUT)
    }

    /// Sends one command, which must succeed.
    pub fn command(&self, command: Value) -> Value {
        self.try_command(command.clone())
            .unwrap_or_else(|e| panic!("mock_bluez.py refused {command}: {e}"))
    }

    pub fn adapter(&self, name: &str) {
        self.command(json!({"cmd": "adapter", "name": name}));
    }

    pub fn remove_adapter(&self, name: &str) {
        self.command(json!({"cmd": "remove_adapter", "name": name}));
    }

    /// Adds `device` on `hci0`, advertising its name, RSSI and services, with its GATT
    /// services and characteristics.
    pub fn device(&self, device: &MockDevice) {
        self.command(device.to_json());
    }

    pub fn remove_device(&self, address: &str) {
        self.command(json!({"cmd": "remove_device", "address": address}));
    }

    /// The peripheral notifies (or indicates) `value` on `characteristic`: refused unless a
    /// client subscribed while connected.
    pub fn notify(&self, address: &str, characteristic: Uuid, value: &[u8]) {
        self.command(json!({
            "cmd": "notify",
            "address": address,
            "characteristic": characteristic.to_string(),
            "value": hex(value),
        }));
    }

    /// The peripheral drops the link (Connected and ServicesResolved go false).
    pub fn disconnect(&self, address: &str) {
        self.command(json!({"cmd": "disconnect", "address": address}));
    }

    /// While `refuse`, Device1.Connect fails with org.bluez.Error.Failed.
    pub fn refuse_connect(&self, address: &str, refuse: bool) {
        self.command(json!({"cmd": "refuse_connect", "address": address, "refuse": refuse}));
    }

    /// The values written to `characteristic`, oldest first.
    pub fn writes(&self, address: &str, characteristic: Uuid) -> Vec<Vec<u8>> {
        self.writes_with_types(address, characteristic)
            .into_iter()
            .map(|(bytes, _)| bytes)
            .collect()
    }

    /// The values written to `characteristic` with BlueZ's write type option (`request`: with
    /// response, `command`: without; `None`: not given).
    pub fn writes_with_types(
        &self,
        address: &str,
        characteristic: Uuid,
    ) -> Vec<(Vec<u8>, Option<String>)> {
        let answer = self.command(json!({
            "cmd": "writes",
            "address": address,
            "characteristic": characteristic.to_string(),
        }));
        let writes = answer["writes"].as_array().cloned().unwrap_or_default();
        let types = answer["types"].as_array().cloned().unwrap_or_default();
        writes
            .iter()
            .zip(types.iter().map(|t| t.as_str().map(str::to_string)))
            .map(|(w, t)| (unhex(w.as_str().unwrap_or_default()), t))
            .collect()
    }

    /// Whether a client has adapter `hci0` scanning.
    pub fn is_discovering(&self) -> bool {
        self.command(json!({"cmd": "discovering", "adapter": "hci0"}))["discovering"] == true
    }

    /// Whether BlueZ counts `address` as connected.
    pub fn is_connected(&self, address: &str) -> bool {
        self.command(json!({"cmd": "connected", "address": address}))["connected"] == true
    }
}

impl Drop for MockBluez {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        let controller = self.controller.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = controller.child.kill();
        let _ = controller.child.wait();
        let _ = self.dbusmock.kill();
        let _ = self.dbusmock.wait();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn unhex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

/// A GATT characteristic of a [`MockDevice`]; `flags` as BlueZ names them (`read`, `write`,
/// `write-without-response`, `notify`, `indicate`).
#[derive(Debug, Clone)]
pub struct MockCharacteristic {
    pub uuid: Uuid,
    pub flags: Vec<&'static str>,
    pub value: Vec<u8>,
}

impl MockCharacteristic {
    pub fn new(uuid: Uuid, flags: &[&'static str], value: &[u8]) -> MockCharacteristic {
        MockCharacteristic {
            uuid,
            flags: flags.to_vec(),
            value: value.to_vec(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MockService {
    pub uuid: Uuid,
    pub characteristics: Vec<MockCharacteristic>,
}

/// A peripheral for [`MockBluez::device`].
#[derive(Debug, Clone)]
pub struct MockDevice {
    /// `AA:BB:CC:DD:EE:FF`.
    pub address: String,
    pub name: Option<String>,
    pub rssi: i16,
    pub services: Vec<MockService>,
    /// The services it advertises (`None`: all of `services`).
    pub advertised: Option<Vec<Uuid>>,
}

/// PLX Continuous Measurement (0x2A5F): flags 0, SpO2 97 %, pulse 72/min (SFLOATs).
pub const PLX_CONTINUOUS_97_72: [u8; 5] = [0x00, 0x61, 0x00, 0x48, 0x00];
/// Blood Pressure Measurement (0x2A35): flags 0 (mmHg), 120/80, mean 93 (SFLOATs).
pub const BP_MEASUREMENT_120_80: [u8; 7] = [0x00, 0x78, 0x00, 0x50, 0x00, 0x5d, 0x00];

impl MockDevice {
    pub fn new(address: &str, name: &str) -> MockDevice {
        MockDevice {
            address: address.to_string(),
            name: Some(name.to_string()),
            rssi: -60,
            services: Vec::new(),
            advertised: None,
        }
    }

    pub fn rssi(mut self, rssi: i16) -> MockDevice {
        self.rssi = rssi;
        self
    }

    pub fn service(mut self, uuid: Uuid, characteristics: Vec<MockCharacteristic>) -> MockDevice {
        self.services.push(MockService {
            uuid,
            characteristics,
        });
        self
    }

    /// A pulse oximeter named `PulseOx`: Pulse Oximeter service 0x1822 with PLX Continuous
    /// Measurement 0x2A5F (notify) and PLX Features 0x2A60 (read: no optional features), and
    /// Battery service 0x180F with Battery Level 0x2A19 (read: 90 %).
    pub fn oximeter(address: &str) -> MockDevice {
        MockDevice::new(address, "PulseOx")
            .service(
                sig_uuid(0x1822),
                vec![
                    MockCharacteristic::new(sig_uuid(0x2A5F), &["notify"], &PLX_CONTINUOUS_97_72),
                    MockCharacteristic::new(sig_uuid(0x2A60), &["read"], &[0x00, 0x00]),
                ],
            )
            .service(
                sig_uuid(0x180F),
                vec![MockCharacteristic::new(sig_uuid(0x2A19), &["read"], &[90])],
            )
    }

    /// A blood-pressure cuff named `BPCuff`: Blood Pressure service 0x1810 with Blood Pressure
    /// Measurement 0x2A35 (indicate), Intermediate Cuff Pressure 0x2A36 (notify) and Blood
    /// Pressure Feature 0x2A49 (read: none).
    pub fn bp_cuff(address: &str) -> MockDevice {
        MockDevice::new(address, "BPCuff").service(
            sig_uuid(0x1810),
            vec![
                MockCharacteristic::new(sig_uuid(0x2A35), &["indicate"], &BP_MEASUREMENT_120_80),
                MockCharacteristic::new(sig_uuid(0x2A36), &["notify"], &[]),
                MockCharacteristic::new(sig_uuid(0x2A49), &["read"], &[0x00, 0x00]),
            ],
        )
    }

    fn to_json(&self) -> Value {
        let advertised: Vec<String> = match &self.advertised {
            Some(uuids) => uuids.iter().map(Uuid::to_string).collect(),
            None => self.services.iter().map(|s| s.uuid.to_string()).collect(),
        };
        json!({
            "cmd": "device",
            "address": self.address,
            "name": self.name,
            "rssi": self.rssi,
            "advertised": advertised,
            "services": self.services.iter().map(|s| json!({
                "uuid": s.uuid.to_string(),
                "characteristics": s.characteristics.iter().map(|c| json!({
                    "uuid": c.uuid.to_string(),
                    "flags": c.flags,
                    "value": hex(&c.value),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}
