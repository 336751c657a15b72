//! S4D in the batch crate: the trainer's model (`crate::train::s4d`), the backends' `s4d_scan`, the
//! CUDA float and integer step kernels (`step_s4d`, `step_int_s4d`) and verify's scan-path
//! forward.

use tinyssm_core::blocks::s4d::S4dBlock;
use tinyssm_core::stack::FinalNorm;
use tinyssm_core::{Model, Role};

use super::{BatchKind, BlobOut, StepLayout, VectorModel};
use crate::backend::{Backend, BackendError, Result, ScanDims};
use crate::cuda::step::{self, Packer, StepParams};
use crate::cuda::step_int::{self, v16, IntPacker, StepIntParams};
use crate::support::BatchSupport;
use crate::verify::{f32s, float_compute_only};

/// Weight slots per layer of `step_s4d` and `step_int_s4d`.
const SLOTS: usize = 7;
const INT_SLOTS: usize = 9;

/// The kernels' final norm: LayerNorm with the blocks' eps (flag `FINAL_NORM`), or none.
fn final_norm(b: &S4dBlock, v: &VectorModel) -> Result<bool> {
    match v.norm {
        FinalNorm::None => Ok(false),
        FinalNorm::Layer { eps } if eps == b.norm_eps => Ok(true),
        n => Err(BackendError::Unavailable(format!(
            "the S4D step kernels end in a LayerNorm with the blocks' eps or no norm; this \
             model has {n:?}"
        ))),
    }
}

impl BatchKind for S4dBlock {
    const NAME: &'static str = "s4d";
    const SUPPORT: BatchSupport = BatchSupport {
        train: true,
        scan: Some("s4d_scan"),
        step: true,
        step_int: true,
    };

    fn step_layout(&self, v: &VectorModel, p: &mut StepParams) -> Result<StepLayout> {
        let (h, ns) = (self.d_model as usize, self.d_state as usize);
        if ns % 2 != 0 {
            return Err(step::shape(format!("S4D d_state {ns} is odd")));
        }
        let fin = final_norm(self, v)?;
        p.d_model = h as i64;
        p.d_state = ns as i64;
        p.eps = self.norm_eps;
        p.flags = if self.prenorm { step::PRENORM } else { 0 }
            | if self.glu { step::GLU } else { 0 }
            | if fin { step::FINAL_NORM } else { 0 };
        Ok(StepLayout {
            kernel: "step_s4d",
            per_layer: SLOTS,
            state_per_layer: h * ns,
            smem: 2 * h + if self.glu { 2 * h } else { h } + v.d_in + 2,
        })
    }

    fn step_pack_layer(&self, pk: &mut Packer<'_>, b: usize, layer: u16) -> Result<()> {
        let (h, half) = (self.d_model as usize, self.d_state as usize / 2);
        let no = if self.glu { 2 * h } else { h };
        let li = Some(layer);
        pk.vec(b, li, Role::Norm, h)?;
        pk.vec(b + 1, li, Role::NormBias, h)?;
        pk.vec(b + 2, li, Role::DA, h * half * 2)?;
        pk.vec(b + 3, li, Role::CB, h * half * 2)?;
        pk.vec(b + 4, li, Role::D, h)?;
        pk.mat(b + 5, li, Role::OutLinear, no, h)?;
        pk.vec(b + 6, li, Role::OutLinearBias, no)
    }

    fn step_int_layout(&self, v: &VectorModel, p: &mut StepIntParams) -> Result<StepLayout> {
        let (h, ns) = (self.d_model as usize, self.d_state as usize);
        if ns < 2 || h == 0 {
            return Err(step_int::shape(format!("S4D d_model {h}, d_state {ns}")));
        }
        let fin = final_norm(self, v)?;
        p.d_model = h as i64;
        p.d_state = ns as i64;
        p.flags = if self.prenorm { step_int::PRENORM } else { 0 }
            | if self.glu { step_int::GLU } else { 0 }
            | if fin { step_int::FINAL_NORM } else { 0 };
        Ok(StepLayout {
            kernel: "step_int_s4d",
            per_layer: INT_SLOTS,
            state_per_layer: h * (ns / 2) * 2,
            smem: 2 * v16(h) + v16(if self.glu { 2 * h } else { h }) + v16(v.d_in),
        })
    }

    fn step_int_pack_layer(&self, pk: &mut IntPacker<'_>, b: usize, layer: u16) -> Result<()> {
        let (h, half) = (self.d_model as usize, self.d_state as usize / 2);
        let no = if self.glu { 2 * h } else { h };
        let li = Some(layer);
        pk.plan(b, li, Role::IntLayerPlan)?;
        pk.i16s(b + 1, li, Role::Norm, h)?;
        pk.i32s(b + 2, li, Role::NormBias, h)?;
        pk.i32s(b + 3, li, Role::DA, h * half * 2)?;
        pk.i32s(b + 4, li, Role::CB, h * half * 2)?;
        pk.i32s(b + 5, li, Role::D, h)?;
        pk.mat(b + 6, li, Role::OutLinear, no, h)?;
        pk.i32s(b + 8, li, Role::OutLinearBias, no)
    }

    /// Runs the model on the backend over `batch` streams of input vectors (`[batch, time,
    /// d_input]`, padded; `lens` valid steps): every valid step's outputs per stream and
    /// each layer's state after each stream's last step.
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
        if !c.glu {
            return Err(BackendError::Unavailable(
                "verify supports S4D models with the GLU output in this build".into(),
            ));
        }
        let final_norm = final_norm(self, v)?;
        let (h, n2, di, o) = (c.d_model as usize, c.d_state as usize / 2, v.d_in, v.d_out);
        let batch = lens.len();
        let r = batch * time;
        let up = |layer: Option<u16>, role: Role| -> Result<B::Buf> {
            be.upload(&f32s(m, layer, role)?)
        };
        let xin = be.upload(x)?;
        let mut xs = be.zeros(r * h)?;
        be.linear_fwd(
            &xin,
            &up(None, Role::Encoder)?,
            Some(&up(None, Role::EncoderBias)?),
            r,
            di,
            h,
            &mut xs,
        )?;
        let mut finals: Vec<Vec<Vec<f32>>> = vec![Vec::new(); batch];
        for l in 0..v.n_layers as u16 {
            let li = Some(l);
            let mut z = be.zeros(r * h)?;
            let mut stats = be.zeros(r * 2)?;
            let (nw, nb) = (up(li, Role::Norm)?, up(li, Role::NormBias)?);
            if c.prenorm {
                be.layer_norm_fwd(&xs, &nw, &nb, r, h, c.norm_eps, &mut z, &mut stats)?;
            } else {
                be.fill(&mut z, 0.0)?;
                be.add_assign(&mut z, &xs)?;
            }
            let mut y = be.zeros(r * h)?;
            let mut states = be.zeros(r * h * n2 * 2)?;
            let dims = ScanDims { batch, time, h, n2 };
            be.s4d_scan_fwd(
                dims,
                &z,
                &up(li, Role::DA)?,
                &up(li, Role::CB)?,
                &up(li, Role::D)?,
                &mut y,
                &mut states,
            )?;
            let st = be.download(&states)?;
            let per = h * n2 * 2;
            for (b, &n) in lens.iter().enumerate() {
                let t = n.clamp(1, time) - 1;
                finals[b].push(st[(b * time + t) * per..(b * time + t + 1) * per].to_vec());
            }
            let mut g = be.zeros(r * h)?;
            be.gelu_fwd(&y, &mut g)?;
            let mut ov = be.zeros(r * 2 * h)?;
            be.linear_fwd(
                &g,
                &up(li, Role::OutLinear)?,
                Some(&up(li, Role::OutLinearBias)?),
                r,
                h,
                2 * h,
                &mut ov,
            )?;
            let mut a = be.zeros(r * h)?;
            be.glu_fwd(&ov, r, h, &mut a)?;
            be.add_assign(&mut xs, &a)?;
            if !c.prenorm {
                let mut t = be.zeros(r * h)?;
                be.layer_norm_fwd(&xs, &nw, &nb, r, h, c.norm_eps, &mut t, &mut stats)?;
                xs = t;
            }
        }
        let feat = if final_norm {
            let mut t = be.zeros(r * h)?;
            let mut stats = be.zeros(r * 2)?;
            be.layer_norm_fwd(
                &xs,
                &up(None, Role::NormF)?,
                &up(None, Role::NormFBias)?,
                r,
                h,
                c.norm_eps,
                &mut t,
                &mut stats,
            )?;
            t
        } else {
            xs
        };
        let mut out = be.zeros(r * o)?;
        be.linear_fwd(
            &feat,
            &up(None, Role::Decoder)?,
            Some(&up(None, Role::DecoderBias)?),
            r,
            h,
            o,
            &mut out,
        )?;
        let out = be.download(&out)?;
        let outs = lens
            .iter()
            .enumerate()
            .map(|(b, &n)| out[b * time * o..(b * time + n.min(time)) * o].to_vec())
            .collect();
        Ok((outs, finals))
    }
}
