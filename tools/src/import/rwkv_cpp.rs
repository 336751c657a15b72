//! Reader and converter for rwkv.cpp model files (RWKV v4, v5.1, v5.2, v6, v7).
//!
//! Layout (little-endian): a header of six u32 — magic `0x67676d66`, file version (100 or
//! 101), n_vocab, n_embed, n_layer, data type — then tensors until the end of the file, each:
//! i32 n_dims, i32 key length, i32 data type (0 = f32, 1 = f16, 2 = Q4_0, 3 = Q4_1, 7 = Q5_0,
//! 8 = Q5_1, 9 = Q8_0; quantized tensors are dequantized to f32 on import, Q8_1 and the
//! k-quants are refused by name), n_dims × i32 dims in ggml order (reversed against
//! PyTorch), the key bytes (a PyTorch name such as `blocks.0.att.time_decay`), the data.
//!
//! Parsing borrows the file's bytes and checks every length against what remains, so a
//! truncated or corrupt file is an error, never a panic or an oversized allocation.

use std::collections::HashMap;
use std::ops::Range;

use crate::error::ToolError;

/// `"ggmf"` as a little-endian u32.
pub const MAGIC: u32 = 0x6767_6d66;

/// Element type of a tensor in an rwkv.cpp file: float, or one of ggml's block-quantized
/// types (blocks of 32 values along a row with an f16 scale, and an f16 minimum for the
/// `_1` types), which the converter dequantizes to f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum FileDtype {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
}

/// Values per quantization block.
const QK: usize = 32;

impl FileDtype {
    /// Bytes per element (float) or per 32-value block (quantized).
    pub fn unit_bytes(self) -> usize {
        match self {
            FileDtype::F32 => 4,
            FileDtype::F16 => 2,
            FileDtype::Q4_0 => 2 + QK / 2,
            FileDtype::Q4_1 => 4 + QK / 2,
            FileDtype::Q5_0 => 6 + QK / 2,
            FileDtype::Q5_1 => 8 + QK / 2,
            FileDtype::Q8_0 => 2 + QK,
        }
    }
    pub fn is_quantized(self) -> bool {
        !matches!(self, FileDtype::F32 | FileDtype::F16)
    }
    /// Bytes of a tensor with `numel` elements and rows of `row` elements.
    fn nbytes(self, numel: usize, row: usize) -> Result<usize, String> {
        if !self.is_quantized() {
            return numel
                .checked_mul(self.unit_bytes())
                .ok_or_else(|| "byte size overflows".into());
        }
        if !row.is_multiple_of(QK) {
            return Err(format!(
                "quantized rows of {row} values are not a multiple of {QK}"
            ));
        }
        (numel / QK)
            .checked_mul(self.unit_bytes())
            .ok_or_else(|| "byte size overflows".into())
    }
}

fn dtype_from(code: i32, what: &str) -> Result<FileDtype, String> {
    match code {
        0 => Ok(FileDtype::F32),
        1 => Ok(FileDtype::F16),
        2 => Ok(FileDtype::Q4_0),
        3 => Ok(FileDtype::Q4_1),
        4..=6 => Err(format!("{what} uses a removed rwkv.cpp quantized type ({code})")),
        7 => Ok(FileDtype::Q5_0),
        8 => Ok(FileDtype::Q5_1),
        9 => Ok(FileDtype::Q8_0),
        10..=16 => Err(format!(
            "{what} uses rwkv.cpp data type {code} (Q8_1 or a k-quant), which tinyssm does not import (quantize to Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0, or use FP32/FP16)"
        )),
        c => Err(format!("{what} has unknown data type {c}")),
    }
}

/// Dequantizes ggml blocks (`raw` holds whole blocks of `t`) to f32.
fn dequantize(t: FileDtype, raw: &[u8]) -> Vec<f32> {
    let f16 = |b: &[u8]| half::f16::from_le_bytes([b[0], b[1]]).to_f32();
    let mut out = Vec::with_capacity(raw.len() / t.unit_bytes() * QK);
    for b in raw.chunks_exact(t.unit_bytes()) {
        let d = f16(&b[0..2]);
        match t {
            FileDtype::Q4_0 | FileDtype::Q4_1 => {
                let (m, qs) = if t == FileDtype::Q4_1 {
                    (f16(&b[2..4]), &b[4..])
                } else {
                    (0.0, &b[2..])
                };
                let off = if t == FileDtype::Q4_0 { 8 } else { 0 };
                // Low nibbles are values 0..16, high nibbles 16..32.
                for shift in [0, 4] {
                    for &q in qs {
                        let v = ((q >> shift) & 0xF) as i32 - off;
                        out.push(v as f32 * d + m);
                    }
                }
            }
            FileDtype::Q5_0 | FileDtype::Q5_1 => {
                let (m, rest) = if t == FileDtype::Q5_1 {
                    (f16(&b[2..4]), &b[4..])
                } else {
                    (0.0, &b[2..])
                };
                let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                let qs = &rest[4..];
                let off = if t == FileDtype::Q5_0 { 16 } else { 0 };
                for half in 0..2 {
                    for (j, &q) in qs.iter().enumerate() {
                        let lo = (q >> (4 * half)) & 0xF;
                        let hi = ((qh >> (j + 16 * half)) & 1) as u8;
                        let v = (lo | (hi << 4)) as i32 - off;
                        out.push(v as f32 * d + m);
                    }
                }
            }
            FileDtype::Q8_0 => out.extend(b[2..].iter().map(|&q| q as i8 as f32 * d)),
            FileDtype::F32 | FileDtype::F16 => {}
        }
    }
    out
}

/// One tensor: PyTorch-order shape and where its data lies in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTensor {
    pub dtype: FileDtype,
    pub shape: Vec<usize>,
    pub data: Range<usize>,
}

/// RWKV generation, recognised from the tensor names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RwkvVersion {
    V4,
    V5_1,
    V5_2,
    V6,
    V7,
}

/// A parsed rwkv.cpp file borrowing its bytes.
#[derive(Debug)]
pub struct RwkvCppFile<'a> {
    pub file_version: u32,
    pub n_vocab: u32,
    pub n_embed: u32,
    pub n_layer: u32,
    pub data_type: FileDtype,
    pub tensors: HashMap<String, FileTensor>,
    /// Names in file order.
    pub order: Vec<String>,
    bytes: &'a [u8],
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<Range<usize>, String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                format!(
                    "truncated: {what} needs {n} bytes at offset {}, file has {}",
                    self.pos,
                    self.b.len()
                )
            })?;
        let r = self.pos..end;
        self.pos = end;
        Ok(r)
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let r = self.take(4, what)?;
        let s = &self.b[r];
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn i32(&mut self, what: &str) -> Result<i32, String> {
        self.u32(what).map(|v| v as i32)
    }
}

impl<'a> RwkvCppFile<'a> {
    /// Parses the whole file. Errors are one line; `path` is only for the message.
    pub fn parse(bytes: &'a [u8], path: &std::path::Path) -> Result<Self, ToolError> {
        Self::parse_inner(bytes).map_err(|msg| ToolError::Config {
            path: path.to_path_buf(),
            msg,
        })
    }

    fn parse_inner(bytes: &'a [u8]) -> Result<Self, String> {
        let mut c = Cursor { b: bytes, pos: 0 };
        let magic = c.u32("header")?;
        if magic != MAGIC {
            return Err(format!(
                "not an rwkv.cpp file (magic {magic:#010x}, expected {MAGIC:#010x})"
            ));
        }
        let file_version = c.u32("header")?;
        if !(100..=101).contains(&file_version) {
            return Err(format!(
                "unsupported rwkv.cpp file version {file_version} (supported: 100, 101)"
            ));
        }
        let n_vocab = c.u32("header")?;
        let n_embed = c.u32("header")?;
        let n_layer = c.u32("header")?;
        let data_type = dtype_from(c.i32("header")?, "the file")?;
        for (v, name) in [
            (n_vocab, "n_vocab"),
            (n_embed, "n_embed"),
            (n_layer, "n_layer"),
        ] {
            if v == 0 || v > 1 << 24 {
                return Err(format!("header field {name} = {v} is out of range"));
            }
        }
        let mut tensors = HashMap::new();
        let mut order = Vec::new();
        while c.pos < bytes.len() {
            let at = c.pos;
            let n_dims = c.i32("tensor header")?;
            let key_len = c.i32("tensor header")?;
            let code = c.i32("tensor header")?;
            if !(1..=3).contains(&n_dims) {
                return Err(format!(
                    "tensor at offset {at}: {n_dims} dimensions (expected 1 to 3)"
                ));
            }
            if !(1..=1024).contains(&key_len) {
                return Err(format!(
                    "tensor at offset {at}: key length {key_len} out of range"
                ));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                let d = c.i32("tensor dims")?;
                if d <= 0 {
                    return Err(format!(
                        "tensor at offset {at}: dimension {d} is not positive"
                    ));
                }
                dims.push(d as usize);
            }
            let kr = c.take(key_len as usize, "tensor key")?;
            let key = std::str::from_utf8(&bytes[kr])
                .map_err(|_| format!("tensor at offset {at}: key is not UTF-8"))?
                .to_string();
            let dtype = dtype_from(code, &format!("tensor `{key}`"))?;
            let numel = dims
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(|| format!("tensor `{key}`: element count overflows"))?;
            if dtype.is_quantized() && file_version < 101 {
                return Err(format!(
                    "tensor `{key}` is quantized in the format of rwkv.cpp file version {file_version}, which rwkv.cpp itself no longer loads (requantize the model)"
                ));
            }
            let nbytes = dtype
                .nbytes(numel, dims[0])
                .map_err(|e| format!("tensor `{key}`: {e}"))?;
            let data = c.take(nbytes, &format!("tensor `{key}` data"))?;
            dims.reverse(); // ggml order -> PyTorch order
            if tensors
                .insert(
                    key.clone(),
                    FileTensor {
                        dtype,
                        shape: dims,
                        data,
                    },
                )
                .is_some()
            {
                return Err(format!("tensor `{key}` appears twice"));
            }
            order.push(key);
        }
        if order.is_empty() {
            return Err("the file has no tensors".into());
        }
        // Completeness: a file cut at a tensor boundary is still well-formed, so check
        // that the tensors every RWKV model has (the last ones written among them) are there.
        // Every layer has its own tensors: a header claiming more layers than the file has
        // tensors is refused before anything is built per layer.
        if n_layer as usize > order.len() {
            return Err(format!(
                "header n_layer = {n_layer}, but the file holds only {} tensors (truncated \
                 or not an RWKV model)",
                order.len()
            ));
        }
        let needed = ["emb.weight", "ln_out.weight", "ln_out.bias", "head.weight"]
            .into_iter()
            .map(String::from)
            .chain((0..n_layer).map(|i| format!("blocks.{i}.ln1.weight")));
        for missing in needed {
            if !tensors.contains_key(missing.as_str()) {
                return Err(format!(
                    "tensor `{missing}` is missing (file truncated or not an RWKV model)"
                ));
            }
        }
        if tensors.contains_key(&format!("blocks.{n_layer}.ln1.weight")) {
            return Err(format!(
                "the file has more blocks than its header's n_layer = {n_layer}"
            ));
        }
        Ok(RwkvCppFile {
            file_version,
            n_vocab,
            n_embed,
            n_layer,
            data_type,
            tensors,
            order,
            bytes,
        })
    }

    /// Which RWKV generation the tensor names describe.
    pub fn version(&self) -> Result<RwkvVersion, String> {
        detect_version(|n| self.tensors.contains_key(n))
    }

    /// A tensor's values as f32, checking its PyTorch-order shape.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ToolError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| ToolError::MissingTensor {
                name: name.into(),
                expected: shape.to_vec(),
            })?;
        check_shape(name, &t.shape, shape)?;
        let raw = &self.bytes[t.data.clone()];
        super::store::finite(
            name,
            match t.dtype {
                FileDtype::F32 => raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                FileDtype::F16 => raw
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                q => dequantize(q, raw),
            },
        )
    }
}

/// Which RWKV generation a set of tensor names describes (the names are those of the
/// PyTorch checkpoints, which rwkv.cpp files keep).
pub fn detect_version(has: impl Fn(&str) -> bool) -> Result<RwkvVersion, String> {
    Ok(if has("blocks.0.att.x_rwkvag") || has("blocks.0.att.k_k") {
        RwkvVersion::V7
    } else if has("blocks.0.att.time_maa_x") {
        RwkvVersion::V6
    } else if has("blocks.0.att.time_faaaa") {
        if has("blocks.0.att.gate.weight") {
            RwkvVersion::V5_2
        } else {
            RwkvVersion::V5_1
        }
    } else if has("blocks.0.att.time_first") && has("blocks.0.att.ln_x.weight") {
        RwkvVersion::V5_1
    } else if has("blocks.0.att.time_first") {
        RwkvVersion::V4
    } else {
        return Err("tensor names match no known RWKV version (v4, v5.1, v5.2, v6, v7)".into());
    })
}

/// Compares shapes ignoring size-1 dimensions (rwkv.cpp squeezes some `time_*` tensors and
/// keeps singleton dims on others).
pub(crate) fn check_shape(
    name: &str,
    found: &[usize],
    expected: &[usize],
) -> Result<(), ToolError> {
    let squeeze = |v: &[usize]| v.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
    if squeeze(found) == squeeze(expected) {
        Ok(())
    } else {
        Err(ToolError::WrongShape {
            name: name.into(),
            expected: expected.to_vec(),
            found: found.to_vec(),
        })
    }
}

/// Named tensors in rwkv.cpp's layout (names and values as rwkv.cpp's converter writes
/// them): an rwkv.cpp file, or a PyTorch checkpoint brought into that layout.
pub(crate) trait TensorSource {
    /// PyTorch-order shape of a tensor, if present.
    fn shape(&self, name: &str) -> Option<&[usize]>;
    /// Values as f32, after checking the shape (ignoring size-1 dimensions).
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ToolError>;
}

impl TensorSource for RwkvCppFile<'_> {
    fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.shape.as_slice())
    }
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ToolError> {
        RwkvCppFile::get(self, name, shape)
    }
}

/// Converts an rwkv.cpp file (RWKV v4, v5.1, v5.2, v6 or v7) into a model blob.
pub fn convert(path: &std::path::Path, w: super::WeightDtype) -> Result<Vec<u8>, ToolError> {
    let bytes = std::fs::read(path).map_err(|e| ToolError::io(path, e))?;
    let f = RwkvCppFile::parse(&bytes, path)?;
    let version = f.version().map_err(|msg| ToolError::Config {
        path: path.to_path_buf(),
        msg,
    })?;
    convert_source(&f, version, f.n_vocab, f.n_embed, f.n_layer, path, w)
}

/// Converts named tensors in rwkv.cpp's layout into a model blob.
pub(crate) fn convert_source(
    f: &dyn TensorSource,
    version: RwkvVersion,
    n_vocab: u32,
    n_embed: u32,
    n_layer: u32,
    path: &std::path::Path,
    w: super::WeightDtype,
) -> Result<Vec<u8>, ToolError> {
    use tinyssm_core::{Arch, Config, Role, Rwkv5Config, Rwkv6Config, Rwkv7Config, RwkvConfig};
    use tinyssm_host::{write_blob, TensorData};

    let cfg_err = |msg: String| ToolError::Config {
        path: path.to_path_buf(),
        msg,
    };
    let d = n_embed as usize;
    let d_ffn = f
        .shape("blocks.0.ffn.key.weight")
        .and_then(|t| t.first().copied())
        .ok_or_else(|| ToolError::MissingTensor {
            name: "blocks.0.ffn.key.weight".into(),
            expected: vec![0, d],
        })?;
    let arch = match version {
        RwkvVersion::V4 => Arch::Rwkv4(RwkvConfig {
            d_model: n_embed,
            d_ffn: d_ffn as u32,
            vocab_size: n_vocab,
            norm_eps: 1e-5,
        }),
        RwkvVersion::V5_1 | RwkvVersion::V5_2 => {
            let n_heads = f
                .shape("blocks.0.att.time_decay")
                .and_then(|t| t.first().copied())
                .filter(|&h| h > 0 && d.is_multiple_of(h))
                .ok_or_else(|| {
                    cfg_err("cannot infer the head count from blocks.0.att.time_decay".into())
                })?;
            let gated = version == RwkvVersion::V5_2;
            Arch::Rwkv5(Rwkv5Config {
                d_model: n_embed,
                d_ffn: d_ffn as u32,
                vocab_size: n_vocab,
                n_heads: n_heads as u32,
                head_size: (d / n_heads) as u32,
                gated,
                norm_eps: 1e-5,
                // rwkv.cpp's group norm uses 1e-5 for v5.1 and v5.2 alike (its expected
                // logits confirm it: 64e-5 is off by ~1 in the v5.2 logits).
                group_norm_eps: 1e-5,
            })
        }
        RwkvVersion::V7 => {
            let first = |name: &str| f.shape(name).and_then(|t| t.first().copied());
            let missing = |name: &str| ToolError::MissingTensor {
                name: name.into(),
                expected: vec![0, d],
            };
            let lw = first("blocks.0.att.w1").ok_or_else(|| missing("blocks.0.att.w1"))?;
            let la = first("blocks.0.att.a1").ok_or_else(|| missing("blocks.0.att.a1"))?;
            let lg = first("blocks.0.att.g1").ok_or_else(|| missing("blocks.0.att.g1"))?;
            // Layer 0 has no value-residual projection; a one-layer model has none at all.
            let lv = first("blocks.1.att.v1").unwrap_or(1);
            let head_size = f
                .shape("blocks.0.att.r_k")
                .and_then(|t| t.last().copied())
                .filter(|&nn| nn > 0 && d.is_multiple_of(nn))
                .ok_or_else(|| {
                    cfg_err("cannot infer the head size from blocks.0.att.r_k".into())
                })?;
            Arch::Rwkv7(Rwkv7Config {
                d_model: n_embed,
                d_ffn: d_ffn as u32,
                vocab_size: n_vocab,
                head_size: head_size as u32,
                d_lora_w: lw as u32,
                d_lora_a: la as u32,
                d_lora_v: lv as u32,
                d_lora_g: lg as u32,
                norm_eps: 1e-5,
                group_norm_eps: 64e-5,
            })
        }
        RwkvVersion::V6 => {
            let shape = |name: &str| f.shape(name).map(|t| t.to_vec());
            let missing = |name: &str| ToolError::MissingTensor {
                name: name.into(),
                expected: vec![0, d],
            };
            // time_maa_w1 is stored as [5 * L, D], time_decay_w1 as [L, D], time_faaaa as
            // [H, S, 1] (PyTorch order).
            let lm = shape("blocks.0.att.time_maa_w1")
                .and_then(|s| s.first().copied())
                .ok_or_else(|| missing("blocks.0.att.time_maa_w1"))?;
            if lm == 0 || !lm.is_multiple_of(5) {
                return Err(cfg_err(format!(
                    "blocks.0.att.time_maa_w1 has {lm} rows, not a positive multiple of 5"
                )));
            }
            let ld = shape("blocks.0.att.time_decay_w1")
                .and_then(|s| s.first().copied())
                .ok_or_else(|| missing("blocks.0.att.time_decay_w1"))?;
            let n_heads = shape("blocks.0.att.time_faaaa")
                .and_then(|s| s.first().copied())
                .filter(|&h| h > 0 && d.is_multiple_of(h))
                .ok_or_else(|| {
                    cfg_err("cannot infer the head count from blocks.0.att.time_faaaa".into())
                })?;
            Arch::Rwkv6(Rwkv6Config {
                d_model: n_embed,
                d_ffn: d_ffn as u32,
                vocab_size: n_vocab,
                n_heads: n_heads as u32,
                head_size: (d / n_heads) as u32,
                d_lora_mix: (lm / 5) as u32,
                d_lora_decay: ld as u32,
                norm_eps: 1e-5,
                // rwkv.cpp's v6 graph normalises each head with eps 64e-5.
                group_norm_eps: 64e-5,
            })
        }
    };
    let config = Config {
        front_end: None,
        compute: tinyssm_core::Compute::Float,
        n_layers: n_layer,
        arch,
    };
    config.validate().map_err(|e| cfg_err(e.to_string()))?;
    write_blob(&config, |spec| -> Result<TensorData, ToolError> {
        let b = spec
            .layer
            .map(|l| format!("blocks.{l}."))
            .unwrap_or_default();
        let name = match spec.role {
            Role::Embedding => "emb.weight".to_string(),
            Role::Ln0 => "blocks.0.ln0.weight".into(),
            Role::Ln0Bias => "blocks.0.ln0.bias".into(),
            Role::NormF => "ln_out.weight".into(),
            Role::NormFBias => "ln_out.bias".into(),
            Role::LmHead => "head.weight".into(),
            Role::Norm => format!("{b}ln1.weight"),
            Role::NormBias => format!("{b}ln1.bias"),
            Role::Norm2 => format!("{b}ln2.weight"),
            Role::Norm2Bias => format!("{b}ln2.bias"),
            // rwkv.cpp's converter stores the decay already transformed (v4: -exp(time_decay),
            // v5: exp(-exp(time_decay))) and v5.1's time_first as exp(time_first).
            Role::TimeDecay => format!("{b}att.time_decay"),
            Role::TimeFirst if matches!(version, RwkvVersion::V5_2 | RwkvVersion::V6) => {
                format!("{b}att.time_faaaa")
            }
            // v6 stores time_decay untransformed (the step adds the data-dependent term).
            Role::MaaX => format!("{b}att.time_maa_x"),
            Role::MaaW1 => format!("{b}att.time_maa_w1"),
            Role::MaaW2 => format!("{b}att.time_maa_w2"),
            Role::DecayW1 => format!("{b}att.time_decay_w1"),
            Role::DecayW2 => format!("{b}att.time_decay_w2"),
            Role::FfnMixK if version == RwkvVersion::V6 => format!("{b}ffn.time_maa_k"),
            Role::FfnMixR if version == RwkvVersion::V6 => format!("{b}ffn.time_maa_r"),
            Role::MaaWkvrg => {
                // The five shift mixes are stored as one [5, D] tensor (w, k, v, r, g).
                let mut vals = Vec::with_capacity(5 * d);
                for part in ["w", "k", "v", "r", "g"] {
                    vals.extend(f.get(&format!("{b}att.time_maa_{part}"), &[d])?);
                }
                return Ok(TensorData::F32(vals));
            }
            Role::TimeFirst => format!("{b}att.time_first"),
            Role::AttMixK => format!("{b}att.time_mix_k"),
            Role::AttMixV => format!("{b}att.time_mix_v"),
            Role::AttMixR => format!("{b}att.time_mix_r"),
            Role::AttMixG => format!("{b}att.time_mix_g"),
            Role::AttKey => format!("{b}att.key.weight"),
            Role::AttValue => format!("{b}att.value.weight"),
            Role::AttReceptance => format!("{b}att.receptance.weight"),
            Role::AttGate => format!("{b}att.gate.weight"),
            Role::AttOutput => format!("{b}att.output.weight"),
            Role::LnX => format!("{b}att.ln_x.weight"),
            Role::LnXBias => format!("{b}att.ln_x.bias"),
            Role::FfnMixK if version == RwkvVersion::V7 => format!("{b}ffn.x_k"),
            Role::XRwkvag => format!("{b}att.x_rwkvag"),
            Role::W0 => format!("{b}att.w0"),
            Role::W1 => format!("{b}att.w1"),
            Role::W2 => format!("{b}att.w2"),
            Role::A0 => format!("{b}att.a0"),
            Role::A1 => format!("{b}att.a1"),
            Role::A2 => format!("{b}att.a2"),
            Role::V0 => format!("{b}att.v0"),
            Role::V1 => format!("{b}att.v1"),
            Role::V2 => format!("{b}att.v2"),
            Role::G1 => format!("{b}att.g1"),
            Role::G2 => format!("{b}att.g2"),
            Role::KK => format!("{b}att.k_k"),
            Role::KA => format!("{b}att.k_a"),
            Role::RK => format!("{b}att.r_k"),
            Role::FfnMixK => format!("{b}ffn.time_mix_k"),
            Role::FfnMixR => format!("{b}ffn.time_mix_r"),
            Role::FfnKey => format!("{b}ffn.key.weight"),
            Role::FfnValue => format!("{b}ffn.value.weight"),
            Role::FfnReceptance => format!("{b}ffn.receptance.weight"),
            other => {
                return Err(ToolError::Usage(format!(
                    "internal: unexpected role {}",
                    other.name()
                )))
            }
        };
        let shape: Vec<usize> = spec.shape[..spec.rank as usize]
            .iter()
            .map(|&x| x as usize)
            .collect();
        let per_head = matches!(spec.role, Role::TimeDecay | Role::TimeFirst) && shape.len() == 2;
        let value_residual = matches!(spec.role, Role::V0 | Role::V1 | Role::V2);
        let vals = match f.shape(&name) {
            // Layer 0 of RWKV v7 has no value-residual tensors: store zeros (unused there).
            None if value_residual && spec.layer == Some(0) => {
                vec![0.0; shape.iter().product()]
            }
            // v5.1 stores one decay/bonus per head: broadcast over the head's key index.
            Some(t) if per_head && t.iter().product::<usize>() == shape[0] => {
                let per = f.get(&name, &[shape[0]])?;
                per.iter()
                    .flat_map(|&x| std::iter::repeat_n(x, shape[1]))
                    .collect()
            }
            // v7's r_k is [n_heads, head_size] in checkpoints and files; one row per head.
            Some(_) if spec.role == Role::RK => {
                let hs = match version {
                    RwkvVersion::V7 => f.shape(&name).and_then(|t| t.last().copied()),
                    _ => None,
                }
                .filter(|&hs| hs > 0 && shape[0].is_multiple_of(hs))
                .ok_or_else(|| cfg_err(format!("`{name}`: cannot infer the head size")))?;
                f.get(&name, &[shape[0] / hs, hs])?
            }
            _ => f.get(&name, &shape)?,
        };
        Ok(if spec.role.is_matrix() {
            TensorData::from_f32(vals, w.dtype())
        } else {
            TensorData::F32(vals)
        })
    })
}
