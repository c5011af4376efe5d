//! Bluetooth LE transport: GATT devices (Pulse Oximeter 0x1822, Blood Pressure 0x1810, Heart
//! Rate 0x180D) and vendor oximeters, read over `btleplug` (BlueZ over D-Bus on Linux).
//!
//! The connection state machine (find, connect, read features, subscribe, reconnect with
//! backoff) is written against the small [`BleTransport`] / [`BleConnection`] traits, so it is
//! tested with an in-memory fake peripheral in virtual time; `btleplug` is one implementation of
//! them. libdbus is vendored (see Cargo.toml), so the build needs no system D-Bus library; at
//! run time BlueZ and a system bus must be there, and their absence is a technical alarm on the
//! BLE devices, never a crash.

pub mod btleplug;
pub mod driver;

use std::future::Future;
use std::time::Duration;

use futures_util::stream::BoxStream;
pub use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BleError {
    #[error("Bluetooth LE is unavailable: cannot reach BlueZ over D-Bus ({0})")]
    NoBluez(String),
    #[error("Bluetooth LE is unavailable: no Bluetooth adapter found")]
    NoAdapter,
    /// The target was not seen within the scan time.
    #[error("{0} not found (is it switched on, in range, and not connected to a phone?)")]
    NotFound(String),
    /// The peripheral lacks a characteristic the profile needs.
    #[error("the device has no characteristic {0}")]
    NoCharacteristic(Uuid),
    #[error("Bluetooth LE error: {0}")]
    Other(String),
}

/// Which peripheral a configured device is: by address, by advertised name, or both, among
/// those advertising `service` (when the profile names one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BleTarget {
    /// `AA:BB:CC:DD:EE:FF`, upper case.
    pub address: Option<String>,
    /// The advertised local name, matched exactly.
    pub name: Option<String>,
    pub service: Option<Uuid>,
}

impl std::fmt::Display for BleTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.address, &self.name) {
            (Some(address), Some(name)) => write!(f, "{name} ({address})"),
            (Some(address), None) => write!(f, "device {address}"),
            (None, Some(name)) => write!(f, "device named {name:?}"),
            (None, None) => match self.service {
                Some(service) => write!(f, "a device offering service {service}"),
                None => write!(f, "any device"),
            },
        }
    }
}

/// A peripheral seen while scanning.
#[derive(Debug, Clone, PartialEq)]
pub struct Advertisement {
    pub address: String,
    pub name: Option<String>,
    pub rssi: Option<i16>,
    pub services: Vec<Uuid>,
}

/// A characteristic the connected peripheral offers, with what it can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CharacteristicInfo {
    pub service: Uuid,
    pub uuid: Uuid,
    pub read: bool,
    pub write: bool,
    pub notify: bool,
    pub indicate: bool,
}

/// A value the peripheral notified or indicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub characteristic: Uuid,
    pub value: Vec<u8>,
}

/// Finds and connects peripherals (one per machine, shared by the BLE devices).
pub trait BleTransport: Send + Sync + 'static {
    type Connection: BleConnection;

    /// The peripherals advertising during `duration`.
    fn scan(
        &self,
        duration: Duration,
    ) -> impl Future<Output = Result<Vec<Advertisement>, BleError>> + Send;

    /// Finds `target` (scanning for at most `timeout` when it is not already known), connects,
    /// and discovers its services and characteristics.
    fn connect(
        &self,
        target: &BleTarget,
        timeout: Duration,
    ) -> impl Future<Output = Result<Self::Connection, BleError>> + Send;
}

/// One live connection to a peripheral.
pub trait BleConnection: Send + Sync + 'static {
    /// The characteristics discovered at connection.
    fn characteristics(&self) -> Vec<CharacteristicInfo>;

    fn read(&self, characteristic: Uuid) -> impl Future<Output = Result<Vec<u8>, BleError>> + Send;

    /// Writes with response when the characteristic supports it, else without.
    fn write(
        &self,
        characteristic: Uuid,
        bytes: &[u8],
    ) -> impl Future<Output = Result<(), BleError>> + Send;

    /// Turns on notifications or indications, whichever the characteristic offers.
    fn subscribe(&self, characteristic: Uuid) -> impl Future<Output = Result<(), BleError>> + Send;

    /// Every value notified or indicated from now on, for all subscribed characteristics, in
    /// order of arrival. The stream **ends when the link is lost** (the peripheral disconnected
    /// or went out of range): that is how the driver learns of it.
    fn notifications(
        &self,
    ) -> impl Future<Output = Result<BoxStream<'static, Notification>, BleError>> + Send;

    /// Ends the connection (best effort: a link already gone is not an error).
    fn disconnect(&self) -> impl Future<Output = ()> + Send;
}

/// A 16-bit SIG-assigned UUID as a full 128-bit one (`0000xxxx-0000-1000-8000-00805f9b34fb`).
pub const fn sig_uuid(short: u16) -> Uuid {
    Uuid::from_u128(((short as u128) << 96) | 0x0000_0000_0000_1000_8000_0080_5f9b_34fb)
}
