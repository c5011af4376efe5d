//! Serial transport (RS-232, USB-serial) over `tokio-serial`.
//!
//! For now: port discovery for `vitalwatch devices`. The driver (profile-driven port settings,
//! start and keep-alive commands, reconnect with backoff) and its decoders come with the
//! serial-driver work; opening a port is always by explicit path from the config, because
//! enumeration never lists pseudo-terminals and has no libudev here.

use std::path::Path;

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
