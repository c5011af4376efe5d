//! Serial transport (RS-232, USB-serial) over `tokio-serial`.
//!
//! A driver task per device opens its port with the profile's line settings, sends the
//! profile's start and keep-alive commands, feeds what arrives to the protocol's pure decoder,
//! and pushes the readings (one message per decoded sample) and decode errors into the
//! device's ring. When the port disappears (USB unplugged), fails or goes silent, it reports
//! the link lost and reopens the same path with backoff, for ever. Other devices never notice.
//!
//! Ports are opened by the explicit path in the config (best a stable /dev/serial/by-id link):
//! enumeration here has no libudev and never lists pseudo-terminals, so it only serves
//! `vitalwatch devices`.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::SerialPortBuilderExt;

use super::decode::{Protocol, decoder};
use super::report::{Backoff, Reporter};
use super::ring::RingProducer;
use crate::clock::Clock;
use crate::config::{FlowControl, LineSettings, Parity};
use crate::vitals::{DeviceId, LinkState};

/// A serial port the OS lists, with its USB identity where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub path: String,
    /// USB vendor and product id, when the port is a USB adapter.
    pub usb: Option<(u16, u16)>,
    pub description: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PortListError {
    /// serialport's sysfs enumeration panics without /sys: say so instead.
    #[error("cannot list serial ports: /sys/class/tty is not mounted")]
    NoSysfs,
    #[error("cannot list serial ports: {0}")]
    Os(#[from] tokio_serial::Error),
}

/// The serial ports the OS lists (through sysfs; pseudo-terminals are never listed).
pub fn available_ports() -> Result<Vec<PortInfo>, PortListError> {
    if cfg!(target_os = "linux") && !Path::new("/sys/class/tty").is_dir() {
        return Err(PortListError::NoSysfs);
    }
    let ports = tokio_serial::available_ports()?;
    Ok(ports
        .into_iter()
        .map(|port| {
            let (usb, description) = match port.port_type {
                tokio_serial::SerialPortType::UsbPort(usb) => {
                    (Some((usb.vid, usb.pid)), usb.product.or(usb.manufacturer))
                }
                tokio_serial::SerialPortType::BluetoothPort => {
                    (None, Some("Bluetooth RFCOMM".to_string()))
                }
                _ => (None, None),
            };
            PortInfo {
                path: port.port_name,
                usb,
                description,
            }
        })
        .collect())
}

/// Bytes the driver sends the device: once on every connection, and periodically.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Commands {
    pub on_connect: Vec<Vec<u8>>,
    pub keep_alive: Option<(Duration, Vec<u8>)>,
}

/// A configured serial device: where it is, how to talk to it, how to decode it.
#[derive(Debug, Clone)]
pub struct SerialDevice {
    pub id: DeviceId,
    pub port: String,
    pub line: LineSettings,
    pub protocol: Protocol,
    pub commands: Commands,
    /// No byte for this long: the port is reopened (a device that went quiet may have reset).
    pub reopen_after_silence: Duration,
}

/// Reconnection backoff: 0.5 s doubling to 10 s.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
const READ_BUFFER: usize = 4096;

impl SerialDevice {
    fn open(&self) -> Result<tokio_serial::SerialStream, tokio_serial::Error> {
        let line = &self.line;
        let data_bits = match line.data_bits {
            5 => tokio_serial::DataBits::Five,
            6 => tokio_serial::DataBits::Six,
            7 => tokio_serial::DataBits::Seven,
            _ => tokio_serial::DataBits::Eight,
        };
        let parity = match line.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Odd => tokio_serial::Parity::Odd,
            Parity::Even => tokio_serial::Parity::Even,
        };
        let stop_bits = match line.stop_bits {
            2 => tokio_serial::StopBits::Two,
            _ => tokio_serial::StopBits::One,
        };
        let flow_control = match line.flow_control {
            FlowControl::None => tokio_serial::FlowControl::None,
            FlowControl::Software => tokio_serial::FlowControl::Software,
            FlowControl::Hardware => tokio_serial::FlowControl::Hardware,
        };
        tokio_serial::new(&self.port, line.baud)
            .data_bits(data_bits)
            .parity(parity)
            .stop_bits(stop_bits)
            .flow_control(flow_control)
            .open_native_async()
    }

    /// Keeps the device connected for ever: opens the port, sends the profile's commands,
    /// decodes what arrives into the ring, and reopens with backoff when the port disappears,
    /// fails or goes silent. Every link change goes through the ring as a message, so the
    /// engine raises the technical alarms.
    pub async fn run(self, ring: RingProducer, clock: Clock) {
        let mut report = Reporter::new(self.id.clone(), ring, clock);
        let mut backoff = Backoff::new(BACKOFF_FIRST, BACKOFF_MAX);
        let mut reported_lost = false;
        loop {
            let reason = match self.open() {
                Ok(stream) => {
                    let started = tokio::time::Instant::now();
                    report.link(LinkState::Connected, format!("{} open", self.port));
                    let reason = self.serve(stream, &mut report).await;
                    backoff.connection_ended(started.elapsed());
                    reported_lost = false;
                    reason
                }
                Err(error) => format!("cannot open {}: {error}", self.port),
            };
            if !reported_lost {
                tracing::warn!(device = %self.id, port = %self.port, "{reason}");
                report.link(LinkState::Lost, reason);
                reported_lost = true;
            }
            tokio::time::sleep(backoff.next_wait()).await;
        }
    }

    /// One connection: returns why it ended.
    async fn serve(&self, mut stream: tokio_serial::SerialStream, report: &mut Reporter) -> String {
        let mut decoder = match decoder(&self.protocol) {
            Ok(decoder) => decoder,
            Err(error) => return format!("bad protocol settings: {error}"),
        };
        for command in &self.commands.on_connect {
            if let Err(error) = AsyncWriteExt::write_all(&mut stream, command).await {
                return format!("cannot write the start command: {error}");
            }
        }
        let keep_alive_every = self.commands.keep_alive.as_ref().map(|(every, _)| *every);
        let mut keep_alive =
            tokio::time::interval(keep_alive_every.unwrap_or(Duration::from_secs(3600)));
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keep_alive.tick().await; // the first tick is immediate; the start command was just sent
        let mut buffer = vec![0u8; READ_BUFFER];
        let mut decoded = Vec::new();
        loop {
            tokio::select! {
                read = tokio::time::timeout(self.reopen_after_silence, AsyncReadExt::read(&mut stream, &mut buffer)) => {
                    let count = match read {
                        Err(_) => return format!("no data for {} s", self.reopen_after_silence.as_secs_f64()),
                        Ok(Err(error)) => return format!("read failed: {error}"),
                        Ok(Ok(0)) => return "port closed".to_string(),
                        Ok(Ok(count)) => count,
                    };
                    decoder.feed(&buffer[..count], &mut decoded);
                    for item in decoded.drain(..) {
                        report.decoded(item);
                    }
                }
                _ = keep_alive.tick(), if keep_alive_every.is_some() => {
                    if let Some((_, bytes)) = &self.commands.keep_alive
                        && let Err(error) = AsyncWriteExt::write_all(&mut stream, bytes).await
                    {
                        return format!("cannot write the keep-alive: {error}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_ports_answers_without_panicking() {
        // Whatever the machine has, the answer is a list or a clear error, never a panic.
        match available_ports() {
            Ok(ports) => assert!(ports.iter().all(|p| p.path.starts_with("/dev/"))),
            Err(error) => assert!(error.to_string().starts_with("cannot list serial ports")),
        }
    }
}
