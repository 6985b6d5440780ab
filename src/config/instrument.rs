//! Compiling `[instruments.NAME]` tables: simulated and SCPI instruments (with their profiles)
//! and their stall watch.

use std::time::Duration;

use arrow_schema::SchemaRef;
use ensemble_actors::batch::{ChannelSpec, stream_schema, stream_schema_with_rate};
use ensemble_actors::instruments::scpi::ScpiInstrumentConfig;
use ensemble_actors::instruments::sim::SimInstrumentConfig;
use toml::de::DeTable;

use super::component::{SUPERVISION_KEYS, component_config, take_supervision, take_type};
use super::error::Diagnostics;
use super::experiment::{InstrumentKind, InstrumentSpec};
use super::profile::{ProfileSource, merge, shift_table};
use super::raw::Section;
use super::value::{self, Span, join};

/// Known instrument `type`s.
pub(crate) const INSTRUMENT_TYPES: &[&str] = &["sim", "scpi"];
/// Default `stall_timeout` of a simulated instrument (SCPI instruments are not watched unless
/// they set one: a device that stops answering shows as read timeouts).
pub const DEFAULT_SIM_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Compiles an instrument table.
pub(super) fn compile_instrument(
    section: &Section<'_>,
    profiles: &dyn ProfileSource,
    d: &mut Diagnostics,
) -> Option<InstrumentSpec> {
    let path = join("instruments", &section.name);
    let before = d.len();
    let mut rest = section.table.clone();
    let ty = take_type(&mut rest, section, &path, "instrument", INSTRUMENT_TYPES, d);
    let supervision = take_supervision(&mut rest, &path, d);
    let stall_timeout = rest.remove("stall_timeout").map(|v| {
        (
            v.span(),
            value::duration(&format!("{path}.stall_timeout"), &v, true, d),
        )
    });
    let mut common: Vec<&str> = vec!["type", "stall_timeout"];
    common.extend_from_slice(SUPERVISION_KEYS);
    let kind = match ty.as_deref() {
        Some("sim") => component_config::<SimInstrumentConfig>(section, rest, &path, &common, d)
            .map(InstrumentKind::Sim),
        Some("scpi") => compile_scpi(section, rest, &path, profiles, d).map(InstrumentKind::Scpi),
        _ => None,
    };
    if d.len() != before {
        return None;
    }
    let kind = kind?;
    let stall_timeout = match stall_timeout {
        // "0s" turns the watch off.
        Some((span, set)) => {
            let set = set.filter(|t| !t.is_zero());
            check_stall_timeout(&kind, set, span, &path, d)?;
            set
        }
        None => match &kind {
            InstrumentKind::Sim(cfg) => Some(DEFAULT_SIM_STALL_TIMEOUT.max(cfg.batch_interval * 4)),
            InstrumentKind::Scpi(_) => None,
        },
    };
    Some(InstrumentSpec {
        name: section.name.clone(),
        kind,
        supervision,
        stall_timeout,
    })
}

impl InstrumentKind {
    /// The `type` as written in the file; also the manifest's `component_type` of its stream.
    pub fn type_name(&self) -> &'static str {
        match self {
            InstrumentKind::Sim(_) => "sim",
            InstrumentKind::Scpi(_) => "scpi",
        }
    }

    /// The channels of the instrument's stream, in column order.
    pub fn channels(&self) -> Vec<ChannelSpec> {
        match self {
            InstrumentKind::Sim(cfg) => cfg
                .channels
                .iter()
                .map(|c| ChannelSpec::new(c, &cfg.unit))
                .collect(),
            InstrumentKind::Scpi(cfg) => cfg
                .read
                .iter()
                .map(|r| ChannelSpec::new(&r.channel, &r.unit))
                .collect(),
        }
    }

    /// The schema of the instrument's stream: the one both the compiler (to check the stages
    /// that read it) and the coordinator (to plan the stream) use.
    pub fn schema(&self) -> SchemaRef {
        match self {
            InstrumentKind::Sim(cfg) => stream_schema_with_rate(&self.channels(), cfg.rate_hz),
            InstrumentKind::Scpi(_) => stream_schema(&self.channels()),
        }
    }

    /// Rows per second, if fixed (an SCPI instrument reads as fast as its device answers).
    pub fn rate_hz(&self) -> Option<f64> {
        match self {
            InstrumentKind::Sim(cfg) => Some(cfg.rate_hz),
            InstrumentKind::Scpi(_) => None,
        }
    }
}

/// A `stall_timeout` must leave room for the instrument's own rhythm, and needs rows to watch.
fn check_stall_timeout(
    kind: &InstrumentKind,
    timeout: Option<Duration>,
    span: Span,
    path: &str,
    d: &mut Diagnostics,
) -> Option<()> {
    let Some(timeout) = timeout else {
        return Some(());
    };
    let key = format!("{path}.stall_timeout");
    let (rhythm, what) = match kind {
        InstrumentKind::Sim(cfg) => (cfg.batch_interval, "batch_interval"),
        InstrumentKind::Scpi(cfg) if cfg.read.is_empty() => {
            d.at(
                span,
                &key,
                "the instrument has no `read` channels, so there is nothing to watch for a stall",
            );
            return None;
        }
        InstrumentKind::Scpi(cfg) => (cfg.poll_interval, "poll_interval"),
    };
    if timeout <= rhythm * 2 {
        d.at(
            span,
            &key,
            format!(
                "{timeout:?} is too short: it must be longer than twice `{what}` ({rhythm:?}), or \"0s\" to turn stall detection off"
            ),
        );
        return None;
    }
    Some(())
}

/// An SCPI instrument: its `profile` (if named) merged under its own keys, then compiled like
/// any component. Values that come from the profile are reported in the profile's file.
fn compile_scpi(
    section: &Section<'_>,
    mut rest: DeTable<'_>,
    path: &str,
    profiles: &dyn ProfileSource,
    d: &mut Diagnostics,
) -> Option<ScpiInstrumentConfig> {
    let mut common: Vec<&str> = vec!["type", "profile"];
    common.extend_from_slice(SUPERVISION_KEYS);
    let Some(profile_value) = rest.remove("profile") else {
        return component_config::<ScpiInstrumentConfig>(section, rest, path, &common, d);
    };
    let key = format!("{path}.profile");
    let name = value::non_empty_string(&key, &profile_value, d)?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        d.at(
            profile_value.span(),
            &key,
            format!("`{name}` must be a plain name (letters, digits, `_`, `-`), not a path"),
        );
        return None;
    }
    let profile = match profiles.profile(&name) {
        Ok(p) => p,
        Err(e) => {
            d.at(profile_value.span(), &key, e);
            return None;
        }
    };
    let (parsed, errors) = DeTable::parse_recoverable(&profile.text);
    if !errors.is_empty() {
        let first = errors
            .first()
            .map(|e| e.message().trim().to_string())
            .unwrap_or_default();
        d.at(
            profile_value.span(),
            &key,
            format!(
                "profile `{name}` ({}) is not valid TOML: {first}",
                profile.path.display()
            ),
        );
        return None;
    }
    let base = d.add_source(profile.path.clone(), profile.text.clone());
    let mut profile_table = shift_table(parsed.into_inner(), base);
    for reserved in ["type", "profile"] {
        if let Some(v) = profile_table.remove(reserved) {
            d.at(
                v.span(),
                &format!("{path}.{reserved}"),
                format!("a profile may not set `{reserved}`"),
            );
        }
    }
    let merged = merge(profile_table, rest);
    let merged_section = Section {
        name: section.name.clone(),
        key: section.key.clone(),
        span: section.span.clone(),
        table: merged.clone(),
    };
    component_config::<ScpiInstrumentConfig>(&merged_section, merged, path, &common, d)
}
