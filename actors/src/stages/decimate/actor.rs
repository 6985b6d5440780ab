//! The actix shell of the decimation stage.

use super::stage::DecimateStage;
use crate::stages::StageActor;

/// The decimation stage as an actor: [`StageActor`] around a [`DecimateStage`].
pub type DecimateActor = StageActor<DecimateStage>;
