//! Acquisition: the drivers that read devices and push their readings into per-device rings.
//!
//! Transports (serial, BLE, the simulator) own their connection and report link state; pure
//! decoders turn bytes into readings; each driver owns the producer end of its device's ring.

pub mod ble;
pub mod decode;
pub mod report;
pub mod ring;
pub mod scenario;
pub mod serial;
pub mod sim;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::{DeviceConfig, Driver};
use ring::RingConsumer;

/// Starts one driver task per configured device; returns the engine's ends of their rings.
pub fn start_drivers(
    devices: &[DeviceConfig],
    clock: &Clock,
    wake: &Arc<Notify>,
) -> (Vec<RingConsumer>, Vec<JoinHandle<()>>) {
    let mut consumers = Vec::new();
    let mut tasks = Vec::new();
    // One Bluetooth transport for all BLE devices, made when first needed (and made again
    // while BlueZ or the adapter is missing).
    let ble_transport = Arc::new(ble::Lazy::new(ble::btleplug::BtleplugTransport::new));
    for device in devices {
        let (producer, consumer) =
            ring::ring(device.id.clone(), device.ring_capacity, wake.clone());
        consumers.push(consumer);
        match &device.driver {
            Driver::Simulator { profile, scenario } => {
                let simulated = sim::SimulatedDevice {
                    id: device.id.clone(),
                    role: profile.role,
                    scenario: scenario.clone(),
                    interval: device.interval,
                };
                tasks.push(tokio::spawn(simulated.run(producer, clock.clone())));
            }
            Driver::Serial {
                port,
                line,
                protocol,
                on_connect,
                keep_alive,
            } => {
                let serial = serial::SerialDevice {
                    id: device.id.clone(),
                    port: port.clone(),
                    line: *line,
                    protocol: protocol.clone(),
                    commands: serial::Commands {
                        on_connect: on_connect.clone(),
                        keep_alive: keep_alive.clone(),
                    },
                    reopen_after_silence: report::reconnect_after_silence(
                        device.silent_after,
                        device.interval,
                    ),
                };
                tasks.push(tokio::spawn(serial.run(producer, clock.clone())));
            }
            Driver::Ble {
                target,
                protocol,
                connects_per_measurement,
            } => {
                let protocol = *protocol;
                let ble = ble::driver::BleDevice {
                    id: device.id.clone(),
                    target: target.clone(),
                    plan: Box::new(move || protocol.plan()),
                    reconnect_after_silence: report::reconnect_after_silence(
                        device.silent_after,
                        device.interval,
                    ),
                    connects_per_measurement: *connects_per_measurement,
                };
                tasks.push(tokio::spawn(ble.run(
                    ble_transport.clone(),
                    producer,
                    clock.clone(),
                )));
            }
        }
    }
    (consumers, tasks)
}
