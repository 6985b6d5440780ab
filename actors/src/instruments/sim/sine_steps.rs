//! The sine step tables of the simulator's generators, shared between every generator with the
//! same frequency and rate: 10,000 simulated instruments each holding their own 16 KiB table
//! (and a second one in their plan probe's copy) took 320 MB of a 10,000-instrument load test.

use std::collections::HashMap;
use std::f64::consts::TAU;
use std::sync::{Arc, Mutex, Weak};

/// Rows between exact anchors of a sine (see `SimGenerator::fill_channel`). Each row combines
/// its anchor's exact `sin_cos` with an exact step from the table, so the error does not grow
/// with the distance from the anchor; 1,024 rows make the `sin_cos` calls negligible (at 64 they
/// were a third of the sine's cost in `perf`) for a 16 KiB table.
pub(super) const SINE_ANCHOR: u64 = 1024;

/// `(sin, cos)` of `k` steps of a sine, for `k` in `0..SINE_ANCHOR`.
pub(super) type SineSteps = Arc<[(f64, f64)]>;

/// Tables in use, by `(frequency_hz, rate_hz)` bits; an entry lives while a generator holds
/// its table.
type Tables = HashMap<(u64, u64), Weak<[(f64, f64)]>>;

/// Entries at which tables no generator holds any more are dropped from the map.
const PRUNE_AT: usize = 256;

/// The step table of a sine of `frequency_hz` sampled at `rate_hz`: the one another generator
/// holds, or a new one.
pub(super) fn sine_steps(frequency_hz: f64, rate_hz: f64) -> SineSteps {
    static TABLES: Mutex<Option<Tables>> = Mutex::new(None);
    let key = (frequency_hz.to_bits(), rate_hz.to_bits());
    // A panic while holding the lock cannot leave the map inconsistent (each step is one
    // insert or retain), so a poisoned lock is used as it is.
    let mut guard = TABLES.lock().unwrap_or_else(|e| e.into_inner());
    let tables = guard.get_or_insert_with(HashMap::new);
    if let Some(table) = tables.get(&key).and_then(Weak::upgrade) {
        return table;
    }
    let step = TAU * frequency_hz / rate_hz;
    let table: SineSteps = (0..SINE_ANCHOR)
        .map(|k| (k as f64 * step).sin_cos())
        .collect();
    if tables.len() >= PRUNE_AT {
        tables.retain(|_, t| t.strong_count() > 0);
    }
    tables.insert(key, Arc::downgrade(&table));
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_of_one_sine_share_its_table_and_others_get_their_own() {
        let a = sine_steps(3.0, 10.0);
        let b = sine_steps(3.0, 10.0);
        assert!(Arc::ptr_eq(&a, &b));
        let c = sine_steps(4.0, 10.0);
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(a.len(), SINE_ANCHOR as usize);
        let step = TAU * 3.0 / 10.0;
        assert_eq!(a[7], (7.0 * step).sin_cos());
    }

    #[test]
    fn a_table_nobody_holds_is_made_anew_and_stays_correct() {
        let first = sine_steps(5.5, 1000.0);
        let values = first.to_vec();
        drop(first);
        for f in 0..(2 * PRUNE_AT) {
            drop(sine_steps(100.0 + f as f64, 1000.0));
        }
        assert_eq!(sine_steps(5.5, 1000.0).to_vec(), values);
    }
}
