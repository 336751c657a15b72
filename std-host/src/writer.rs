//! Writes model blobs in format v1 (the layout is documented in `tinyssm_core::format`).

use half::f16;
use tinyssm_core::format::{
    align_up, blob_crc, Header, TensorRecord, ALIGN, GLOBAL_LAYER, MAGIC, PREAMBLE_LEN,
    TENSOR_RECORD_LEN, VERSION_MAJOR, VERSION_MINOR,
};
use tinyssm_core::{Config, DType, Role, TensorSpec};

use crate::error::HostError;

/// Tensor values in their storage dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F16(_) => DType::F16,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F16(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn bytes(&self) -> &[u8] {
        match self {
            TensorData::F32(v) => bytemuck::cast_slice(v),
            TensorData::F16(v) => bytemuck::cast_slice(v),
        }
    }
    /// Converts f32 data to `dtype` (f16 rounds to nearest even).
    pub fn from_f32(v: Vec<f32>, dtype: DType) -> Self {
        match dtype {
            DType::F16 => TensorData::F16(v.iter().map(|&x| f16::from_f32(x)).collect()),
            _ => TensorData::F32(v),
        }
    }
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
            (Role::MelFilters, Some(fe)) => {
                let mut fb = vec![0f32; fe.filterbank_len()];
                tinyssm_core::frontend::mel_filterbank(fe, &mut fb).map_err(HostError::Invalid)?;
                TensorData::F32(fb)
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
        if !spec.allows(data.dtype()) {
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
    let mut hdr = postcard::to_stdvec(&header).map_err(|e| HostError::Tensor {
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
    blob[6..8].copy_from_slice(&VERSION_MINOR.to_le_bytes());
    blob[8..12].copy_from_slice(&(hdr.len() as u32).to_le_bytes());
    blob[16..24].copy_from_slice(&(data_len as u64).to_le_bytes());
    blob[PREAMBLE_LEN..PREAMBLE_LEN + hdr.len()].copy_from_slice(&hdr);
    for (r, d) in records.iter().zip(&datas) {
        let o = data_offset + r.offset as usize;
        blob[o..o + d.bytes().len()].copy_from_slice(d.bytes());
    }
    let crc = blob_crc(&blob);
    blob[24..28].copy_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(data_offset % ALIGN, 0);
    // Round-trip: what we write must parse.
    let aligned = crate::AlignedBuf::from_bytes(&blob);
    tinyssm_core::Model::parse(aligned.as_bytes()).map_err(HostError::Invalid)?;
    Ok(blob)
}
