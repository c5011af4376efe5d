//! Fake serial devices on real pseudo-terminal pairs: the test writes frames to the master
//! end; the daemon opens the slave through a symlink named in its config, so unplugging
//! (dropping the device) and plugging a new one at the same path work as with USB.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use serialport::{SerialPort, TTYPort};

/// A fake serial device: the master end of a pty, reachable by the daemon through `link`.
pub struct FakeDevice {
    master: TTYPort,
}

impl FakeDevice {
    /// Plugs a new device in at `link` (replacing whatever was there).
    pub fn plug(link: &Path) -> FakeDevice {
        let (mut master, slave) = TTYPort::pair().expect("openpty");
        // posix_openpt does not set close-on-exec: without it every daemon spawned from now on
        // would hold this master open, and closing it here would never hang up the device.
        nix::fcntl::fcntl(
            master.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .expect("close-on-exec");
        let slave_path = slave.name().expect("slave pty path");
        // The daemon opens the slave by path; the test keeps only the master.
        drop(slave);
        master
            .set_timeout(Duration::from_millis(200))
            .expect("timeout");
        let staging = link.with_extension("new");
        let _ = std::fs::remove_file(&staging);
        std::os::unix::fs::symlink(&slave_path, &staging).expect("symlink");
        std::fs::rename(&staging, link).expect("re-point the device link");
        FakeDevice { master }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("write to the pty");
        self.master.flush().expect("flush the pty");
    }

    /// Whatever the daemon wrote to the device within `wait`.
    pub fn received(&mut self, wait: Duration) -> Vec<u8> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        let mut buffer = [0u8; 256];
        while Instant::now() < deadline {
            match self.master.read(&mut buffer) {
                Ok(n) => got.extend_from_slice(&buffer[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("reading the pty: {e}"),
            }
        }
        got
    }
}
