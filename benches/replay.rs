//! Replay speed: the 4-hour `long-session` scenario through the engine in virtual time, with
//! the default rules (14 400 oximeter samples, 48 cuff measurements, 14 400 ticks, and the
//! alarms of one of each kind of trouble).
//!
//! `cargo bench --bench replay`; the figure goes in BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use vitalwatch::config::{DEFAULT_RULES, Source, load_scenario, parse_rule_set};
use vitalwatch::replay::replay;

fn long_session(c: &mut Criterion) {
    let scenario = Arc::new(
        load_scenario(&Source::built_in("bench", ""), "long-session").expect("long-session"),
    );
    let rules = parse_rule_set(&Source::built_in("default", DEFAULT_RULES)).expect("default rules");
    let mut group = c.benchmark_group("replay");
    group.bench_function("long-session (4 h)", |b| {
        b.iter(|| {
            let timeline =
                replay(black_box(scenario.clone()), black_box(rules.clone())).expect("replay");
            black_box(timeline.entries.len())
        })
    });
    group.finish();
}

criterion_group!(benches, long_session);
criterion_main!(benches);
