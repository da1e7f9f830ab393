//! Budget (issue 2): validating and normalizing a 500-pipeline manifest in-process <= 1 ms.
//!
//! `cargo bench -p rm-core --bench manifest -- --warm-up-time 1 --measurement-time 3`

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rm_core::manifest::{Manifest, MAX_PIPELINES};
use serde_json::{json, Value};
use std::hint::black_box;

/// The largest manifest a user may send: 500 pipelines in 5 waves, each with a few variables and
/// a source revision, written in both the object and the string form.
fn big_manifest() -> Vec<u8> {
    let pipelines: Vec<Value> = (0..MAX_PIPELINES)
        .map(|i| {
            if i % 10 == 9 {
                // The seed's short form.
                return json!(format!("service-{i:03}-pipeline"));
            }
            let mut variables = serde_json::Map::new();
            for v in 0..4 {
                variables.insert(format!("VAR_{v}"), json!(format!("value-{i}-{v}")));
            }
            json!({
                "name": format!("service-{i:03}-pipeline"),
                "wave": 1 + (i % 5),
                "timeoutMinutes": 60 + i % 120,
                "variables": variables,
                "sourceRevisions": [{
                    "actionName": "Source",
                    "revisionType": "COMMIT_ID",
                    "revisionValue": format!("{:040x}", i * 7919),
                }],
            })
        })
        .collect();
    let manifest = json!({
        "releaseId": 2024.10,
        "description": "The quarterly release of every service",
        "maxConcurrency": 20,
        "onFailure": "continue",
        "pipelines": pipelines,
    });
    // `2024.10` must keep its trailing zero, so write the id's text ourselves.
    let text = serde_json::to_string(&manifest)
        .unwrap()
        .replacen("2024.1", "2024.10", 1);
    text.into_bytes()
}

fn bench(c: &mut Criterion) {
    let bytes = big_manifest();
    let manifest = Manifest::parse(&bytes).expect("the bench manifest is valid");
    assert_eq!(manifest.pipelines.len(), MAX_PIPELINES);
    assert_eq!(manifest.release_id.as_str(), "2024.10");
    assert_eq!(manifest.waves().len(), 5);
    eprintln!(
        "bench manifest: {} pipelines, {} bytes",
        manifest.pipelines.len(),
        bytes.len()
    );

    let mut group = c.benchmark_group("manifest");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("parse_500_pipelines", |b| {
        b.iter(|| Manifest::parse(black_box(&bytes)).unwrap())
    });
    group.bench_function("parse_500_pipelines_and_waves", |b| {
        b.iter(|| {
            let m = Manifest::parse(black_box(&bytes)).unwrap();
            black_box(m.waves().len())
        })
    });
    // The same, leaving the caller's dropping of the manifest out of the time.
    group.bench_function("parse_500_pipelines_and_waves_without_drop", |b| {
        b.iter_with_large_drop(|| {
            let m = Manifest::parse(black_box(&bytes)).unwrap();
            black_box(m.waves().len());
            m
        })
    });
    // Where the time goes: reading the JSON, and validating the value it gives.
    group.bench_function("breakdown_json_to_value", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&bytes)).unwrap())
    });
    group.bench_function("breakdown_raw_release_id", |b| {
        b.iter(|| {
            let fields: std::collections::HashMap<String, &serde_json::value::RawValue> =
                serde_json::from_slice(black_box(&bytes)).unwrap();
            fields.get("releaseId").map(|r| r.get().to_owned())
        })
    });
    let value: Value = serde_json::from_slice(&bytes).unwrap();
    group.bench_function("breakdown_validate_value", |b| {
        b.iter(|| Manifest::from_value(black_box(&value), Some("2024.10")).unwrap())
    });
    group.bench_function("waves_500_pipelines", |b| {
        b.iter(|| black_box(&manifest).waves().len())
    });
    group.finish();
}

/// This thread's CPU time in ns (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`). Unlike wall time it
/// leaves out the time spent waiting for a CPU, so the figure holds on a busy, shared machine.
/// (`/proc/thread-self/schedstat`, read before, advances only at scheduler ticks and switches:
/// around a sub-millisecond batch it mostly reads zero, and criterion rejects a zero time.)
struct ThreadCpuTime;

fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns() - start
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

fn bench_cpu(c: &mut Criterion<ThreadCpuTime>) {
    let bytes = big_manifest();
    let mut group = c.benchmark_group("manifest_thread_cpu_time");
    group.bench_function("parse_500_pipelines", |b| {
        b.iter(|| Manifest::parse(black_box(&bytes)).unwrap())
    });
    group.bench_function("parse_500_pipelines_and_waves", |b| {
        b.iter(|| {
            let m = Manifest::parse(black_box(&bytes)).unwrap();
            black_box(m.waves().len())
        })
    });
    group.bench_function("parse_500_pipelines_and_waves_without_drop", |b| {
        b.iter_with_large_drop(|| {
            let m = Manifest::parse(black_box(&bytes)).unwrap();
            black_box(m.waves().len());
            m
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench_cpu
}
criterion_main!(benches, cpu_benches);
