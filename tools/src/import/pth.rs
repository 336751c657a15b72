//! PyTorch checkpoints (`torch.save` zip archives with a pickled state dict, as RWKV models
//! are released), read with candle-core's pickle reader; RWKV v4, v5.1, v5.2, v6 and v7 state
//! dicts are brought into rwkv.cpp's layout (the transformations its converter applies) and
//! converted by the same code as rwkv.cpp files.
//!
//! A corrupt archive is an error, never a panic or an oversized allocation: every tensor's
//! byte size is checked against the file's size before its data is read, and the third-party
//! reader runs under `catch_unwind`.

use std::collections::HashMap;
use std::path::Path;

use super::rwkv_cpp::{check_shape, convert_source, detect_version, RwkvVersion, TensorSource};
use crate::error::ToolError;

/// One tensor of a state dict, as f32 in PyTorch order.
#[derive(Debug, Clone, PartialEq)]
pub struct PthTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The first line of a reader error (candle appends a backtrace when one is captured).
fn first_line(e: impl std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

fn err(path: &Path, msg: impl Into<String>) -> ToolError {
    ToolError::Config {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Walks the pickle program `r` (`limit` bytes) as candle-core's reader would, checking every
/// length it would allocate against the bytes that remain: candle reads a `BINUNICODE`
/// string into `vec![0; len]` before reading it (a 4 GiB claim in a small archive was found
/// by fuzzing). Opcodes outside candle's set end the scan (its reader refuses them).
fn prescan_pickle(r: impl std::io::Read, limit: u64) -> Result<(), String> {
    /// The pickle stream and the bytes it has left.
    struct P<R> {
        r: R,
        left: u64,
    }
    impl<R: std::io::Read> P<R> {
        /// The next byte (`None` at the end).
        fn byte(&mut self) -> Result<Option<u8>, String> {
            let mut b = [0u8; 1];
            if self.r.read(&mut b).map_err(|e| e.to_string())? == 0 {
                return Ok(None);
            }
            self.left = self.left.saturating_sub(1);
            Ok(Some(b[0]))
        }
        /// `n` bytes, after checking that many remain.
        fn skip(&mut self, n: u64, what: &str) -> Result<(), String> {
            if n > self.left {
                return Err(format!(
                    "{what} claims {n} bytes, {} remain in the pickle",
                    self.left
                ));
            }
            self.left -= n;
            let got = std::io::copy(
                &mut std::io::Read::take(&mut self.r, n),
                &mut std::io::sink(),
            )
            .map_err(|e| e.to_string())?;
            if got != n {
                return Err(format!("{what}: the pickle ends early"));
            }
            Ok(())
        }
        fn u32(&mut self, what: &str) -> Result<u64, String> {
            let mut b = [0u8; 4];
            if self.left < 4 {
                return Err(format!("{what}: the pickle ends early"));
            }
            self.r.read_exact(&mut b).map_err(|e| e.to_string())?;
            self.left -= 4;
            Ok(u32::from_le_bytes(b) as u64)
        }
    }
    let mut p = P { r, left: limit };
    while let Some(op) = p.byte()? {
        match op {
            // Fixed-size arguments.
            0x80 | b'q' | b'K' | b'h' => p.skip(1, "an opcode argument")?,
            b'M' => p.skip(2, "an opcode argument")?,
            b'r' | b'J' | b'j' => p.skip(4, "an opcode argument")?,
            b'G' => p.skip(8, "a float")?,
            // BINUNICODE: a u32 length, then that many bytes.
            b'X' => {
                let n = p.u32("a string length")?;
                p.skip(n, "a string")?;
            }
            // LONG1: a u8 count, then that many bytes.
            0x8a => match p.byte()? {
                Some(n) => p.skip(n as u64, "a long")?,
                None => return Ok(()),
            },
            // GLOBAL: two newline-terminated names, each read whole by candle.
            b'c' => {
                for _ in 0..2 {
                    let mut n = 0u32;
                    loop {
                        match p.byte()? {
                            None => return Ok(()),
                            Some(b'\n') => break,
                            Some(_) => n += 1,
                        }
                        if n > 1 << 16 {
                            return Err("a class name longer than 64 KiB".into());
                        }
                    }
                }
            }
            b'.' => return Ok(()),
            // No argument.
            b')' | b'R' | b'(' | b't' | b'Q' | b'N' | 0x85 | 0x86 | 0x87 | 0x88 | 0x89 | b's'
            | b'u' | b'}' | b'd' | b'b' | 0x81 | b']' | b'a' | b'e' => {}
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// Checks every `data.pkl` of the archive with [`prescan_pickle`].
fn prescan_archive(path: &Path) -> Result<(), String> {
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f)).map_err(|e| e.to_string())?;
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(|e| e.to_string())?;
        if !entry
            .name()
            .map_err(|e| e.to_string())?
            .ends_with("data.pkl")
        {
            continue;
        }
        let size = entry.size();
        prescan_pickle(std::io::BufReader::new(entry), size)?;
    }
    Ok(())
}

/// Reads every tensor of a PyTorch state dict (f32, f16, bf16 or f64) as f32.
pub fn read_state_dict(path: &Path) -> Result<HashMap<String, PthTensor>, ToolError> {
    use candle_core::pickle::PthTensors;
    let file_len = std::fs::metadata(path)
        .map_err(|e| ToolError::io(path, e))?
        .len();
    prescan_archive(path).map_err(|m| {
        err(
            path,
            format!("not a readable PyTorch checkpoint (zip + pickle): {m}"),
        )
    })?;
    let run = || -> Result<HashMap<String, PthTensor>, ToolError> {
        let pth = PthTensors::new(path, None).map_err(|e| {
            err(
                path,
                format!(
                    "not a readable PyTorch checkpoint (zip + pickle): {}",
                    first_line(e)
                ),
            )
        })?;
        let mut out = HashMap::new();
        for (name, info) in pth.tensor_infos() {
            let bytes = (info.layout.shape().elem_count() as u64)
                .checked_mul(info.dtype.size_in_bytes() as u64);
            if bytes.is_none_or(|b| b > file_len) {
                return Err(err(
                    path,
                    format!("tensor `{name}` claims more data than the file holds"),
                ));
            }
            let t = pth
                .get(name)
                .map_err(|e| err(path, format!("tensor `{name}`: {}", first_line(e))))?
                .ok_or_else(|| err(path, format!("tensor `{name}` vanished")))?;
            let shape = t.dims().to_vec();
            let data = t
                .to_dtype(candle_core::DType::F32)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| err(path, format!("tensor `{name}`: {}", first_line(e))))?;
            out.insert(name.clone(), PthTensor { shape, data });
        }
        if out.is_empty() {
            return Err(err(
                path,
                "the checkpoint holds no tensors (expected a state dict)",
            ));
        }
        Ok(out)
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| {
        Err(err(
            path,
            "malformed PyTorch checkpoint (the pickle reader failed)",
        ))
    })
}

/// A state dict in rwkv.cpp's layout.
struct Layout(HashMap<String, PthTensor>);

impl TensorSource for Layout {
    fn shape(&self, name: &str) -> Option<&[usize]> {
        self.0.get(name).map(|t| t.shape.as_slice())
    }
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ToolError> {
        let t = self.0.get(name).ok_or_else(|| ToolError::MissingTensor {
            name: name.into(),
            expected: shape.to_vec(),
        })?;
        check_shape(name, &t.shape, shape)?;
        super::store::finite(name, t.data.clone())
    }
}

/// `[a, b]` → `[b, a]`.
fn transpose2(t: &PthTensor) -> Option<PthTensor> {
    let [a, b] = t.shape[..] else { return None };
    let mut data = Vec::with_capacity(t.data.len());
    for j in 0..b {
        data.extend((0..a).map(|i| t.data[i * b + j]));
    }
    Some(PthTensor {
        shape: vec![b, a],
        data,
    })
}

/// `[n, a, b]` → `[n, b, a]`.
fn transpose_last2(t: &PthTensor) -> Option<PthTensor> {
    let [n, a, b] = t.shape[..] else { return None };
    let mut data = Vec::with_capacity(t.data.len());
    for m in 0..n {
        let base = m * a * b;
        for j in 0..b {
            data.extend((0..a).map(|i| t.data[base + i * b + j]));
        }
    }
    Some(PthTensor {
        shape: vec![n, b, a],
        data,
    })
}

/// Applies what rwkv.cpp's converter does to a state dict (squeezed `time_*` tensors;
/// v4 decay `-exp`, v5 decay `exp(-exp)`, v5.1 `time_first` `exp`; v6 and v7 low-rank
/// matrices transposed to `[out, in]`; v7's six token-shift mixes concatenated).
fn to_rwkv_cpp_layout(
    mut sd: HashMap<String, PthTensor>,
    version: RwkvVersion,
    path: &Path,
) -> Result<HashMap<String, PthTensor>, ToolError> {
    let bad = |name: &str| err(path, format!("tensor `{name}` has an unexpected rank"));
    let names: Vec<String> = sd.keys().cloned().collect();
    for name in &names {
        let Some(t) = sd.get_mut(name) else { continue };
        if name.contains(".time_") {
            t.shape.retain(|&d| d != 1);
        }
        let decay = name.ends_with(".att.time_decay");
        match version {
            RwkvVersion::V4 if decay => t.data.iter_mut().for_each(|x| *x = -x.exp()),
            RwkvVersion::V5_1 | RwkvVersion::V5_2 if decay => {
                t.data.iter_mut().for_each(|x| *x = (-x.exp()).exp())
            }
            RwkvVersion::V5_1 | RwkvVersion::V5_2 if name.ends_with(".att.time_first") => {
                t.data.iter_mut().for_each(|x| *x = x.exp())
            }
            RwkvVersion::V6 if name.ends_with(".time_maa_w1") || name.contains(".time_decay_w") => {
                *t = transpose2(t).ok_or_else(|| bad(name))?;
            }
            RwkvVersion::V6 if name.ends_with(".time_maa_w2") => {
                *t = transpose_last2(t).ok_or_else(|| bad(name))?;
            }
            RwkvVersion::V7
                if [".w1", ".w2", ".a1", ".a2", ".v1", ".v2", ".g1", ".g2"]
                    .iter()
                    .any(|s| name.ends_with(s) && name.contains(".att.")) =>
            {
                *t = transpose2(t).ok_or_else(|| bad(name))?;
            }
            _ => {}
        }
    }
    if version == RwkvVersion::V6 {
        // rwkv.cpp stores v6's time_decay per head and key index, like time_faaaa.
        for name in &names {
            if let Some(head) = name.strip_suffix(".att.time_decay") {
                let hs = sd
                    .get(&format!("{head}.att.time_faaaa"))
                    .map(|t| t.shape.clone());
                if let (Some(hs), Some(t)) = (hs, sd.get_mut(name)) {
                    if hs.iter().product::<usize>() == t.data.len() {
                        t.shape = hs;
                    }
                }
            }
        }
    }
    if version == RwkvVersion::V7 {
        let mut l = 0;
        while sd.contains_key(&format!("blocks.{l}.ln1.weight")) {
            let mut data = Vec::new();
            let mut width = 0;
            for p in ["r", "w", "k", "v", "a", "g"] {
                let n = format!("blocks.{l}.att.x_{p}");
                let t = sd.remove(&n).ok_or_else(|| ToolError::MissingTensor {
                    name: n.clone(),
                    expected: vec![1, 1, 0],
                })?;
                width = t.data.len();
                data.extend(t.data);
            }
            sd.insert(
                format!("blocks.{l}.att.x_rwkvag"),
                PthTensor {
                    shape: vec![6, width],
                    data,
                },
            );
            l += 1;
        }
    }
    Ok(sd)
}

/// Converts an RWKV PyTorch checkpoint (`.pth`) into a model blob.
pub fn convert_rwkv(path: &Path, w: super::WeightDtype) -> Result<Vec<u8>, ToolError> {
    let sd = read_state_dict(path)?;
    let version = detect_version(|n| sd.contains_key(n)).map_err(|m| err(path, m))?;
    let emb = sd
        .get("emb.weight")
        .ok_or_else(|| ToolError::MissingTensor {
            name: "emb.weight".into(),
            expected: vec![0, 0],
        })?;
    let [n_vocab, n_embed] = emb.shape[..] else {
        return Err(bad_shape("emb.weight", &emb.shape));
    };
    let mut n_layer = 0u32;
    while sd.contains_key(&format!("blocks.{n_layer}.ln1.weight")) {
        n_layer += 1;
    }
    let fit = |v: usize| u32::try_from(v).map_err(|_| err(path, "dimension out of range"));
    let (n_vocab, n_embed) = (fit(n_vocab)?, fit(n_embed)?);
    let layout = Layout(to_rwkv_cpp_layout(sd, version, path)?);
    convert_source(&layout, version, n_vocab, n_embed, n_layer, path, w)
}

fn bad_shape(name: &str, found: &[usize]) -> ToolError {
    ToolError::WrongShape {
        name: name.into(),
        expected: vec![0, 0],
        found: found.to_vec(),
    }
}
