//! Writes model blobs in format v1 (the layout is documented in `tinyssm_core::format`).

use half::{bf16, f16};
use tinyssm_core::format::{
    align_up, blob_crc, Header, TensorRecord, ALIGN, GLOBAL_LAYER, MAGIC, PREAMBLE_LEN,
    TENSOR_RECORD_LEN, VERSION_MAJOR, VERSION_MINOR, VERSION_MINOR_BASE,
};
use tinyssm_core::{Config, DType, FormatError, Role, TensorSpec, I4_GROUP};

use crate::error::HostError;

/// Tensor values in their storage dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
    /// int8 values (row-major) and one scale per row ([`DType::I8`]); with `xmax`, the
    /// calibrated bound of the input vector too ([`DType::I8S`], static w8a8 scale).
    I8 {
        q: Vec<i8>,
        scale: Vec<f32>,
        xmax: Option<f32>,
    },
    /// Packed int4 groups (16 bytes each, row by row) and one f16 scale per group
    /// ([`DType::I4`]); `cols` values per row.
    I4 {
        q: Vec<u8>,
        scale: Vec<f16>,
        cols: usize,
    },
    /// Integer-only models ([`DType::I16`], [`DType::I32`]).
    I16(Vec<i16>),
    I32(Vec<i32>),
    /// int8 values (row-major) and per row `(multiplier, rshift)` ([`DType::I8R`]).
    I8R {
        q: Vec<i8>,
        rq: Vec<i32>,
    },
}

/// Symmetric int8 quantization of one row: `scale = max|w| / 127`, `q = round(w / scale)`.
pub fn quantize_row_i8(row: &[f32], q: &mut [i8]) -> f32 {
    let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
    if amax == 0.0 || !amax.is_finite() {
        q.fill(0);
        return 0.0;
    }
    let scale = amax / 127.0;
    for (o, &v) in q.iter_mut().zip(row) {
        *o = (v / scale).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// Symmetric int4 quantization of one group of up to 32 values into 16 packed bytes:
/// `scale = f16(max|w| / 7)`, `q = round(w / scale)` in [-7, 7].
pub fn quantize_group_i4(group: &[f32], out: &mut [u8; 16]) -> f16 {
    let amax = group.iter().fold(0f32, |m, v| m.max(v.abs()));
    out.fill(0);
    let scale = f16::from_f32(amax / 7.0);
    let s = scale.to_f32();
    if s == 0.0 || !s.is_finite() {
        return f16::ZERO;
    }
    for (i, &v) in group.iter().enumerate() {
        let q = (v / s).round().clamp(-7.0, 7.0) as i8;
        let nib = (q as u8) & 0x0f;
        out[i / 2] |= if i % 2 == 0 { nib } else { nib << 4 };
    }
    scale
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F16(_) => DType::F16,
            TensorData::Bf16(_) => DType::Bf16,
            TensorData::I8 { xmax: None, .. } => DType::I8,
            TensorData::I8 { xmax: Some(_), .. } => DType::I8S,
            TensorData::I4 { .. } => DType::I4,
            TensorData::I16(_) => DType::I16,
            TensorData::I32(_) => DType::I32,
            TensorData::I8R { .. } => DType::I8R,
        }
    }
    /// Number of values (scales not counted).
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F16(v) => v.len(),
            TensorData::Bf16(v) => v.len(),
            TensorData::I8 { q, .. } => q.len(),
            TensorData::I4 { scale, cols, .. } => {
                let g = cols.div_ceil(I4_GROUP).max(1);
                scale.len() / g * cols
            }
            TensorData::I16(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I8R { q, .. } => q.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The bytes as stored in the blob (layouts: [`DType`]).
    fn bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        use std::borrow::Cow;
        match self {
            TensorData::F32(v) => Cow::Borrowed(bytemuck::cast_slice(v)),
            TensorData::F16(v) => Cow::Borrowed(bytemuck::cast_slice(v)),
            TensorData::Bf16(v) => Cow::Borrowed(bytemuck::cast_slice(v)),
            TensorData::I8 { q, scale, xmax } => {
                let mut b: Vec<u8> = bytemuck::cast_slice(q).to_vec();
                b.resize(q.len().div_ceil(4) * 4, 0);
                b.extend_from_slice(bytemuck::cast_slice(scale));
                if let Some(x) = xmax {
                    b.extend_from_slice(&x.to_le_bytes());
                }
                Cow::Owned(b)
            }
            TensorData::I4 { q, scale, .. } => {
                let mut b = q.clone();
                b.extend_from_slice(bytemuck::cast_slice(scale));
                Cow::Owned(b)
            }
            TensorData::I16(v) => Cow::Borrowed(bytemuck::cast_slice(v)),
            TensorData::I32(v) => Cow::Borrowed(bytemuck::cast_slice(v)),
            TensorData::I8R { q, rq } => {
                let mut b: Vec<u8> = bytemuck::cast_slice(q).to_vec();
                b.resize(q.len().div_ceil(4) * 4, 0);
                b.extend_from_slice(bytemuck::cast_slice(rq));
                Cow::Owned(b)
            }
        }
    }
    /// Converts f32 data to a float `dtype` (f16 and bf16 round to nearest even); int8
    /// and int4 need the matrix shape: [`Self::encode`].
    pub fn from_f32(v: Vec<f32>, dtype: DType) -> Self {
        match dtype {
            DType::F16 => TensorData::F16(v.iter().map(|&x| f16::from_f32(x)).collect()),
            DType::Bf16 => TensorData::Bf16(v.iter().map(|&x| bf16::from_f32(x)).collect()),
            _ => TensorData::F32(v),
        }
    }
    /// Encodes the values of a tensor of `spec` in `dtype`, quantizing int8 per row and
    /// int4 per group of 32 columns (rows: all dimensions but the last).
    pub fn encode(v: Vec<f32>, dtype: DType, spec: &TensorSpec) -> Result<Self, HostError> {
        let (rows, cols) = spec
            .rows_cols()
            .and_then(|(r, c)| Some((usize::try_from(r).ok()?, usize::try_from(c).ok()?)))
            .ok_or_else(|| HostError::Tensor {
                name: spec_name(spec),
                msg: "shape overflows".into(),
            })?;
        if v.len() != rows * cols {
            return Err(HostError::Tensor {
                name: spec_name(spec),
                msg: format!("has {} values, expected {rows} × {cols}", v.len()),
            });
        }
        Ok(match dtype {
            DType::I8 => {
                let mut q = vec![0i8; v.len()];
                let mut scale = vec![0f32; rows];
                if cols > 0 {
                    for ((row, qr), s) in v
                        .chunks_exact(cols)
                        .zip(q.chunks_exact_mut(cols))
                        .zip(&mut scale)
                    {
                        *s = quantize_row_i8(row, qr);
                    }
                }
                TensorData::I8 {
                    q,
                    scale,
                    xmax: None,
                }
            }
            DType::I4 => {
                let g = cols.div_ceil(I4_GROUP);
                let mut q = Vec::with_capacity(rows * g * 16);
                let mut scale = Vec::with_capacity(rows * g);
                if cols > 0 {
                    for row in v.chunks_exact(cols) {
                        for grp in row.chunks(I4_GROUP) {
                            let mut b = [0u8; 16];
                            scale.push(quantize_group_i4(grp, &mut b));
                            q.extend_from_slice(&b);
                        }
                    }
                }
                TensorData::I4 { q, scale, cols }
            }
            DType::I8S => {
                return Err(HostError::Tensor {
                    name: spec_name(spec),
                    msg: "int8s needs its input bound from calibration: encode int8, then TensorData::with_input_bound".into(),
                })
            }
            d => TensorData::from_f32(v, d),
        })
    }
    /// An int8 matrix with the calibrated bound `xmax` of its input vector
    /// ([`DType::I8S`]); `xmax` must be finite and at least
    /// [`tinyssm_core::format::I8S_MIN_XMAX`].
    pub fn with_input_bound(self, xmax: f32) -> Result<Self, HostError> {
        if !(xmax.is_finite() && xmax >= tinyssm_core::format::I8S_MIN_XMAX) {
            return Err(HostError::Tensor {
                name: "int8s".into(),
                msg: format!("input bound {xmax} must be finite and >= 1e-30"),
            });
        }
        match self {
            TensorData::I8 { q, scale, .. } => Ok(TensorData::I8 {
                q,
                scale,
                xmax: Some(xmax),
            }),
            other => Err(HostError::Tensor {
                name: "int8s".into(),
                msg: format!(
                    "an input bound needs an int8 matrix, not {}",
                    other.dtype().name()
                ),
            }),
        }
    }
}

/// The values of a tensor as f32 (int8/int4 dequantized), or `None` if its layout is
/// inconsistent.
pub fn tensor_f32(t: &tinyssm_core::TensorView<'_>) -> Option<Vec<f32>> {
    let (rows, cols) = t.spec.rows_cols()?;
    let (rows, cols) = (usize::try_from(rows).ok()?, usize::try_from(cols).ok()?);
    let mut out = vec![0f32; rows.checked_mul(cols)?];
    if cols > 0 {
        for (r, o) in out.chunks_exact_mut(cols).enumerate() {
            t.weights.row_into(r, cols, o)?;
        }
    }
    Some(out)
}

/// Human-readable name of a spec (`layers.3.in_proj`), for messages.
pub fn spec_name(spec: &TensorSpec) -> String {
    match spec.layer {
        Some(l) => format!("layers.{l}.{}", spec.role.name()),
        None => spec.role.name().to_string(),
    }
}

/// Builds a blob for `config`, asking `provide` for each tensor in canonical order.
/// Checks element counts and the dtype policy, then verifies the result parses.
pub fn write_blob<E>(
    config: &Config,
    mut provide: impl FnMut(&TensorSpec) -> Result<TensorData, E>,
) -> Result<Vec<u8>, E>
where
    E: From<HostError>,
{
    config.validate().map_err(HostError::Invalid)?;
    let n = config.n_tensors();
    let mut records = Vec::with_capacity(n);
    let mut datas = Vec::with_capacity(n);
    let mut off: u64 = 0;
    for i in 0..n {
        let spec = config.tensor_spec(i).ok_or_else(|| HostError::Tensor {
            name: format!("#{i}"),
            msg: "no spec".into(),
        })?;
        // The front end's filterbank follows from its configuration.
        let data = match (spec.role, &config.front_end) {
            (Role::MelFilters, Some(fe)) if config.compute != tinyssm_core::Compute::Int => {
                let mut fb = vec![0f32; fe.filterbank_len()];
                tinyssm_core::frontend::mel_filterbank(fe, &mut fb).map_err(HostError::Invalid)?;
                if fe.sparse_filters() {
                    let mut sp = vec![0f32; fe.stored_filters_len()];
                    tinyssm_core::frontend::sparse_filterbank(fe, &fb, &mut sp)
                        .map_err(HostError::Invalid)?;
                    TensorData::F32(sp)
                } else {
                    TensorData::F32(fb)
                }
            }
            _ => provide(&spec)?,
        };
        let name = spec_name(&spec);
        let numel = spec.numel().unwrap_or(u64::MAX);
        if data.len() as u64 != numel {
            return Err(HostError::Tensor {
                name,
                msg: format!(
                    "has {} elements, expected {numel} for shape {:?}",
                    data.len(),
                    &spec.shape[..spec.rank as usize]
                ),
            }
            .into());
        }
        if !config.allows(&spec, data.dtype()) {
            return Err(HostError::Tensor {
                name,
                msg: format!(
                    "dtype {} not allowed (kept f32 by the numerics policy)",
                    data.dtype().name()
                ),
            }
            .into());
        }
        let len = data.bytes().len() as u64;
        if spec.bytes(data.dtype()) != Some(len) {
            return Err(HostError::Tensor {
                name,
                msg: format!("{} bytes do not match its shape", data.dtype().name()),
            }
            .into());
        }
        records.push(TensorRecord {
            layer: spec.layer.unwrap_or(GLOBAL_LAYER),
            role: spec.role.code(),
            dtype: data.dtype().code(),
            rank: spec.rank,
            d0: spec.shape[0],
            d1: spec.shape[1],
            d2: spec.shape[2],
            d3: spec.shape[3],
            offset: off,
            len,
            quant: u32::MAX,
        });
        off = align_up(off + len).unwrap_or(u64::MAX);
        datas.push(data);
    }
    let header = Header {
        config: *config,
        n_tensors: n as u32,
        quant_len: 0,
    };
    // The oldest minor that holds the content: 1.6 for a sparse filterbank or compact S4D
    // modes, 1.5 for an explicit stack, 1.4 for static-scale w8a8 matrices, else 1.3.
    let mut minor = VERSION_MINOR_BASE.max(config.min_minor());
    for (i, r) in records.iter().enumerate() {
        if let (Some(spec), Some(dt)) = (config.tensor_spec(i), DType::from_code(r.dtype)) {
            minor = minor.max(config.dtype_min_minor(&spec, dt));
        }
    }
    debug_assert!(minor <= VERSION_MINOR);
    // Blobs without a 1.6 feature keep the 1.2–1.5 header layout, byte for byte.
    let hdr = if minor >= 6 {
        postcard::to_stdvec(&header)
    } else {
        match tinyssm_core::format::HeaderV1_2::of(&header) {
            Some(h) => postcard::to_stdvec(&h),
            None => postcard::to_stdvec(&header),
        }
    };
    let mut hdr = hdr.map_err(|e| HostError::Tensor {
        name: "header".into(),
        msg: e.to_string(),
    })?;
    for r in &records {
        let enc = postcard::to_stdvec(r).map_err(|e| HostError::Tensor {
            name: "table".into(),
            msg: e.to_string(),
        })?;
        debug_assert_eq!(enc.len(), TENSOR_RECORD_LEN);
        hdr.extend_from_slice(&enc);
    }
    let data_offset = align_up((PREAMBLE_LEN + hdr.len()) as u64).unwrap_or(0) as usize;
    let data_len = off as usize;
    let mut blob = vec![0u8; data_offset + data_len];
    blob[0..4].copy_from_slice(&MAGIC);
    blob[4..6].copy_from_slice(&VERSION_MAJOR.to_le_bytes());
    blob[6..8].copy_from_slice(&minor.to_le_bytes());
    blob[8..12].copy_from_slice(&(hdr.len() as u32).to_le_bytes());
    blob[16..24].copy_from_slice(&(data_len as u64).to_le_bytes());
    blob[PREAMBLE_LEN..PREAMBLE_LEN + hdr.len()].copy_from_slice(&hdr);
    for (r, d) in records.iter().zip(&datas) {
        let o = data_offset + r.offset as usize;
        let b = d.bytes();
        blob[o..o + b.len()].copy_from_slice(&b);
    }
    let crc = blob_crc(&blob);
    blob[24..28].copy_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(data_offset % ALIGN, 0);
    // Round-trip: what we write must parse.
    let aligned = crate::AlignedBuf::from_bytes(&blob);
    tinyssm_core::Model::parse(aligned.as_bytes()).map_err(|e| match e {
        // The values the format forbids, named by tensor.
        FormatError::NonFinite { index } | FormatError::Negative { index } => {
            let name = config
                .tensor_spec(index as usize)
                .map(|s| spec_name(&s))
                .unwrap_or_else(|| format!("#{index}"));
            HostError::Tensor {
                name,
                msg: if matches!(e, FormatError::NonFinite { .. }) {
                    "holds a NaN or infinite value (as stored: after any conversion)".into()
                } else {
                    "holds a negative value where its role allows none".into()
                },
            }
        }
        e => HostError::Invalid(e),
    })?;
    Ok(blob)
}
