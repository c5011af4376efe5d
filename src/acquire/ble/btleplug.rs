//! [`BleTransport`](super::BleTransport) over `btleplug` (BlueZ over D-Bus on Linux).

use btleplug::api::{Central, Manager as _};
use btleplug::platform::Manager;

use super::BleError;

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
