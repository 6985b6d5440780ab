//! Which columns of a part's next row group are compressed.
//!
//! Compressing a column whose values do not compress costs CPU and saves no disk: zstd-1 on the
//! PLAIN doubles of a noisy signal saved 7% of their bytes and took half of a bare arrow-rs
//! writer's CPU time (`cargo bench --bench writers`, `bare/delta-ints` against
//! `bare/delta-ints+raw-floats`, BENCHMARKS.md). So a column chunk whose compression saved less
//! than the sink's `min_compression_saving` makes that column's next [`RAW_ROW_GROUPS`] row
//! groups uncompressed; then it is compressed again, to notice when the signal changed. Each
//! probe that saves too little again doubles the stretch (15, 31, up to [`MAX_RAW_ROW_GROUPS`]),
//! so a column that never compresses has about 1 row group in 64 compressed in vain. Each
//! column chunk's codec is in the file's metadata, so every Parquet reader reads such a file.

/// Row groups a column is stored uncompressed after its compression first saved too little,
/// before it is tried again.
pub(super) const RAW_ROW_GROUPS: usize = 7;
/// The longest stretch of uncompressed row groups between two tries.
pub(super) const MAX_RAW_ROW_GROUPS: usize = 63;

/// Per leaf column, whether its chunk in a given row group is compressed (plain data, no I/O).
#[derive(Debug, Clone)]
pub(super) struct CodecChoice {
    /// Smallest share of its bytes compression must save for a column to stay compressed.
    min_saving: f64,
    /// Per leaf column: the first row group in which it is compressed again.
    raw_until: Vec<usize>,
    /// Per leaf column: its last stretch of uncompressed row groups (0 once compressing paid).
    stretch: Vec<usize>,
}

impl CodecChoice {
    /// Every one of `columns` leaf columns compressed until [`observe`](Self::observe) says
    /// otherwise; `min_saving` 0 keeps them compressed whatever they save.
    pub(super) fn new(columns: usize, min_saving: f64) -> Self {
        Self {
            min_saving,
            raw_until: vec![0; columns],
            stretch: vec![0; columns],
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
        let (Some(until), Some(stretch)) =
            (self.raw_until.get_mut(column), self.stretch.get_mut(column))
        else {
            return;
        };
        let saving = 1.0 - compressed as f64 / uncompressed as f64;
        if saving < self.min_saving {
            *stretch = if *stretch == 0 {
                RAW_ROW_GROUPS
            } else {
                (*stretch * 2 + 1).min(MAX_RAW_ROW_GROUPS)
            };
            *until = row_group + 1 + *stretch;
        } else {
            *stretch = 0;
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
    fn each_probe_in_vain_doubles_the_stretch_up_to_the_longest() {
        let mut choice = CodecChoice::new(1, 0.1);
        let mut row_group = 0;
        let mut stretches = Vec::new();
        for _ in 0..6 {
            choice.observe(0, row_group, 990, 1000);
            let next = (row_group + 1..)
                .find(|&g| !choice.raw(0, g))
                .expect("a probe");
            stretches.push(next - row_group - 1);
            row_group = next;
        }
        assert_eq!(stretches, [7, 15, 31, 63, 63, 63]);
        // Compressing paid: the next time it does not, the stretch starts short again.
        choice.observe(0, row_group, 500, 1000);
        choice.observe(0, row_group + 1, 990, 1000);
        assert!(!choice.raw(0, row_group + 2 + RAW_ROW_GROUPS));
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
