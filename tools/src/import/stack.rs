//! Explicit block stacks (format 1.5): `config.json` + `model.safetensors` in tinyssm's own
//! terms, for models whose layers mix block kinds (the gated MLP between mixers, …) or that
//! a trainer writes directly.
//!
//! `config.json`:
//! ```json
//! {"architecture": "stack", "n_layers": 3,
//!  "stack": {"stem": {"Encoder": {"d_input": 3}},
//!            "layers": {"blocks": [{"Mlp": {"d_model": 8, "d_ffn": 12,
//!                                           "norm": {"Rms": {"eps": 1e-5}}, "act": "Silu"}}],
//!                       "table": [0]},
//!            "head": {"norm": {"Rms": {"eps": 1e-5}}, "out": {"Decoder": {"d_output": 2}}}}}
//! ```
//! `stack` is the header's own `StackConfig` as serde writes it (what `tinyssm inspect
//! --json` prints as `config` for a stack): the input stage (`Embedding`, `EmbeddingLn`,
//! `Encoder`), up to 4 block configurations by kind (the registered kinds' configuration
//! fields, as `tinyssm support` lists the kinds), the layer table (layer `l` is
//! `table[l % len]`) and the head (`norm`: `None`, `Rms`, `Layer`; `out`: `LmHead`,
//! `Decoder`). Quantization is the converter's (`tinyssm convert --weights int8 --compute
//! w8a8 …`), as for every checkpoint.
//!
//! Tensors are named as tinyssm names them: globals by role (`encoder.weight`, `norm_f`,
//! `decoder.weight`, …), per layer `layers.{l}.{role}` (`layers.1.mlp.gate_proj`, …), each
//! with its canonical shape; `tinyssm inspect --tensors` of a converted model lists them.
//! Every tensor of the checkpoint must be used. Matrices are stored in the `--weights`
//! dtype, everything else in f32.

use std::collections::BTreeSet;
use std::path::Path;

use tinyssm_core::{Arch, Compute, Config, StackConfig};
use tinyssm_host::writer::spec_name;
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
    let stack: StackConfig = serde_json::from_value(
        v.get("stack")
            .cloned()
            .ok_or_else(|| c.error("a stack checkpoint needs `stack` (stem, layers, head)"))?,
    )
    .map_err(|e| c.error(format!("`stack`: {e}")))?;
    let config = Config {
        n_layers: c.u32("n_layers")?,
        arch: Arch::Stack(stack),
        front_end: None,
        compute: Compute::Float,
    };
    config
        .validate()
        .map_err(|e| c.error(format!("invalid stack: {e}")))?;
    let store = TensorStore::open_dir(dir)?;
    let mut used = BTreeSet::new();
    let blob = write_blob(&config, |spec| -> Result<TensorData, ToolError> {
        let name = spec_name(spec);
        let shape: Vec<usize> = spec.shape[..spec.rank as usize]
            .iter()
            .map(|&d| d as usize)
            .collect();
        let v = store.get(&name, &shape)?;
        used.insert(name);
        Ok(if spec.role.is_matrix() {
            TensorData::encode(v, w.dtype(), spec)?
        } else {
            TensorData::F32(v)
        })
    })?;
    if let Some(extra) = store.names().find(|n| !used.contains(*n)) {
        return Err(ToolError::Unsupported {
            path: dir.to_path_buf(),
            what: format!("tensor `{extra}` is not part of the stack `config.json` describes"),
        });
    }
    Ok(blob)
}
