//! Observing a float step's intermediate values: the calibration hook of the integer-only
//! conversion (`tinyssm convert --compute int --calibrate …`).
//!
//! [`crate::Model::step_probed`] runs exactly the float step of [`crate::Model::step`]
//! (same kernels, same arithmetic, same outputs) and hands each named intermediate vector
//! to a [`Probe`]. The plain step passes [`NoProbe`], whose empty `observe` compiles away.

/// A named point inside a float step. `layer` is given with it to [`Probe::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Site {
    /// The step's input vector (the front end's features for audio models).
    Input,
    /// The residual stream (after the encoder and after every layer).
    Resid,
    /// A layer's norm output.
    NormOut,
    /// A layer's recurrent state after the update (S4D modes, Mamba SSM state).
    State,
    /// S4D: `2·Re(Σ C̃·h) + D·u`, the GELU input.
    S4dPreGelu,
    /// S4D: the GELU output (the output linear's input).
    S4dGeluOut,
    /// S4D: the output linear's value rows (GLU `a`, or the whole output without GLU).
    S4dGlu,
    /// S4D: the output linear's gate rows (GLU `g`).
    S4dGate,
    /// The final norm's output.
    FinalNorm,
    /// The model's outputs.
    Output,
    /// Mamba: in_proj's `x` and `z` halves.
    MambaX,
    MambaZ,
    /// Mamba: the conv sum before SiLU.
    MambaConvPre,
    /// Mamba: SiLU(conv) (x_proj's input and the scan input).
    MambaConvOut,
    /// Mamba: x_proj's dt, B and C parts.
    MambaDtIn,
    MambaB,
    MambaC,
    /// Mamba: dt_proj's output (softplus input).
    MambaSoftplusIn,
    /// Mamba: `C·h + D·u` before the gate.
    MambaY,
    /// Mamba: `y · SiLU(z)` (out_proj's input).
    MambaGated,
    /// Mamba: out_proj's output.
    MambaOutProj,
    /// Gated MLP: `act(gate) ⊙ up` (the down projection's input).
    MlpHidden,
}

/// Receives intermediate values of a float step.
pub trait Probe {
    fn observe(&mut self, layer: Option<u16>, site: Site, values: &[f32]);
}

/// The probe of the plain step: observes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProbe;

impl Probe for NoProbe {
    #[inline(always)]
    fn observe(&mut self, _: Option<u16>, _: Site, _: &[f32]) {}
}
