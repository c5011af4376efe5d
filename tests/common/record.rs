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

/// How far back a SIGKILL may lose what the event stream showed, asked of the daemon just
/// before the kill: the documented 1 s, or longer while its recorder trails (a disk slower
/// than the batch window), by as much as its `vitalwatch_recorder_lag_seconds` then said.
/// Whatever was queued before the scrape minus that lag was committed, so this holds the
/// daemon to its lag metric as well as to its 1 s.
pub struct LossWindow {
    asked: std::time::Instant,
    lag: std::time::Duration,
}

/// The loss window the README and SAFETY.md promise while the disk keeps up.
pub const DOCUMENTED_LOSS_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

impl LossWindow {
    pub async fn ask(daemon: &super::Daemon) -> LossWindow {
        let asked = std::time::Instant::now();
        let metrics = daemon.get_text("/metrics").await;
        let lag = super::custom_harness::metric(&metrics, "vitalwatch_recorder_lag_seconds")
            .first()
            .map(|(_, seconds)| std::time::Duration::from_secs_f64(*seconds))
            .expect("vitalwatch_recorder_lag_seconds in /metrics");
        LossWindow { asked, lag }
    }

    /// The window for a kill at `killed`.
    pub fn at(&self, killed: std::time::Instant) -> std::time::Duration {
        DOCUMENTED_LOSS_WINDOW.max(self.lag + killed.duration_since(self.asked))
    }

    /// The readings of `seen` (each with when the test saw it) that a kill at `killed` must
    /// not lose.
    pub fn must_have<'a>(
        &self,
        seen: &'a [(std::time::Instant, ReadingKey)],
        killed: std::time::Instant,
    ) -> Vec<&'a ReadingKey> {
        let window = self.at(killed);
        if window > DOCUMENTED_LOSS_WINDOW {
            eprintln!(
                "the recorder trailed by {:.3} s before the kill: the loss window is {:.3} s",
                self.lag.as_secs_f64(),
                window.as_secs_f64()
            );
        }
        seen.iter()
            .filter(|(at, _)| killed.duration_since(*at) > window)
            .map(|(_, key)| key)
            .collect()
    }
}
