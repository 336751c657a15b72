//! PyTorch checkpoints (`torch.save` zip archives with a pickled state dict, as RWKV models
//! are released); RWKV v4, v5.1, v5.2, v6 and v7 state dicts are brought into rwkv.cpp's
//! layout (the transformations its converter applies) and converted by the same code as
//! rwkv.cpp files.
//!
//! The pickle program is run by candle-core's pickle machine (`candle_core::pickle::Stack`);
//! the tensor records it builds are read here, every field checked, and the tensors' bytes
//! read from the archive's storages. A corrupt or hostile archive is an error, never a panic,
//! a hang or an oversized allocation: before candle's machine runs, [`prescan_pickle`] runs
//! the program on a shadow stack that knows only each object's size and depth, and refuses
//! lengths beyond the pickle, objects that expand past a budget through the memo, nesting
//! deeper than [`MAX_DEPTH`] and integers wider than candle decodes.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use candle_core::pickle::{Object, Stack};

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

/// How deeply a pickle may nest objects (a state dict's tensor record is about eight deep;
/// candle's objects are dropped, cloned and printed recursively).
pub const MAX_DEPTH: u32 = 100;

/// One entry of the shadow stack: a mark, or an object of `nodes` pickle objects nested
/// `depth` deep.
#[derive(Clone, Copy)]
enum Shadow {
    Mark,
    Obj { nodes: u64, depth: u32 },
}

impl Shadow {
    fn nodes(self) -> u64 {
        match self {
            Shadow::Mark => 1,
            Shadow::Obj { nodes, .. } => nodes,
        }
    }
    fn depth(self) -> u32 {
        match self {
            Shadow::Mark => 1,
            Shadow::Obj { depth, .. } => depth,
        }
    }
}

/// The shadow of candle's pickle machine: the same stack effects per opcode, with each
/// object reduced to its size and depth.
struct Machine {
    stack: Vec<Shadow>,
    memo: HashMap<u32, Shadow>,
    /// Objects made so far, memo copies included (candle clones a memo entry whole).
    made: u64,
    budget: u64,
}

/// Why a scan stopped early: the pickle is refused, or candle's machine will refuse it at
/// this opcode (an empty stack, a missing memo entry or mark) and the scan need go no further.
enum Stop {
    Refuse(String),
    CandleFails,
}

impl From<String> for Stop {
    fn from(m: String) -> Self {
        Stop::Refuse(m)
    }
}

impl Machine {
    /// Counts `n` objects made (or copied) by candle's machine against the budget.
    fn charge(&mut self, n: u64) -> Result<(), Stop> {
        self.made = self.made.saturating_add(n);
        if self.made > self.budget {
            return Err(Stop::Refuse(format!(
                "the pickle expands to more than {} objects",
                self.budget
            )));
        }
        Ok(())
    }
    fn push(&mut self, s: Shadow, new_nodes: u64) -> Result<(), Stop> {
        self.charge(new_nodes)?;
        if s.depth() > MAX_DEPTH {
            return Err(Stop::Refuse(format!(
                "the pickle nests objects more than {MAX_DEPTH} deep"
            )));
        }
        self.stack.push(s);
        Ok(())
    }
    fn leaf(&mut self) -> Result<(), Stop> {
        self.push(Shadow::Obj { nodes: 1, depth: 1 }, 1)
    }
    fn pop(&mut self) -> Result<Shadow, Stop> {
        self.stack.pop().ok_or(Stop::CandleFails)
    }
    fn pop_n(&mut self, n: usize) -> Result<Vec<Shadow>, Stop> {
        let at = self.stack.len().checked_sub(n).ok_or(Stop::CandleFails)?;
        Ok(self.stack.split_off(at))
    }
    fn pop_to_mark(&mut self) -> Result<Vec<Shadow>, Stop> {
        let at = self
            .stack
            .iter()
            .rposition(|s| matches!(s, Shadow::Mark))
            .ok_or(Stop::CandleFails)?;
        let objs = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(objs)
    }
    /// A new object holding `parts`.
    fn combine(&mut self, parts: &[Shadow]) -> Result<(), Stop> {
        let nodes = parts.iter().fold(1u64, |a, p| a.saturating_add(p.nodes()));
        let depth = 1 + parts.iter().map(|p| p.depth()).max().unwrap_or(0);
        self.push(Shadow::Obj { nodes, depth }, 1)
    }
    /// `parts` appended to the object on top of the stack (a list or dict in candle).
    fn extend_last(&mut self, parts: &[Shadow]) -> Result<(), Stop> {
        let last = self.pop()?;
        let Shadow::Obj { nodes, depth } = last else {
            return Err(Stop::CandleFails);
        };
        let nodes = parts.iter().fold(nodes, |a, p| a.saturating_add(p.nodes()));
        let depth = depth.max(1 + parts.iter().map(|p| p.depth()).max().unwrap_or(0));
        self.push(Shadow::Obj { nodes, depth }, 0)
    }
}

/// Runs the pickle program `r` (`limit` bytes) on a shadow of candle-core's machine (the
/// same opcodes and stack effects), checking what candle's machine would trust: every length
/// it allocates against the bytes that remain (it reads a `BINUNICODE` string into
/// `vec![0; len]` first: a 4 GiB claim in a small archive was found by fuzzing), `LONG1`
/// widths (it shifts by `8 * i` for each byte), the objects the memo copies (a few hundred
/// bytes of `BINGET`s can double an object each time) and nesting depth. Opcodes outside
/// candle's set end the scan (its reader refuses them).
fn prescan_pickle(r: impl Read, limit: u64) -> Result<(), String> {
    /// The pickle stream and the bytes it has left.
    struct P<R> {
        r: R,
        left: u64,
    }
    impl<R: Read> P<R> {
        /// The next byte (`None` at the end).
        fn byte(&mut self) -> Result<Option<u8>, String> {
            let mut b = [0u8; 1];
            if self.r.read(&mut b).map_err(|e| e.to_string())? == 0 {
                return Ok(None);
            }
            self.left = self.left.saturating_sub(1);
            Ok(Some(b[0]))
        }
        /// `n` bytes (after checking that many remain), or `None` at the end.
        fn bytes(&mut self, n: u64, what: &str) -> Result<Option<Vec<u8>>, String> {
            if n > self.left {
                return Err(format!(
                    "{what} claims {n} bytes, {} remain in the pickle",
                    self.left
                ));
            }
            let mut v = Vec::new();
            Read::take(&mut self.r, n)
                .read_to_end(&mut v)
                .map_err(|e| e.to_string())?;
            self.left -= v.len() as u64;
            Ok((v.len() as u64 == n).then_some(v))
        }
    }
    let mut p = P { r, left: limit };
    let mut m = Machine {
        stack: Vec::new(),
        memo: HashMap::new(),
        made: 0,
        budget: (1 << 20) + limit,
    };
    let run = |p: &mut P<_>, m: &mut Machine| -> Result<(), Stop> {
        while let Some(op) = p.byte()? {
            match op {
                0x80 => {
                    if p.bytes(1, "an opcode argument")?.is_none() {
                        return Err(Stop::CandleFails);
                    }
                }
                // Integers and a float: a leaf after their fixed-size argument.
                b'K' | b'M' | b'J' | b'G' => {
                    let n = match op {
                        b'K' => 1,
                        b'M' => 2,
                        b'J' => 4,
                        _ => 8,
                    };
                    if p.bytes(n, "an opcode argument")?.is_none() {
                        return Err(Stop::CandleFails);
                    }
                    m.leaf()?;
                }
                // BINUNICODE: a u32 length, then that many bytes.
                b'X' => {
                    let Some(len) = p.bytes(4, "a string length")? else {
                        return Err(Stop::CandleFails);
                    };
                    let n = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as u64;
                    if p.bytes(n, "a string")?.is_none() {
                        return Err(Stop::CandleFails);
                    }
                    m.leaf()?;
                }
                // LONG1: a u8 count, then that many bytes, which candle shifts into an i64.
                0x8a => {
                    let Some(n) = p.byte()? else {
                        return Err(Stop::CandleFails);
                    };
                    if n > 8 {
                        return Err(Stop::Refuse(format!(
                            "a {n}-byte integer (LONG1; at most 8 bytes are read)"
                        )));
                    }
                    if p.bytes(n as u64, "a long")?.is_none() {
                        return Err(Stop::CandleFails);
                    }
                    m.leaf()?;
                }
                // GLOBAL: two newline-terminated names, each read whole by candle.
                b'c' => {
                    for _ in 0..2 {
                        let mut n = 0u32;
                        loop {
                            match p.byte()? {
                                None => return Err(Stop::CandleFails),
                                Some(b'\n') => break,
                                Some(_) => n += 1,
                            }
                            if n > 1 << 16 {
                                return Err(Stop::Refuse("a class name longer than 64 KiB".into()));
                            }
                        }
                    }
                    m.leaf()?;
                }
                b')' | b'N' | 0x88 | 0x89 | b'}' | b'd' | b']' => m.leaf()?,
                b'(' => m.push(Shadow::Mark, 1)?,
                b'Q' => {
                    let id = m.pop()?;
                    m.combine(&[id])?;
                }
                b't' => {
                    let objs = m.pop_to_mark()?;
                    m.combine(&objs)?;
                }
                0x85..=0x87 => {
                    let objs = m.pop_n((op - 0x84) as usize)?;
                    m.combine(&objs)?;
                }
                b'R' | 0x81 | b'b' => {
                    let objs = m.pop_n(2)?;
                    m.combine(&objs)?;
                }
                b'a' => {
                    let v = m.pop()?;
                    m.extend_last(&[v])?;
                }
                b's' => {
                    let kv = m.pop_n(2)?;
                    m.extend_last(&kv)?;
                }
                b'e' | b'u' => {
                    let objs = m.pop_to_mark()?;
                    m.extend_last(&objs)?;
                }
                b'h' | b'j' => {
                    let n = if op == b'h' { 1 } else { 4 };
                    let Some(id) = p.bytes(n, "a memo index")? else {
                        return Err(Stop::CandleFails);
                    };
                    let id = id.iter().rev().fold(0u32, |a, &b| a << 8 | b as u32);
                    let s = *m.memo.get(&id).ok_or(Stop::CandleFails)?;
                    m.push(s, s.nodes())?;
                }
                b'q' | b'r' => {
                    let n = if op == b'q' { 1 } else { 4 };
                    let Some(id) = p.bytes(n, "a memo index")? else {
                        return Err(Stop::CandleFails);
                    };
                    let id = id.iter().rev().fold(0u32, |a, &b| a << 8 | b as u32);
                    let top = *m.stack.last().ok_or(Stop::CandleFails)?;
                    m.charge(top.nodes())?;
                    m.memo.insert(id, top);
                }
                b'.' => return Ok(()),
                _ => return Err(Stop::CandleFails),
            }
        }
        Ok(())
    };
    match run(&mut p, &mut m) {
        Ok(()) | Err(Stop::CandleFails) => Ok(()),
        Err(Stop::Refuse(msg)) => Err(msg),
    }
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

/// A storage's element type (the `torch.*Storage` class of its persistent id).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Elem {
    F32,
    F64,
    F16,
    Bf16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Elem {
    fn from_class(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Elem::F32,
            "DoubleStorage" => Elem::F64,
            "HalfStorage" => Elem::F16,
            "BFloat16Storage" => Elem::Bf16,
            "LongStorage" => Elem::I64,
            "IntStorage" => Elem::I32,
            "ShortStorage" => Elem::I16,
            "CharStorage" => Elem::I8,
            "ByteStorage" => Elem::U8,
            "BoolStorage" => Elem::Bool,
            _ => return None,
        })
    }
    fn size(self) -> usize {
        match self {
            Elem::F64 | Elem::I64 => 8,
            Elem::F32 | Elem::I32 => 4,
            Elem::F16 | Elem::Bf16 | Elem::I16 => 2,
            Elem::I8 | Elem::U8 | Elem::Bool => 1,
        }
    }
    /// Little-endian bytes (torch's storage order on every platform it writes) as f32.
    fn to_f32(self, b: &[u8]) -> Vec<f32> {
        let c = b.chunks_exact(self.size());
        match self {
            Elem::F32 => c
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Elem::F64 => c
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            Elem::F16 => c
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Elem::Bf16 => c
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Elem::I64 => c
                .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            Elem::I32 => c
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                .collect(),
            Elem::I16 => c.map(|b| i16::from_le_bytes([b[0], b[1]]) as f32).collect(),
            Elem::I8 => c.map(|b| b[0] as i8 as f32).collect(),
            Elem::U8 => c.map(|b| b[0] as f32).collect(),
            Elem::Bool => c.map(|b| (b[0] != 0) as u8 as f32).collect(),
        }
    }
}

/// One tensor record of a state dict (`torch._utils._rebuild_tensor_v2`'s arguments): a
/// strided view of a storage, an archive entry of `storage_len` elements.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    entry: String,
    elem: Elem,
    storage_len: usize,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

fn class(o: &Object) -> Option<(&str, &str)> {
    match o {
        Object::Class {
            module_name,
            class_name,
        } => Some((module_name, class_name)),
        _ => None,
    }
}

fn tuple(o: &Object) -> Option<&[Object]> {
    match o {
        Object::Tuple(t) => Some(t),
        _ => None,
    }
}

fn index(o: &Object) -> Option<usize> {
    match *o {
        Object::Int(i) => usize::try_from(i).ok(),
        Object::Long(i) => usize::try_from(i).ok(),
        _ => None,
    }
}

fn indices(o: &Object) -> Option<Vec<usize>> {
    match o {
        Object::Tuple(t) | Object::List(t) => t.iter().map(index).collect(),
        _ => None,
    }
}

/// The tensor record a state-dict value holds: `Ok(None)` for a value that is not a tensor
/// (as candle's reader skips them), an error for a tensor record whose fields are malformed.
/// `dir` is the pickle's entry name without `.pkl` (storages are `{dir}/{key}`).
fn record(v: &Object, dir: &str) -> Result<Option<Record>, String> {
    let Object::Reduce { callable, args } = v else {
        return Ok(None);
    };
    let (callable, args): (&Object, &Object) = match class(callable) {
        // A tensor subclass: (function, type, arguments, state).
        Some(("torch._tensor", "_rebuild_from_type_v2")) => match tuple(args) {
            Some([f, _, a, ..]) => (f, a),
            _ => return Err("a `_rebuild_from_type_v2` record without its arguments".into()),
        },
        // A parameter: (tensor record, requires_grad, hooks).
        Some(("torch._utils", "_rebuild_parameter")) => match tuple(args) {
            Some([Object::Reduce { callable, args }, ..]) => (callable, args),
            _ => return Err("a `_rebuild_parameter` record without its tensor".into()),
        },
        _ => (callable, args),
    };
    if class(callable) != Some(("torch._utils", "_rebuild_tensor_v2")) {
        return Ok(None);
    }
    // (storage, storage offset, size, stride, requires_grad, hooks).
    let Some([storage, offset, size, stride, ..]) = tuple(args) else {
        return Err("a tensor record with fewer than four arguments".into());
    };
    // The storage's persistent id: ("storage", class, key, location, elements).
    let Object::PersistentLoad(id) = storage else {
        return Err("a tensor record whose storage is not a persistent id".into());
    };
    let Some([_, cls, Object::Unicode(key), _, len, ..]) = tuple(id) else {
        return Err("a malformed storage id (expected storage, class, key, location, size)".into());
    };
    let (_, cls) = class(cls).ok_or("a storage id without a storage class")?;
    let elem = Elem::from_class(cls).ok_or_else(|| format!("unsupported storage type {cls}"))?;
    let bad = |what: &str| format!("a tensor record whose {what} is not a non-negative integer");
    Ok(Some(Record {
        entry: format!("{dir}/{key}"),
        elem,
        storage_len: index(len).ok_or_else(|| bad("storage size"))?,
        offset: index(offset).ok_or_else(|| bad("storage offset"))?,
        shape: indices(size).ok_or_else(|| bad("size"))?,
        stride: indices(stride).ok_or_else(|| bad("stride"))?,
    }))
}

/// The tensor records of one pickled object (a state dict, or a scripted module holding one).
fn records(obj: &Object, dir: &str) -> Result<Vec<(String, Record)>, String> {
    let obj = match obj {
        Object::Build { callable, args } => match &**callable {
            Object::Reduce { callable, .. } if class(callable) == Some(("__torch__", "Module")) => {
                &**args
            }
            _ => return Ok(Vec::new()),
        },
        o => o,
    };
    let Object::Dict(items) = obj else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (k, v) in items {
        let Object::Unicode(name) = k else { continue };
        if let Some(r) = record(v, dir).map_err(|m| format!("tensor `{name}`: {m}"))? {
            out.push((name.clone(), r));
        }
    }
    Ok(out)
}

/// The elements of `r`'s view of `storage` in row-major order, after checking that every
/// index the view reaches lies inside the storage.
fn gather(r: &Record, storage: &[f32]) -> Result<Vec<f32>, String> {
    if r.shape.len() != r.stride.len() {
        return Err(format!(
            "{} sizes and {} strides",
            r.shape.len(),
            r.stride.len()
        ));
    }
    let n = r
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("the size overflows")?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let last = r
        .shape
        .iter()
        .zip(&r.stride)
        .try_fold(r.offset, |a, (&d, &s)| {
            a.checked_add((d - 1).checked_mul(s)?)
        });
    if last.is_none_or(|l| l >= storage.len()) {
        return Err(format!(
            "the view reaches past its storage of {} elements",
            storage.len()
        ));
    }
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; r.shape.len()];
    let mut at = r.offset;
    for _ in 0..n {
        out.push(storage[at]);
        // Odometer over the dimensions, last fastest.
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            at += r.stride[d];
            if idx[d] < r.shape[d] {
                break;
            }
            at -= r.stride[d] * r.shape[d];
            idx[d] = 0;
        }
    }
    Ok(out)
}

/// Reads every tensor of a PyTorch state dict (floating-point, integer or bool storages) as
/// f32, in any strided layout.
pub fn read_state_dict(path: &Path) -> Result<HashMap<String, PthTensor>, ToolError> {
    let bad = |m: String| {
        err(
            path,
            format!("not a readable PyTorch checkpoint (zip + pickle): {m}"),
        )
    };
    let file_len = std::fs::metadata(path)
        .map_err(|e| ToolError::io(path, e))?
        .len();
    prescan_archive(path).map_err(bad)?;
    let f = std::fs::File::open(path).map_err(|e| ToolError::io(path, e))?;
    let mut zip =
        zip::ZipArchive::new(std::io::BufReader::new(f)).map_err(|e| bad(first_line(e)))?;
    let mut pickles = Vec::new();
    for n in zip.file_names() {
        let n = n.map_err(|e| bad(first_line(e)))?;
        if n.ends_with("data.pkl") {
            pickles.push(n.into_owned());
        }
    }
    let mut recs = Vec::new();
    for name in &pickles {
        let entry = zip.by_name(name).map_err(|e| bad(first_line(e)))?;
        let mut reader = std::io::BufReader::new(entry);
        // candle's machine, on a pickle the pre-scan bounded; a panic in it (none is known)
        // would still be an error.
        let obj = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut stack = Stack::empty();
            stack.read_loop(&mut reader)?;
            stack.finalize()
        }))
        .map_err(|_| bad("the pickle reader failed".into()))?
        .map_err(|e| bad(first_line(e)))?;
        let dir = name.strip_suffix(".pkl").unwrap_or(name);
        recs.extend(records(&obj, dir).map_err(bad)?);
    }
    let mut storages: HashMap<String, Vec<f32>> = HashMap::new();
    let mut out = HashMap::new();
    for (name, r) in recs {
        let tensor_err = |m: String| err(path, format!("tensor `{name}`: {m}"));
        if !storages.contains_key(&r.entry) {
            let bytes = (r.storage_len as u64)
                .checked_mul(r.elem.size() as u64)
                .filter(|&b| b <= file_len)
                .ok_or_else(|| {
                    err(
                        path,
                        format!("tensor `{name}` claims more data than the file holds"),
                    )
                })?;
            let entry = zip
                .by_name(&r.entry)
                .map_err(|e| tensor_err(format!("storage `{}`: {}", r.entry, first_line(e))))?;
            let mut raw = Vec::new();
            entry
                .take(bytes)
                .read_to_end(&mut raw)
                .map_err(|e| tensor_err(format!("storage `{}`: {e}", r.entry)))?;
            if raw.len() as u64 != bytes {
                return Err(tensor_err(format!(
                    "storage `{}` holds {} bytes, its record claims {bytes}",
                    r.entry,
                    raw.len()
                )));
            }
            storages.insert(r.entry.clone(), r.elem.to_f32(&raw));
        }
        let storage = &storages[&r.entry];
        let data = gather(&r, storage).map_err(tensor_err)?;
        out.insert(
            name,
            PthTensor {
                shape: r.shape,
                data,
            },
        );
    }
    if out.is_empty() {
        return Err(err(
            path,
            "the checkpoint holds no tensors (expected a state dict)",
        ));
    }
    Ok(out)
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
