//! HF `transformers` Mamba (`MambaForCausalLM`) and Mamba-2 (`Mamba2ForCausalLM`)
//! checkpoint directories: `config.json` + `model.safetensors` (or a sharded index).
//!
//! Tensor names (`{p}` = `backbone.layers.{i}.mixer`):
//! `backbone.embeddings.weight`, `backbone.layers.{i}.norm.weight`, `{p}.in_proj.weight`
//! (+`.bias`), `{p}.conv1d.weight` `[C, 1, K]` (+`.bias`), `{p}.A_log`, `{p}.D`,
//! `{p}.out_proj.weight` (+`.bias`), `backbone.norm_f.weight`, `lm_head.weight` (untied);
//! Mamba-1 adds `{p}.x_proj.weight`, `{p}.dt_proj.weight`, `{p}.dt_proj.bias`;
//! Mamba-2 adds `{p}.dt_bias` and `{p}.norm.weight` (gated RMSNorm).
//!
//! Conversion precomputes `A = -exp(A_log)` in f64 (rounded once to f32).

use std::path::Path;

use tinyssm_core::{Arch, Config, Mamba1Config, Mamba2Config, Role, TensorSpec};
use tinyssm_host::{write_blob, TensorData};

use super::json::{read_json, Cfg};
use super::store::TensorStore;
use super::WeightDtype;
use crate::error::ToolError;

fn emit(spec: &TensorSpec, v: Vec<f32>, w: WeightDtype) -> TensorData {
    if spec.role.is_matrix() {
        TensorData::from_f32(v, w.dtype())
    } else {
        TensorData::F32(v)
    }
}

fn neg_exp(v: Vec<f64>) -> Vec<f32> {
    v.into_iter().map(|a| -(a.exp()) as f32).collect()
}

fn layer_prefix(l: u16) -> String {
    format!("backbone.layers.{l}")
}

/// Mamba-1.
pub fn convert_mamba1(dir: &Path, w: WeightDtype) -> Result<Vec<u8>, ToolError> {
    let cfg_path = dir.join("config.json");
    let v = read_json(&cfg_path)?;
    let c = Cfg {
        path: &cfg_path,
        v: &v,
    };
    let d_model = c.u32("hidden_size")?;
    let expand = c.f64_or("expand", 2.0)?;
    let d_inner = match c.get("intermediate_size") {
        Some(_) => c.u32("intermediate_size")?,
        None => (expand * d_model as f64) as u32,
    };
    let dt_rank = match c.get("time_step_rank") {
        Some(serde_json::Value::String(s)) if s == "auto" => d_model.div_ceil(16),
        Some(_) => c.u32("time_step_rank")?,
        None => d_model.div_ceil(16),
    };
    let hidden_act = c.str_or("hidden_act", "silu")?;
    if hidden_act != "silu" {
        return Err(c.error(format!(
            "hidden_act `{hidden_act}` is not supported (only silu)"
        )));
    }
    let mc = Mamba1Config {
        d_model,
        d_inner,
        d_state: c.u32_or("state_size", 16)?,
        d_conv: c.u32_or("conv_kernel", 4)?,
        dt_rank,
        vocab_size: c.u32("vocab_size")?,
        norm_eps: c.f64_or("layer_norm_epsilon", 1e-5)? as f32,
        in_proj_bias: c.bool_or("use_bias", false)?,
        conv_bias: c.bool_or("use_conv_bias", true)?,
        out_proj_bias: c.bool_or("use_bias", false)?,
        tied_embeddings: c.bool_or("tie_word_embeddings", true)?,
    };
    let config = Config {
        front_end: None,
        compute: tinyssm_core::Compute::Float,
        n_layers: c.u32("num_hidden_layers")?,
        arch: Arch::Mamba1(mc),
    };
    config.validate().map_err(|e| c.error(e.to_string()))?;
    let store = TensorStore::open_dir(dir)?;
    let (vs, dm, di, n, k, r) = (
        mc.vocab_size as usize,
        d_model as usize,
        d_inner as usize,
        mc.d_state as usize,
        mc.d_conv as usize,
        dt_rank as usize,
    );
    write_blob(&config, |spec| -> Result<TensorData, ToolError> {
        let v = match spec.role {
            Role::Embedding => store.get("backbone.embeddings.weight", &[vs, dm])?,
            Role::LmHead => store.get("lm_head.weight", &[vs, dm])?,
            _ => mamba1_block_tensor(&store, spec, dm, di, n, k, r)?,
        };
        Ok(emit(spec, v, w))
    })
}

/// A Mamba-1 block tensor (or `norm_f`) by its HF name.
fn mamba1_block_tensor(
    store: &TensorStore,
    spec: &TensorSpec,
    dm: usize,
    di: usize,
    n: usize,
    k: usize,
    r: usize,
) -> Result<Vec<f32>, ToolError> {
    let p = spec.layer.map(layer_prefix).unwrap_or_default();
    let m = format!("{p}.mixer");
    Ok(match spec.role {
        Role::NormF => store.get("backbone.norm_f.weight", &[dm])?,
        Role::Norm => store.get(&format!("{p}.norm.weight"), &[dm])?,
        Role::InProj => store.get(&format!("{m}.in_proj.weight"), &[2 * di, dm])?,
        Role::InProjBias => store.get(&format!("{m}.in_proj.bias"), &[2 * di])?,
        Role::ConvW => store.get(&format!("{m}.conv1d.weight"), &[di, 1, k])?,
        Role::ConvB => store.get(&format!("{m}.conv1d.bias"), &[di])?,
        Role::XProj => store.get(&format!("{m}.x_proj.weight"), &[r + 2 * n, di])?,
        Role::DtProj => store.get(&format!("{m}.dt_proj.weight"), &[di, r])?,
        Role::DtProjBias => store.get(&format!("{m}.dt_proj.bias"), &[di])?,
        Role::A => neg_exp(store.get_f64(&format!("{m}.A_log"), &[di, n])?),
        Role::D => store.get(&format!("{m}.D"), &[di])?,
        Role::OutProj => store.get(&format!("{m}.out_proj.weight"), &[dm, di])?,
        Role::OutProjBias => store.get(&format!("{m}.out_proj.bias"), &[dm])?,
        other => {
            return Err(ToolError::Usage(format!(
                "internal: unexpected role {}",
                other.name()
            )))
        }
    })
}

/// A Mamba-1 sensor model (`"architecture": "mamba-sensor"`, as `tinyssm train` writes):
/// `config.json` with `d_input`, `d_output`, `d_model`, `d_inner`, `d_state`, `d_conv`,
/// `dt_rank`, `n_layers`, `norm_eps`, `conv_bias`, optional `front_end`; tensors
/// `encoder.weight` `[d_model, d_input]`, `encoder.bias`, the HF Mamba-1 block names
/// (`backbone.layers.{i}...`), `backbone.norm_f.weight`, `decoder.weight`, `decoder.bias`.
pub fn convert_mamba_sensor(dir: &Path, w: WeightDtype) -> Result<Vec<u8>, ToolError> {
    let cfg_path = dir.join("config.json");
    let v = read_json(&cfg_path)?;
    let c = Cfg {
        path: &cfg_path,
        v: &v,
    };
    let sc = tinyssm_core::MambaSensorConfig {
        d_input: c.u32("d_input")?,
        d_output: c.u32("d_output")?,
        d_model: c.u32("d_model")?,
        d_inner: c.u32("d_inner")?,
        d_state: c.u32("d_state")?,
        d_conv: c.u32_or("d_conv", 4)?,
        dt_rank: c.u32("dt_rank")?,
        norm_eps: c.f64_or("norm_eps", 1e-5)? as f32,
        in_proj_bias: false,
        conv_bias: c.bool_or("conv_bias", true)?,
        out_proj_bias: false,
    };
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
        arch: Arch::MambaSensor(sc),
    };
    config.validate().map_err(|e| c.error(e.to_string()))?;
    let store = TensorStore::open_dir(dir)?;
    let (d_in, dm, di, n, k, r, o) = (
        sc.d_input as usize,
        sc.d_model as usize,
        sc.d_inner as usize,
        sc.d_state as usize,
        sc.d_conv as usize,
        sc.dt_rank as usize,
        sc.d_output as usize,
    );
    write_blob(&config, |spec| -> Result<TensorData, ToolError> {
        let v = match spec.role {
            Role::Encoder => store.get("encoder.weight", &[dm, d_in])?,
            Role::EncoderBias => store.get("encoder.bias", &[dm])?,
            Role::Decoder => store.get("decoder.weight", &[o, dm])?,
            Role::DecoderBias => store.get("decoder.bias", &[o])?,
            _ => mamba1_block_tensor(&store, spec, dm, di, n, k, r)?,
        };
        Ok(emit(spec, v, w))
    })
}

/// Mamba-2.
pub fn convert_mamba2(dir: &Path, w: WeightDtype) -> Result<Vec<u8>, ToolError> {
    let cfg_path = dir.join("config.json");
    let v = read_json(&cfg_path)?;
    let c = Cfg {
        path: &cfg_path,
        v: &v,
    };
    let d_model = c.u32("hidden_size")?;
    let expand = c.f64_or("expand", 2.0)?;
    let d_inner = (expand * d_model as f64) as u32;
    let n_heads = c.u32("num_heads")?;
    let head_dim = c.u32("head_dim")?;
    let n_groups = c.u32_or("n_groups", 1)?;
    let hidden_act = c.str_or("hidden_act", "silu")?;
    if hidden_act != "silu" {
        return Err(c.error(format!(
            "hidden_act `{hidden_act}` is not supported (only silu)"
        )));
    }
    if n_heads as u64 * head_dim as u64 != d_inner as u64 {
        return Err(c.error(format!(
            "num_heads ({n_heads}) * head_dim ({head_dim}) != expand * hidden_size ({d_inner})"
        )));
    }
    if n_groups == 0 || !d_inner.is_multiple_of(n_groups) {
        return Err(c.error(format!(
            "n_groups ({n_groups}) must divide the intermediate size ({d_inner})"
        )));
    }
    let (dt_min, dt_max) = match c.get("time_step_limit") {
        None | Some(serde_json::Value::Null) => (0.0, f64::INFINITY),
        Some(serde_json::Value::Array(a)) if a.len() == 2 => {
            let lo = super::json::as_f64(&a[0]);
            let hi = super::json::as_f64(&a[1]);
            match (lo, hi) {
                (Some(lo), Some(hi)) => (lo, hi),
                _ => return Err(c.error("`time_step_limit` must be two numbers")),
            }
        }
        Some(x) => return Err(c.error(format!("`time_step_limit` must be [min, max], got {x}"))),
    };
    let mc = Mamba2Config {
        d_model,
        d_inner,
        d_state: c.u32_or("state_size", 128)?,
        d_conv: c.u32_or("conv_kernel", 4)?,
        n_heads,
        head_dim,
        n_groups,
        vocab_size: c.u32("vocab_size")?,
        norm_eps: c.f64_or("layer_norm_epsilon", 1e-5)? as f32,
        dt_min: dt_min as f32,
        dt_max: dt_max as f32,
        norm_group_size: d_inner / n_groups,
        in_proj_bias: c.bool_or("use_bias", false)?,
        conv_bias: c.bool_or("use_conv_bias", true)?,
        out_proj_bias: c.bool_or("use_bias", false)?,
        tied_embeddings: c.bool_or("tie_word_embeddings", false)?,
    };
    let config = Config {
        front_end: None,
        compute: tinyssm_core::Compute::Float,
        n_layers: c.u32("num_hidden_layers")?,
        arch: Arch::Mamba2(mc),
    };
    config.validate().map_err(|e| c.error(e.to_string()))?;
    let store = TensorStore::open_dir(dir)?;
    let (vs, dm, di, n, k, nh, g) = (
        mc.vocab_size as usize,
        d_model as usize,
        d_inner as usize,
        mc.d_state as usize,
        mc.d_conv as usize,
        n_heads as usize,
        n_groups as usize,
    );
    let conv_dim = di + 2 * g * n;
    let d_proj = di + conv_dim + nh;
    write_blob(&config, |spec| -> Result<TensorData, ToolError> {
        let p = spec.layer.map(layer_prefix).unwrap_or_default();
        let m = format!("{p}.mixer");
        let v = match spec.role {
            Role::Embedding => store.get("backbone.embeddings.weight", &[vs, dm])?,
            Role::NormF => store.get("backbone.norm_f.weight", &[dm])?,
            Role::LmHead => store.get("lm_head.weight", &[vs, dm])?,
            Role::Norm => store.get(&format!("{p}.norm.weight"), &[dm])?,
            Role::InProj => store.get(&format!("{m}.in_proj.weight"), &[d_proj, dm])?,
            Role::InProjBias => store.get(&format!("{m}.in_proj.bias"), &[d_proj])?,
            Role::ConvW => store.get(&format!("{m}.conv1d.weight"), &[conv_dim, 1, k])?,
            Role::ConvB => store.get(&format!("{m}.conv1d.bias"), &[conv_dim])?,
            Role::DtBias => store.get(&format!("{m}.dt_bias"), &[nh])?,
            Role::A => neg_exp(store.get_f64(&format!("{m}.A_log"), &[nh])?),
            Role::D => store.get(&format!("{m}.D"), &[nh])?,
            Role::GatedNorm => store.get(&format!("{m}.norm.weight"), &[di])?,
            Role::OutProj => store.get(&format!("{m}.out_proj.weight"), &[dm, di])?,
            Role::OutProjBias => store.get(&format!("{m}.out_proj.bias"), &[dm])?,
            other => {
                return Err(ToolError::Usage(format!(
                    "internal: unexpected role {}",
                    other.name()
                )))
            }
        };
        Ok(emit(spec, v, w))
    })
}
