//! `RealTimeBuffer`: pushing samples and reading the newest ones, at capacities 1k to 100k.
//!
//! `cargo bench --bench buffer_operations -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ensemble_actors::ring_buffer::RealTimeBuffer;

const CAPACITIES: [usize; 3] = [1_000, 10_000, 100_000];

fn push(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_push");
    for cap in CAPACITIES {
        let values: Vec<f64> = (0..cap).map(|i| i as f64).collect();
        group.throughput(Throughput::Elements(cap as u64));
        let mut ring = RealTimeBuffer::new(cap);
        group.bench_with_input(BenchmarkId::new("one_by_one", cap), &cap, |b, _| {
            b.iter(|| {
                for &v in &values {
                    ring.push(black_box(v));
                }
            })
        });
        group.bench_with_input(BenchmarkId::new("slice", cap), &cap, |b, _| {
            b.iter(|| ring.push_slice(black_box(&values)))
        });
    }
    group.finish();
}

fn get_latest(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_get_latest");
    for cap in CAPACITIES {
        let mut ring = RealTimeBuffer::new(cap);
        // Fill it one and a half times, so the newest values wrap around the end.
        for i in 0..cap + cap / 2 {
            ring.push(i as f64);
        }
        group.throughput(Throughput::Elements(cap as u64));
        let mut out = Vec::with_capacity(cap);
        group.bench_with_input(BenchmarkId::new("into", cap), &cap, |b, &n| {
            b.iter(|| {
                ring.get_latest_into(black_box(n), &mut out);
                black_box(out.len())
            })
        });
        group.bench_with_input(BenchmarkId::new("new_vec", cap), &cap, |b, &n| {
            b.iter(|| black_box(ring.get_latest(black_box(n))))
        });
    }
    group.finish();
}

criterion_group!(benches, push, get_latest);
criterion_main!(benches);
