//! The actix shell of the FFT stage.

use super::stage::FftStage;
use crate::stages::StageActor;

/// The FFT stage as an actor: [`StageActor`] around an [`FftStage`].
pub type FftActor = StageActor<FftStage>;
