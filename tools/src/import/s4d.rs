//! S4D sensor-model checkpoints: `config.json` + `model.safetensors`, tensor names as in
//! the state-spaces/s4 `S4D` layer (`models/s4/s4d.py`) inside its example `S4Model`.
//!
//! `config.json`:
//! ```json
//! {"architecture": "s4d", "d_input": 3, "d_model": 64, "d_state": 64, "n_layers": 4,
//!  "d_output": 10, "prenorm": true, "output": "glu", "final_norm": true,
//!  "head": "classification", "norm_eps": 1e-5}
//! ```
//! Tensors (H = d_model, N = d_state, N/2 complex modes):
//! `encoder.weight [H, d_input]`, `encoder.bias [H]`; per layer `i`:
//! `norms.{i}.weight|bias [H]` (LayerNorm), `s4_layers.{i}.D [H]`,
//! `s4_layers.{i}.kernel.C [H, N/2, 2]` (complex as re, im), `s4_layers.{i}.kernel.log_dt [H]`,
//! `s4_layers.{i}.kernel.log_A_real [H, N/2]`, `s4_layers.{i}.kernel.A_imag [H, N/2]`,
//! `s4_layers.{i}.output_linear.0.weight [2H, H, 1]` + `.bias [2H]` (GLU) or `[H, H, 1]` +
//! `[H]` (linear); `norm_f.weight|bias [H]` if `final_norm`; `decoder.weight [O, H]`,
//! `decoder.bias [O]`.
//!
//! Conversion discretizes with zero-order hold in f64: `dA = exp(dt·A)`,
//! `C̃ = C·(exp(dt·A) − 1)/A`, with `A = −exp(log_A_real) + i·A_imag`, `dt = exp(log_dt)`.

use std::path::Path;

use tinyssm_core::{Arch, Config, HeadKind, Role, S4dConfig};
use tinyssm_host::{write_blob, TensorData};

use super::json::{read_json, Cfg};
use super::store::TensorStore;
use super::WeightDtype;
use crate::error::ToolError;

pub fn convert(dir: &Path, w: WeightDtype) -> Result<Vec<u8>, ToolError> {
    let cfg_path = dir.join("config.json");
    let v = read_json(&cfg_path)?;
    let c = Cfg {
        path: &cfg_path,
        v: &v,
    };
    let glu = match c.str_or("output", "glu")? {
        "glu" => true,
        "linear" => false,
        o => {
            return Err(c.error(format!(
                "`output` must be \"glu\" or \"linear\", got \"{o}\""
            )))
        }
    };
    let head = match c.str_or("head", "classification")? {
        "classification" => HeadKind::Classification,
        "regression" => HeadKind::Regression,
        o => {
            return Err(c.error(format!(
                "`head` must be \"classification\" or \"regression\", got \"{o}\""
            )))
        }
    };
    let sc = S4dConfig {
        d_input: c.u32("d_input")?,
        d_model: c.u32("d_model")?,
        d_state: c.u32_or("d_state", 64)?,
        d_output: c.u32("d_output")?,
        norm_eps: c.f64_or("norm_eps", 1e-5)? as f32,
        prenorm: c.bool_or("prenorm", false)?,
        glu,
        final_norm: c.bool_or("final_norm", false)?,
        head,
    };
    // Optional audio front end (`"front_end": {"sample_rate": 8000, "frame_len": 200, ...}`,
    // the fields of tinyssm_core::frontend::FrontEndConfig).
    let front_end = match v.get("front_end") {
        None | Some(serde_json::Value::Null) => None,
        Some(fe) => Some(
            serde_json::from_value::<tinyssm_core::frontend::FrontEndConfig>(fe.clone())
                .map_err(|e| c.error(format!("`front_end`: {e}")))?,
        ),
    };
    let config = Config {
        front_end,
        compute: tinyssm_core::Compute::Float,
        n_layers: c.u32("n_layers")?,
        arch: Arch::S4d(sc),
    };
    config.validate().map_err(|e| c.error(e.to_string()))?;
    let store = TensorStore::open_dir(dir)?;
    let (h, n2, di, o) = (
        sc.d_model as usize,
        sc.d_state as usize / 2,
        sc.d_input as usize,
        sc.d_output as usize,
    );
    let out = if glu { 2 * h } else { h };
    // Discretized (dA, C̃) per layer, computed once when the layer's first needs them.
    let discretize = |l: u16| -> Result<(Vec<f32>, Vec<f32>), ToolError> {
        let k = format!("s4_layers.{l}.kernel");
        let log_dt = store.get_f64(&format!("{k}.log_dt"), &[h])?;
        let log_a = store.get_f64(&format!("{k}.log_A_real"), &[h, n2])?;
        let a_im = store.get_f64(&format!("{k}.A_imag"), &[h, n2])?;
        let cc = store.get_f64(&format!("{k}.C"), &[h, n2, 2])?;
        let mut da = vec![0f32; h * n2 * 2];
        let mut cb = vec![0f32; h * n2 * 2];
        for (ch, &ldt) in log_dt.iter().enumerate() {
            let dt = ldt.exp();
            for m in 0..n2 {
                let i = ch * n2 + m;
                let (ar, ai) = (-log_a[i].exp(), a_im[i]);
                // exp(dt*A)
                let (zr, zi) = (dt * ar, dt * ai);
                let e = zr.exp();
                let (er, ei) = (e * zi.cos(), e * zi.sin());
                // (exp(dtA) - 1) / A
                let (nr, ni) = (er - 1.0, ei);
                let den = ar * ar + ai * ai;
                let (qr, qi) = ((nr * ar + ni * ai) / den, (ni * ar - nr * ai) / den);
                let (cr, ci) = (cc[2 * i], cc[2 * i + 1]);
                da[2 * i] = er as f32;
                da[2 * i + 1] = ei as f32;
                cb[2 * i] = (cr * qr - ci * qi) as f32;
                cb[2 * i + 1] = (cr * qi + ci * qr) as f32;
            }
        }
        if da.iter().chain(&cb).any(|x| !x.is_finite()) {
            return Err(ToolError::BadValues {
                name: k.clone(),
                msg: "discretization is not finite".into(),
            });
        }
        Ok((da, cb))
    };
    let mut cache: Option<(u16, Vec<f32>, Vec<f32>)> = None;
    write_blob(&config, |spec| -> Result<TensorData, ToolError> {
        let l = spec.layer.unwrap_or(0);
        let v = match spec.role {
            Role::Encoder => store.get("encoder.weight", &[h, di])?,
            Role::EncoderBias => store.get("encoder.bias", &[h])?,
            Role::NormF => store.get("norm_f.weight", &[h])?,
            Role::NormFBias => store.get("norm_f.bias", &[h])?,
            Role::Decoder => store.get("decoder.weight", &[o, h])?,
            Role::DecoderBias => store.get("decoder.bias", &[o])?,
            Role::Norm => store.get(&format!("norms.{l}.weight"), &[h])?,
            Role::NormBias => store.get(&format!("norms.{l}.bias"), &[h])?,
            Role::D => store.get(&format!("s4_layers.{l}.D"), &[h])?,
            Role::DA | Role::CB => {
                if cache.as_ref().map(|c| c.0) != Some(l) {
                    let (da, cb) = discretize(l)?;
                    cache = Some((l, da, cb));
                }
                let (_, da, cb) = cache
                    .as_ref()
                    .ok_or_else(|| ToolError::Usage("internal".into()))?;
                if spec.role == Role::DA {
                    da.clone()
                } else {
                    cb.clone()
                }
            }
            Role::OutLinear => store.get(
                &format!("s4_layers.{l}.output_linear.0.weight"),
                &[out, h, 1],
            )?,
            Role::OutLinearBias => {
                store.get(&format!("s4_layers.{l}.output_linear.0.bias"), &[out])?
            }
            other => {
                return Err(ToolError::Usage(format!(
                    "internal: unexpected role {}",
                    other.name()
                )))
            }
        };
        Ok(if spec.role.is_matrix() {
            TensorData::from_f32(v, w.dtype())
        } else {
            TensorData::F32(v)
        })
    })
}
