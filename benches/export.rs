//! Export time of a 4-hour session: the `long-session` scenario (4 h: the 1 Hz oximeter's
//! SpO2, pulse and perfusion index and the cuff every 5 minutes, with the scenario's
//! disconnection, sensor-off and failing cuff: 43 097 readings, with its alarms, link changes
//! and notes) recorded in the store, then exported in each format to a sink: reading the
//! store, writing the format, not the disk.
//!
//! `cargo bench --bench export`
//!
//! The database is left in the target directory (its path is printed), so the command line's
//! own time can be measured on it too, for example:
//! `time target/release/vitalwatch export --database <it> --session BENCH-4H --format fhir --out /tmp/x.json`.

#[path = "../tests/support/recorded.rs"]
mod recorded;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vitalwatch::export::{self, Format, Options, Session};
use vitalwatch::recorder::Store;

fn exports(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("export-bench.sqlite");
    for stale in [
        path.clone(),
        path.with_extension("sqlite-wal"),
        path.with_extension("sqlite-shm"),
        path.with_extension("sqlite.lock"),
    ] {
        let _ = std::fs::remove_file(stale);
    }
    recorded::simulated_session(&path, "BENCH-4H", "long-session");
    eprintln!("4-hour session recorded in {}", path.display());
    let store = Store::open_read_only(&path).expect("the store");
    let summary = export::find_session(&store, "BENCH-4H", None).expect("the session");
    let session = Session::load(&store, summary).expect("its timeline");
    let options = Options {
        interval_s: None,
        generated: recorded::at(5.0 * 3600.0),
    };
    let per_minute = Options {
        interval_s: Some(60),
        ..options.clone()
    };

    let mut group = c.benchmark_group("export 4 h session");
    group.sample_size(10);
    for (name, format, options) in [
        ("csv", Format::Csv, &options),
        ("csv-events", Format::CsvEvents, &options),
        ("fhir", Format::Fhir, &options),
        ("fhir --interval 60", Format::Fhir, &per_minute),
        ("edf", Format::Edf, &options),
        ("html", Format::Html, &options),
    ] {
        let mut sink = std::io::sink();
        let stats = export::export(&store, &session, format, options, &mut sink, &mut |_| {})
            .expect("the export");
        eprintln!("{name}: {} readings, {} bytes", stats.readings, stats.bytes);
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let mut sink = std::io::sink();
                black_box(
                    export::export(&store, &session, format, options, &mut sink, &mut |_| {})
                        .expect("the export"),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, exports);
criterion_main!(benches);
