//! Bluetooth LE transport over `btleplug` (BlueZ over D-Bus on Linux).
//!
//! For now: whether BLE is usable here, so that a machine without an adapter or without BlueZ
//! gets a clear message rather than a crash. GATT decoders, the connection state machine and
//! reconnection come with the BLE-driver work. libdbus is vendored (see Cargo.toml), so the
//! build needs no system D-Bus library; at run time BlueZ and a system bus must be there.

use btleplug::api::{Central, Manager as _};
use btleplug::platform::Manager;

#[derive(Debug, thiserror::Error)]
pub enum BleError {
    #[error("Bluetooth LE is unavailable: cannot reach BlueZ over D-Bus ({0})")]
    NoBluez(String),
    #[error("Bluetooth LE is unavailable: no Bluetooth adapter found")]
    NoAdapter,
    #[error("Bluetooth LE error: {0}")]
    Other(String),
}

/// The Bluetooth adapters BlueZ offers, by their description.
pub async fn adapters() -> Result<Vec<String>, BleError> {
    let manager = Manager::new()
        .await
        .map_err(|e| BleError::NoBluez(e.to_string()))?;
    let adapters = manager
        .adapters()
        .await
        .map_err(|e| BleError::Other(e.to_string()))?;
    if adapters.is_empty() {
        return Err(BleError::NoAdapter);
    }
    let mut names = Vec::new();
    for adapter in adapters {
        names.push(
            adapter
                .adapter_info()
                .await
                .unwrap_or_else(|e| format!("adapter (no info: {e})")),
        );
    }
    Ok(names)
}
