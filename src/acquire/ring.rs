//! One lock-free SPSC ring per device between its driver and the engine task.
//!
//! A full ring never blocks a driver: the newest message is dropped and counted (a lock-free
//! split ring cannot evict the oldest), and the engine turns the count into a technical alarm.
//! Every push wakes the engine through one shared `Notify`, so the engine sleeps until there
//! is something to drain and never polls.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use tokio::sync::Notify;

use crate::vitals::{DeviceId, DeviceMessage};

/// The driver's end.
pub struct RingProducer {
    ring: HeapProd<DeviceMessage>,
    dropped: Arc<AtomicU64>,
    wake: Arc<Notify>,
}

/// The engine's end.
pub struct RingConsumer {
    pub device: DeviceId,
    ring: HeapCons<DeviceMessage>,
    dropped: Arc<AtomicU64>,
    capacity: usize,
}

/// A ring of `capacity` messages for `device`; pushes wake `wake`.
pub fn ring(device: DeviceId, capacity: usize, wake: Arc<Notify>) -> (RingProducer, RingConsumer) {
    let capacity = capacity.max(1);
    let (producer, consumer) = HeapRb::<DeviceMessage>::new(capacity).split();
    let dropped = Arc::new(AtomicU64::new(0));
    (
        RingProducer {
            ring: producer,
            dropped: dropped.clone(),
            wake,
        },
        RingConsumer {
            device,
            ring: consumer,
            dropped,
            capacity,
        },
    )
}

impl RingProducer {
    /// Queues `message` for the engine. Returns false if the ring was full and it was dropped.
    pub fn push(&mut self, message: DeviceMessage) -> bool {
        let pushed = self.ring.try_push(message).is_ok();
        if !pushed {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        // Wake even on a drop: the engine must see the new drop count.
        self.wake.notify_one();
        pushed
    }
}

impl RingConsumer {
    pub fn pop(&mut self) -> Option<DeviceMessage> {
        self.ring.try_pop()
    }

    /// Messages dropped because the ring was full, since the ring was made.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// How full the ring is, 0 to 1.
    pub fn fill_ratio(&self) -> f64 {
        self.ring.occupied_len() as f64 / self.capacity as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vitals::{LinkState, Mono};

    fn message(device: &DeviceId) -> DeviceMessage {
        DeviceMessage::Link {
            device: device.clone(),
            state: LinkState::Connected,
            detail: None,
            at: Mono::ZERO,
            at_utc: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_full_ring_drops_the_newest_counts_it_and_still_wakes_the_engine() {
        let wake = Arc::new(Notify::new());
        let device = DeviceId::new("ox1");
        let (mut producer, mut consumer) = ring(device.clone(), 4, wake.clone());
        let pushed: Vec<bool> = (0..10).map(|_| producer.push(message(&device))).collect();
        assert_eq!(
            pushed,
            [
                true, true, true, true, false, false, false, false, false, false
            ]
        );
        assert_eq!(consumer.dropped(), 6);
        assert_eq!(consumer.fill_ratio(), 1.0);
        // The stored permit means the engine does not miss the wake-up.
        tokio::time::timeout(std::time::Duration::from_secs(1), wake.notified())
            .await
            .expect("a push must wake the engine");
        let mut drained = 0;
        while consumer.pop().is_some() {
            drained += 1;
        }
        assert_eq!(drained, 4);
        assert_eq!(consumer.fill_ratio(), 0.0);
    }

    #[test]
    fn the_ring_works_across_threads() {
        let wake = Arc::new(Notify::new());
        let device = DeviceId::new("ox1");
        let (mut producer, mut consumer) = ring(device.clone(), 64, wake);
        let writer = std::thread::spawn(move || {
            let mut sent = 0;
            while sent < 1000 {
                if producer.push(message(&device)) {
                    sent += 1;
                }
            }
            producer
        });
        let mut received = 0;
        while received < 1000 {
            if consumer.pop().is_some() {
                received += 1;
            }
        }
        let producer = writer.join().unwrap();
        drop(producer);
        assert_eq!(received, 1000);
    }
}
