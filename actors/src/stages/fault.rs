//! [`Faulty`]: a testing aid that makes any [`Stage`] fail on purpose, to rehearse supervision.
//!
//! A stage table takes the same `fault` table as a simulated instrument
//! ([`SimFault`]: `kind`, `after_rows`, `times`):
//!
//! ```toml
//! [stages.lowpass]
//! type = "fir"
//! inputs = ["sig"]
//! taps = [0.5, 0.5]
//! fault = { kind = "panic", after_rows = 500, times = 1 }
//! ```

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::{Stage, StageError};
use crate::batch::DataBatch;
use crate::instruments::sim::{SimFault, SimFaultKind};

/// Wraps a stage and fails once it has processed `after_rows` input rows.
///
/// Rows are counted from this start (a restarted stage counts from 0 again). The first input
/// batch that arrives once at least `after_rows` rows went through fails, before the wrapped
/// stage sees it:
/// - `kind = "error"`: [`process`](Stage::process) returns [`StageError::InjectedFault`], so the
///   actor reports the failure and stops; the batch is lost with the stage.
/// - `kind = "panic"`: `process` panics, so the actor dies without a report and the coordinator
///   finds it gone. The batch in flight was never answered, so the link's pump delivers it
///   again to the next stage.
///
/// `times` is applied by whoever builds the stage ([`Faulty::new`] takes the fault only for the
/// starts that fail). Without a fault the wrapper only passes calls through.
pub struct Faulty<S> {
    /// The stage that does the work.
    inner: S,
    /// The failure to inject in this start, if any.
    fault: Option<SimFault>,
    /// Input rows processed since this start.
    rows: u64,
}

impl<S: Stage> Faulty<S> {
    /// Wraps `inner`; it fails per `fault` unless `restarts` (the starts before this one) has
    /// reached the fault's `times`.
    pub fn new(inner: S, fault: Option<&SimFault>, restarts: u64) -> Self {
        let fault = fault
            .filter(|f| f.times.is_none_or(|t| restarts < t))
            .cloned();
        Self {
            inner,
            fault,
            rows: 0,
        }
    }
}

impl<S: Stage> Stage for Faulty<S> {
    fn output_schema(&self) -> SchemaRef {
        self.inner.output_schema()
    }

    /// # Panics
    ///
    /// On purpose, when a fault of kind `panic` is due.
    fn process(&mut self, input: &DataBatch, out: &mut Vec<RecordBatch>) -> Result<(), StageError> {
        if let Some(fault) = self.fault.as_ref().filter(|f| self.rows >= f.after_rows) {
            let error = StageError::InjectedFault { rows: self.rows };
            match fault.kind {
                SimFaultKind::Panic => panic!("{error}"),
                // `stall` is refused for stages by the config compiler; built by hand, it fails
                // like `error` rather than hang a stage nobody watches for stalls.
                SimFaultKind::Error | SimFaultKind::Stall => return Err(error),
            }
        }
        self.inner.process(input, out)?;
        self.rows += input.batch.num_rows() as u64;
        Ok(())
    }

    fn flush(&mut self, out: &mut Vec<RecordBatch>) -> Result<(), StageError> {
        self.inner.flush(out)
    }

    fn continue_at(&mut self, seq: u64) {
        self.inner.continue_at(seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::StageInput;
    use crate::stages::fir::{FirConfig, FirStage};
    use crate::stages::test_support::{next_batch, seqs, sim};

    fn fir(fault: Option<&SimFault>, restarts: u64) -> Faulty<FirStage> {
        let input = StageInput::new("sim", &[("ch0", "V")], 1000.0);
        let config = FirConfig {
            taps: Some(vec![0.5, 0.5]),
            design: None,
        };
        Faulty::new(
            FirStage::new(&config, &input).expect("valid"),
            fault,
            restarts,
        )
    }

    fn fault(kind: SimFaultKind, times: Option<u64>) -> SimFault {
        SimFault {
            kind,
            after_rows: 250,
            times,
        }
    }

    #[test]
    fn an_error_fault_rejects_the_first_batch_after_the_count_and_leaves_nothing_behind() {
        let f = fault(SimFaultKind::Error, None);
        let mut stage = fir(Some(&f), 0);
        let mut g = sim(1000.0, 1, 5.0, 1.0, 0.0);
        let mut out = Vec::new();
        for _ in 0..3 {
            stage
                .process(&next_batch(&mut g, 100, 1000.0), &mut out)
                .expect("before the fault");
        }
        let err = stage
            .process(&next_batch(&mut g, 100, 1000.0), &mut out)
            .expect_err("the fault is due after 300 rows");
        assert_eq!(err, StageError::InjectedFault { rows: 300 });
        assert_eq!(err.to_string(), "injected fault after 300 input rows");
        assert_eq!(seqs(&out), (0..300).collect::<Vec<_>>());
    }

    #[test]
    #[should_panic(expected = "injected fault after 100 input rows")]
    fn a_panic_fault_panics() {
        let mut f = fault(SimFaultKind::Panic, Some(1));
        f.after_rows = 100;
        let mut stage = fir(Some(&f), 0);
        let mut g = sim(1000.0, 1, 5.0, 1.0, 0.0);
        let mut out = Vec::new();
        for _ in 0..2 {
            let _ = stage.process(&next_batch(&mut g, 100, 1000.0), &mut out);
        }
    }

    #[test]
    fn times_limits_the_starts_that_fail() {
        let f = fault(SimFaultKind::Error, Some(2));
        let mut g = sim(1000.0, 1, 5.0, 1.0, 0.0);
        let mut out = Vec::new();
        for (restarts, fails) in [(0, true), (1, true), (2, false), (5, false)] {
            let mut stage = fir(Some(&f), restarts);
            let results: Vec<bool> = (0..4)
                .map(|_| {
                    stage
                        .process(&next_batch(&mut g, 100, 1000.0), &mut out)
                        .is_ok()
                })
                .collect();
            assert_eq!(results, [true, true, true, !fails], "after {restarts}");
        }
        let mut plain = fir(None, 0);
        for _ in 0..10 {
            plain
                .process(&next_batch(&mut g, 100, 1000.0), &mut out)
                .expect("no fault");
        }
    }
}
