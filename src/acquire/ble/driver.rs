//! The BLE connection state machine: find the peripheral, connect, read its features and
//! battery, subscribe, decode every notification into the ring, poll where the protocol needs
//! it, and reconnect with backoff when the link drops or goes quiet. Written against
//! [`BleTransport`], so its tests run on a fake peripheral in virtual time.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::{BleConnection, BleError, BleTarget, BleTransport, CharacteristicInfo, Uuid, sig_uuid};
use crate::acquire::decode::Decoded;
use crate::acquire::report::{Backoff, Reporter};
use crate::acquire::ring::RingProducer;
use crate::clock::Clock;
use crate::vitals::{DeviceId, LinkState};

/// Decodes the values one characteristic notifies.
pub trait PayloadDecoder: Send {
    /// One notified or indicated value (for a GATT characteristic a whole message; for a vendor
    /// "serial over BLE" stream, the next bytes of the stream).
    fn payload(&mut self, bytes: &[u8], out: &mut Vec<Decoded>);
    /// The device's features characteristic, read at connection (PLX: which status bits it
    /// supports). Decoders that have no use for it ignore it.
    fn features(&mut self, _bytes: &[u8]) {}
}

/// A characteristic to subscribe to, and its decoder.
pub struct Channel {
    pub characteristic: Uuid,
    /// The device is unusable without it (else it is used when offered).
    pub required: bool,
    pub decoder: Box<dyn PayloadDecoder>,
}

/// A request written periodically (devices that answer polls rather than stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    pub characteristic: Uuid,
    pub bytes: Vec<u8>,
    pub every: Duration,
}

/// What to do with a connected device of a given protocol.
pub struct Plan {
    /// At least one of these must be offered.
    pub channels: Vec<Channel>,
    /// Read at connection and handed to every channel's decoder.
    pub features: Option<Uuid>,
    pub poll: Option<Poll>,
}

/// Battery Level (0x2A19), read at connection where offered.
pub const BATTERY_LEVEL: Uuid = sig_uuid(0x2A19);

/// How long one attempt looks for the peripheral before it counts as not found.
pub const FIND_TIMEOUT: Duration = Duration::from_secs(20);
/// Reconnection backoff: 1 s doubling to 15 s (a patient's oximeter back in range should be
/// read again within seconds).
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(15);

/// A configured BLE device.
pub struct BleDevice {
    pub id: DeviceId,
    pub target: BleTarget,
    /// Builds the decoders afresh for every connection (a stream decoder must not carry a
    /// half frame from the last link into the next).
    pub plan: Box<dyn Fn() -> Plan + Send + Sync>,
    /// No notification for this long: the link is dropped and made again.
    pub reconnect_after_silence: Duration,
    /// The device connects only to send a measurement (a BLE cuff): between connections it is
    /// idle, not lost. Only Bluetooth itself being unavailable is reported as a lost link.
    pub connects_per_measurement: bool,
}

impl BleDevice {
    /// Keeps the device connected for ever; every link change goes through the ring, so the
    /// engine raises the technical alarms.
    pub async fn run<T: BleTransport>(self, transport: Arc<T>, ring: RingProducer, clock: Clock) {
        let mut report = Reporter::new(self.id.clone(), ring, clock);
        let mut backoff = Backoff::new(BACKOFF_FIRST, BACKOFF_MAX);
        let mut last_state: Option<(LinkState, String)> = None;
        loop {
            let (state, reason) = match transport.connect(&self.target, FIND_TIMEOUT).await {
                Ok(connection) => {
                    let started = tokio::time::Instant::now();
                    let reason = self.serve(&connection, &mut report).await;
                    connection.disconnect().await;
                    backoff.connection_ended(started.elapsed());
                    last_state = None;
                    (self.state_between_links(None), reason)
                }
                Err(error) => (self.state_between_links(Some(&error)), error.to_string()),
            };
            // One message per change, not one per attempt.
            if last_state.as_ref() != Some(&(state, reason.clone())) {
                if state == LinkState::Lost {
                    tracing::warn!(device = %self.id, target = %self.target, "{reason}");
                }
                report.link(state, reason.clone());
                last_state = Some((state, reason));
            }
            tokio::time::sleep(backoff.next_wait()).await;
        }
    }

    fn state_between_links(&self, error: Option<&BleError>) -> LinkState {
        let bluetooth_down = matches!(error, Some(BleError::NoBluez(_) | BleError::NoAdapter));
        if self.connects_per_measurement && !bluetooth_down {
            LinkState::Idle
        } else {
            LinkState::Lost
        }
    }

    /// One connection: returns why it ended.
    async fn serve<C: BleConnection>(&self, connection: &C, report: &mut Reporter) -> String {
        let Plan {
            mut channels,
            features,
            poll,
        } = (self.plan)();
        let offered = connection.characteristics();
        let find = |uuid: Uuid| offered.iter().find(|c| c.uuid == uuid).copied();
        let can_subscribe = |c: &CharacteristicInfo| c.notify || c.indicate;
        if let Some(missing) = channels
            .iter()
            .find(|ch| ch.required && !find(ch.characteristic).is_some_and(|c| can_subscribe(&c)))
        {
            return BleError::NoCharacteristic(missing.characteristic).to_string();
        }
        channels.retain(|ch| find(ch.characteristic).is_some_and(|c| can_subscribe(&c)));
        if channels.is_empty() {
            return "the device offers none of the profile's measurement characteristics"
                .to_string();
        }
        if let Some(uuid) = features.filter(|&uuid| find(uuid).is_some_and(|c| c.read)) {
            match connection.read(uuid).await {
                Ok(bytes) => {
                    for channel in &mut channels {
                        channel.decoder.features(&bytes);
                    }
                }
                // Without features every status bit is trusted: decoding goes on.
                Err(error) => {
                    tracing::warn!(device = %self.id, "cannot read the features: {error}")
                }
            }
        }
        let battery = match find(BATTERY_LEVEL).filter(|c| c.read) {
            Some(_) => match connection.read(BATTERY_LEVEL).await {
                Ok(bytes) => bytes.first().copied().filter(|&level| level <= 100),
                Err(_) => None,
            },
            None => None,
        };
        // The stream first, so nothing notified right after subscribing is missed.
        let mut notifications = match connection.notifications().await {
            Ok(stream) => stream,
            Err(error) => return format!("cannot receive notifications: {error}"),
        };
        let subscriptions: Vec<Uuid> = channels.iter().map(|ch| ch.characteristic).collect();
        for characteristic in subscriptions {
            if let Err(error) = connection.subscribe(characteristic).await {
                return format!("cannot subscribe to {characteristic}: {error}");
            }
        }
        let mut detail = format!("connected to {}", self.target);
        if let Some(level) = battery {
            detail.push_str(&format!(", battery {level} %"));
        }
        report.link(LinkState::Connected, detail);

        let poll_every = poll.as_ref().map(|p| p.every);
        let mut poll_timer = tokio::time::interval(poll_every.unwrap_or(Duration::from_secs(3600)));
        poll_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut decoded = Vec::new();
        loop {
            tokio::select! {
                next = tokio::time::timeout(self.reconnect_after_silence, notifications.next()) => {
                    let notification = match next {
                        Err(_) => return format!(
                            "no data for {} s",
                            self.reconnect_after_silence.as_secs_f64()
                        ),
                        Ok(None) => return "link lost".to_string(),
                        Ok(Some(notification)) => notification,
                    };
                    let Some(channel) = channels
                        .iter_mut()
                        .find(|ch| ch.characteristic == notification.characteristic)
                    else {
                        continue;
                    };
                    channel.decoder.payload(&notification.value, &mut decoded);
                    for item in decoded.drain(..) {
                        report.decoded(item);
                    }
                }
                // The first tick is at once: a polled device is asked straight away.
                _ = poll_timer.tick(), if poll_every.is_some() => {
                    if let Some(poll) = &poll
                        && let Err(error) = connection.write(poll.characteristic, &poll.bytes).await
                    {
                        return format!("cannot write the poll request: {error}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
