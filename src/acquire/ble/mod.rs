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
pub mod protocol;

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
    /// The peripheral lacks the service its profile reads (another kind of device).
    #[error("the device does not offer service {0} (is the profile right for it?)")]
    NoService(Uuid),
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

/// A transport made on first use, and made again while making it fails (BlueZ not running yet,
/// no adapter plugged in) or after it reports Bluetooth gone: until then every attempt
/// returns why, which the driver reports as the device's lost link.
pub struct Lazy<T, F> {
    make: F,
    made: tokio::sync::Mutex<Option<std::sync::Arc<T>>>,
}

impl<T, F, Fut> Lazy<T, F>
where
    T: BleTransport,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, BleError>> + Send,
{
    pub fn new(make: F) -> Self {
        Lazy {
            make,
            made: tokio::sync::Mutex::new(None),
        }
    }

    async fn get(&self) -> Result<std::sync::Arc<T>, BleError> {
        let mut made = self.made.lock().await;
        if let Some(transport) = &*made {
            return Ok(transport.clone());
        }
        let transport = std::sync::Arc::new((self.make)().await?);
        *made = Some(transport.clone());
        Ok(transport)
    }

    /// Forgets the transport when Bluetooth itself went away, so the next use makes it again.
    async fn check<R>(&self, result: Result<R, BleError>) -> Result<R, BleError> {
        if let Err(BleError::NoBluez(_) | BleError::NoAdapter) = &result {
            *self.made.lock().await = None;
        }
        result
    }
}

impl<T, F, Fut> BleTransport for Lazy<T, F>
where
    T: BleTransport,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, BleError>> + Send,
{
    type Connection = T::Connection;

    async fn scan(&self, duration: Duration) -> Result<Vec<Advertisement>, BleError> {
        let result = self.get().await?.scan(duration).await;
        self.check(result).await
    }

    async fn connect(
        &self,
        target: &BleTarget,
        timeout: Duration,
    ) -> Result<Self::Connection, BleError> {
        let result = self.get().await?.connect(target, timeout).await;
        self.check(result).await
    }
}
