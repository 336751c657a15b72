//! S5 block (Smith, Warrington & Linderman, "Simplified State Space Layers for Sequence
//! Modeling", arXiv 2208.04933): one multi-input multi-output diagonal SSM whose `P`
//! complex modes are shared by all channels, with its norm, activation and residual:
//!
//! ```text
//! n = LayerNorm(x) (pre-norm) or x
//! u = B̄ · n                       B̄: [P, H] real, or [P, H] complex stored as [2P, H] rows (re, im)
//! h ← λ ⊙ h + u                   λ: P complex discretised modes, [P, 2] (re, im)
//! y = C · Re(h)                   C: [H, P] real, or complex C̃ stored as [H, 2P] = (Re C̃, −Im C̃)
//!   (+ D ⊙ n)                     so that y = Re(C̃ h) is one product with the state vector
//! y = LayerNorm(y) (post-norm); y = act(y)
//! x = x + y (residual) or x = y
//! ```
//!
//! The discretisation happens at conversion (`tinyssm-tools`), so one kind covers every
//! parameterisation: the S5 paper's zero-order hold (`λ = exp(ΔΛ)`, `B̄ = (λ − 1)/Λ · B̃`)
//! and bilinear (`λ = (1 + ΔΛ/2)/(1 − ΔΛ/2)`, `B̄ = Δ/(1 − ΔΛ/2) · B̃`) with complex `B̃`,
//! `C̃` and a `D` skip; and aTENNuate's (arXiv 2409.03377) kernel form `K[l] = exp(Δ·a·l) ·
//! cos(Δ·ω·l)` with `a = −softplus(log_A_real)`, `ω = A_imag`, real `B` scaled by `Δ`, real
//! `C`, no `D` — `K[l] = Re(λ^l)` with `λ = exp(Δ(a + iω))`, so the recurrence above with
//! real `B̄ = Δ·B` and `y = C·Re(h)` is exactly its convolution.
//!
//! Modes: float and w8a8 (`float.rs`; `B̄` and `C` are matrices, so int8 conversions
//! quantize them). State per layer and stream: `P` complex values as (re, im) pairs.

pub(crate) mod float;

use serde::{Deserialize, Serialize};

use super::{add, mul, pos, s1, s2, BlockKind, Layer, Modes, Shape};
use crate::error::{FormatError, StepError};
use crate::probe::{Probe, Site};
use crate::role::{Role, RoleList};

/// Where the S5 block's LayerNorm (weight [`Role::Norm`], bias [`Role::NormBias`]) sits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum S5Norm {
    None,
    /// On the block input, before the SSM (the S5 paper's pre-norm).
    Pre {
        eps: f32,
    },
    /// On the SSM output, before the activation (aTENNuate: SSM, LayerNorm, SiLU).
    Post {
        eps: f32,
    },
}

/// The activation on the SSM output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum S5Act {
    None,
    /// `x·sigmoid(x)`.
    Silu,
    /// Exact (erf) GELU.
    Gelu,
}

/// One S5 block's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct S5Block {
    /// Channels H (the SSM's input and output width).
    pub d_model: u32,
    /// Complex modes P.
    pub n_modes: u32,
    /// `B̄` complex (`[2P, H]`, rows re/im per mode) or real (`[P, H]`).
    pub complex_b: bool,
    /// `C` complex (`[H, 2P]`: `Re C̃`, `−Im C̃` per mode) or real (`[H, P]`, on `Re h`).
    pub complex_c: bool,
    /// A `D ⊙ n` skip ([`Role::D`], `[H]`).
    pub d_skip: bool,
    pub norm: S5Norm,
    pub act: S5Act,
    /// Add the block input to its output (false: the output replaces it).
    pub residual: bool,
}

impl S5Block {
    fn b_rows(&self) -> Option<u32> {
        if self.complex_b {
            self.n_modes.checked_mul(2)
        } else {
            Some(self.n_modes)
        }
    }
    fn c_cols(&self) -> Option<u32> {
        if self.complex_c {
            self.n_modes.checked_mul(2)
        } else {
            Some(self.n_modes)
        }
    }
}

impl BlockKind for S5Block {
    const NAME: &'static str = "s5";
    const SUMMARY: &'static str =
        "S5 MIMO diagonal complex SSM (modes shared by channels; discretised at conversion)";
    const MODES: Modes = Modes {
        float: true,
        w8a8: true,
        int: false,
    };
    const FAST_KERNELS: bool = false;

    fn d_model(&self) -> u32 {
        self.d_model
    }

    fn validate(&self) -> Result<(), FormatError> {
        pos(self.d_model, "d_model must be in 1..=2^24")?;
        pos(self.n_modes, "S5 n_modes must be in 1..=2^24")?;
        match self.norm {
            S5Norm::None => Ok(()),
            S5Norm::Pre { eps } | S5Norm::Post { eps } => super::eps(eps),
        }
    }

    fn roles(&self, l: &mut RoleList) {
        let ln = !matches!(self.norm, S5Norm::None);
        l.push_if(ln, Role::Norm);
        l.push_if(ln, Role::NormBias);
        l.push_if(true, Role::S5Lambda);
        l.push_if(true, Role::S5B);
        l.push_if(true, Role::S5C);
        l.push_if(self.d_skip, Role::D);
    }

    fn shape(&self, role: Role) -> Option<Shape> {
        Some(match role {
            Role::Norm | Role::NormBias | Role::D => s1(self.d_model),
            Role::S5Lambda => s2(self.n_modes, 2),
            Role::S5B => s2(self.b_rows()?, self.d_model),
            Role::S5C => s2(self.d_model, self.c_cols()?),
            _ => return None,
        })
    }

    fn state_len(&self) -> Result<u64, FormatError> {
        mul(2, self.n_modes as u64)
    }

    fn scratch_len(&self) -> Result<u64, FormatError> {
        // n (the normed input), u = B̄·n, y; the real-C gather of Re(h) reuses u.
        let h = self.d_model as u64;
        add(mul(2, h)?, mul(2, self.n_modes as u64)?)
    }

    fn macs(&self) -> u64 {
        // The complex mode update (4 multiplies per mode; the matrices are counted from
        // their shapes).
        4 * self.n_modes as u64
    }

    fn matrix_input(&self, role: Role) -> Option<Site> {
        match role {
            Role::S5B => Some(Site::NormOut),
            // The state (complex C reads it whole; real C reads its real parts).
            Role::S5C => Some(Site::State),
            _ => None,
        }
    }

    #[inline]
    fn layer<P: Probe>(
        &self,
        at: Layer<'_, '_>,
        resid: &mut [f32],
        state: &mut [f32],
        scratch: &mut [f32],
        probe: &mut P,
    ) -> Result<(), StepError> {
        float::layer(self, at, resid, state, scratch, probe)
    }
}
