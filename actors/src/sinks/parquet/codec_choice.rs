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
//! [`factory_storing_raw`] makes the column writers of such a row group.

use std::fs::File;

use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::ArrowRowGroupWriterFactory;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

/// Row groups a column is stored uncompressed after its compression first saved too little,
/// before it is tried again.
pub(super) const RAW_ROW_GROUPS: usize = 7;
/// The longest stretch of uncompressed row groups between two tries.
pub(super) const MAX_RAW_ROW_GROUPS: usize = 63;

/// Per leaf column, whether its chunk in a given row group is compressed (plain data).
#[derive(Debug, Clone)]
pub(super) struct CodecChoice {
    /// Smallest share of its bytes compression must save for a column to stay compressed.
    min_saving: f64,
    /// One per leaf column, in order.
    columns: Vec<Column>,
}

/// Where one leaf column stands.
#[derive(Debug, Clone, Copy, Default)]
struct Column {
    /// The first row group in which it is compressed again.
    raw_until: usize,
    /// Its last stretch of uncompressed row groups (0 once compressing paid).
    stretch: usize,
}

impl CodecChoice {
    /// Every one of `columns` leaf columns compressed until [`observe`](Self::observe) says
    /// otherwise; `min_saving` 0 keeps them compressed whatever they save.
    pub(super) fn new(columns: usize, min_saving: f64) -> Self {
        Self {
            min_saving,
            columns: vec![Column::default(); columns],
        }
    }

    /// Whether `column` is stored uncompressed in row group `row_group`.
    #[cfg(test)]
    pub(super) fn raw(&self, column: usize, row_group: usize) -> bool {
        self.columns
            .get(column)
            .is_some_and(|c| row_group < c.raw_until)
    }

    /// Which leaf columns are stored uncompressed in row group `row_group`, one flag each;
    /// `None` when every column is compressed.
    pub(super) fn raw_columns(&self, row_group: usize) -> Option<Vec<bool>> {
        let raw: Vec<bool> = self
            .columns
            .iter()
            .map(|c| row_group < c.raw_until)
            .collect();
        raw.contains(&true).then_some(raw)
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
        let Some(c) = self.columns.get_mut(column) else {
            return;
        };
        if uncompressed <= 0 || self.min_saving <= 0.0 {
            return;
        }
        let saving = 1.0 - compressed as f64 / uncompressed as f64;
        if saving < self.min_saving {
            c.stretch = if c.stretch == 0 {
                RAW_ROW_GROUPS
            } else {
                (c.stretch * 2 + 1).min(MAX_RAW_ROW_GROUPS)
            };
            c.raw_until = row_group + 1 + c.stretch;
        } else {
            c.stretch = 0;
        }
    }
}

/// A column-writer factory with the properties of `file`, but no compression for the leaf
/// columns marked in `raw`. A factory takes its properties from a file writer: this one's
/// writer writes nowhere, and its column chunks are appended to the part's `file` like the
/// others (each chunk's metadata names its codec).
pub(super) fn factory_storing_raw(
    file: &SerializedFileWriter<File>,
    schema: &SchemaRef,
    raw: &[bool],
) -> Result<ArrowRowGroupWriterFactory, ParquetError> {
    let mut builder = WriterProperties::clone(file.properties()).into_builder();
    for (leaf, _) in file
        .schema_descr()
        .columns()
        .iter()
        .zip(raw)
        .filter(|(_, raw)| **raw)
    {
        builder = builder.set_column_compression(leaf.path().clone(), Compression::UNCOMPRESSED);
    }
    let (_, factory) =
        ArrowWriter::try_new(std::io::sink(), schema.clone(), Some(builder.build()))?
            .into_serialized_writer()?;
    Ok(factory)
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
        assert!(choice.raw_columns(1).is_none());
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
            assert!(choice.raw_columns(row_group).is_some());
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
        assert!(
            choice.raw_columns(1).is_none(),
            "nothing observed, and no such column"
        );
    }
}
