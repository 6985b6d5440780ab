//! The actix shell of the FIR stage.

use super::stage::FirStage;
use crate::stages::StageActor;

/// The FIR stage as an actor: [`StageActor`] around a [`FirStage`].
pub type FirActor = StageActor<FirStage>;
