//! Mamba-1 in the batch crate: the trainer's model (`crate::train::mamba`), the backends'
//! `selective_scan`, the CUDA float and integer step kernels (`step_mamba`,
//! `step_int_mamba`) and verify's scan-path forward.

use tinyssm_core::blocks::mamba1::Mamba1Block;
use tinyssm_core::stack::FinalNorm;
use tinyssm_core::{Model, Role};

use super::{BatchKind, BlobOut, StepLayout, VectorModel};
use crate::backend::{Backend, BackendError, Result};
use crate::cuda::step::{self, MatUse, Packer, StepParams};
use crate::cuda::step_int::{self, v16, IntPacker, StepIntParams};
use crate::support::BatchSupport;
use crate::verify::{f32s, float_compute_only};

/// Weight slots per layer of `step_mamba` and `step_int_mamba`.
const SLOTS: usize = 12;
const INT_SLOTS: usize = 17;

/// `(d_model, d_inner, d_state, d_conv, dt_rank)`.
fn dims(b: &Mamba1Block) -> (usize, usize, usize, usize, usize) {
    (
        b.d_model as usize,
        b.d_inner as usize,
        b.d_state as usize,
        b.d_conv as usize,
        b.dt_rank as usize,
    )
}

/// The kernels and the trainer's model end in an RMSNorm with the blocks' eps.
fn check_norm(b: &Mamba1Block, v: &VectorModel) -> Result<()> {
    match v.norm {
        FinalNorm::Rms { eps } if eps == b.norm_eps => Ok(()),
        n => Err(BackendError::Unavailable(format!(
            "the batch Mamba-1 paths end in an RMSNorm with the blocks' eps; this model has \
             {n:?}"
        ))),
    }
}

impl BatchKind for Mamba1Block {
    const NAME: &'static str = "mamba1";
    const SUPPORT: BatchSupport = BatchSupport {
        train: true,
        scan: Some("selective_scan"),
        step: true,
        step_int: true,
    };

    fn step_layout(&self, v: &VectorModel, p: &mut StepParams) -> Result<StepLayout> {
        let (dm, di, n, dc, r) = dims(self);
        if dc == 0 {
            return Err(step::shape("Mamba d_conv is 0".into()));
        }
        check_norm(self, v)?;
        p.d_model = dm as i64;
        p.d_inner = di as i64;
        p.d_state = n as i64;
        p.d_conv = dc as i64;
        p.dt_rank = r as i64;
        p.eps = self.norm_eps;
        p.flags = if self.conv_bias { step::CONV_BIAS } else { 0 }
            | if self.in_proj_bias { step::IN_BIAS } else { 0 }
            | if self.out_proj_bias {
                step::OUT_BIAS
            } else {
                0
            };
        Ok(StepLayout {
            kernel: "step_mamba",
            per_layer: SLOTS,
            state_per_layer: di * (dc - 1) + di * n,
            smem: 2 * dm + 2 * di + r + 2 * n + v.d_in + 2,
        })
    }

    fn step_pack_layer(&self, pk: &mut Packer<'_>, b: usize, layer: u16) -> Result<()> {
        let (dm, di, n, dc, r) = dims(self);
        let li = Some(layer);
        pk.vec(b, li, Role::Norm, dm)?;
        pk.mat(b + 1, li, Role::InProj, 2 * di, dm)?;
        if self.in_proj_bias {
            pk.vec(b + 2, li, Role::InProjBias, 2 * di)?;
        }
        pk.vec(b + 3, li, Role::ConvW, di * dc)?;
        if self.conv_bias {
            pk.vec(b + 4, li, Role::ConvB, di)?;
        }
        pk.mat(b + 5, li, Role::XProj, r + 2 * n, di)?;
        pk.mat_as(b + 6, li, Role::DtProj, di, r, MatUse::Rows)?;
        pk.vec(b + 7, li, Role::DtProjBias, di)?;
        pk.vec(b + 8, li, Role::A, di * n)?;
        pk.vec(b + 9, li, Role::D, di)?;
        pk.mat(b + 10, li, Role::OutProj, dm, di)?;
        if self.out_proj_bias {
            pk.vec(b + 11, li, Role::OutProjBias, dm)?;
        }
        Ok(())
    }

    fn step_int_layout(&self, v: &VectorModel, p: &mut StepIntParams) -> Result<StepLayout> {
        let (dm, di, n, dc, r) = dims(self);
        if dc == 0 || dm == 0 || di == 0 || r == 0 {
            return Err(step_int::shape(format!(
                "Mamba d_model {dm}, d_inner {di}, d_conv {dc}, dt_rank {r}"
            )));
        }
        check_norm(self, v)?;
        p.d_model = dm as i64;
        p.d_inner = di as i64;
        p.d_state = n as i64;
        p.d_conv = dc as i64;
        p.dt_rank = r as i64;
        p.flags = if self.conv_bias {
            step_int::CONV_BIAS
        } else {
            0
        } | if self.in_proj_bias {
            step_int::IN_BIAS
        } else {
            0
        } | if self.out_proj_bias {
            step_int::OUT_BIAS
        } else {
            0
        };
        Ok(StepLayout {
            kernel: "step_int_mamba",
            per_layer: INT_SLOTS,
            state_per_layer: di * (dc - 1) + di * n,
            smem: 2 * v16(dm) + v16(2 * di) + v16(r + 2 * n) + v16(v.d_in),
        })
    }

    fn step_int_pack_layer(&self, pk: &mut IntPacker<'_>, b: usize, layer: u16) -> Result<()> {
        let (dm, di, n, dc, r) = dims(self);
        let li = Some(layer);
        pk.plan(b, li, Role::IntLayerPlan)?;
        pk.i16s(b + 1, li, Role::Norm, dm)?;
        pk.mat(b + 2, li, Role::InProj, 2 * di, dm)?;
        if self.in_proj_bias {
            pk.i32s(b + 4, li, Role::InProjBias, 2 * di)?;
        }
        pk.i16s(b + 5, li, Role::ConvW, di * dc)?;
        if self.conv_bias {
            pk.i32s(b + 6, li, Role::ConvB, di)?;
        }
        pk.mat(b + 7, li, Role::XProj, r + 2 * n, di)?;
        pk.mat(b + 9, li, Role::DtProj, di, r)?;
        pk.i32s(b + 11, li, Role::DtProjBias, di)?;
        pk.i32s(b + 12, li, Role::A, di * n)?;
        pk.i32s(b + 13, li, Role::D, di)?;
        pk.mat(b + 14, li, Role::OutProj, dm, di)?;
        if self.out_proj_bias {
            pk.i32s(b + 16, li, Role::OutProjBias, dm)?;
        }
        Ok(())
    }

    /// The trainer's model ([`crate::train::mamba::forward`]) with the blob's weights, all streams
    /// in one batch: every valid step's outputs per stream and each layer's final state in
    /// the core's layout.
    fn blob_forward<B: Backend>(
        &self,
        be: &B,
        m: &Model<'_>,
        v: &VectorModel,
        x: &[f32],
        time: usize,
        lens: &[usize],
    ) -> Result<BlobOut> {
        float_compute_only(m)?;
        let c = *self;
        if c.in_proj_bias || c.out_proj_bias || !c.conv_bias {
            return Err(BackendError::Unavailable(
                "verify supports Mamba-1 vector models without in/out projection biases".into(),
            ));
        }
        check_norm(self, v)?;
        let s = crate::train::mamba::MambaShape {
            d_input: v.d_in,
            d_model: c.d_model as usize,
            d_inner: c.d_inner as usize,
            d_state: c.d_state as usize,
            d_conv: c.d_conv as usize,
            dt_rank: c.dt_rank as usize,
            n_layers: v.n_layers,
            d_output: v.d_out,
            norm_eps: c.norm_eps,
        };
        let (dm, di, n, r) = (s.d_model, s.d_inner, s.d_state, s.dt_rank);
        // The training layout from the blob: in_proj and x_proj split into their row
        // blocks, A_log = ln(−A).
        let mut w: Vec<Vec<f32>> = vec![
            f32s(m, None, Role::Encoder)?,
            f32s(m, None, Role::EncoderBias)?,
        ];
        for l in 0..s.n_layers as u16 {
            let li = Some(l);
            let inp = f32s(m, li, Role::InProj)?;
            let xp = f32s(m, li, Role::XProj)?;
            w.push(f32s(m, li, Role::Norm)?);
            w.push(inp[..di * dm].to_vec());
            w.push(inp[di * dm..].to_vec());
            w.push(f32s(m, li, Role::ConvW)?);
            w.push(f32s(m, li, Role::ConvB)?);
            w.push(xp[..r * di].to_vec());
            w.push(xp[r * di..(r + n) * di].to_vec());
            w.push(xp[(r + n) * di..].to_vec());
            w.push(f32s(m, li, Role::DtProj)?);
            w.push(f32s(m, li, Role::DtProjBias)?);
            w.push(
                f32s(m, li, Role::A)?
                    .iter()
                    .map(|&a| ((-a) as f64).ln() as f32)
                    .collect(),
            );
            w.push(f32s(m, li, Role::D)?);
            w.push(f32s(m, li, Role::OutProj)?);
        }
        w.push(f32s(m, None, Role::NormF)?);
        w.push(f32s(m, None, Role::Decoder)?);
        w.push(f32s(m, None, Role::DecoderBias)?);
        let wb: Vec<B::Buf> = w.iter().map(|v| be.upload(v)).collect::<Result<_>>()?;
        let batch = lens.len();
        let rows: Vec<usize> = (0..batch * time).collect();
        let f = crate::train::mamba::forward(be, &s, &wb, x, batch, time, rows)?;
        let out = be.download(&f.logits)?;
        let o = s.d_output;
        let outs = lens
            .iter()
            .enumerate()
            .map(|(b, &len)| out[b * time * o..(b * time + len.min(time)) * o].to_vec())
            .collect();
        Ok((outs, f.final_states(be, &s, &wb, lens)?))
    }
}
