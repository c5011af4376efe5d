//! [`BleTransport`](super::BleTransport) over `btleplug` (BlueZ over D-Bus on Linux).
//!
//! How the BlueZ backend behaves, and what this module does about it:
//! - Every `btleplug::platform::Manager::new()` opens a system-bus connection whose I/O task
//!   runs until the bus closes it: dropping the manager does not close it. So one manager is
//!   shared by the whole process, and [`BtleplugTransport::new`] can be called again and again
//!   while BlueZ or the adapter is missing without leaking connections. When the bus itself
//!   goes away, calls on the old connection hang rather than fail: [`BtleplugTransport::new`]
//!   gives up after a few seconds (`NoBluez`), forgets that connection and opens a new one
//!   next time.
//! - btleplug's notification stream never ends, not even when the link drops. The stream
//!   [`BtleplugConnection::notifications`] returns ends at the adapter's `DeviceDisconnected`
//!   event for the peripheral (BlueZ's `Connected` property going false), with a poll of
//!   `Connected` every [`LINK_POLL`] as a safety net (BlueZ or the bus restarted, device
//!   removed): a poll unanswered within a few seconds counts as a lost link too.
//! - Dropping a notification stream after the bus died makes a bluez-async task panic (it
//!   unwraps the failed removal of its D-Bus match rule): tokio contains that panic in the
//!   task, but it shows in the log.
//! - BlueZ updates a characteristic's `Value` after a read too, and btleplug reports that like
//!   a notification: only values of subscribed characteristics are passed on.
//! - libdbus reads `DBUS_SYSTEM_BUS_ADDRESS` once per process, at its first system-bus
//!   connection (the tests run each mocked-BlueZ case in its own process).

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use btleplug::api::{
    Central, CentralEvent, CharPropFlags, Characteristic, Manager as _, Peripheral as _,
    ScanFilter, ValueNotification, WriteType,
};
use btleplug::platform::{Adapter, Manager, Peripheral, PeripheralId};
use futures_util::FutureExt;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use tokio::time::{Instant, MissedTickBehavior};

use super::{
    Advertisement, BleConnection, BleError, BleTarget, BleTransport, CharacteristicInfo,
    Notification, Uuid,
};

/// How long a D-Bus call that only reads BlueZ's state may take before BlueZ counts as
/// unresponsive.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting (including BlueZ's service discovery) may take. The kernel gives up on
/// an LE connection after 20 s by default.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a connection's notification stream also asks BlueZ whether the link is up.
pub const LINK_POLL: Duration = Duration::from_secs(3);
/// How often a scan for a target looks at every peripheral BlueZ knows again (BlueZ signals no
/// event when only a device's name changes).
const RESCAN_LOOK: Duration = Duration::from_secs(1);

type EventStream = Pin<Box<dyn Stream<Item = CentralEvent> + Send>>;
type ValueStream = Pin<Box<dyn Stream<Item = ValueNotification> + Send>>;

/// The process's BlueZ session, and a token that lives as long as the tokio runtime whose task
/// carries the session's D-Bus I/O.
struct SharedManager {
    manager: Manager,
    runtime_alive: Weak<()>,
}

static SHARED: tokio::sync::Mutex<Option<SharedManager>> = tokio::sync::Mutex::const_new(None);

/// The process's connection to BlueZ, opened at the first call. A session whose runtime is gone
/// is replaced.
async fn shared_manager() -> Result<Manager, BleError> {
    let mut shared = SHARED.lock().await;
    if let Some(current) = shared.as_ref()
        && current.runtime_alive.strong_count() > 0
    {
        return Ok(current.manager.clone());
    }
    let manager = Manager::new()
        .await
        .map_err(|e| BleError::NoBluez(describe(&e)))?;
    // Dropped with the runtime's tasks, so a later runtime knows this session's I/O is dead.
    let token = Arc::new(());
    let runtime_alive = Arc::downgrade(&token);
    tokio::spawn(async move {
        let _token = token;
        std::future::pending::<()>().await;
    });
    *shared = Some(SharedManager {
        manager: manager.clone(),
        runtime_alive,
    });
    Ok(manager)
}

/// Forgets the shared session (after it stopped answering), so the next call opens a new one.
async fn forget_shared_manager() {
    *SHARED.lock().await = None;
}

/// The Bluetooth adapters BlueZ offers, by their description (`hci0 (usb:…)`), sorted.
pub async fn adapters() -> Result<Vec<String>, BleError> {
    Ok(list_adapters()
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

async fn list_adapters() -> Result<Vec<(String, Adapter)>, BleError> {
    let manager = shared_manager().await?;
    let adapters = match tokio::time::timeout(QUERY_TIMEOUT, manager.adapters()).await {
        Ok(Ok(adapters)) => adapters,
        Ok(Err(e)) => {
            // BlueZ not (yet) on a working bus: keep the session, which reaches BlueZ once it
            // starts (a new one per attempt would leak a bus connection each time). Any other
            // failure is the session's own (the bus restarted and it cannot send): it never
            // recovers, so the next call opens a new one.
            let bluez_absent =
                dbus_error_name(&e).as_deref() == Some("org.freedesktop.DBus.Error.ServiceUnknown");
            if !bluez_absent {
                forget_shared_manager().await;
            }
            return Err(BleError::NoBluez(describe(&e)));
        }
        Err(_) => {
            forget_shared_manager().await;
            return Err(BleError::NoBluez(format!(
                "no answer from BlueZ within {QUERY_TIMEOUT:?}"
            )));
        }
    };
    let mut named = Vec::new();
    for adapter in adapters {
        let name = match tokio::time::timeout(QUERY_TIMEOUT, adapter.adapter_info()).await {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => format!("adapter (no info: {})", describe(&e)),
            Err(_) => "adapter (no info: BlueZ did not answer)".to_string(),
        };
        named.push((name, adapter));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(named)
}

/// The D-Bus error name inside a btleplug error, when it is one BlueZ (or the bus) returned.
fn dbus_error_name(error: &btleplug::Error) -> Option<String> {
    match error {
        btleplug::Error::Other(inner) => {
            match inner.downcast_ref::<bluez_async::BluetoothError>() {
                Some(bluez_async::BluetoothError::DbusError(e)) => e.name().map(str::to_string),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A btleplug error as a readable message: D-Bus errors show their name as well, which their
/// `Display` leaves out.
fn describe(error: &btleplug::Error) -> String {
    if let btleplug::Error::Other(inner) = error
        && let Some(bluez_async::BluetoothError::DbusError(e)) =
            inner.downcast_ref::<bluez_async::BluetoothError>()
    {
        return match (e.message(), e.name()) {
            (Some(message), Some(name)) => format!("{message} ({name})"),
            (None, Some(name)) => name.to_string(),
            (Some(message), None) => message.to_string(),
            (None, None) => "unnamed D-Bus error".to_string(),
        };
    }
    error.to_string()
}

/// `error` from doing `what`: BlueZ or the bus gone is [`BleError::NoBluez`] (the transport
/// should be made again), anything else [`BleError::Other`].
fn map_error(what: &str, error: &btleplug::Error) -> BleError {
    let gone = matches!(
        dbus_error_name(error).as_deref(),
        Some(
            "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner"
                | "org.freedesktop.DBus.Error.Disconnected"
                | "org.freedesktop.DBus.Error.NoReply"
        )
    );
    if gone {
        BleError::NoBluez(format!("{what}: {}", describe(error)))
    } else {
        BleError::Other(format!("{what}: {}", describe(error)))
    }
}

/// `error` from an operation on the adapter: the adapter's object gone (unplugged, or BlueZ
/// restarted without it) is [`BleError::NoAdapter`], else as [`map_error`].
fn map_adapter_error(what: &str, error: &btleplug::Error) -> BleError {
    match dbus_error_name(error).as_deref() {
        Some(
            "org.freedesktop.DBus.Error.UnknownObject" | "org.freedesktop.DBus.Error.UnknownMethod",
        ) => BleError::NoAdapter,
        _ => map_error(what, error),
    }
}

/// How well a peripheral matches a [`BleTarget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Match {
    No,
    /// Address and/or name match; whether it offers the service is known after connecting.
    Identity,
    Full,
}

fn match_target(target: &BleTarget, address: &str, name: Option<&str>, services: &[Uuid]) -> Match {
    if let Some(wanted) = &target.address
        && !wanted.eq_ignore_ascii_case(address)
    {
        return Match::No;
    }
    if let Some(wanted) = &target.name
        && name != Some(wanted.as_str())
    {
        return Match::No;
    }
    match target.service {
        None => Match::Full,
        Some(service) if services.contains(&service) => Match::Full,
        // BlueZ may learn a device's services only by connecting to it.
        Some(_) if target.address.is_some() || target.name.is_some() => Match::Identity,
        Some(_) => Match::No,
    }
}

async fn advertisement(peripheral: &Peripheral) -> Option<Advertisement> {
    let properties = tokio::time::timeout(QUERY_TIMEOUT, peripheral.properties())
        .await
        .ok()?
        .ok()??;
    Some(Advertisement {
        address: properties.address.to_string().to_ascii_uppercase(),
        name: properties.local_name,
        rssi: properties.rssi,
        services: properties.services,
    })
}

/// The BLE transport over BlueZ: one adapter (the first, by name).
///
/// Cheap to make again: it shares the process's D-Bus connection to BlueZ. When
/// [`BleError::NoBluez`] or [`BleError::NoAdapter`] comes back, from here or from a scan or
/// connect, make a new one later.
#[derive(Clone)]
pub struct BtleplugTransport {
    adapter: Adapter,
    adapter_name: String,
    /// How many scans (from `scan` or `connect`) are under way: BlueZ discovery is one per
    /// D-Bus client, started by the first and stopped by the last.
    scans: Arc<tokio::sync::Mutex<usize>>,
}

impl std::fmt::Debug for BtleplugTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BtleplugTransport")
            .field("adapter", &self.adapter_name)
            .finish()
    }
}

impl BtleplugTransport {
    /// Reaches BlueZ over the system bus and takes its first adapter. No system bus or no BlueZ
    /// on it: [`BleError::NoBluez`]; no adapter: [`BleError::NoAdapter`].
    pub async fn new() -> Result<Self, BleError> {
        let (adapter_name, adapter) = list_adapters()
            .await?
            .into_iter()
            .next()
            .ok_or(BleError::NoAdapter)?;
        Ok(BtleplugTransport {
            adapter,
            adapter_name,
            scans: Arc::new(tokio::sync::Mutex::new(0)),
        })
    }

    /// The adapter in use, as BlueZ describes it (`hci0 (usb:…)`).
    pub fn adapter_name(&self) -> &str {
        &self.adapter_name
    }

    async fn start_scan(&self) -> Result<ScanGuard, BleError> {
        let mut scans = self.scans.lock().await;
        if *scans == 0 {
            match self.adapter.start_scan(ScanFilter::default()).await {
                Ok(()) => {}
                Err(e) if dbus_error_name(&e).as_deref() == Some("org.bluez.Error.InProgress") => {}
                Err(e) => return Err(map_adapter_error("cannot start scanning", &e)),
            }
        }
        *scans += 1;
        Ok(ScanGuard {
            adapter: self.adapter.clone(),
            scans: self.scans.clone(),
            stopped: false,
        })
    }

    /// Every peripheral BlueZ knows on this adapter, with how it advertised.
    async fn known(&self) -> Result<Vec<(Peripheral, Advertisement)>, BleError> {
        let peripherals = tokio::time::timeout(QUERY_TIMEOUT, self.adapter.peripherals())
            .await
            .map_err(|_| {
                BleError::NoBluez(format!("no answer from BlueZ within {QUERY_TIMEOUT:?}"))
            })?
            .map_err(|e| map_adapter_error("cannot list peripherals", &e))?;
        let mut known = Vec::new();
        for peripheral in peripherals {
            // A device removed meanwhile has no properties: skip it.
            if let Some(advertisement) = advertisement(&peripheral).await {
                known.push((peripheral, advertisement));
            }
        }
        Ok(known)
    }

    /// The known peripheral matching `target` best (then the strongest signal).
    async fn find_known(
        &self,
        target: &BleTarget,
    ) -> Result<Option<(Peripheral, Match)>, BleError> {
        let best = self
            .known()
            .await?
            .into_iter()
            .map(|(peripheral, ad)| {
                let rank = match_target(target, &ad.address, ad.name.as_deref(), &ad.services);
                (rank, ad.rssi.unwrap_or(i16::MIN), peripheral)
            })
            .filter(|(rank, _, _)| *rank != Match::No)
            .max_by_key(|(rank, rssi, _)| (*rank, *rssi));
        Ok(best.map(|(rank, _, peripheral)| (peripheral, rank)))
    }

    /// How `id` (from an event) matches `target`.
    async fn check(&self, id: &PeripheralId, target: &BleTarget) -> Option<(Peripheral, Match)> {
        let peripheral = tokio::time::timeout(QUERY_TIMEOUT, self.adapter.peripheral(id))
            .await
            .ok()?
            .ok()?;
        let ad = advertisement(&peripheral).await?;
        match match_target(target, &ad.address, ad.name.as_deref(), &ad.services) {
            Match::No => None,
            rank => Some((peripheral, rank)),
        }
    }

    /// Scans until a peripheral matching `target` shows up, or `deadline`.
    async fn scan_for(
        &self,
        target: &BleTarget,
        deadline: Instant,
    ) -> Result<(Peripheral, Match), BleError> {
        // Listen first, so a device appearing while the scan starts is not missed.
        let mut events = self
            .adapter
            .events()
            .await
            .map_err(|e| map_adapter_error("cannot follow BlueZ events", &e))?;
        let scan = self.start_scan().await?;
        let search = async {
            let mut look = tokio::time::interval(RESCAN_LOOK);
            look.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    event = events.next() => {
                        let id = match event {
                            Some(CentralEvent::DeviceDiscovered(id))
                            | Some(CentralEvent::DeviceUpdated(id))
                            | Some(CentralEvent::ServicesAdvertisement { id, .. }) => id,
                            Some(_) => continue,
                            None => {
                                return Err(BleError::NoBluez(
                                    "the D-Bus connection to BlueZ ended".to_string(),
                                ));
                            }
                        };
                        if let Some(found) = self.check(&id, target).await {
                            return Ok(found);
                        }
                    }
                    _ = look.tick() => {
                        if let Some(found) = self.find_known(target).await? {
                            return Ok(found);
                        }
                    }
                }
            }
        };
        let result = tokio::time::timeout_at(deadline, search).await;
        scan.stop().await;
        match result {
            Ok(found) => found,
            Err(_) => Err(BleError::NotFound(target.to_string())),
        }
    }

    /// Connects `peripheral` (found for `target`), discovers its services and checks that it
    /// offers what `target` names.
    async fn open(
        &self,
        peripheral: Peripheral,
        target: &BleTarget,
        rank: Match,
    ) -> Result<BtleplugConnection, BleError> {
        let what = target.to_string();
        let already = matches!(
            tokio::time::timeout(QUERY_TIMEOUT, peripheral.is_connected()).await,
            Ok(Ok(true))
        );
        if !already {
            match tokio::time::timeout(CONNECT_TIMEOUT, peripheral.connect()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    // Connected meanwhile (by another client, or BlueZ said AlreadyConnected)?
                    if !matches!(peripheral.is_connected().await, Ok(true)) {
                        return Err(map_error(&format!("cannot connect to {what}"), &e));
                    }
                }
                Err(_) => {
                    // Cancels BlueZ's pending connection attempt.
                    let _ = tokio::time::timeout(QUERY_TIMEOUT, peripheral.disconnect()).await;
                    return Err(BleError::Other(format!(
                        "cannot connect to {what}: no connection within {CONNECT_TIMEOUT:?}"
                    )));
                }
            }
        }
        let hang_up = async |peripheral: &Peripheral| {
            if !already {
                let _ = tokio::time::timeout(QUERY_TIMEOUT, peripheral.disconnect()).await;
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, peripheral.discover_services()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                hang_up(&peripheral).await;
                return Err(map_error(
                    &format!("connected to {what}, but service discovery failed"),
                    &e,
                ));
            }
            Err(_) => {
                hang_up(&peripheral).await;
                return Err(BleError::Other(format!(
                    "connected to {what}, but service discovery took over {CONNECT_TIMEOUT:?}"
                )));
            }
        }
        let services = peripheral.services();
        if let Some(service) = target.service
            && !services.iter().any(|s| s.uuid == service)
        {
            let offered: Vec<String> = services.iter().map(|s| s.uuid.to_string()).collect();
            tracing::warn!(
                target = %what,
                %service,
                offered = %offered.join(", "),
                "the peripheral does not offer the profile's service"
            );
            hang_up(&peripheral).await;
            return Err(BleError::NoService(service));
        }
        tracing::debug!(target = %what, ?rank, already, "connected");
        let characteristics: Vec<Characteristic> = services
            .iter()
            .flat_map(|s| s.characteristics.iter().cloned())
            .collect();
        let info = characteristics
            .iter()
            .map(|c| CharacteristicInfo {
                service: c.service_uuid,
                uuid: c.uuid,
                read: c.properties.contains(CharPropFlags::READ),
                write: c
                    .properties
                    .intersects(CharPropFlags::WRITE | CharPropFlags::WRITE_WITHOUT_RESPONSE),
                notify: c.properties.contains(CharPropFlags::NOTIFY),
                indicate: c.properties.contains(CharPropFlags::INDICATE),
            })
            .collect();
        Ok(BtleplugConnection {
            adapter: self.adapter.clone(),
            peripheral,
            what,
            characteristics,
            info,
            subscribed: Arc::new(Mutex::new(HashSet::new())),
        })
    }
}

/// One scan under way; [`ScanGuard::stop`] ends it (or dropping it, from a task).
struct ScanGuard {
    adapter: Adapter,
    scans: Arc<tokio::sync::Mutex<usize>>,
    stopped: bool,
}

impl ScanGuard {
    async fn stop(mut self) {
        self.stopped = true;
        end_scan(self.adapter.clone(), self.scans.clone()).await;
    }
}

impl Drop for ScanGuard {
    fn drop(&mut self) {
        // A scan whose future was dropped (cancelled connect) still ends.
        if !self.stopped
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(end_scan(self.adapter.clone(), self.scans.clone()));
        }
    }
}

async fn end_scan(adapter: Adapter, scans: Arc<tokio::sync::Mutex<usize>>) {
    let mut scans = scans.lock().await;
    *scans = scans.saturating_sub(1);
    if *scans == 0
        && let Ok(Err(e)) = tokio::time::timeout(QUERY_TIMEOUT, adapter.stop_scan()).await
    {
        tracing::debug!(error = %describe(&e), "stopping the scan");
    }
}

impl BleTransport for BtleplugTransport {
    type Connection = BtleplugConnection;

    async fn scan(&self, duration: Duration) -> Result<Vec<Advertisement>, BleError> {
        let scan = self.start_scan().await?;
        tokio::time::sleep(duration).await;
        let known = self.known().await;
        scan.stop().await;
        let mut advertisements: Vec<Advertisement> = known?.into_iter().map(|(_, ad)| ad).collect();
        advertisements.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(advertisements)
    }

    async fn connect(
        &self,
        target: &BleTarget,
        timeout: Duration,
    ) -> Result<BtleplugConnection, BleError> {
        let deadline = Instant::now() + timeout;
        let (peripheral, rank) = match self.find_known(target).await? {
            Some(found) => found,
            None => self.scan_for(target, deadline).await?,
        };
        self.open(peripheral, target, rank).await
    }
}

/// A connection made by [`BtleplugTransport`].
pub struct BtleplugConnection {
    adapter: Adapter,
    peripheral: Peripheral,
    /// The target, for messages.
    what: String,
    characteristics: Vec<Characteristic>,
    info: Vec<CharacteristicInfo>,
    /// Characteristics subscribed to: BlueZ reports reads of others like notifications.
    subscribed: Arc<Mutex<HashSet<Uuid>>>,
}

impl std::fmt::Debug for BtleplugConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BtleplugConnection")
            .field("peripheral", &self.what)
            .field("characteristics", &self.info)
            .finish()
    }
}

impl BtleplugConnection {
    fn characteristic(&self, uuid: Uuid) -> Result<&Characteristic, BleError> {
        self.characteristics
            .iter()
            .find(|c| c.uuid == uuid)
            .ok_or(BleError::NoCharacteristic(uuid))
    }
}

/// Ends when the link to `peripheral` is lost: its `DeviceDisconnected` event, BlueZ saying it
/// is not connected (asked at once, then every [`LINK_POLL`]), BlueZ not answering, or the
/// event stream ending (the bus connection is gone).
async fn link_lost(mut events: EventStream, peripheral: Peripheral) {
    let id = peripheral.id();
    let mut poll = tokio::time::interval(LINK_POLL);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(CentralEvent::DeviceDisconnected(gone)) if gone == id => return,
                Some(_) => {}
                None => return,
            },
            _ = poll.tick() => {
                if !matches!(
                    tokio::time::timeout(QUERY_TIMEOUT, peripheral.is_connected()).await,
                    Ok(Ok(true))
                ) {
                    return;
                }
            }
        }
    }
}

struct NotificationState {
    values: ValueStream,
    lost: Pin<Box<dyn Future<Output = ()> + Send>>,
    link_lost: bool,
    subscribed: Arc<Mutex<HashSet<Uuid>>>,
}

impl NotificationState {
    fn wanted(&self, value: &ValueNotification) -> bool {
        self.subscribed
            .lock()
            .map(|s| s.contains(&value.uuid))
            .unwrap_or_else(|poisoned| poisoned.into_inner().contains(&value.uuid))
    }

    /// The next value of a subscribed characteristic; `None` once the link is lost and every
    /// value that arrived before has been handed out.
    async fn next(&mut self) -> Option<Notification> {
        loop {
            let value = if self.link_lost {
                self.values.next().now_or_never()??
            } else {
                tokio::select! {
                    biased;
                    value = self.values.next() => value?,
                    () = &mut self.lost => {
                        self.link_lost = true;
                        continue;
                    }
                }
            };
            if self.wanted(&value) {
                return Some(Notification {
                    characteristic: value.uuid,
                    value: value.value,
                });
            }
        }
    }
}

impl BleConnection for BtleplugConnection {
    fn characteristics(&self) -> Vec<CharacteristicInfo> {
        self.info.clone()
    }

    async fn read(&self, characteristic: Uuid) -> Result<Vec<u8>, BleError> {
        let c = self.characteristic(characteristic)?;
        self.peripheral
            .read(c)
            .await
            .map_err(|e| map_error(&format!("reading {characteristic} of {}", self.what), &e))
    }

    async fn write(&self, characteristic: Uuid, bytes: &[u8]) -> Result<(), BleError> {
        let c = self.characteristic(characteristic)?;
        let write_type = if c.properties.contains(CharPropFlags::WRITE) {
            WriteType::WithResponse
        } else {
            WriteType::WithoutResponse
        };
        self.peripheral
            .write(c, bytes, write_type)
            .await
            .map_err(|e| map_error(&format!("writing {characteristic} of {}", self.what), &e))
    }

    async fn subscribe(&self, characteristic: Uuid) -> Result<(), BleError> {
        let c = self.characteristic(characteristic)?;
        if !c
            .properties
            .intersects(CharPropFlags::NOTIFY | CharPropFlags::INDICATE)
        {
            return Err(BleError::Other(format!(
                "characteristic {characteristic} of {} can neither notify nor indicate",
                self.what
            )));
        }
        // Before subscribing, so that the first value is not dropped.
        self.subscribed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(characteristic);
        let result = self.peripheral.subscribe(c).await;
        result.map_err(|e| {
            self.subscribed
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .remove(&characteristic);
            map_error(
                &format!("subscribing to {characteristic} of {}", self.what),
                &e,
            )
        })
    }

    async fn notifications(&self) -> Result<BoxStream<'static, Notification>, BleError> {
        // Both streams exist before the first look at the link, so no change is missed.
        let values = self
            .peripheral
            .notifications()
            .await
            .map_err(|e| map_error("cannot follow notifications", &e))?;
        let events = self
            .adapter
            .events()
            .await
            .map_err(|e| map_error("cannot follow BlueZ events", &e))?;
        let state = NotificationState {
            values,
            lost: Box::pin(link_lost(events, self.peripheral.clone())),
            link_lost: false,
            subscribed: self.subscribed.clone(),
        };
        Ok(stream::unfold(state, |mut state| async move {
            let notification = state.next().await?;
            Some((notification, state))
        })
        .boxed())
    }

    async fn disconnect(&self) {
        match tokio::time::timeout(QUERY_TIMEOUT, self.peripheral.disconnect()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(peripheral = %self.what, error = %describe(&e), "disconnect")
            }
            Err(_) => tracing::debug!(peripheral = %self.what, "disconnect: no answer"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(address: Option<&str>, name: Option<&str>, service: Option<Uuid>) -> BleTarget {
        BleTarget {
            address: address.map(str::to_string),
            name: name.map(str::to_string),
            service,
        }
    }

    #[test]
    fn matching_by_address_ignores_case_and_by_name_is_exact() {
        let plx = super::super::sig_uuid(0x1822);
        let by_address = target(Some("aa:bb:cc:dd:ee:01"), None, None);
        assert_eq!(
            match_target(&by_address, "AA:BB:CC:DD:EE:01", None, &[]),
            Match::Full
        );
        assert_eq!(
            match_target(&by_address, "AA:BB:CC:DD:EE:02", None, &[]),
            Match::No
        );
        let by_name = target(None, Some("PulseOx"), None);
        assert_eq!(
            match_target(&by_name, "X", Some("PulseOx"), &[]),
            Match::Full
        );
        assert_eq!(match_target(&by_name, "X", Some("pulseox"), &[]), Match::No);
        assert_eq!(match_target(&by_name, "X", None, &[]), Match::No);
        let both = target(Some("AA:BB:CC:DD:EE:01"), Some("PulseOx"), Some(plx));
        assert_eq!(
            match_target(&both, "AA:BB:CC:DD:EE:01", Some("PulseOx"), &[plx]),
            Match::Full
        );
        assert_eq!(
            match_target(&both, "AA:BB:CC:DD:EE:01", Some("Other"), &[plx]),
            Match::No
        );
    }

    #[test]
    fn a_service_not_advertised_is_checked_after_connecting_when_identity_matches() {
        let plx = super::super::sig_uuid(0x1822);
        let bp = super::super::sig_uuid(0x1810);
        let by_name = target(None, Some("PulseOx"), Some(plx));
        assert_eq!(
            match_target(&by_name, "X", Some("PulseOx"), &[]),
            Match::Identity
        );
        assert_eq!(
            match_target(&by_name, "X", Some("PulseOx"), &[bp]),
            Match::Identity
        );
        let by_service = target(None, None, Some(plx));
        assert_eq!(match_target(&by_service, "X", None, &[plx]), Match::Full);
        assert_eq!(match_target(&by_service, "X", None, &[bp]), Match::No);
        assert_eq!(match_target(&by_service, "X", None, &[]), Match::No);
        assert!(Match::Full > Match::Identity && Match::Identity > Match::No);
    }
}
