//! Steady-state processing allocates per batch, not per sample.
//!
//! Its own test binary, so that the counting global allocator affects nothing else. Each stage
//! processes batches of 1,024 and of 16,384 rows; after a warm-up (which fills the buffer
//! pools), the allocations per batch must not grow with the batch size, and the bytes allocated
//! per batch must stay far below the batch's own size (the output columns come from pools and
//! the input is shared, never copied).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::RecordBatch;
use ensemble_actors::batch::DataBatch;
use ensemble_actors::batch::with_rate;
use ensemble_actors::instruments::sim::{SignalConfig, SimGenerator, SimInstrumentConfig};
use ensemble_actors::stages::decimate::{DecimateConfig, DecimateStage};
use ensemble_actors::stages::fft::{FftConfig, FftStage, SpectrumOutput};
use ensemble_actors::stages::fir::{FilterKind, FirConfig, FirDesign, FirStage};
use ensemble_actors::stages::stats::{StatsConfig, StatsStage, StatsWindow};
use ensemble_actors::stages::{InputSelection, Stage, StageInput, Window};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const RATE: f64 = 10_000.0;
const WARM_UP: usize = 8;
const MEASURED: usize = 32;

fn batches(rows: usize, count: usize) -> Vec<DataBatch> {
    let config = SimInstrumentConfig {
        rate_hz: RATE,
        channels: vec!["a".into(), "b".into()],
        unit: "V".into(),
        seed: 1,
        pace: Default::default(),
        signal: SignalConfig {
            noise: 0.1,
            frequency_hz: 50.0,
            ..Default::default()
        },
        batch_interval: std::time::Duration::from_millis(100),
        max_batch_rows: rows,
        device_buffer: std::time::Duration::from_secs(10),
        fault: None,
    };
    let mut g = SimGenerator::new(&config, 0, 0);
    (0..count)
        .map(|_| {
            let first = g.next_seq();
            let batch = g.generate(rows);
            let schema = with_rate(batch.schema_ref(), RATE);
            let batch = batch.with_schema(schema).expect("only metadata added");
            DataBatch::new("sim".into(), first, batch)
        })
        .collect()
}

/// (allocations, bytes) per batch in steady state.
fn per_batch(stage: &mut dyn Stage, rows: usize) -> (f64, f64) {
    let input = batches(rows, WARM_UP + MEASURED);
    let mut out: Vec<RecordBatch> = Vec::with_capacity(16);
    for b in &input[..WARM_UP] {
        stage.process(b, &mut out).expect("matches");
        out.clear();
    }
    let a0 = ALLOCATIONS.load(Ordering::Relaxed);
    let b0 = BYTES.load(Ordering::Relaxed);
    for b in &input[WARM_UP..] {
        stage.process(b, &mut out).expect("matches");
        // Downstream is done with the outputs: their buffers return to the pools.
        out.clear();
    }
    let allocs = (ALLOCATIONS.load(Ordering::Relaxed) - a0) as f64 / MEASURED as f64;
    let bytes = (BYTES.load(Ordering::Relaxed) - b0) as f64 / MEASURED as f64;
    (allocs, bytes)
}

fn input() -> StageInput {
    let schema = batches(1, 1)[0].batch.schema();
    StageInput::from_schema(&InputSelection::parse(&["sim"]).expect("valid"), &schema)
        .expect("resolves")
}

fn check(name: &str, make: &dyn Fn() -> Box<dyn Stage>) {
    let (small_allocs, small_bytes) = per_batch(make().as_mut(), 1024);
    let (large_allocs, large_bytes) = per_batch(make().as_mut(), 16 * 1024);
    eprintln!(
        "{name}: 1024 rows: {small_allocs:.1} allocations, {small_bytes:.0} B per batch; \
         16384 rows: {large_allocs:.1} allocations, {large_bytes:.0} B per batch"
    );
    assert!(
        large_allocs <= small_allocs + 1.0,
        "{name}: allocations grow with batch size ({small_allocs} -> {large_allocs})"
    );
    assert!(
        large_allocs < 64.0,
        "{name}: {large_allocs} allocations per batch"
    );
    // A copy of one input column of the large batch alone would be 128 KiB.
    assert!(
        large_bytes < 16.0 * 1024.0,
        "{name}: {large_bytes} bytes per batch"
    );
}

#[test]
fn steady_state_allocations_do_not_grow_with_batch_size() {
    let fir = FirConfig {
        taps: None,
        design: Some(FirDesign {
            kind: FilterKind::Lowpass,
            cutoff_hz: 500.0,
            high_hz: None,
            taps: 63,
            window: Window::Hamming,
        }),
    };
    check("fir", &|| {
        Box::new(FirStage::new(&fir, &input()).expect("valid"))
    });
    let dec = DecimateConfig {
        factor: 8,
        antialias: true,
        taps: None,
        window: Window::Hamming,
    };
    check("decimate", &|| {
        Box::new(DecimateStage::new(&dec, &input()).expect("valid"))
    });
    let fft = FftConfig {
        size: 512,
        overlap: 0.5,
        window: Window::Hann,
        output: SpectrumOutput::Psd,
    };
    check("fft", &|| {
        Box::new(FftStage::new(&fft, &input()).expect("valid"))
    });
    let stats = StatsConfig {
        window: StatsWindow::Samples(100),
    };
    check("stats", &|| {
        Box::new(StatsStage::new(&stats, &input()).expect("valid"))
    });
}
