//! How long `obs` takes to parse and validate the full example config (every process does
//! this at start-up).

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use obs::config::Config;
use obs_benches::EXAMPLE_CONFIG;

fn parse_config(c: &mut Criterion) {
    let mut group = c.benchmark_group("config");
    group.throughput(Throughput::Bytes(EXAMPLE_CONFIG.len() as u64));
    group.bench_function("parse_and_validate_example", |b| {
        b.iter(|| Config::parse(Path::new("obs.toml"), std::hint::black_box(EXAMPLE_CONFIG)).expect("valid"))
    });
    group.finish();
}

criterion_group!(benches, parse_config);
criterion_main!(benches);
