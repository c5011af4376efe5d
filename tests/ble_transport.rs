//! `BtleplugTransport` against a mocked BlueZ on a private system bus (dbus-daemon +
//! python-dbusmock, see tests/common/bluez.rs): the real btleplug → bluez-async → libdbus path,
//! without radio. Each test runs in its own process (libdbus reads the bus address once).

mod common;

use std::time::Duration;

use common::bluez::{
    BP_MEASUREMENT_120_80, MockBluez, MockCharacteristic, MockDevice, PLX_CONTINUOUS_97_72,
    PrivateBus, isolated,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::time::{Instant, timeout};
use vitalwatch::acquire::ble::btleplug::{BtleplugTransport, LINK_POLL};
use vitalwatch::acquire::ble::{
    BleConnection, BleError, BleTarget, BleTransport, CharacteristicInfo, Notification, Uuid,
    sig_uuid,
};

const OX: &str = "AA:BB:CC:DD:EE:01";
const CUFF: &str = "AA:BB:CC:DD:EE:02";
/// Generous: the machine may be busy with other builds.
const WAIT: Duration = Duration::from_secs(10);

fn by_address(address: &str) -> BleTarget {
    BleTarget {
        address: Some(address.to_string()),
        name: None,
        service: None,
    }
}

fn by_name(name: &str) -> BleTarget {
    BleTarget {
        address: None,
        name: Some(name.to_string()),
        service: None,
    }
}

async fn transport() -> BtleplugTransport {
    timeout(WAIT, BtleplugTransport::new())
        .await
        .expect("BtleplugTransport::new hung")
        .expect("BtleplugTransport::new")
}

async fn connect(
    transport: &BtleplugTransport,
    target: &BleTarget,
) -> <BtleplugTransport as BleTransport>::Connection {
    timeout(WAIT * 2, transport.connect(target, WAIT))
        .await
        .expect("connect hung")
        .unwrap_or_else(|e| panic!("connect to {target}: {e}"))
}

async fn next(stream: &mut BoxStream<'static, Notification>) -> Notification {
    timeout(WAIT, stream.next())
        .await
        .expect("no notification in time")
        .expect("the notification stream ended")
}

fn info(chars: &[CharacteristicInfo], short: u16) -> &CharacteristicInfo {
    chars
        .iter()
        .find(|c| c.uuid == sig_uuid(short))
        .unwrap_or_else(|| panic!("no characteristic {short:#06x} in {chars:?}"))
}

#[test]
fn scan_lists_devices_with_name_address_rssi_and_services() {
    isolated(
        "scan_lists_devices_with_name_address_rssi_and_services",
        || async {
            let mock = MockBluez::with_adapter();
            mock.device(&MockDevice::oximeter(OX).rssi(-58));
            mock.device(&MockDevice::bp_cuff(CUFF).rssi(-71));
            let transport = transport().await;
            assert!(transport.adapter_name().starts_with("hci0"));
            let found = transport
                .scan(Duration::from_millis(300))
                .await
                .expect("scan");
            assert_eq!(found.len(), 2, "{found:?}");
            let ox = found.iter().find(|a| a.address == OX).expect("oximeter");
            assert_eq!(ox.name.as_deref(), Some("PulseOx"));
            assert_eq!(ox.rssi, Some(-58));
            assert!(ox.services.contains(&sig_uuid(0x1822)), "{ox:?}");
            assert!(ox.services.contains(&sig_uuid(0x180F)), "{ox:?}");
            let cuff = found.iter().find(|a| a.address == CUFF).expect("cuff");
            assert_eq!(cuff.name.as_deref(), Some("BPCuff"));
            assert_eq!(cuff.rssi, Some(-71));
            assert_eq!(cuff.services, vec![sig_uuid(0x1810)]);

            mock.remove_device(CUFF);
            let found = transport
                .scan(Duration::from_millis(100))
                .await
                .expect("scan");
            assert_eq!(found.len(), 1, "{found:?}");
        },
    );
}

#[test]
fn connects_by_address_in_any_case_and_by_name() {
    isolated("connects_by_address_in_any_case_and_by_name", || async {
        let mock = MockBluez::with_adapter();
        mock.device(&MockDevice::oximeter(OX));
        mock.device(&MockDevice::bp_cuff(CUFF));
        let transport = transport().await;

        let ox = connect(&transport, &by_address(&OX.to_ascii_lowercase())).await;
        assert!(mock.is_connected(OX));
        assert!(!mock.is_connected(CUFF));
        ox.disconnect().await;
        assert!(!mock.is_connected(OX));

        let cuff = connect(&transport, &by_name("BPCuff")).await;
        assert!(mock.is_connected(CUFF));
        assert!(info(&cuff.characteristics(), 0x2A35).indicate);
        cuff.disconnect().await;
        // Best effort: a link already gone is no error.
        cuff.disconnect().await;

        // Address and name must both match when both are given; the service when advertised.
        let both = BleTarget {
            address: Some(OX.to_string()),
            name: Some("PulseOx".to_string()),
            service: Some(sig_uuid(0x1822)),
        };
        connect(&transport, &both).await.disconnect().await;
        let by_service = BleTarget {
            address: None,
            name: None,
            service: Some(sig_uuid(0x1810)),
        };
        let cuff = connect(&transport, &by_service).await;
        assert!(mock.is_connected(CUFF) && !mock.is_connected(OX));
        cuff.disconnect().await;
    });
}

#[test]
fn characteristics_are_discovered_with_their_properties() {
    isolated(
        "characteristics_are_discovered_with_their_properties",
        || async {
            let mock = MockBluez::with_adapter();
            mock.device(&MockDevice::oximeter(OX));
            mock.device(&MockDevice::bp_cuff(CUFF));
            let transport = transport().await;

            let ox = connect(&transport, &by_address(OX)).await;
            let chars = ox.characteristics();
            assert_eq!(chars.len(), 3, "{chars:?}");
            let plx = info(&chars, 0x2A5F);
            assert_eq!(
                (plx.service, plx.read, plx.write, plx.notify, plx.indicate),
                (sig_uuid(0x1822), false, false, true, false)
            );
            let features = info(&chars, 0x2A60);
            assert_eq!(
                (features.service, features.read, features.notify),
                (sig_uuid(0x1822), true, false)
            );
            assert_eq!(info(&chars, 0x2A19).service, sig_uuid(0x180F));

            let cuff = connect(&transport, &by_address(CUFF)).await;
            let chars = cuff.characteristics();
            assert_eq!(chars.len(), 3, "{chars:?}");
            let bpm = info(&chars, 0x2A35);
            assert!(bpm.indicate && !bpm.notify && !bpm.read);
            let icp = info(&chars, 0x2A36);
            assert!(icp.notify && !icp.indicate);
            assert!(info(&chars, 0x2A49).read);
            ox.disconnect().await;
            cuff.disconnect().await;
        },
    );
}

#[test]
fn read_returns_the_value_and_unknown_characteristics_are_errors() {
    isolated(
        "read_returns_the_value_and_unknown_characteristics_are_errors",
        || async {
            let mock = MockBluez::with_adapter();
            mock.device(&MockDevice::oximeter(OX));
            let transport = transport().await;
            let ox = connect(&transport, &by_address(OX)).await;
            assert_eq!(ox.read(sig_uuid(0x2A60)).await, Ok(vec![0x00, 0x00]));
            assert_eq!(ox.read(sig_uuid(0x2A19)).await, Ok(vec![90]));
            assert_eq!(
                ox.read(sig_uuid(0x2A35)).await,
                Err(BleError::NoCharacteristic(sig_uuid(0x2A35)))
            );
            assert_eq!(
                ox.subscribe(sig_uuid(0x2A35)).await,
                Err(BleError::NoCharacteristic(sig_uuid(0x2A35)))
            );
            // BlueZ refuses to read what is not readable: a clear error, no panic.
            match ox.read(sig_uuid(0x2A5F)).await {
                Err(BleError::Other(message)) => {
                    assert!(message.contains("NotPermitted"), "{message}")
                }
                other => panic!("{other:?}"),
            }
            match ox.subscribe(sig_uuid(0x2A60)).await {
                Err(BleError::Other(message)) => {
                    assert!(message.contains("neither notify nor indicate"), "{message}")
                }
                other => panic!("{other:?}"),
            }
            ox.disconnect().await;
        },
    );
}

#[test]
fn notifications_and_indications_arrive_in_order_for_subscribed_characteristics() {
    isolated(
        "notifications_and_indications_arrive_in_order_for_subscribed_characteristics",
        || async {
            let mock = MockBluez::with_adapter();
            mock.device(&MockDevice::oximeter(OX));
            mock.device(&MockDevice::bp_cuff(CUFF));
            let transport = transport().await;

            let ox = connect(&transport, &by_address(OX)).await;
            let mut stream = ox.notifications().await.expect("notifications");
            ox.subscribe(sig_uuid(0x2A5F)).await.expect("subscribe");
            mock.notify(OX, sig_uuid(0x2A5F), &PLX_CONTINUOUS_97_72);
            assert_eq!(
                next(&mut stream).await,
                Notification {
                    characteristic: sig_uuid(0x2A5F),
                    value: PLX_CONTINUOUS_97_72.to_vec(),
                }
            );
            // BlueZ reports a read's value like a notification: not passed on, as nobody
            // subscribed to 0x2A60.
            assert_eq!(ox.read(sig_uuid(0x2A60)).await, Ok(vec![0, 0]));
            for spo2 in [96u8, 95, 94] {
                mock.notify(OX, sig_uuid(0x2A5F), &[0, spo2, 0, 72, 0]);
            }
            for spo2 in [96u8, 95, 94] {
                let n = next(&mut stream).await;
                assert_eq!(n.characteristic, sig_uuid(0x2A5F));
                assert_eq!(n.value, vec![0, spo2, 0, 72, 0]);
            }

            let cuff = connect(&transport, &by_address(CUFF)).await;
            let mut cuff_stream = cuff.notifications().await.expect("notifications");
            cuff.subscribe(sig_uuid(0x2A35))
                .await
                .expect("subscribe 2A35");
            cuff.subscribe(sig_uuid(0x2A36))
                .await
                .expect("subscribe 2A36");
            mock.notify(CUFF, sig_uuid(0x2A36), &[0x00, 0x8c, 0x00]);
            mock.notify(CUFF, sig_uuid(0x2A35), &BP_MEASUREMENT_120_80);
            let icp = next(&mut cuff_stream).await;
            assert_eq!(icp.characteristic, sig_uuid(0x2A36));
            assert_eq!(icp.value, vec![0x00, 0x8c, 0x00]);
            let bpm = next(&mut cuff_stream).await;
            assert_eq!(bpm.characteristic, sig_uuid(0x2A35));
            assert_eq!(bpm.value, BP_MEASUREMENT_120_80.to_vec());
            // Each connection sees its own peripheral's values only.
            assert!(
                timeout(Duration::from_millis(300), stream.next())
                    .await
                    .is_err()
            );
            ox.disconnect().await;
            cuff.disconnect().await;
        },
    );
}

#[test]
fn a_dropped_link_ends_the_notification_stream_after_the_values_before_it() {
    isolated(
        "a_dropped_link_ends_the_notification_stream_after_the_values_before_it",
        || async {
            let mock = MockBluez::with_adapter();
            mock.device(&MockDevice::oximeter(OX));
            let transport = transport().await;
            let ox = connect(&transport, &by_address(OX)).await;
            let mut stream = ox.notifications().await.expect("notifications");
            ox.subscribe(sig_uuid(0x2A5F)).await.expect("subscribe");
            // The stream's first look at the link (it asks BlueZ at once, then every LINK_POLL).
            let first_look = Instant::now();
            assert!(
                timeout(Duration::from_millis(300), stream.next())
                    .await
                    .is_err()
            );
            mock.notify(OX, sig_uuid(0x2A5F), &[0, 98, 0, 70, 0]);
            mock.notify(OX, sig_uuid(0x2A5F), &[0, 97, 0, 71, 0]);
            mock.disconnect(OX);
            assert_eq!(next(&mut stream).await.value, vec![0, 98, 0, 70, 0]);
            assert_eq!(next(&mut stream).await.value, vec![0, 97, 0, 71, 0]);
            let end = timeout(WAIT, stream.next())
                .await
                .expect("the stream did not end");
            assert_eq!(end, None);
            // Ended by BlueZ's Connected=false signal (DeviceDisconnected), before the next poll.
            assert!(
                first_look.elapsed() < LINK_POLL,
                "the stream ended {:?} after its first look at the link",
                first_look.elapsed()
            );
            // Reading on a dropped link is an error, not a hang.
            assert!(
                timeout(WAIT, ox.read(sig_uuid(0x2A60)))
                    .await
                    .expect("read hung")
                    .is_err()
            );
            // A stream asked for after the link dropped ends at once.
            let mut late = ox.notifications().await.expect("notifications");
            assert_eq!(timeout(WAIT, late.next()).await.expect("late stream"), None);
            ox.disconnect().await;
        },
    );
}

#[test]
fn disconnecting_ends_the_notification_stream_too() {
    isolated("disconnecting_ends_the_notification_stream_too", || async {
        let mock = MockBluez::with_adapter();
        mock.device(&MockDevice::bp_cuff(CUFF));
        let transport = transport().await;
        let cuff = connect(&transport, &by_address(CUFF)).await;
        let mut stream = cuff.notifications().await.expect("notifications");
        cuff.subscribe(sig_uuid(0x2A35)).await.expect("subscribe");
        cuff.disconnect().await;
        assert!(!mock.is_connected(CUFF));
        assert_eq!(
            timeout(WAIT, stream.next()).await.expect("stream end"),
            None
        );
    });
}

#[test]
fn reconnects_after_a_dropped_link_and_values_flow_again() {
    isolated(
        "reconnects_after_a_dropped_link_and_values_flow_again",
        || async {
            let mock = MockBluez::with_adapter();
            mock.device(&MockDevice::oximeter(OX));
            let transport = transport().await;
            for round in 0..3u8 {
                let ox = connect(&transport, &by_address(OX)).await;
                assert_eq!(ox.characteristics().len(), 3);
                let mut stream = ox.notifications().await.expect("notifications");
                ox.subscribe(sig_uuid(0x2A5F)).await.expect("subscribe");
                mock.notify(OX, sig_uuid(0x2A5F), &[0, 90 + round, 0, 60, 0]);
                assert_eq!(next(&mut stream).await.value, vec![0, 90 + round, 0, 60, 0]);
                mock.disconnect(OX);
                assert_eq!(
                    timeout(WAIT, stream.next()).await.expect("stream end"),
                    None
                );
                assert!(!mock.is_connected(OX));
            }
        },
    );
}

#[test]
fn a_refused_connection_is_a_clear_error_and_a_later_one_works() {
    isolated(
        "a_refused_connection_is_a_clear_error_and_a_later_one_works",
        || async {
            let mock = MockBluez::with_adapter();
            mock.device(&MockDevice::oximeter(OX));
            mock.refuse_connect(OX, true);
            let transport = transport().await;
            let result = timeout(WAIT * 2, transport.connect(&by_address(OX), WAIT))
                .await
                .expect("connect hung");
            match result {
                Err(BleError::Other(message)) => {
                    assert!(message.contains("cannot connect to device AA:BB:CC:DD:EE:01"));
                    assert!(message.contains("org.bluez.Error.Failed"), "{message}");
                }
                Err(e) => panic!("{e:?}"),
                Ok(_) => panic!("connected although the peripheral refused"),
            }
            assert!(!mock.is_connected(OX));
            mock.refuse_connect(OX, false);
            let ox = connect(&transport, &by_address(OX)).await;
            assert!(mock.is_connected(OX));
            ox.disconnect().await;
        },
    );
}

#[test]
fn writes_use_the_write_type_the_characteristic_offers() {
    isolated(
        "writes_use_the_write_type_the_characteristic_offers",
        || async {
            let mock = MockBluez::with_adapter();
            let racp = sig_uuid(0x2A52);
            let vendor = uuid_from("0000fff2-0000-1000-8000-00805f9b34fb");
            mock.device(
                &MockDevice::new(OX, "VendorOx")
                    .service(
                        sig_uuid(0x1822),
                        vec![MockCharacteristic::new(racp, &["write", "indicate"], &[])],
                    )
                    .service(
                        uuid_from("0000fff0-0000-1000-8000-00805f9b34fb"),
                        vec![MockCharacteristic::new(
                            vendor,
                            &["write-without-response", "notify"],
                            &[],
                        )],
                    ),
            );
            let transport = transport().await;
            let ox = connect(&transport, &by_address(OX)).await;
            assert!(info_of(&ox.characteristics(), racp).write);
            assert!(info_of(&ox.characteristics(), vendor).write);
            ox.write(racp, &[0x01, 0x01]).await.expect("write RACP");
            ox.write(racp, &[0x04, 0x01]).await.expect("write RACP");
            ox.write(vendor, &[0xaa, 0x55]).await.expect("write vendor");
            assert_eq!(
                mock.writes_with_types(OX, racp),
                vec![
                    (vec![0x01, 0x01], Some("request".to_string())),
                    (vec![0x04, 0x01], Some("request".to_string())),
                ]
            );
            assert_eq!(
                mock.writes_with_types(OX, vendor),
                vec![(vec![0xaa, 0x55], Some("command".to_string()))]
            );
            assert_eq!(mock.writes(OX, vendor), vec![vec![0xaa, 0x55]]);
            ox.disconnect().await;
        },
    );
}

fn uuid_from(text: &str) -> Uuid {
    text.parse().expect("uuid")
}

fn info_of(chars: &[CharacteristicInfo], uuid: Uuid) -> CharacteristicInfo {
    *chars
        .iter()
        .find(|c| c.uuid == uuid)
        .unwrap_or_else(|| panic!("no characteristic {uuid} in {chars:?}"))
}

#[test]
fn a_device_appearing_while_connecting_is_found_and_an_absent_one_is_not_found() {
    isolated(
        "a_device_appearing_while_connecting_is_found_and_an_absent_one_is_not_found",
        || async {
            let mock = MockBluez::with_adapter();
            let transport = transport().await;

            let started = Instant::now();
            let absent = transport
                .connect(&by_address("AA:BB:CC:DD:EE:99"), Duration::from_millis(800))
                .await;
            assert!(
                matches!(&absent, Err(BleError::NotFound(what)) if what == "device AA:BB:CC:DD:EE:99"),
                "{:?}",
                absent.as_ref().err()
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );

            assert!(!mock.is_discovering(), "the scan did not stop");

            // Two devices connected at once, before they appear: by service only (the device
            // must advertise it) and by name.
            let by_service = BleTarget {
                address: None,
                name: None,
                service: Some(sig_uuid(0x1810)),
            };
            let connecting = |target: BleTarget| {
                let transport = transport.clone();
                tokio::spawn(async move { transport.connect(&target, WAIT).await })
            };
            let cuff = connecting(by_service);
            let ox = connecting(by_name("PulseOx"));
            let scanning = Instant::now() + WAIT;
            while !mock.is_discovering() {
                assert!(Instant::now() < scanning, "no scan started");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            mock.device(&MockDevice::oximeter(OX));
            mock.device(&MockDevice::bp_cuff(CUFF));
            let joined = |task: tokio::task::JoinHandle<_>| async move {
                timeout(WAIT * 2, task)
                    .await
                    .expect("connect hung")
                    .expect("connect task")
            };
            let cuff = joined(cuff)
                .await
                .expect("connect to the cuff that appeared");
            let ox = joined(ox)
                .await
                .expect("connect to the oximeter that appeared");
            assert!(mock.is_connected(CUFF) && mock.is_connected(OX));
            assert!(info(&cuff.characteristics(), 0x2A35).indicate);
            assert!(info(&ox.characteristics(), 0x2A5F).notify);
            // Both scans ended, so discovery is off.
            assert!(!mock.is_discovering(), "the scan did not stop");
            cuff.disconnect().await;
            ox.disconnect().await;
        },
    );
}

#[test]
fn a_device_without_the_profiles_service_is_refused_after_connecting() {
    isolated(
        "a_device_without_the_profiles_service_is_refused_after_connecting",
        || async {
            let mock = MockBluez::with_adapter();
            // Advertises no services: BlueZ learns them by connecting.
            let mut ox = MockDevice::oximeter(OX);
            ox.name = Some("Oxi".to_string());
            ox.advertised = Some(Vec::new());
            mock.device(&ox);
            let transport = transport().await;

            let wrong = BleTarget {
                address: None,
                name: Some("Oxi".to_string()),
                service: Some(sig_uuid(0x1810)),
            };
            let result = timeout(WAIT * 2, transport.connect(&wrong, WAIT))
                .await
                .expect("connect hung");
            assert_eq!(result.err(), Some(BleError::NoService(sig_uuid(0x1810))));
            assert!(!mock.is_connected(OX), "left connected to the wrong device");

            let right = BleTarget {
                service: Some(sig_uuid(0x1822)),
                ..wrong
            };
            let ox = connect(&transport, &right).await;
            assert!(info(&ox.characteristics(), 0x2A5F).notify);
            ox.disconnect().await;
        },
    );
}

#[test]
fn without_a_system_bus_ble_is_unavailable() {
    isolated("without_a_system_bus_ble_is_unavailable", || async {
        // DBUS_SYSTEM_BUS_ADDRESS names a socket nobody listens on.
        let result = timeout(WAIT, BtleplugTransport::new())
            .await
            .expect("new hung");
        match result {
            Err(BleError::NoBluez(message)) => assert!(!message.is_empty()),
            Err(e) => panic!("{e:?}"),
            Ok(t) => panic!("a transport without a bus: {t:?}"),
        }
        // Cheap to try again.
        for _ in 0..20 {
            assert!(matches!(
                BtleplugTransport::new().await,
                Err(BleError::NoBluez(_))
            ));
        }
    });
}

#[test]
fn a_bus_without_bluez_is_no_bluez() {
    isolated("a_bus_without_bluez_is_no_bluez", || async {
        let bus = PrivateBus::start();
        for _ in 0..20 {
            match timeout(WAIT, BtleplugTransport::new())
                .await
                .expect("new hung")
            {
                Err(BleError::NoBluez(message)) => {
                    assert!(message.contains("org.bluez"), "{message}")
                }
                Err(e) => panic!("{e:?}"),
                Ok(t) => panic!("a transport without BlueZ: {t:?}"),
            }
        }
        // Cheap to try again: one connection to the bus however often it is tried.
        assert_eq!(bus.clients(), 1);
    });
}

#[test]
fn bluez_without_an_adapter_is_no_adapter_until_one_appears() {
    isolated(
        "bluez_without_an_adapter_is_no_adapter_until_one_appears",
        || async {
            let mock = MockBluez::start();
            let clients = mock.bus().clients();
            for _ in 0..20 {
                let result = timeout(WAIT, BtleplugTransport::new())
                    .await
                    .expect("new hung");
                assert_eq!(result.err(), Some(BleError::NoAdapter));
            }
            // Cheap to try again: one more connection to the bus (this process's), not twenty.
            assert_eq!(mock.bus().clients(), clients + 1);
            mock.adapter("hci0");
            mock.device(&MockDevice::oximeter(OX));
            let transport = transport().await;
            let found = transport
                .scan(Duration::from_millis(100))
                .await
                .expect("scan");
            assert_eq!(found.len(), 1);

            // The adapter goes away (unplugged): the transport says so, as does a new one.
            mock.remove_adapter("hci0");
            let scan = transport.scan(Duration::from_millis(100)).await;
            assert_eq!(scan, Err(BleError::NoAdapter));
            let connect = transport
                .connect(&by_address(OX), Duration::from_millis(300))
                .await;
            assert_eq!(connect.err(), Some(BleError::NoAdapter));
            assert_eq!(
                BtleplugTransport::new().await.err(),
                Some(BleError::NoAdapter)
            );
        },
    );
}

#[test]
fn a_restarted_bus_is_reached_again() {
    isolated("a_restarted_bus_is_reached_again", || async {
        let mock = MockBluez::with_adapter();
        mock.device(&MockDevice::oximeter(OX));
        let old = transport().await;
        let ox = connect(&old, &by_address(OX)).await;
        let mut stream = ox.notifications().await.expect("notifications");
        ox.subscribe(sig_uuid(0x2A5F)).await.expect("subscribe");

        // The bus dies: calls on the old connection hang rather than fail, so the stream ends
        // by the poll's timeout, and the transport must be made again.
        drop(mock);
        let end = timeout(WAIT * 2, stream.next())
            .await
            .expect("the stream did not end");
        assert_eq!(end, None);
        for _ in 0..3 {
            let result = timeout(WAIT * 2, BtleplugTransport::new())
                .await
                .expect("new hung");
            assert!(
                matches!(result, Err(BleError::NoBluez(_))),
                "{:?}",
                result.err()
            );
        }

        // The bus is back (the same address): a new transport reaches BlueZ again.
        let mock = MockBluez::with_adapter();
        mock.device(&MockDevice::oximeter(OX));
        let transport = transport().await;
        let ox = connect(&transport, &by_address(OX)).await;
        let mut stream = ox.notifications().await.expect("notifications");
        ox.subscribe(sig_uuid(0x2A5F)).await.expect("subscribe");
        mock.notify(OX, sig_uuid(0x2A5F), &PLX_CONTINUOUS_97_72);
        assert_eq!(next(&mut stream).await.value, PLX_CONTINUOUS_97_72.to_vec());
        ox.disconnect().await;
    });
}
