//! Model format v1: a little-endian, 16-byte-aligned, zero-copy blob.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "TSSM"
//! 4       2     format major version (u16)   -- a reader rejects other majors
//! 6       2     format minor version (u16)   -- a reader accepts minors up to its own
//! 8       4     header_len (u32): bytes of the header region that starts at offset 32
//! 12      4     reserved, 0
//! 16      8     data_len (u64): bytes of the data section
//! 24      4     CRC-32 (ISO-HDLC) of every byte of the blob except these four
//! 28      4     reserved, 0
//! 32      ..    header region:
//!                 postcard(Header)                       (config, tensor count, quant table length)
//!                 n_tensors × TensorRecord (41 bytes)    (postcard with fixed-width integers)
//!                 quant table (quant_len bytes; reserved, empty in v1.0–1.2)
//! ..      ..    zero padding to a 16-byte boundary = data_offset
//! data_offset   tensor data: each tensor 16-byte aligned, in table order, no overlap
//! ```
//! The blob ends exactly at `data_offset + data_len`. Tensors appear in the canonical
//! order defined by [`crate::Config::tensor_spec`], which the parser checks tensor by
//! tensor (role, layer, shape, dtype, length, alignment, bounds).

use serde::{Deserialize, Serialize};

use crate::config::{Config, DType, Role, Sizes, TensorSpec};
use crate::error::FormatError;

/// First four bytes of every model blob.
pub const MAGIC: [u8; 4] = *b"TSSM";
pub use crate::version::{VERSION_MAJOR, VERSION_MINOR, VERSION_MINOR_BASE};

/// Smallest input bound a [`crate::DType::I8S`] matrix may store (its inverse scale
/// `127 / xmax` stays finite).
pub const I8S_MIN_XMAX: f32 = 1e-30;
/// Size of the fixed preamble.
pub const PREAMBLE_LEN: usize = 32;
/// Alignment of the blob and of every tensor.
pub const ALIGN: usize = 16;
/// Encoded size of one [`TensorRecord`].
pub const TENSOR_RECORD_LEN: usize = 41;
/// Layer value of model-global tensors in the tensor table.
pub const GLOBAL_LAYER: u16 = u16::MAX;

/// The CRC used over the blob (CRC-32/ISO-HDLC, as zlib).
pub const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// The postcard-encoded header.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub config: Config,
    pub n_tensors: u32,
    /// Length of the quantization-parameter table that follows the tensor table.
    /// Reserved: must be 0 in format v1.
    pub quant_len: u32,
}

/// Format 1.0's configuration (no front end).
#[derive(Deserialize)]
struct ConfigV1_0 {
    n_layers: u32,
    arch: crate::blocks::Arch,
}

/// Format 1.0's header.
#[derive(Deserialize)]
struct HeaderV1_0 {
    config: ConfigV1_0,
    n_tensors: u32,
    quant_len: u32,
}

/// The front end as formats 1.1–1.5 store it (no `filter_nnz`: the filterbank is dense).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct FrontEndConfigV1_1 {
    sample_rate: u32,
    frame_len: u32,
    hop: u32,
    n_fft: u32,
    n_mels: u32,
    f_min: f32,
    f_max: f32,
    window: crate::frontend::Window,
    mel_scale: crate::frontend::MelScale,
    area_norm: bool,
    log_eps: f32,
}

/// `Dst { <the fields 1.1–1.5 store> from src, rest… }` (one list for both directions).
macro_rules! front_end_fields {
    ($src:expr, $dst:path { $($rest:tt)* }) => {{
        let f = $src;
        $dst {
            sample_rate: f.sample_rate,
            frame_len: f.frame_len,
            hop: f.hop,
            n_fft: f.n_fft,
            n_mels: f.n_mels,
            f_min: f.f_min,
            f_max: f.f_max,
            window: f.window,
            mel_scale: f.mel_scale,
            area_norm: f.area_norm,
            log_eps: f.log_eps,
            $($rest)*
        }
    }};
}

impl From<FrontEndConfigV1_1> for crate::frontend::FrontEndConfig {
    fn from(f: FrontEndConfigV1_1) -> Self {
        front_end_fields!(f, crate::frontend::FrontEndConfig { filter_nnz: 0 })
    }
}

impl FrontEndConfigV1_1 {
    /// The 1.1–1.5 form of `f`, when it has one (a dense filterbank).
    fn of(f: &crate::frontend::FrontEndConfig) -> Option<Self> {
        (!f.sparse_filters()).then(|| front_end_fields!(f, FrontEndConfigV1_1 {}))
    }
}

/// Format 1.1's configuration (no compute mode).
#[derive(Deserialize)]
struct ConfigV1_1 {
    n_layers: u32,
    arch: crate::blocks::Arch,
    front_end: Option<FrontEndConfigV1_1>,
}

/// Formats 1.2–1.5's configuration (a dense filterbank).
#[derive(Debug, Serialize, Deserialize)]
struct ConfigV1_2 {
    n_layers: u32,
    arch: crate::blocks::Arch,
    front_end: Option<FrontEndConfigV1_1>,
    compute: crate::config::Compute,
}

/// Formats 1.2–1.5's header: what the writer still writes for every model that uses no 1.6
/// feature, so that those blobs stay byte-identical and older readers keep reading them.
#[derive(Debug, Serialize, Deserialize)]
pub struct HeaderV1_2 {
    config: ConfigV1_2,
    n_tensors: u32,
    quant_len: u32,
}

impl HeaderV1_2 {
    /// The 1.2–1.5 form of `h`, unless its configuration needs 1.6 (a sparse filterbank).
    pub fn of(h: &Header) -> Option<Self> {
        let front_end = match &h.config.front_end {
            Some(f) => Some(FrontEndConfigV1_1::of(f)?),
            None => None,
        };
        Some(HeaderV1_2 {
            config: ConfigV1_2 {
                n_layers: h.config.n_layers,
                arch: h.config.arch,
                front_end,
                compute: h.config.compute,
            },
            n_tensors: h.n_tensors,
            quant_len: h.quant_len,
        })
    }
}

/// Format 1.1's header.
#[derive(Deserialize)]
struct HeaderV1_1 {
    config: ConfigV1_1,
    n_tensors: u32,
    quant_len: u32,
}

/// Decodes the header region of a format 1.`minor` blob (the bytes after the preamble):
/// the header and the rest (the tensor table), one whole struct per layout. (Decoding field by
/// field would instantiate the block kinds' decoder once instead of three times, but
/// measured on the Cortex-M4 bench images it costs ~1 KB more stack at parse and saves no
/// `.text`.)
pub fn decode_header(minor: u16, region: &[u8]) -> Result<(Header, &[u8]), FormatError> {
    if minor == 1 {
        let (h, rest) =
            postcard::take_from_bytes::<HeaderV1_1>(region).map_err(|_| FormatError::BadHeader)?;
        let header = Header {
            config: Config {
                n_layers: h.config.n_layers,
                arch: h.config.arch,
                front_end: h.config.front_end.map(Into::into),
                compute: crate::config::Compute::Float,
            },
            n_tensors: h.n_tensors,
            quant_len: h.quant_len,
        };
        return Ok((header, rest));
    }
    if minor == 0 {
        let (h, rest) =
            postcard::take_from_bytes::<HeaderV1_0>(region).map_err(|_| FormatError::BadHeader)?;
        let header = Header {
            config: Config {
                n_layers: h.config.n_layers,
                arch: h.config.arch,
                front_end: None,
                compute: crate::config::Compute::Float,
            },
            n_tensors: h.n_tensors,
            quant_len: h.quant_len,
        };
        Ok((header, rest))
    } else if minor < 6 {
        let (h, rest) = postcard::take_from_bytes::<HeaderV1_2>(region)
            .map_err(|_| stacks_or_bad_header(region))?;
        let header = Header {
            config: Config {
                n_layers: h.config.n_layers,
                arch: h.config.arch,
                front_end: h.config.front_end.map(Into::into),
                compute: h.config.compute,
            },
            n_tensors: h.n_tensors,
            quant_len: h.quant_len,
        };
        Ok((header, rest))
    } else {
        postcard::take_from_bytes::<Header>(region).map_err(|_| stacks_or_bad_header(region))
    }
}

/// The error for a header that does not decode: [`FormatError::StacksNotBuilt`] when it
/// holds an explicit stack and this build has no stacks, else [`FormatError::BadHeader`].
fn stacks_or_bad_header(region: &[u8]) -> FormatError {
    // The header starts with `n_layers`, then the `Arch` variant (postcard varints).
    let variant = postcard::take_from_bytes::<u32>(region)
        .and_then(|(_, rest)| postcard::take_from_bytes::<u32>(rest));
    match variant {
        Ok((v, _)) if !cfg!(feature = "stacks") && v == crate::blocks::STACK_VARIANT => {
            FormatError::StacksNotBuilt
        }
        Ok((v, _)) if !cfg!(feature = "net") && v == crate::blocks::NET_VARIANT => {
            FormatError::NetNotBuilt
        }
        _ => FormatError::BadHeader,
    }
}

/// One entry of the tensor table; postcard with fixed-width integers so that every record
/// has the same size ([`TENSOR_RECORD_LEN`]) and tensor `i` is found in O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorRecord {
    #[serde(with = "postcard::fixint::le")]
    pub layer: u16,
    pub role: u8,
    pub dtype: u8,
    pub rank: u8,
    #[serde(with = "postcard::fixint::le")]
    pub d0: u32,
    #[serde(with = "postcard::fixint::le")]
    pub d1: u32,
    #[serde(with = "postcard::fixint::le")]
    pub d2: u32,
    #[serde(with = "postcard::fixint::le")]
    pub d3: u32,
    /// Byte offset relative to the data section.
    #[serde(with = "postcard::fixint::le")]
    pub offset: u64,
    /// Byte length.
    #[serde(with = "postcard::fixint::le")]
    pub len: u64,
    /// Index into the quantization table; reserved, `u32::MAX` (none) in v1.
    #[serde(with = "postcard::fixint::le")]
    pub quant: u32,
}

impl TensorRecord {
    pub fn shape(&self) -> [u32; 4] {
        [self.d0, self.d1, self.d2, self.d3]
    }
}

/// Round `n` up to the next multiple of [`ALIGN`] (checked).
pub const fn align_up(n: u64) -> Option<u64> {
    match n.checked_add(ALIGN as u64 - 1) {
        Some(v) => Some(v & !(ALIGN as u64 - 1)),
        None => None,
    }
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// CRC-32 of a blob, skipping the CRC field itself.
pub fn blob_crc(blob: &[u8]) -> u32 {
    let mut d = CRC.digest();
    d.update(&blob[..24.min(blob.len())]);
    if blob.len() > 28 {
        d.update(&blob[28..]);
    }
    d.finalize()
}

/// Result of validating a blob: everything the model needs, all offsets checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parsed<'a> {
    pub config: Config,
    pub sizes: Sizes,
    pub table: &'a [u8],
    pub data: &'a [u8],
    pub n_tensors: usize,
    pub minor: u16,
    pub crc: u32,
}

pub(crate) fn decode_record(table: &[u8], i: usize) -> Option<TensorRecord> {
    let lo = i.checked_mul(TENSOR_RECORD_LEN)?;
    let rec = table.get(lo..lo.checked_add(TENSOR_RECORD_LEN)?)?;
    postcard::from_bytes::<TensorRecord>(rec).ok()
}

/// The whole blob's length as its preamble declares it, from the first
/// [`PREAMBLE_LEN`] bytes alone: checks the magic, the version and the reserved fields, so
/// a reader can reject a file, or size its buffer, before reading the rest.
pub fn blob_len(preamble: &[u8]) -> Result<u64, FormatError> {
    let got = preamble.len() as u64;
    if preamble.len() < 8 {
        if preamble.len() >= 4 && preamble[..4] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        return Err(FormatError::Truncated {
            needed: PREAMBLE_LEN as u64,
            got,
        });
    }
    if preamble[..4] != MAGIC {
        return Err(FormatError::BadMagic);
    }
    let major = u16_at(preamble, 4);
    let minor = u16_at(preamble, 6);
    if major != VERSION_MAJOR || minor > VERSION_MINOR {
        return Err(FormatError::UnsupportedVersion {
            found_major: major,
            found_minor: minor,
            supported_major: VERSION_MAJOR,
        });
    }
    if preamble.len() < PREAMBLE_LEN {
        return Err(FormatError::Truncated {
            needed: PREAMBLE_LEN as u64,
            got,
        });
    }
    if u32_at(preamble, 12) != 0 || u32_at(preamble, 28) != 0 {
        return Err(FormatError::ReservedNotEmpty);
    }
    let header_end = PREAMBLE_LEN as u64 + u32_at(preamble, 8) as u64;
    align_up(header_end)
        .ok_or(FormatError::BadLayout)?
        .checked_add(u64_at(preamble, 16))
        .ok_or(FormatError::BadLayout)
}

pub(crate) fn parse(blob: &[u8], verify_crc: bool) -> Result<Parsed<'_>, FormatError> {
    let got = blob.len() as u64;
    let total = blob_len(blob)?;
    if !(blob.as_ptr() as usize).is_multiple_of(ALIGN) {
        return Err(FormatError::MisalignedBlob);
    }
    let minor = u16_at(blob, 6);
    let header_end = PREAMBLE_LEN as u64 + u32_at(blob, 8) as u64;
    let data_offset = align_up(header_end).ok_or(FormatError::BadLayout)?;
    let data_len = u64_at(blob, 16);
    let stored_crc = u32_at(blob, 24);
    if total > got {
        return Err(FormatError::Truncated { needed: total, got });
    }
    if total < got {
        return Err(FormatError::TrailingBytes);
    }
    let computed = if verify_crc {
        blob_crc(blob)
    } else {
        stored_crc
    };
    if computed != stored_crc {
        return Err(FormatError::CrcMismatch {
            stored: stored_crc,
            computed,
        });
    }
    // From here on every offset is below blob.len(), which is a usize.
    let header_region = &blob[PREAMBLE_LEN..header_end as usize];
    if blob[header_end as usize..data_offset as usize]
        .iter()
        .any(|&b| b != 0)
    {
        return Err(FormatError::ReservedNotEmpty);
    }
    let (header, rest) = decode_header(minor, header_region)?;
    let config = header.config;
    if minor < 3 && config.compute == crate::config::Compute::Int {
        return Err(FormatError::BadHeader);
    }
    // An explicit stack (a layer table) is a 1.5 header, a sparse filterbank 1.6.
    if minor < config.min_minor() {
        return Err(FormatError::BadHeader);
    }
    config.validate()?;
    let sizes = config.sizes()?;
    let layout = config.layout();
    let n_expected = layout.n_tensors(&config);
    if header.n_tensors as usize != n_expected {
        return Err(FormatError::TensorCount {
            expected: n_expected as u32,
            found: header.n_tensors,
        });
    }
    if header.quant_len != 0 {
        return Err(FormatError::ReservedNotEmpty);
    }
    let table_len = n_expected
        .checked_mul(TENSOR_RECORD_LEN)
        .ok_or(FormatError::DimensionOverflow)?;
    if rest.len() != table_len + header.quant_len as usize {
        return Err(FormatError::BadLayout);
    }
    let table = &rest[..table_len];
    let data = &blob[data_offset as usize..];
    let mut prev_end: u64 = 0;
    for i in 0..n_expected {
        let index = i as u32;
        let rec = decode_record(table, i).ok_or(FormatError::BadHeader)?;
        let spec = layout.spec(&config, i).ok_or(FormatError::BadHeader)?;
        let layer = spec.layer.unwrap_or(GLOBAL_LAYER);
        if Role::from_code(rec.role) != Some(spec.role) || rec.layer != layer {
            return Err(FormatError::UnexpectedTensor { index });
        }
        if rec.rank != spec.rank || rec.shape() != spec.shape {
            return Err(FormatError::WrongShape { index });
        }
        let dtype = DType::from_code(rec.dtype).ok_or(FormatError::UnknownDtype {
            index,
            code: rec.dtype,
        })?;
        if !config.allows(&spec, dtype) {
            return Err(FormatError::DtypeNotAllowed {
                index,
                code: rec.dtype,
            });
        }
        if rec.quant != u32::MAX {
            return Err(FormatError::ReservedNotEmpty);
        }
        if minor < config.dtype_min_minor(&spec, dtype) {
            return Err(FormatError::DtypeNotAllowed {
                index,
                code: rec.dtype,
            });
        }
        let bytes = spec.bytes(dtype).ok_or(FormatError::DimensionOverflow)?;
        if rec.len != bytes {
            return Err(FormatError::WrongLength { index });
        }
        if !rec.offset.is_multiple_of(ALIGN as u64) {
            return Err(FormatError::MisalignedTensor { index });
        }
        if rec.offset < prev_end {
            return Err(FormatError::TensorOverlap { index });
        }
        let end = rec
            .offset
            .checked_add(rec.len)
            .ok_or(FormatError::TensorOutOfBounds { index })?;
        if end > data_len {
            return Err(FormatError::TensorOutOfBounds { index });
        }
        if dtype == DType::I8S {
            // The last four bytes: the input bound (bit-pattern checks, no float operation).
            let b = data
                .get((end as usize).saturating_sub(4)..end as usize)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .ok_or(FormatError::TensorOutOfBounds { index })?;
            let xmax = f32::from_le_bytes(b);
            if !(crate::fbits::is_finite(xmax) && crate::fbits::le(I8S_MIN_XMAX, xmax)) {
                return Err(FormatError::BadValue { index });
            }
        }
        if verify_crc {
            let t = data
                .get(rec.offset as usize..end as usize)
                .ok_or(FormatError::TensorOutOfBounds { index })?;
            check_values(&spec, dtype, t, index)?;
        }
        prev_end = end;
    }
    if align_up(prev_end) != Some(data_len) && prev_end != data_len {
        return Err(FormatError::TrailingBytes);
    }
    Ok(Parsed {
        config,
        sizes,
        table,
        data,
        n_tensors: n_expected,
        minor,
        crc: stored_crc,
    })
}

fn words32(b: &[u8]) -> impl Iterator<Item = u32> + '_ {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

fn words16(b: &[u8]) -> impl Iterator<Item = u32> + '_ {
    b.chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
}

/// Whether an IEEE-754 value with `bits` is finite: its exponent field (`exp`) not all ones.
#[inline]
fn finite_bits(bits: u32, exp: u32) -> bool {
    bits & exp != exp
}

/// Whether the value is below zero (−0 is not): sign bit set and magnitude non-zero.
#[inline]
fn negative_bits(bits: u32, sign: u32) -> bool {
    bits & sign != 0 && bits & !sign != 0
}

/// The values of tensor `index` (its bytes `t`, stored as `dtype`): every float-valued
/// entry finite — weights (f32, f16, bf16), int8 row scales and input bounds, int4 group
/// scales — quantization scales not negative, and a mel filterbank not negative. Integer
/// data has no such values. Bit-pattern checks only: no floating-point instruction.
fn check_values(spec: &TensorSpec, dtype: DType, t: &[u8], index: u32) -> Result<(), FormatError> {
    let non_finite = FormatError::NonFinite { index };
    let negative = FormatError::Negative { index };
    let no_negative = spec.role == Role::MelFilters;
    match dtype {
        DType::F32 => {
            for w in words32(t) {
                if !finite_bits(w, 0x7f80_0000) {
                    return Err(non_finite);
                }
                if no_negative && negative_bits(w, 0x8000_0000) {
                    return Err(negative);
                }
            }
        }
        DType::F16 | DType::Bf16 => {
            let exp = if dtype == DType::F16 { 0x7c00 } else { 0x7f80 };
            for h in words16(t) {
                if !finite_bits(h, exp) {
                    return Err(non_finite);
                }
                if no_negative && negative_bits(h, 0x8000) {
                    return Err(negative);
                }
            }
        }
        DType::I8 | DType::I8S => {
            // int8 values, padding to 4 bytes, then f32 row scales (and the input bound).
            let (rows, cols) = spec.rows_cols().ok_or(FormatError::WrongShape { index })?;
            let n = rows
                .checked_mul(cols)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(FormatError::DimensionOverflow)?;
            let s = t
                .get(n.next_multiple_of(4)..)
                .ok_or(FormatError::WrongLength { index })?;
            for w in words32(s) {
                if !finite_bits(w, 0x7f80_0000) {
                    return Err(non_finite);
                }
                if negative_bits(w, 0x8000_0000) {
                    return Err(negative);
                }
            }
        }
        DType::I4 => {
            // 16-byte groups of packed values, then one f16 scale per group.
            let (rows, cols) = spec.rows_cols().ok_or(FormatError::WrongShape { index })?;
            let g = rows
                .checked_mul(cols.div_ceil(crate::config::I4_GROUP as u64))
                .and_then(|g| g.checked_mul(16))
                .and_then(|g| usize::try_from(g).ok())
                .ok_or(FormatError::DimensionOverflow)?;
            let s = t.get(g..).ok_or(FormatError::WrongLength { index })?;
            for h in words16(s) {
                if !finite_bits(h, 0x7c00) {
                    return Err(non_finite);
                }
                if negative_bits(h, 0x8000) {
                    return Err(negative);
                }
            }
        }
        DType::I16 | DType::I32 | DType::I8R => {}
    }
    Ok(())
}

#[cfg(test)]
mod stack_header_tests {
    use super::*;

    /// A 1.5 header whose `Arch` is the stack variant: a build without the `stacks`
    /// feature names the feature; one with it decodes the stack (here truncated: malformed).
    #[test]
    fn a_stack_header_without_the_feature_names_it() {
        let region = [2u8, crate::blocks::STACK_VARIANT as u8, 0, 0];
        let e = decode_header(5, &region).unwrap_err();
        if cfg!(feature = "stacks") {
            assert_eq!(e, FormatError::BadHeader);
        } else {
            assert_eq!(e, FormatError::StacksNotBuilt);
            assert!(std::format!("{e}").contains("`stacks` feature"));
        }
    }
}
