//! Tensors from one safetensors file or a sharded set (`model.safetensors.index.json`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::error::ToolError;

/// All tensors of a checkpoint, by name.
pub struct TensorStore {
    files: Vec<(PathBuf, Vec<u8>)>,
    index: HashMap<String, usize>,
}

impl TensorStore {
    /// Opens `model.safetensors`, or the shards listed in `model.safetensors.index.json`.
    pub fn open_dir(dir: &Path) -> Result<Self, ToolError> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        if single.is_file() {
            Self::open_files(&[single])
        } else if index.is_file() {
            let v = super::json::read_json(&index)?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| ToolError::Json {
                    path: index.clone(),
                    msg: "no `weight_map` object".into(),
                })?;
            let mut files: Vec<String> = map
                .values()
                .filter_map(|f| f.as_str().map(String::from))
                .collect();
            files.sort();
            files.dedup();
            for f in &files {
                if f.contains('/') || f.contains('\\') || f.contains("..") {
                    return Err(ToolError::Json {
                        path: index.clone(),
                        msg: format!("shard name `{f}` is not a plain file name"),
                    });
                }
            }
            let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
            Self::open_files(&paths)
        } else {
            Err(ToolError::Usage(format!(
                "{}: no model.safetensors or model.safetensors.index.json",
                dir.display()
            )))
        }
    }

    pub fn open_files(paths: &[PathBuf]) -> Result<Self, ToolError> {
        let mut files = Vec::new();
        for p in paths {
            let bytes = std::fs::read(p).map_err(|e| ToolError::io(p, e))?;
            files.push((p.clone(), bytes));
        }
        Self::from_files(files)
    }

    /// Files already in memory: `(name for messages, safetensors bytes)`.
    pub fn from_files(files: Vec<(PathBuf, Vec<u8>)>) -> Result<Self, ToolError> {
        let mut index = HashMap::new();
        for (i, (p, bytes)) in files.iter().enumerate() {
            let st = SafeTensors::deserialize(bytes).map_err(|e| ToolError::Safetensors {
                path: p.clone(),
                msg: e.to_string(),
            })?;
            for name in st.names() {
                index.insert(name.to_string(), i);
            }
        }
        Ok(TensorStore { files, index })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// Shape of a tensor, if present.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let &i = self.index.get(name)?;
        let (_, bytes) = &self.files[i];
        let st = SafeTensors::deserialize(bytes).ok()?;
        st.tensor(name).ok().map(|t| t.shape().to_vec())
    }

    /// Reads a tensor as f32, checking its shape (`expected` may include leading or
    /// trailing singleton dimensions the checkpoint stores, e.g. conv `[C, 1, K]`).
    pub fn get(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>, ToolError> {
        let missing = || ToolError::MissingTensor {
            name: name.into(),
            expected: expected.to_vec(),
        };
        let &i = self.index.get(name).ok_or_else(missing)?;
        let (path, bytes) = &self.files[i];
        let st = SafeTensors::deserialize(bytes).map_err(|e| ToolError::Safetensors {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        let t = st.tensor(name).map_err(|_| missing())?;
        let shape = t.shape().to_vec();
        if shape != expected {
            return Err(ToolError::WrongShape {
                name: name.into(),
                expected: expected.to_vec(),
                found: shape,
            });
        }
        let data = t.data();
        let v: Vec<f32> = match t.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            d => {
                return Err(ToolError::WrongDtype {
                    name: name.into(),
                    dtype: format!("{d:?}"),
                })
            }
        };
        finite(name, v)
    }

    /// Reads a tensor as f64 (for parameters transformed at conversion).
    pub fn get_f64(&self, name: &str, expected: &[usize]) -> Result<Vec<f64>, ToolError> {
        Ok(self
            .get(name, expected)?
            .into_iter()
            .map(f64::from)
            .collect())
    }

    pub fn path_of(&self, name: &str) -> Option<&Path> {
        self.index.get(name).map(|&i| self.files[i].0.as_path())
    }
}

/// `v` if every value is finite; else the tensor and the element are named. Every importer
/// reads its tensors through this (a model with NaN or infinite weights is never written).
pub(crate) fn finite(name: &str, v: Vec<f32>) -> Result<Vec<f32>, ToolError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(bad) => Err(ToolError::BadValues {
            name: name.into(),
            msg: format!("element {bad} is {} (not finite)", v[bad]),
        }),
        None => Ok(v),
    }
}
