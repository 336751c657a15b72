//! Weight views: how each stored dtype is read (f32, f16, bf16, int8 with per-row scales,
//! int4 in groups, the integer-only model's tensors) and the activation quantization of
//! the w8a8 product.

use half::{bf16, f16};

/// The value of one Q1.15 unit ([`Weights::Q15`]): `2^-15`.
pub const Q15_SCALE: f32 = 1.0 / 32768.0;

/// A borrowed weight matrix or vector in its stored dtype.
#[derive(Debug, Clone, Copy)]
pub enum Weights<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    Bf16(&'a [bf16]),
    /// int8 with one f32 scale per row (layout: [`crate::DType::I8`]).
    I8(QuantI8<'a>),
    /// int4 in groups of 32 with f16 scales (layout: [`crate::DType::I4`]).
    I4(QuantI4<'a>),
    /// Q1.15 fixed point, `value = q / 32768` (format 1.6: S4D's `dA` in a float or w8a8
    /// model, stored as [`crate::DType::I16`]).
    Q15(&'a [i16]),
    /// A tensor of an integer-only model (format 1.3); the float kernels never see one
    /// (a float step on such a model is refused before any kernel runs).
    Int(IntWeights<'a>),
}

/// The tensors of integer-only models ([`crate::Compute::Int`]).
#[derive(Debug, Clone, Copy)]
pub enum IntWeights<'a> {
    I16(&'a [i16]),
    I32(&'a [i32]),
    I8R(QuantI8R<'a>),
}

/// An int8 matrix with per-row integer requantization ([`crate::DType::I8R`]):
/// `rq[2r]` is row `r`'s multiplier, `rq[2r + 1]` its right shift.
#[derive(Debug, Clone, Copy)]
pub struct QuantI8R<'a> {
    pub q: &'a [i8],
    pub rq: &'a [i32],
    pub cols: usize,
}

impl QuantI8R<'_> {
    pub fn rows(&self) -> usize {
        self.rq.len() / 2
    }
}

/// How a matrix-vector product treats its input vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ActQuant {
    /// f32 activations times dequantized weights.
    Float,
    /// int8 activations with a dynamic per-vector scale `max|x| / 127`
    /// ([`crate::Compute::W8a8`], [`crate::DType::I8`] matrices).
    DynamicI8,
    /// int8 activations with the static scale `xmax / 127` calibrated at conversion
    /// ([`crate::DType::I8S`]): no pass over the input to find its range; values beyond
    /// `±xmax` saturate to ±127, and a non-finite input does not propagate (NaN
    /// quantizes to 0, ±inf to ±127).
    StaticI8 { xmax: f32 },
}

/// An int8 matrix: `w[r][c] = q[r·cols + c] · scale[r]`.
#[derive(Debug, Clone, Copy)]
pub struct QuantI8<'a> {
    pub q: &'a [i8],
    pub scale: &'a [f32],
    pub cols: usize,
    pub act: ActQuant,
}

/// An int4 matrix: per row `groups = ceil(cols / 32)` groups of 16 bytes, then one f16
/// scale per group.
#[derive(Debug, Clone, Copy)]
pub struct QuantI4<'a> {
    pub q: &'a [u8],
    pub scale: &'a [f16],
    pub cols: usize,
}

impl QuantI4<'_> {
    pub fn groups_per_row(&self) -> usize {
        self.cols.div_ceil(crate::dtype::I4_GROUP)
    }
    pub fn rows(&self) -> usize {
        self.scale.len() / self.groups_per_row().max(1)
    }
}

/// The signed value of nibble `i` of a packed int4 group.
#[inline(always)]
pub fn i4_at(group: &[u8], i: usize) -> i8 {
    let b = group[i / 2];
    let n = if i.is_multiple_of(2) {
        b & 0x0f
    } else {
        b >> 4
    };
    ((n << 4) as i8) >> 4
}

impl<'a> Weights<'a> {
    /// An empty f32 tensor: fills a view table before [`crate::Model::with_views`].
    pub const EMPTY: Weights<'static> = Weights::F32(&[]);

    /// Whether this is a consistent `rows × cols` matrix (values and scales).
    pub fn is_matrix(&self, rows: usize, cols: usize) -> bool {
        let Some(n) = rows.checked_mul(cols) else {
            return false;
        };
        match self {
            Weights::F32(w) => w.len() == n,
            Weights::F16(w) => w.len() == n,
            Weights::Bf16(w) => w.len() == n,
            Weights::I8(w) => w.cols == cols && w.scale.len() == rows && w.q.len() == n,
            Weights::I4(w) => {
                let g = w.groups_per_row();
                w.cols == cols
                    && rows.checked_mul(g) == Some(w.scale.len())
                    && w.scale.len().checked_mul(16) == Some(w.q.len())
            }
            Weights::Int(IntWeights::I8R(w)) => {
                w.cols == cols && w.rq.len() == 2 * rows && w.q.len() == n
            }
            // A vector encoding (S4D's dA), never a matrix.
            Weights::Q15(_) => false,
            Weights::Int(_) => false,
        }
    }
    /// Number of weight values (rows × cols; scales not counted).
    pub fn len(&self) -> usize {
        match self {
            Weights::F32(w) => w.len(),
            Weights::F16(w) => w.len(),
            Weights::Bf16(w) => w.len(),
            Weights::I8(w) => w.scale.len() * w.cols,
            Weights::I4(w) => w.rows() * w.cols,
            Weights::Q15(w) => w.len(),
            Weights::Int(IntWeights::I16(w)) => w.len(),
            Weights::Int(IntWeights::I32(w)) => w.len(),
            Weights::Int(IntWeights::I8R(w)) => w.q.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Elements `start..start + len`, or `None` when out of range (or, for int8/int4,
    /// not whole rows).
    pub fn slice(&self, start: usize, len: usize) -> Option<Self> {
        let r = start..start.checked_add(len)?;
        Some(match self {
            Weights::F32(w) => Weights::F32(w.get(r)?),
            Weights::F16(w) => Weights::F16(w.get(r)?),
            Weights::Bf16(w) => Weights::Bf16(w.get(r)?),
            Weights::I8(w) => {
                if w.cols == 0 || !start.is_multiple_of(w.cols) || !len.is_multiple_of(w.cols) {
                    return None;
                }
                let (r0, nr) = (start / w.cols, len / w.cols);
                Weights::I8(QuantI8 {
                    q: w.q.get(r)?,
                    scale: w.scale.get(r0..r0.checked_add(nr)?)?,
                    ..*w
                })
            }
            Weights::I4(w) => {
                if w.cols == 0 || !start.is_multiple_of(w.cols) || !len.is_multiple_of(w.cols) {
                    return None;
                }
                let g = w.groups_per_row();
                let (g0, ng) = ((start / w.cols) * g, (len / w.cols) * g);
                let g1 = g0.checked_add(ng)?;
                Weights::I4(QuantI4 {
                    q: w.q.get(g0 * 16..g1 * 16)?,
                    scale: w.scale.get(g0..g1)?,
                    cols: w.cols,
                })
            }
            Weights::Q15(w) => Weights::Q15(w.get(r)?),
            Weights::Int(_) => return None,
        })
    }
    /// Dequantizes row `row` of a `cols`-column matrix into `out` (`out.len() == cols`).
    pub fn row_into(&self, row: usize, cols: usize, out: &mut [f32]) -> Option<()> {
        if out.len() != cols {
            return None;
        }
        let lo = row.checked_mul(cols)?;
        let hi = lo.checked_add(cols)?;
        match self {
            Weights::F32(w) => out.copy_from_slice(w.get(lo..hi)?),
            Weights::F16(w) => {
                for (o, x) in out.iter_mut().zip(w.get(lo..hi)?) {
                    *o = x.to_f32();
                }
            }
            Weights::Bf16(w) => {
                for (o, x) in out.iter_mut().zip(w.get(lo..hi)?) {
                    *o = x.to_f32();
                }
            }
            Weights::I8(w) => {
                if w.cols != cols {
                    return None;
                }
                let s = *w.scale.get(row)?;
                for (o, &q) in out.iter_mut().zip(w.q.get(lo..hi)?) {
                    *o = q as f32 * s;
                }
            }
            Weights::I4(w) => {
                if w.cols != cols {
                    return None;
                }
                let g = w.groups_per_row();
                let g0 = row.checked_mul(g)?;
                let gs = w.q.get(g0 * 16..(g0 + g) * 16)?;
                let sc = w.scale.get(g0..g0 + g)?;
                for (c, o) in out.iter_mut().enumerate() {
                    let gi = c / crate::dtype::I4_GROUP;
                    let grp = &gs[gi * 16..gi * 16 + 16];
                    *o = i4_at(grp, c % crate::dtype::I4_GROUP) as f32 * sc[gi].to_f32();
                }
            }
            Weights::Q15(w) => {
                for (o, &q) in out.iter_mut().zip(w.get(lo..hi)?) {
                    *o = q as f32 * Q15_SCALE;
                }
            }
            // Integer-only tensors have no float value without their model's plan.
            Weights::Int(_) => return None,
        }
        Some(())
    }
}
