//! Instruments: components that produce streams.

pub mod pacing;
pub mod pauses;
pub mod scpi;
pub mod sim;

use actix::{Actor, ActorContext, AsyncContext, Context, SpawnHandle};

/// What an instrument actor does on [`Terminate`](crate::control::Terminate): cancel its running
/// acquisition (without ending its stream) and stop.
pub(crate) fn abandon<A>(running: &mut Option<SpawnHandle>, ctx: &mut Context<A>)
where
    A: Actor<Context = Context<A>>,
{
    if let Some(handle) = running.take() {
        ctx.cancel_future(handle);
    }
    ctx.stop();
}
