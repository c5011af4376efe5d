//! Engine core throughput: readings per second through `Engine::observe`, with the default
//! rule set, a session in infusion, and a realistic mix of oximeter and cuff readings
//! (including crossings that raise and end alarms).
//!
//! `cargo bench --bench engine`; the figure goes in BENCHMARKS.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vitalwatch::config::{DEFAULT_RULES, Source, parse_rule_set};
use vitalwatch::engine::{DeviceSpec, Engine};
use vitalwatch::vitals::{DeviceId, Mono, Phase, Quality, Reading, Vital};

const READINGS: usize = 100_000;

fn readings() -> Vec<Reading> {
    let ox = DeviceId::new("ox1");
    let cuff = DeviceId::new("cuff1");
    let utc = chrono::Utc::now();
    let mut out = Vec::with_capacity(READINGS);
    let mut second = 0u64;
    while out.len() < READINGS {
        let t = Mono::from_millis(second * 1000);
        // A desaturation every 10 minutes for 30 s, so SpO2 rules raise and end alarms.
        let spo2 = if second % 600 < 30 { 87.0 } else { 97.0 };
        let reading = |device: &DeviceId, vital, value| Reading {
            device: device.clone(),
            vital,
            value: Some(value),
            quality: Quality::GOOD,
            device_time: None,
            received: t,
            received_utc: utc,
        };
        out.push(reading(&ox, Vital::Spo2, spo2));
        out.push(reading(&ox, Vital::PulseRate, 70.0 + (second % 7) as f64));
        out.push(reading(&ox, Vital::PerfusionIndex, 3.5));
        if second.is_multiple_of(300) {
            let systolic = if second.is_multiple_of(1200) {
                185.0
            } else {
                130.0
            };
            out.push(reading(&cuff, Vital::Systolic, systolic));
            out.push(reading(&cuff, Vital::Diastolic, 85.0));
            out.push(reading(&cuff, Vital::MeanArterial, 100.0));
            out.push(reading(&cuff, Vital::PulseRate, 72.0));
        }
        second += 1;
    }
    out.truncate(READINGS);
    out
}

fn engine() -> Engine {
    let rules = parse_rule_set(&Source::built_in("default", DEFAULT_RULES)).expect("default rules");
    let devices = [
        DeviceSpec {
            id: DeviceId::new("ox1"),
            silent_after: Some(Duration::from_secs(10)),
            measures_bp: false,
        },
        DeviceSpec {
            id: DeviceId::new("cuff1"),
            silent_after: None,
            measures_bp: true,
        },
    ];
    let mut engine = Engine::new(rules, &devices, Mono::ZERO);
    engine.set_phase(Some(Phase::Infusion), Mono::ZERO);
    engine
}

fn observe(c: &mut Criterion) {
    let readings = readings();
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(readings.len() as u64));
    group.bench_function("observe", |b| {
        b.iter_batched(
            engine,
            |mut engine| {
                let mut transitions = 0;
                for reading in &readings {
                    transitions += engine.observe(black_box(reading), reading.received).len();
                }
                black_box(transitions)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, observe);
criterion_main!(benches);
