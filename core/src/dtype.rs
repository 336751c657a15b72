//! Tensor element types (format layer: stable codes, sizes, the quantized layouts) and the
//! compute modes that use them.

use serde::{Deserialize, Serialize};

/// How a step computes, chosen at conversion and recorded in the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Compute {
    /// f32 activations; weights in any stored dtype, dequantized on the fly.
    #[default]
    Float,
    /// Matrices stored as int8 multiply int8 activations (each input vector quantized
    /// symmetrically, round half away from zero, with a dynamic per-vector scale
    /// `max|x| / 127` for [`DType::I8`] matrices or the calibrated static scale of a
    /// [`DType::I8S`] matrix) with i32 accumulation; matrices in other dtypes, and
    /// everything outside the matrix-vector products, stay f32.
    W8a8,
    /// Integer only (format 1.3; S4D and Mamba sensor models): no floating-point operation
    /// in the step. Activations are `i16` in per-site Q formats chosen by calibration,
    /// recurrent states `i32`, weight matrices [`DType::I8R`] (int8 with per-row integer
    /// requantization), every other tensor [`DType::I16`] / [`DType::I32`] in the Q
    /// formats recorded in the model's integer plans ([`crate::Role::IntPlan`],
    /// [`crate::Role::IntLayerPlan`]). Stepped by [`crate::Model::step_int`] /
    /// [`crate::Model::step_sample_int`]; see `crate::int_step` for every format.
    Int,
}

impl Compute {
    pub const fn name(self) -> &'static str {
        match self {
            Compute::Float => "float",
            Compute::W8a8 => "w8a8",
            Compute::Int => "int",
        }
    }
}

/// Weight element types. Codes are stable across format versions.
///
/// The quantized types (format 1.2) are only allowed for weight matrices — and, from format
/// 1.6, for the vectors a block kind reads in a compact encoding
/// (`BlockKind::compact_dtype`: S4D's `C·dB` as [`DType::I8`] with one scale per channel,
/// its `dA` as [`DType::I16`] in Q1.15, `value = q / 32768`, its `D` and output bias as
/// [`DType::F16`]) — and are stored self-contained (values, then scales) so a tensor stays
/// one zero-copy slice:
/// - [`DType::I8`]: `rows × cols` signed bytes (row-major), zero padding to a multiple of 4
///   bytes, then `rows` f32 scales: `w[r][c] = q[r][c] · scale[r]` (per output channel,
///   symmetric, `q ∈ [-127, 127]`).
/// - [`DType::I4`]: each row in groups of [`I4_GROUP`] columns (the last group of a row
///   zero-padded); per group 16 bytes of two's-complement nibbles, element `2i` in the low
///   nibble of byte `i`, `q ∈ [-7, 7]`; all rows' groups first, then one f16 scale per
///   group (row-major): `w[r][c] = q · scale[r][c / 32]`.
/// - [`DType::Bf16`]: bfloat16 values.
/// - [`DType::I16`], [`DType::I32`] (format 1.3, integer-only models): plain little-endian
///   integers in the Q format that the model's integer plan records for the tensor.
/// - [`DType::I8R`] (format 1.3, integer-only models' matrices): `rows × cols` signed bytes,
///   zero padding to a multiple of 4 bytes, then per row two i32, `(multiplier, rshift)`:
///   output `r` is `round(acc_r · multiplier · 2^-rshift)` (ties away from zero),
///   `acc_r = Σ_c q[r][c] · x[c] + bias[r]`, which maps the accumulator straight into the
///   output's Q format (each row may have its own).
/// - [`DType::I8S`] (format 1.4, [`crate::Compute::W8a8`] only): the [`DType::I8`] layout, then
///   one more f32, `xmax`: the calibrated bound of the matrix's input vector. The w8a8
///   product quantizes the input with the static scale `xmax / 127` (saturating at ±127)
///   instead of the per-vector `max|x| / 127`; `xmax` must be finite and positive.
///
/// `rows` is the product of all dimensions but the last, `cols` the last dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DType {
    F32,
    F16,
    Bf16,
    I8,
    I4,
    I16,
    I32,
    I8R,
    I8S,
}

/// Columns per scale group of [`DType::I4`].
pub const I4_GROUP: usize = 32;

impl DType {
    pub const fn code(self) -> u8 {
        match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::Bf16 => 2,
            DType::I8 => 3,
            DType::I4 => 4,
            DType::I16 => 5,
            DType::I32 => 6,
            DType::I8R => 7,
            DType::I8S => 8,
        }
    }
    pub const fn from_code(code: u8) -> Option<DType> {
        match code {
            0 => Some(DType::F32),
            1 => Some(DType::F16),
            2 => Some(DType::Bf16),
            3 => Some(DType::I8),
            4 => Some(DType::I4),
            5 => Some(DType::I16),
            6 => Some(DType::I32),
            7 => Some(DType::I8R),
            8 => Some(DType::I8S),
            _ => None,
        }
    }
    /// Bytes per element of the plain (unquantized) types; 1 for int8 and int4 (whose
    /// tensors also hold scales: see [`Self::tensor_bytes`]).
    pub const fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::Bf16 | DType::I16 => 2,
            DType::I8 | DType::I4 | DType::I8R | DType::I8S => 1,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
            DType::I8 => "int8",
            DType::I4 => "int4",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I8R => "int8r",
            DType::I8S => "int8s",
        }
    }
    /// Whether values carry scales (int8, int8 with a static input scale, int4).
    pub const fn is_quantized(self) -> bool {
        matches!(self, DType::I8 | DType::I4 | DType::I8S)
    }
    /// The integer-only model dtypes (format 1.3, [`crate::Compute::Int`] only).
    pub const fn is_integer_mode(self) -> bool {
        matches!(self, DType::I16 | DType::I32 | DType::I8R)
    }
    /// Bytes of a `rows × cols` tensor of this type, scales included (checked).
    pub const fn tensor_bytes(self, rows: u64, cols: u64) -> Option<u64> {
        let Some(n) = rows.checked_mul(cols) else {
            return None;
        };
        match self {
            DType::F32 | DType::I32 => n.checked_mul(4),
            DType::F16 | DType::Bf16 | DType::I16 => n.checked_mul(2),
            DType::I8R => match (n.checked_add(3), rows.checked_mul(8)) {
                (Some(q), Some(s)) => (q & !3).checked_add(s),
                _ => None,
            },
            DType::I8 => match (n.checked_add(3), rows.checked_mul(4)) {
                (Some(q), Some(s)) => (q & !3).checked_add(s),
                _ => None,
            },
            DType::I8S => match DType::I8.tensor_bytes(rows, cols) {
                Some(b) => b.checked_add(4),
                None => None,
            },
            DType::I4 => {
                let groups = cols.div_ceil(I4_GROUP as u64);
                let Some(g) = rows.checked_mul(groups) else {
                    return None;
                };
                match (g.checked_mul(16), g.checked_mul(2)) {
                    (Some(q), Some(s)) => q.checked_add(s),
                    _ => None,
                }
            }
        }
    }
}
