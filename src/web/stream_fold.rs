//! What the live view keeps of one time stream, folded from its tap: the whole run
//! ([`History`]) and its last minutes at fine widths ([`Recent`]), within a
//! [`FoldBudget`], and how a window is answered from them.
//!
//! Answers come from these folds, not from the tap: a plot refresh costs a few thousand
//! buckets whatever the stream's rate, instead of reading the stream's newest megabytes again.
//! The tap is read once per batch, by [`StreamFold::fold_from`], on the server's thread.

use std::borrow::Cow;
use std::time::Instant;

use ensemble_actors::batch::ChannelSpec;
use ensemble_actors::tap::Tap;

use super::decimate::{Decimated, Decimator};
use super::envelope::Envelope;
use super::fold_budget::{FOLD_SAMPLES_PER_SECOND, FoldBudget};
use super::frames::{f64_values, timestamps};
use super::history::{History, SLOTS};
use super::recent::{RECENT_SLOTS, RECENT_WIDTHS_NS, Recent};

/// Channels per stream kept in the whole-run history (wider streams: the first ones; the
/// others are answered from the tap).
pub const FOLD_CHANNELS: usize = 64;
/// Channels per stream kept at the recent widths.
pub const RECENT_CHANNELS: usize = 16;
/// Most bytes the whole-run histories of all streams take.
pub const HISTORY_BYTES: usize = 64 << 20;
/// Most bytes the fine rings of all streams take.
pub const RECENT_BYTES: usize = 48 << 20;

/// Bytes one channel's whole-run history takes.
const HISTORY_CHANNEL_BYTES: usize = SLOTS * std::mem::size_of::<Envelope>();
/// Bytes one channel's fine rings take.
const RECENT_CHANNEL_BYTES: usize =
    RECENT_WIDTHS_NS.len() * RECENT_SLOTS * std::mem::size_of::<Envelope>();

/// The view's memory for folds ([`HISTORY_BYTES`] and [`RECENT_BYTES`]), handed to the
/// streams in order: a run of ten thousand streams does not get ten thousand histories, and
/// the streams past the budget are answered from their taps (which hold their newest rows).
#[derive(Debug, Clone)]
pub struct FoldMemory {
    history_left: usize,
    recent_left: usize,
}

impl FoldMemory {
    /// The whole budget, nothing handed out yet.
    pub fn new() -> Self {
        Self {
            history_left: HISTORY_BYTES,
            recent_left: RECENT_BYTES,
        }
    }

    /// Folds for the next time stream of `channels` channels, with what is left.
    pub fn fold_for(&mut self, channels: usize, now: Instant) -> StreamFold {
        let take = |left: &mut usize, wanted: usize, per_channel: usize| {
            let bytes = wanted * per_channel;
            if bytes <= *left {
                *left -= bytes;
                wanted
            } else {
                0
            }
        };
        let history = take(
            &mut self.history_left,
            channels.min(FOLD_CHANNELS),
            HISTORY_CHANNEL_BYTES,
        );
        let recent = take(
            &mut self.recent_left,
            channels.min(RECENT_CHANNELS),
            RECENT_CHANNEL_BYTES,
        );
        StreamFold::new(history, recent, now)
    }
}

impl Default for FoldMemory {
    fn default() -> Self {
        Self::new()
    }
}

/// One time stream's folds.
#[derive(Debug, Clone)]
pub struct StreamFold {
    history: History,
    /// One ring per width of [`RECENT_WIDTHS_NS`], finest first (empty when the view's memory
    /// for them was spent on earlier streams).
    recent: Vec<Recent>,
    /// The next `seq` not looked at yet.
    next_seq: u64,
    budget: FoldBudget,
}

impl StreamFold {
    /// Folds of the first `history` channels over the whole run and the first `recent` in
    /// fine rings (either may be 0: nothing of that kind).
    pub fn new(history: usize, recent: usize, now: Instant) -> Self {
        Self {
            history: History::new(history),
            recent: if recent > 0 {
                RECENT_WIDTHS_NS
                    .iter()
                    .map(|&w| Recent::new(recent, w))
                    .collect()
            } else {
                Vec::new()
            },
            next_seq: 0,
            budget: FoldBudget::new(FOLD_SAMPLES_PER_SECOND, now),
        }
    }

    /// Bytes its folds hold (fixed).
    pub fn bytes(&self) -> usize {
        self.history.bytes() + self.recent.iter().map(Recent::bytes).sum::<usize>()
    }

    /// Share of the stream's rows folded so far (1: every row; less when it outran the budget).
    pub fn folded_share(&self) -> f64 {
        self.budget.folded_share()
    }

    /// Folds what `tap` got since the last call (within the budget).
    pub fn fold_from(&mut self, tap: &Tap, channels: &[ChannelSpec], now: Instant) {
        let tapped = tap.since(self.next_seq);
        let Some(newest) = tapped.last() else {
            return;
        };
        let end = newest.first_seq + newest.batch.num_rows() as u64;
        // Rows between the last fold and the oldest batch still held were overwritten.
        let oldest = tapped.first().map_or(end, |b| b.first_seq);
        if oldest > self.next_seq {
            self.budget.missed(oldest - self.next_seq);
        }
        let start = |first: u64| self.next_seq.saturating_sub(first) as usize;
        let rows: Vec<usize> = tapped
            .iter()
            .map(|b| b.batch.num_rows().saturating_sub(start(b.first_seq)))
            .collect();
        let folded = self
            .history
            .channels()
            .max(self.recent.first().map_or(0, Recent::channels));
        if folded == 0 {
            self.next_seq = end;
            return;
        }
        let chosen = self.budget.choose(now, &rows, folded);
        for (tapped, fold) in tapped.iter().zip(chosen) {
            let batch = &tapped.batch;
            let Some(ts) = timestamps(batch).filter(|_| fold) else {
                continue;
            };
            let from = start(tapped.first_seq).min(ts.len());
            let values: Vec<(usize, Cow<'_, [f64]>)> = channels
                .iter()
                .take(folded)
                .enumerate()
                .filter_map(|(c, channel)| {
                    Some((c, f64_values(batch.column_by_name(&channel.name)?)?))
                })
                .collect();
            let columns: Vec<(usize, &[f64])> =
                values.iter().map(|(c, v)| (*c, &v[from..])).collect();
            self.history.add_columns(&ts[from..], &columns);
            for ring in &mut self.recent {
                ring.add_columns(&ts[from..], &columns);
            }
        }
        self.next_seq = end;
    }

    /// `[from_ns, to_ns)` of the channels `picks` (stream channel per output channel) in at
    /// most `points` buckets, from the finest fold that holds the whole window, with the name
    /// of that fold; `None` when the folds do not have those channels or any sample yet.
    pub fn decimate(
        &self,
        picks: &[usize],
        from_ns: i64,
        to_ns: i64,
        points: usize,
    ) -> Option<(Decimated, &'static str)> {
        let asked = ((to_ns - from_ns) / points.max(1) as i64).max(1);
        // A window from a fold with buckets `width` wide from `t0`, filled by `fill`.
        let answer = |t0: i64, width: i64, fill: &dyn Fn(&mut Decimator)| {
            let mut d = Decimator::on_grid(from_ns, to_ns, points, picks.len(), t0, width);
            fill(&mut d);
            d.finish()
        };
        let holding = || {
            self.recent
                .iter()
                .filter(|r| picks.iter().all(|&p| p < r.channels()) && r.holds(from_ns))
        };
        // The finest ring at least as fine as asked; else the finest that holds the window.
        let ring = holding()
            .find(|r| r.width_ns() <= asked)
            .or_else(|| holding().next());
        if let Some((ring, t0)) = ring.and_then(|r| Some((r, r.t0_ns()?))) {
            let out = answer(t0, ring.width_ns(), &|d| {
                let start = d.from_ns();
                ring.decimate_into(d, picks, start);
            });
            return Some((out, "recent"));
        }
        let t0 = self.history.t0_ns()?;
        if picks.iter().any(|&p| p >= self.history.channels()) {
            return None;
        }
        let out = answer(t0, self.history.bucket_ns(), &|d| {
            self.history.decimate_into(d, picks, i64::MAX)
        });
        Some((out, "history"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{Float64Array, RecordBatch, TimestampNanosecondArray, UInt64Array};
    use ensemble_actors::batch::stream_schema;

    const MS: i64 = 1_000_000;

    fn batch(first: u64, rows: u64, spike_at: Option<u64>) -> Arc<RecordBatch> {
        let seqs = first..first + rows;
        let ts: Vec<i64> = seqs.clone().map(|i| i as i64 * 10_000).collect();
        let v: Vec<f64> = seqs
            .clone()
            .map(|i| if Some(i) == spike_at { 99.0 } else { 0.0 })
            .collect();
        let schema = stream_schema(&[ChannelSpec::new("v", "V")]);
        Arc::new(
            RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
                    Arc::new(UInt64Array::from_iter_values(seqs)),
                    Arc::new(Float64Array::from(v)),
                ],
            )
            .expect("batch"),
        )
    }

    #[test]
    fn a_window_is_answered_from_the_finest_ring_that_holds_it_with_its_spike() {
        let channels = [ChannelSpec::new("v", "V")];
        let tap = Tap::new(u64::MAX, 4096);
        let now = Instant::now();
        let mut fold = FoldMemory::new().fold_for(1, now);
        // 100 kHz for 20 s in 1,000-row batches: 2 M samples, within the budget.
        for b in 0..2_000u64 {
            tap.offer(b * 1_000, &batch(b * 1_000, 1_000, Some(1_500_007)));
            if b % 100 == 99 {
                fold.fold_from(
                    &tap,
                    &channels,
                    now + std::time::Duration::from_secs(b / 100),
                );
            }
        }
        assert_eq!(fold.folded_share(), 1.0);
        let to = 20_000 * MS;
        let (ten, source) = fold
            .decimate(&[0], to - 10_000 * MS, to, 2_000)
            .expect("folded");
        assert_eq!(source, "recent");
        assert_eq!(
            ten.bucket_ns,
            8 * MS,
            "4 ms rings, two per bucket for 5 ms asked"
        );
        let max = ten.extremes(0).map(|(_, hi)| hi);
        assert_eq!(max, Some(99.0), "the one-sample spike at 15 s");
        let (all, source) = fold.decimate(&[0], 0, to, 500).expect("folded");
        assert_eq!(source, "recent", "20 s: the 32 ms ring still holds it all");
        assert!(all.t_ns.len() <= 500);
        assert!(
            fold.decimate(&[1], 0, to, 500).is_none(),
            "no such channel folded"
        );
    }

    #[test]
    fn without_rings_the_history_answers_on_its_own_grid() {
        let channels = [ChannelSpec::new("v", "V")];
        let tap = Tap::new(u64::MAX, 64);
        let mut fold = StreamFold::new(1, 0, Instant::now());
        tap.offer(0, &batch(0, 10_000, Some(4_321)));
        fold.fold_from(&tap, &channels, Instant::now());
        let (d, source) = fold.decimate(&[0], 0, 100 * MS, 10).expect("folded");
        assert_eq!(source, "history");
        assert_eq!(d.bucket_ns, 10 * MS);
        assert_eq!(d.series[0].max[4], Some(99.0), "43.21 ms falls in bucket 4");
        assert_eq!(fold.bytes(), HISTORY_CHANNEL_BYTES);
    }

    #[test]
    fn the_fold_memory_runs_out_after_the_first_streams_and_never_exceeds_its_budget() {
        let mut memory = FoldMemory::new();
        let now = Instant::now();
        let folds: Vec<StreamFold> = (0..10_000).map(|_| memory.fold_for(4, now)).collect();
        let bytes: usize = folds.iter().map(StreamFold::bytes).sum();
        assert!(bytes <= HISTORY_BYTES + RECENT_BYTES, "{bytes}");
        assert!(folds[0].bytes() > 0 && folds[9_999].bytes() == 0);
        assert!(memory.history_left < 4 * HISTORY_CHANNEL_BYTES);
        assert!(memory.recent_left < 4 * RECENT_CHANNEL_BYTES);
    }
}
