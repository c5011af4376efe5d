//! Recorder write speed: readings per second into the session recorder's store, written in
//! batches as the sink will write them: one transaction per batch, synced to disk
//! (WAL, `synchronous = FULL`) before `write` returns.
//!
//! Batch sizes: 3 readings (one 1 Hz oximeter sample: SpO2, pulse, perfusion index, as if the
//! sink wrote every message at once), 30 (10 s of that oximeter, a sink flushing every 10 s)
//! and 300 (a backlog after a stall). The database lives under the target directory, on
//! the same disk as the build, not on a tmpfs where a sync costs nothing.
//!
//! `cargo bench --bench recorder`

use std::hint::black_box;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vitalwatch::recorder::{ReadingRecord, Record, Store};
use vitalwatch::vitals::{DeviceId, Quality, SessionId, Vital};

/// The next `size` readings of a 1 Hz oximeter (three vitals per second), from `*second` on.
fn readings(session: &SessionId, device: &DeviceId, second: &mut u64, size: usize) -> Vec<Record> {
    let start: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        let received = start + chrono::Duration::seconds(*second as i64);
        for (vital, value) in [
            (Vital::Spo2, 97.0),
            (Vital::PulseRate, 70.0 + (*second % 7) as f64),
            (Vital::PerfusionIndex, 3.5),
        ] {
            out.push(Record::Reading(ReadingRecord {
                session: session.clone(),
                device: device.clone(),
                vital,
                value: Some(value),
                quality: Quality::GOOD,
                device_time: None,
                received,
            }));
        }
        *second += 1;
    }
    out.truncate(size);
    out
}

fn write_batches(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary directory");
    let session = SessionId::parse("BENCH-1").expect("a session id");
    let device = DeviceId::new("ox1");
    let mut group = c.benchmark_group("recorder");
    group.sample_size(20);
    for size in [3usize, 30, 300] {
        let mut store =
            Store::open(dir.path().join(format!("batches-of-{size}.sqlite3"))).expect("a store");
        store
            .write(&[Record::SessionStarted {
                session: session.clone(),
                at: Utc::now(),
                by: "bench".into(),
            }])
            .expect("the session starts");
        let mut second = 0;
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(
            BenchmarkId::new("write", format!("batches of {size}")),
            |b| {
                b.iter_batched(
                    || readings(&session, &device, &mut second, size),
                    |batch| {
                        store
                            .write(black_box(&batch))
                            .expect("the batch is written")
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }
    group.finish();
}

criterion_group!(benches, write_batches);
criterion_main!(benches);
