//! Reading back what the real daemon recorded: its sessions and their readings, keyed as the
//! event stream shows them, so a test can check that what it saw live was kept.

use std::collections::HashSet;

use vitalwatch::recorder::{SessionKey, SessionSummary, Store, StoreError, StoredReading};

use super::SseEvent;

/// A reading as both the event stream and the store identify it: device, vital and its
/// receive time in microseconds (the store keeps microseconds).
pub type ReadingKey = (String, String, i64);

/// The reading an event-stream event carries, as a key; `None` for any other event.
pub fn reading_key(event: &SseEvent) -> Option<ReadingKey> {
    if event.name != "reading" {
        return None;
    }
    let time = event.data["time"]
        .as_str()?
        .parse::<chrono::DateTime<chrono::Utc>>()
        .ok()?;
    Some((
        event.data["device"].as_str()?.to_string(),
        event.data["vital"].as_str()?.to_string(),
        time.timestamp_micros(),
    ))
}

/// The recorded session `id` (the first if several share it); panics when there is none.
pub fn the_session(store: &Store, id: &str) -> SessionSummary {
    store
        .sessions()
        .expect("sessions")
        .into_iter()
        .find(|s| s.id.as_str() == id)
        .unwrap_or_else(|| panic!("session {id} is not recorded"))
}

/// Every recorded reading of `session`, in the order received.
pub fn recorded_readings(store: &Store, session: SessionKey) -> Vec<StoredReading> {
    let mut readings = Vec::new();
    store
        .readings(session, |reading| -> Result<(), StoreError> {
            readings.push(reading);
            Ok(())
        })
        .expect("readings");
    readings
}

/// The keys of every recorded reading of `session`.
pub fn recorded_keys(store: &Store, session: SessionKey) -> HashSet<ReadingKey> {
    recorded_readings(store, session)
        .into_iter()
        .map(|r| {
            (
                r.device.to_string(),
                r.vital.to_string(),
                r.received.timestamp_micros(),
            )
        })
        .collect()
}
