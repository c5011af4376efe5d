//! The connection state machine against an in-memory fake peripheral, in virtual time.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::*;
use crate::acquire::ble::{Advertisement, Notification};
use crate::acquire::decode::Sample;
use crate::acquire::ring::{RingConsumer, ring};
use crate::vitals::{DeviceMessage, Quality, Vital};

const MEASUREMENT: Uuid = sig_uuid(0xFFF1);
const FEATURES: Uuid = sig_uuid(0xFFF2);
const REQUEST: Uuid = sig_uuid(0xFFF3);
const SERVICE: Uuid = sig_uuid(0xFFF0);

#[derive(Default)]
struct FakeState {
    /// Why connecting fails, if it does (the peripheral is away, Bluetooth is down...).
    refuse: Option<BleError>,
    characteristics: Vec<CharacteristicInfo>,
    values: HashMap<Uuid, Vec<u8>>,
    writes: Vec<(Uuid, Vec<u8>)>,
    subscribed: Vec<Uuid>,
    /// The live link's notification channel; dropping it ends the driver's stream.
    link: Option<mpsc::UnboundedSender<Notification>>,
    connects: usize,
}

/// The test's handle on the fake peripheral.
#[derive(Clone, Default)]
struct FakePeripheral(Arc<Mutex<FakeState>>);

impl FakePeripheral {
    fn with(characteristics: Vec<CharacteristicInfo>) -> Self {
        let peripheral = FakePeripheral::default();
        peripheral.state().characteristics = characteristics;
        peripheral
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notifies `bytes` if connected and subscribed; says whether it was sent.
    fn notify(&self, characteristic: Uuid, bytes: &[u8]) -> bool {
        let state = self.state();
        match &state.link {
            Some(link) if state.subscribed.contains(&characteristic) => link
                .send(Notification {
                    characteristic,
                    value: bytes.to_vec(),
                })
                .is_ok(),
            _ => false,
        }
    }

    /// The peripheral walks out of range.
    fn drop_link(&self) {
        let mut state = self.state();
        state.link = None;
        state.subscribed.clear();
    }

    fn refuse(&self, why: Option<BleError>) {
        self.state().refuse = why;
    }
}

struct FakeTransport(FakePeripheral);

struct FakeConnection {
    peripheral: FakePeripheral,
    stream: Mutex<Option<mpsc::UnboundedReceiver<Notification>>>,
}

impl BleTransport for FakeTransport {
    type Connection = FakeConnection;

    async fn scan(&self, _duration: Duration) -> Result<Vec<Advertisement>, BleError> {
        Ok(Vec::new())
    }

    async fn connect(
        &self,
        target: &BleTarget,
        timeout: Duration,
    ) -> Result<FakeConnection, BleError> {
        let refused = self.0.state().refuse.clone();
        match refused {
            Some(BleError::NotFound(_)) => {
                // Not found takes the whole scan.
                tokio::time::sleep(timeout).await;
                Err(BleError::NotFound(target.to_string()))
            }
            Some(error) => Err(error),
            None => {
                let (sender, receiver) = mpsc::unbounded_channel();
                let mut state = self.0.state();
                state.link = Some(sender);
                state.connects += 1;
                Ok(FakeConnection {
                    peripheral: self.0.clone(),
                    stream: Mutex::new(Some(receiver)),
                })
            }
        }
    }
}

impl BleConnection for FakeConnection {
    fn characteristics(&self) -> Vec<CharacteristicInfo> {
        self.peripheral.state().characteristics.clone()
    }

    async fn read(&self, characteristic: Uuid) -> Result<Vec<u8>, BleError> {
        self.peripheral
            .state()
            .values
            .get(&characteristic)
            .cloned()
            .ok_or(BleError::NoCharacteristic(characteristic))
    }

    async fn write(&self, characteristic: Uuid, bytes: &[u8]) -> Result<(), BleError> {
        let mut state = self.peripheral.state();
        if state.link.is_none() {
            return Err(BleError::Other("not connected".into()));
        }
        state.writes.push((characteristic, bytes.to_vec()));
        Ok(())
    }

    async fn subscribe(&self, characteristic: Uuid) -> Result<(), BleError> {
        self.peripheral.state().subscribed.push(characteristic);
        Ok(())
    }

    async fn notifications(
        &self,
    ) -> Result<futures_util::stream::BoxStream<'static, Notification>, BleError> {
        let receiver = self
            .stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .ok_or(BleError::Other("notifications taken twice".into()))?;
        Ok(UnboundedReceiverStream::new(receiver).boxed())
    }

    async fn disconnect(&self) {
        self.peripheral.drop_link();
    }
}

fn characteristic(uuid: Uuid, read: bool, notify: bool) -> CharacteristicInfo {
    CharacteristicInfo {
        service: SERVICE,
        uuid,
        read,
        write: uuid == REQUEST,
        notify,
        indicate: false,
    }
}

/// Each notified byte is an SpO2 value; the features seen are kept for the test.
struct ByteIsSpo2(Arc<Mutex<Vec<Vec<u8>>>>);

impl PayloadDecoder for ByteIsSpo2 {
    fn payload(&mut self, bytes: &[u8], out: &mut Vec<Decoded>) {
        for &b in bytes {
            out.push(Decoded::Sample(Sample {
                values: vec![(Vital::Spo2, Some(f64::from(b)))],
                quality: Quality::GOOD,
                device_time: None,
            }));
        }
    }

    fn features(&mut self, bytes: &[u8]) {
        if let Ok(mut seen) = self.0.lock() {
            seen.push(bytes.to_vec());
        }
    }
}

struct Harness {
    peripheral: FakePeripheral,
    consumer: RingConsumer,
    features_seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

fn start(peripheral: FakePeripheral, poll: Option<Poll>, per_measurement: bool) -> Harness {
    let features_seen = Arc::new(Mutex::new(Vec::new()));
    let seen = features_seen.clone();
    let plan = Box::new(move || Plan {
        channels: vec![Channel {
            characteristic: MEASUREMENT,
            required: true,
            decoder: Box::new(ByteIsSpo2(seen.clone())),
        }],
        features: Some(FEATURES),
        poll: poll.clone(),
    });
    let mut harness = start_plan(peripheral, plan, per_measurement);
    harness.features_seen = features_seen;
    harness
}

fn start_plan(
    peripheral: FakePeripheral,
    plan: Box<dyn Fn() -> Plan + Send + Sync>,
    per_measurement: bool,
) -> Harness {
    let device = BleDevice {
        id: DeviceId::new("ox"),
        target: BleTarget {
            address: Some("AA:BB:CC:DD:EE:01".into()),
            name: None,
            service: Some(SERVICE),
        },
        plan,
        reconnect_after_silence: Duration::from_secs(20),
        connects_per_measurement: per_measurement,
    };
    let (producer, consumer) = ring(
        DeviceId::new("ox"),
        64,
        Arc::new(tokio::sync::Notify::new()),
    );
    tokio::spawn(device.run(
        Arc::new(FakeTransport(peripheral.clone())),
        producer,
        Clock::start(1.0),
    ));
    Harness {
        peripheral,
        consumer,
        features_seen: Arc::default(),
    }
}

/// An oximeter offering the measurement, features and battery characteristics.
fn oximeter() -> FakePeripheral {
    let peripheral = FakePeripheral::with(vec![
        characteristic(MEASUREMENT, false, true),
        characteristic(FEATURES, true, false),
        characteristic(BATTERY_LEVEL, true, false),
    ]);
    {
        let mut state = peripheral.state();
        state.values.insert(FEATURES, vec![0x03, 0x00]);
        state.values.insert(BATTERY_LEVEL, vec![87]);
    }
    peripheral
}

impl Harness {
    /// The next message the driver pushed, waiting up to `within` of virtual time.
    async fn next(&mut self, within: Duration) -> Option<DeviceMessage> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(message) = self.consumer.pop() {
                return Some(message);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn expect_link(&mut self, state: LinkState, within: Duration) -> String {
        match self.next(within).await {
            Some(DeviceMessage::Link {
                state: got, detail, ..
            }) if got == state => detail.unwrap_or_default(),
            other => panic!("expected link {state:?}, got {other:?}"),
        }
    }

    async fn expect_spo2(&mut self, value: f64) {
        match self.next(Duration::from_secs(1)).await {
            Some(DeviceMessage::Readings(readings)) => {
                assert_eq!(readings.len(), 1);
                assert_eq!(readings[0].vital, Vital::Spo2);
                assert_eq!(readings[0].value, Some(value));
                assert_eq!(readings[0].device, DeviceId::new("ox"));
            }
            other => panic!("expected an SpO2 reading, got {other:?}"),
        }
    }

    /// Notifies once the driver has subscribed again.
    async fn notify_when_subscribed(&self, bytes: &[u8]) {
        for _ in 0..1000 {
            if self.peripheral.notify(MEASUREMENT, bytes) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the driver never subscribed");
    }
}

const SOON: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn readings_flow_once_connected_and_the_link_names_the_battery() {
    let mut h = start(oximeter(), None, false);
    let detail = h.expect_link(LinkState::Connected, SOON).await;
    assert_eq!(
        detail,
        "connected to device AA:BB:CC:DD:EE:01, battery 87 %"
    );
    h.notify_when_subscribed(&[97, 96]).await;
    h.expect_spo2(97.0).await;
    h.expect_spo2(96.0).await;
    // The features were read once and handed to the decoder.
    assert_eq!(*h.features_seen.lock().unwrap(), vec![vec![0x03, 0x00]]);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_link_is_reported_lost_and_reconnection_restores_the_flow() {
    let mut h = start(oximeter(), None, false);
    h.expect_link(LinkState::Connected, SOON).await;
    h.notify_when_subscribed(&[95]).await;
    h.expect_spo2(95.0).await;

    h.peripheral.drop_link();
    assert_eq!(h.expect_link(LinkState::Lost, SOON).await, "link lost");
    // Nothing arrives while the link is down.
    assert!(!h.peripheral.notify(MEASUREMENT, &[1]));

    // The first retry comes after the first backoff step.
    let before = tokio::time::Instant::now();
    h.expect_link(LinkState::Connected, Duration::from_secs(5))
        .await;
    assert!(before.elapsed() >= BACKOFF_FIRST);
    h.notify_when_subscribed(&[94]).await;
    h.expect_spo2(94.0).await;
    assert_eq!(h.peripheral.state().connects, 2);
}

#[tokio::test(start_paused = true)]
async fn a_link_that_goes_quiet_is_dropped_and_made_again() {
    let mut h = start(oximeter(), None, false);
    h.expect_link(LinkState::Connected, SOON).await;
    let detail = h
        .expect_link(LinkState::Lost, Duration::from_secs(21))
        .await;
    assert_eq!(detail, "no data for 20 s");
    h.expect_link(LinkState::Connected, Duration::from_secs(5))
        .await;
}

#[tokio::test(start_paused = true)]
async fn bluetooth_unavailable_is_one_lost_link_until_it_comes_back() {
    let peripheral = oximeter();
    peripheral.refuse(Some(BleError::NoAdapter));
    let mut h = start(peripheral, None, false);
    let detail = h.expect_link(LinkState::Lost, SOON).await;
    assert_eq!(detail, BleError::NoAdapter.to_string());
    // Retried with backoff, but reported once.
    assert!(h.next(Duration::from_secs(60)).await.is_none());
    h.peripheral.refuse(None);
    h.expect_link(LinkState::Connected, Duration::from_secs(16))
        .await;
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_while_the_device_refuses_and_each_new_reason_is_reported() {
    let peripheral = oximeter();
    peripheral.refuse(Some(BleError::Other("le-connection-abort-by-local".into())));
    let mut h = start(peripheral, None, false);
    h.expect_link(LinkState::Lost, SOON).await;
    h.peripheral
        .refuse(Some(BleError::NotFound("device AA:BB:CC:DD:EE:01".into())));
    let detail = h
        .expect_link(LinkState::Lost, Duration::from_secs(30))
        .await;
    assert!(detail.contains("not found"), "{detail}");
}

#[tokio::test(start_paused = true)]
async fn a_device_without_the_required_characteristic_is_a_lost_link_that_says_so() {
    let peripheral = FakePeripheral::with(vec![characteristic(FEATURES, true, false)]);
    let mut h = start(peripheral, None, false);
    let detail = h.expect_link(LinkState::Lost, SOON).await;
    assert_eq!(detail, BleError::NoCharacteristic(MEASUREMENT).to_string());
}

#[tokio::test(start_paused = true)]
async fn a_polled_device_is_asked_at_once_and_then_at_each_interval() {
    let mut peripheral = oximeter();
    peripheral = {
        peripheral
            .state()
            .characteristics
            .push(characteristic(REQUEST, false, false));
        peripheral
    };
    let poll = Poll {
        characteristic: REQUEST,
        bytes: vec![0xAA, 0x17],
        every: Duration::from_secs(2),
    };
    let mut h = start(peripheral, Some(poll), false);
    h.expect_link(LinkState::Connected, SOON).await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let writes = h.peripheral.state().writes.clone();
    assert_eq!(writes.len(), 3, "{writes:?}");
    assert!(
        writes
            .iter()
            .all(|(uuid, bytes)| *uuid == REQUEST && bytes == &[0xAA, 0x17])
    );
}

#[tokio::test(start_paused = true)]
async fn a_cuff_that_connects_per_measurement_is_idle_between_links_but_lost_without_bluetooth() {
    let mut h = start(oximeter(), None, true);
    h.expect_link(LinkState::Connected, SOON).await;
    h.peripheral.drop_link();
    assert_eq!(h.expect_link(LinkState::Idle, SOON).await, "link lost");
    h.peripheral
        .refuse(Some(BleError::NotFound("device AA:BB:CC:DD:EE:01".into())));
    // Away between measurements: still idle (the BP schedule judges its silence).
    let detail = h
        .expect_link(LinkState::Idle, Duration::from_secs(30))
        .await;
    assert!(detail.contains("not found"), "{detail}");
    h.peripheral
        .refuse(Some(BleError::NoBluez("no system bus".into())));
    h.expect_link(LinkState::Lost, Duration::from_secs(60))
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_transport_that_cannot_be_made_yet_is_made_when_bluetooth_comes_up() {
    let peripheral = oximeter();
    let attempts = Arc::new(Mutex::new(0));
    let counted = attempts.clone();
    let made = peripheral.clone();
    let transport = crate::acquire::ble::Lazy::new(move || {
        let counted = counted.clone();
        let made = made.clone();
        async move {
            let mut attempts = counted.lock().unwrap_or_else(|p| p.into_inner());
            *attempts += 1;
            if *attempts < 3 {
                Err(BleError::NoBluez("Failed to connect to socket".into()))
            } else {
                Ok(FakeTransport(made))
            }
        }
    });
    let device = BleDevice {
        id: DeviceId::new("ox"),
        target: BleTarget {
            address: Some("AA:BB:CC:DD:EE:01".into()),
            name: None,
            service: None,
        },
        plan: Box::new(|| Plan {
            channels: vec![Channel {
                characteristic: MEASUREMENT,
                required: true,
                decoder: Box::new(ByteIsSpo2(Arc::default())),
            }],
            features: None,
            poll: None,
        }),
        reconnect_after_silence: Duration::from_secs(20),
        connects_per_measurement: false,
    };
    let (producer, consumer) = ring(
        DeviceId::new("ox"),
        64,
        Arc::new(tokio::sync::Notify::new()),
    );
    tokio::spawn(device.run(Arc::new(transport), producer, Clock::start(1.0)));
    let mut h = Harness {
        peripheral,
        consumer,
        features_seen: Arc::default(),
    };
    let detail = h.expect_link(LinkState::Lost, SOON).await;
    assert!(
        detail.starts_with("Bluetooth LE is unavailable"),
        "{detail}"
    );
    h.expect_link(LinkState::Connected, Duration::from_secs(5))
        .await;
    assert_eq!(*attempts.lock().unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_cuffs_indication_arrives_as_one_bp_measurement_with_its_pulse() {
    use crate::acquire::ble::protocol::BleProtocol;
    let bpm = sig_uuid(0x2A35);
    let icp = sig_uuid(0x2A36);
    let peripheral = FakePeripheral::with(vec![
        CharacteristicInfo {
            indicate: true,
            ..characteristic(bpm, false, false)
        },
        characteristic(icp, false, true),
    ]);
    let mut h = start_plan(
        peripheral,
        Box::new(|| BleProtocol::BloodPressure.plan()),
        true,
    );
    h.expect_link(LinkState::Connected, SOON).await;
    // Cuff pressure while inflating: no reading.
    for _ in 0..1000 {
        if h.peripheral.notify(icp, &[0x00, 0xD7, 0xF0, 0, 0, 0, 0]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // 120/80/90 mmHg, pulse 72 (flags: pulse).
    assert!(
        h.peripheral
            .notify(bpm, &[0x04, 0x78, 0x00, 0x50, 0x00, 0x5A, 0x00, 0x48, 0x00])
    );
    match h.next(SOON).await {
        Some(DeviceMessage::Readings(readings)) => {
            let values: Vec<_> = readings.iter().map(|r| (r.vital, r.value)).collect();
            assert_eq!(
                values,
                [
                    (Vital::Systolic, Some(120.0)),
                    (Vital::Diastolic, Some(80.0)),
                    (Vital::MeanArterial, Some(90.0)),
                    (Vital::PulseRate, Some(72.0)),
                ]
            );
            // One measurement: one receive time.
            assert!(readings.iter().all(|r| r.received == readings[0].received));
        }
        other => panic!("expected one BP measurement, got {other:?}"),
    }
    assert!(h.next(SOON).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_pulse_oximeter_is_read_through_its_features_and_flags_a_disconnected_sensor() {
    use crate::acquire::ble::protocol::BleProtocol;
    let continuous = sig_uuid(0x2A5F);
    let features = sig_uuid(0x2A60);
    let peripheral = FakePeripheral::with(vec![
        characteristic(continuous, false, true),
        characteristic(features, true, false),
    ]);
    // Measurement status and device-and-sensor status supported, every bit.
    peripheral
        .state()
        .values
        .insert(features, vec![0x03, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0x00]);
    let mut h = start_plan(
        peripheral,
        Box::new(|| BleProtocol::PulseOximeter.plan()),
        false,
    );
    h.expect_link(LinkState::Connected, SOON).await;
    for _ in 0..1000 {
        if h.peripheral
            .notify(continuous, &[0x00, 0x61, 0x00, 0x48, 0x00])
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    match h.next(SOON).await {
        Some(DeviceMessage::Readings(readings)) => {
            assert_eq!(readings[0].value, Some(97.0));
            assert_eq!(readings[1].value, Some(72.0));
        }
        other => panic!("{other:?}"),
    }
    // protocols.md §3.4 vector 7: NaN values, sensor disconnected.
    assert!(h.peripheral.notify(
        continuous,
        &[0x0C, 0xFF, 0x07, 0xFF, 0x07, 0x00, 0x20, 0x00, 0x80, 0x00]
    ));
    match h.next(SOON).await {
        Some(DeviceMessage::Readings(readings)) => {
            assert!(readings.iter().all(|r| r.value.is_none()));
            assert!(
                readings
                    .iter()
                    .all(|r| r.quality.contains(Quality::SENSOR_OFF))
            );
        }
        other => panic!("{other:?}"),
    }
}
