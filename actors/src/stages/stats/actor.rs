//! The actix shell of the statistics stage.

use super::stage::StatsStage;
use crate::stages::StageActor;

/// The statistics stage as an actor: [`StageActor`] around a [`StatsStage`].
pub type StatsActor = StageActor<StatsStage>;
