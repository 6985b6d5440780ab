//! Which columns of a part's next row group are compressed.
//!
//! Compressing a column whose values do not compress costs CPU and saves no disk: zstd-1 on the
//! PLAIN doubles of a noisy signal saved 7% of their bytes and took half of a bare arrow-rs
//! writer's CPU time (`cargo bench --bench writers`, `bare/delta-ints` against
//! `bare/delta-ints+raw-floats`, BENCHMARKS.md). So a column chunk whose compression saved less
//! than the sink's `min_compression_saving` makes that column's next [`RAW_ROW_GROUPS`] row
//! groups uncompressed; then it is compressed again, to notice when the signal changed. Each
//! column chunk's codec is in the file's metadata, so every Parquet reader reads such a file.

/// Row groups a column is stored uncompressed after its compression saved too little, before it
/// is tried again: at most 1 row group in 8 is compressed in vain.
pub(super) const RAW_ROW_GROUPS: usize = 7;

/// Per leaf column, whether its chunk in a given row group is compressed (plain data, no I/O).
#[derive(Debug, Clone)]
pub(super) struct CodecChoice {
    /// Smallest share of its bytes compression must save for a column to stay compressed.
    min_saving: f64,
    /// Per leaf column: the first row group in which it is compressed again.
    raw_until: Vec<usize>,
}

impl CodecChoice {
    /// Every one of `columns` leaf columns compressed until [`observe`](Self::observe) says
    /// otherwise; `min_saving` 0 keeps them compressed whatever they save.
    pub(super) fn new(columns: usize, min_saving: f64) -> Self {
        Self {
            min_saving,
            raw_until: vec![0; columns],
        }
    }

    /// How many leaf columns it chooses for.
    pub(super) fn columns(&self) -> usize {
        self.raw_until.len()
    }

    /// Whether `column` is stored uncompressed in row group `row_group`.
    pub(super) fn raw(&self, column: usize, row_group: usize) -> bool {
        self.raw_until
            .get(column)
            .is_some_and(|&until| row_group < until)
    }

    /// Whether any column is stored uncompressed in row group `row_group`.
    pub(super) fn any_raw(&self, row_group: usize) -> bool {
        self.raw_until.iter().any(|&until| row_group < until)
    }

    /// Records that compressing `column` in row group `row_group` turned `uncompressed` bytes
    /// into `compressed` ones.
    pub(super) fn observe(
        &mut self,
        column: usize,
        row_group: usize,
        compressed: i64,
        uncompressed: i64,
    ) {
        if uncompressed <= 0 || self.min_saving <= 0.0 {
            return;
        }
        let saving = 1.0 - compressed as f64 / uncompressed as f64;
        if saving < self.min_saving {
            if let Some(until) = self.raw_until.get_mut(column) {
                *until = row_group + 1 + RAW_ROW_GROUPS;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_that_compresses_well_stays_compressed() {
        let mut choice = CodecChoice::new(2, 0.1);
        choice.observe(0, 0, 300, 1000);
        choice.observe(1, 0, 899, 1000);
        assert!(!choice.raw(0, 1));
        assert!(!choice.raw(1, 1));
        assert!(!choice.any_raw(1));
    }

    #[test]
    fn a_column_that_saves_too_little_is_raw_for_a_while_then_tried_again() {
        let mut choice = CodecChoice::new(2, 0.1);
        choice.observe(1, 3, 930, 1000);
        assert!(!choice.raw(0, 4), "only the column that saved too little");
        for row_group in 4..4 + RAW_ROW_GROUPS {
            assert!(choice.raw(1, row_group), "row group {row_group}");
            assert!(choice.any_raw(row_group));
        }
        assert!(!choice.raw(1, 4 + RAW_ROW_GROUPS), "compressed again");
        // The probe compressed well this time: it stays compressed.
        choice.observe(1, 4 + RAW_ROW_GROUPS, 500, 1000);
        assert!(!choice.raw(1, 5 + RAW_ROW_GROUPS));
    }

    #[test]
    fn zero_keeps_every_column_compressed_and_empty_chunks_decide_nothing() {
        let mut always = CodecChoice::new(1, 0.0);
        always.observe(0, 0, 1010, 1000);
        assert!(!always.raw(0, 1));
        let mut choice = CodecChoice::new(1, 0.1);
        choice.observe(0, 0, 0, 0);
        choice.observe(5, 0, 990, 1000);
        assert!(!choice.any_raw(1), "nothing observed, and no such column");
    }
}
