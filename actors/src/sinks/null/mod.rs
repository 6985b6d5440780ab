//! The null sink (`type = "null"`): counts rows and discards them, to measure the pipeline
//! without encoding or disk.

mod actor;
mod config;
mod sink;

pub use actor::NullSinkActor;
pub use config::NullSinkConfig;
pub use sink::NullSink;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::DataBatch;
    use crate::instruments::sim::{SimGenerator, SimInstrumentConfig};

    #[test]
    fn counts_rows_per_input_in_declaration_order() {
        let cfg: SimInstrumentConfig = serde_json::from_str(r#"{"rate_hz": 100.0}"#).expect("ok");
        let mut g = SimGenerator::new(&cfg, 0, 0);
        let mut sink = NullSink::new(vec!["b".into(), "a".into()]);
        sink.write(&DataBatch::new("a".into(), 0, g.generate(7)));
        sink.write(&DataBatch::new("a".into(), 7, g.generate(3)));
        sink.write(&DataBatch::new("z".into(), 0, g.generate(3)));
        let report = sink.report();
        let rows: Vec<(String, u64)> = report
            .streams
            .iter()
            .map(|s| (s.stream.to_string(), s.rows))
            .collect();
        assert_eq!(rows, [("b".to_string(), 0), ("a".to_string(), 10)]);
        assert_eq!(report.latency.map(|h| h.count()), Some(2));
    }

    #[test]
    fn rejects_unknown_keys() {
        let err = toml::from_str::<NullSinkConfig>("compression = \"zstd\"").expect_err("unknown");
        assert!(err.to_string().contains("compression"), "{err}");
    }
}
