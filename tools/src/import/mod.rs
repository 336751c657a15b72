//! Checkpoint importers. `convert_dir` auto-detects the checkpoint kind.

pub mod atennuate;
pub mod hf;
pub mod json;
pub mod pth;
pub mod rwkv_cpp;
pub mod s4d;
pub mod s5;
pub mod stack;
pub mod store;

use std::path::Path;

use tinyssm_core::DType;

use crate::error::ToolError;

/// Storage dtype for weight matrices (norms, biases, conv, A, D, dt always stay f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightDtype {
    F32,
    F16,
}

impl WeightDtype {
    pub fn dtype(self) -> DType {
        match self {
            WeightDtype::F32 => DType::F32,
            WeightDtype::F16 => DType::F16,
        }
    }
}

/// What kind of checkpoint a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    HfMamba,
    /// `"architecture": "mamba-sensor"` (tinyssm train's Mamba checkpoints).
    MambaSensor,
    HfMamba2,
    S4d,
    /// A single rwkv.cpp model file.
    RwkvCpp,
    /// A PyTorch checkpoint (zip archive) of an RWKV model.
    RwkvPth,
    /// `"architecture": "stack"`: an explicit block stack in tinyssm's own terms.
    Stack,
}

/// Detects the checkpoint kind from `config.json`.
pub fn detect(dir: &Path) -> Result<Detected, ToolError> {
    let cfg_path = dir.join("config.json");
    if dir.is_file() {
        use std::io::Read;
        let mut magic = [0u8; 4];
        let ok = std::fs::File::open(dir)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok();
        if ok && u32::from_le_bytes(magic) == rwkv_cpp::MAGIC {
            return Ok(Detected::RwkvCpp);
        }
        // torch.save writes a zip archive.
        if ok && magic == *b"PK\x03\x04" {
            return Ok(Detected::RwkvPth);
        }
        return Err(ToolError::Unsupported {
            path: dir.to_path_buf(),
            what:
                "not a checkpoint directory, an rwkv.cpp model file nor a PyTorch (.pth) checkpoint"
                    .into(),
        });
    }
    if !dir.is_dir() {
        return Err(ToolError::Usage(format!(
            "{}: not a checkpoint directory (expected config.json + model.safetensors)",
            dir.display()
        )));
    }
    let v = json::read_json(&cfg_path)?;
    let model_type = v.get("model_type").and_then(|x| x.as_str()).unwrap_or("");
    let archs: Vec<&str> = v
        .get("architectures")
        .and_then(|a| a.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    let arch = v.get("architecture").and_then(|x| x.as_str()).unwrap_or("");
    if model_type == "mamba"
        || archs
            .iter()
            .any(|a| *a == "MambaForCausalLM" || *a == "MambaModel")
    {
        Ok(Detected::HfMamba)
    } else if model_type == "mamba2" || archs.iter().any(|a| a.starts_with("Mamba2")) {
        Ok(Detected::HfMamba2)
    } else if arch.eq_ignore_ascii_case("s4d") {
        Ok(Detected::S4d)
    } else if arch.eq_ignore_ascii_case("mamba-sensor") {
        Ok(Detected::MambaSensor)
    } else if arch.eq_ignore_ascii_case("stack") {
        Ok(Detected::Stack)
    } else {
        let what = if !model_type.is_empty() {
            format!(
                "model_type `{model_type}` (supported: mamba, mamba2, s4d, mamba-sensor, stack)"
            )
        } else if !arch.is_empty() {
            format!("architecture `{arch}` (supported: mamba, mamba2, s4d, mamba-sensor, stack)")
        } else {
            "config.json names no model_type or architecture".to_string()
        };
        Err(ToolError::Unsupported {
            path: cfg_path,
            what,
        })
    }
}

/// Converts a checkpoint directory, or an rwkv.cpp model file, into a model blob (bytes of a
/// `.tssm` file).
pub fn convert_dir(dir: &Path, weights: WeightDtype) -> Result<Vec<u8>, ToolError> {
    match detect(dir)? {
        Detected::HfMamba => hf::convert_mamba1(dir, weights),
        Detected::HfMamba2 => hf::convert_mamba2(dir, weights),
        Detected::S4d => s4d::convert(dir, weights),
        Detected::MambaSensor => hf::convert_mamba_sensor(dir, weights),
        Detected::RwkvCpp => rwkv_cpp::convert(dir, weights),
        Detected::RwkvPth => pth::convert_rwkv(dir, weights),
        Detected::Stack => stack::convert(dir, weights),
    }
}
