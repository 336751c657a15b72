//! Verification: a model blob run by a backend over many streams at once against the core
//! stepping each stream on the host. Every step's outputs and every layer's final state are
//! compared under a named tolerance tier.

use serde::Serialize;
use tinyssm_core::{Model, Role};

use crate::backend::{Backend, Result as BResult};
use crate::blocks::{run_kind, BatchKind, BlobOut, KindFn, VectorModel};

/// How close the backend must be to the core.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Tier {
    /// Bit for bit (integer paths).
    Exact,
    /// f32 arithmetic in another order: `|Δ| <= abs + rel·max(|core|, rms)`, with `rms`
    /// the root mean square of the vector the value belongs to (one layer's state, since a
    /// recurrent state sums many rounded terms; for an output, the larger of that step's
    /// output vector and that output's series over the stream, since a one-output model's
    /// value crosses zero: ECG streams of 4,000 steps put a 2.9e-6 difference on a value
    /// of 0.069 whose series' rms is in the units).
    Float { rel: f32, abs: f32 },
}

impl Tier {
    /// The tier for f32 models: reordered sums and another GELU/sigmoid implementation
    /// leave differences of a few ulp per op; 1e-4 relative covers deep stacks.
    pub const FLOAT: Tier = Tier::Float {
        rel: 1e-4,
        abs: 1e-5,
    };

    /// The tier of the verification step path ([`crate::cuda::step`]) against the core's
    /// `Kernels::Reference` step: the same f32 operations in the same order, with no FMA,
    /// except exp, log1p and erf, which are the device's own (CUDA: within 2, 1 and 2 ulp of
    /// the correctly rounded value; the emulator: the host C library) instead of the core's.
    /// Those few-ulp differences are carried through the recurrences and the decoders.
    /// Measured on the emulator (host C library, 1 ulp from the core's on exp, log1p and
    /// erf): a largest `|Δ| / max(|core|, rms)` of 6.8e-6 (the 3-layer ECG model over 400+
    /// steps), 2e-6 or less on the other shipped and random models; `rel` leaves 3× for the
    /// GPU's functions (up to 2 ulp off where the host's are 1). A relative 1e-3 change of
    /// one input fails it by three orders of magnitude or more (`tests/step_path.rs`).
    pub const STEP: Tier = Tier::Float {
        rel: 2e-5,
        abs: 1e-6,
    };

    /// The step path's tier for **w8a8** models (int8 activations, dynamic or static
    /// scales) against the core's `Kernels::Reference` step. The step kernels quantize each
    /// linear's input exactly as the core does and sum the int8 products exactly, so where
    /// both sides see the same f32 activations they agree as in [`Tier::STEP`]; but the
    /// device's exp/log1p/erf put activations a few ulp off the core's, and an activation
    /// within those few ulp of a rounding boundary (`x · 127 / max|x|` at `k + ½`)
    /// quantizes one step apart: one int8 activation LSB, `max|x| / 127` (0.79% of the
    /// vector's range), enters that linear's outputs and the recurrence. `rel` is one such
    /// LSB relative to the vector's scale. Measured on the emulator over the shipped w8a8
    /// models on real data (`tests/step_path.rs`): largest scaled error 5.96e-3
    /// (fsdd-mamba-int8, a flip at step 25 of one of 10 clips: 0.75 LSB; the same blob with
    /// its f16 `A` and conv weights stored as the same values in f32 gives the same bits;
    /// before the f16 encoding its clips stayed within [`Tier::STEP`] and ecg-rpeak-int8
    /// showed a flip of 8.4e-4), every other model within [`Tier::STEP`]; the same int8 weights with f32 activations (the
    /// arithmetic a path that ignored activation quantization would compute) are 6e-2 to 3
    /// away, 7.5× beyond it or more.
    pub const W8A8_STEP: Tier = Tier::Float {
        rel: 8e-3,
        abs: 1e-5,
    };

    /// The step path's tier for a model of this compute mode (float or w8a8).
    pub fn step_for(m: &Model<'_>) -> Tier {
        match m.config().compute {
            tinyssm_core::Compute::W8a8 => Tier::W8A8_STEP,
            _ => Tier::STEP,
        }
    }

    /// Whether `got` is within the tier of `want` (`rms`: the root mean square of the
    /// vector `want` belongs to).
    pub fn holds(&self, got: f32, want: f32, rms: f32) -> bool {
        self.ok(got, want, rms)
    }

    fn ok(&self, got: f32, want: f32, rms: f32) -> bool {
        match *self {
            Tier::Exact => got.to_bits() == want.to_bits(),
            Tier::Float { rel, abs } => (got - want).abs() <= abs + rel * want.abs().max(rms),
        }
    }
}

/// Where backend and core first disagree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    pub stream: usize,
    /// Step index, or `None` for a final-state difference.
    pub step: Option<usize>,
    /// Layer of a final-state difference.
    pub layer: Option<usize>,
    pub index: usize,
    pub backend: f32,
    pub core: f32,
}

/// The verification report (`tinyssm verify --json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub tier: Tier,
    pub backend: String,
    /// Which batch computation ran: `scan` (the training ops) or `step` (the step kernels).
    pub path: String,
    pub streams: usize,
    pub steps: usize,
    pub max_abs_err: f32,
    pub max_rel_err: f32,
    /// Largest `|Δ| / max(|core|, rms)` (`rms` as in [`Tier::Float`]): what a float tier's
    /// `rel` bounds.
    pub max_scaled_err: f32,
    /// Largest distance in units in the last place between a backend and a core value
    /// (0: bit for bit; NaN against a number counts as `u64::MAX`).
    pub max_ulp: u64,
    pub nmse: f64,
    pub first_divergence: Option<Divergence>,
}

/// Distance of two f32 values in ulp: how many representable values lie between them
/// (+0 and -0 are one value apart; any NaN is `u64::MAX` unless both are NaN).
pub fn ulp_distance(a: f32, b: f32) -> u64 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => return 0,
        (true, false) | (false, true) => return u64::MAX,
        _ => {}
    }
    let ord = |x: f32| -> i64 {
        let u = x.to_bits();
        if u >> 31 == 1 {
            -((u & 0x7fff_ffff) as i64) - 1
        } else {
            u as i64
        }
    };
    ord(a).abs_diff(ord(b))
}

fn rms(v: &[f32]) -> f32 {
    let s: f64 = v.iter().map(|&x| (x as f64) * (x as f64)).sum();
    (s / v.len().max(1) as f64).sqrt() as f32
}

/// Compares outputs (`[stream][step × d]`) and final states (`[stream][layer][…]`) of the
/// batch `path` (`scan` or `step`) run on `backend`.
#[allow(clippy::too_many_arguments)]
pub fn compare(
    tier: Tier,
    backend: String,
    path: &str,
    out_be: &[Vec<f32>],
    out_core: &[Vec<f32>],
    d: usize,
    st_be: &[Vec<Vec<f32>>],
    st_core: &[Vec<Vec<f32>>],
) -> Report {
    let (mut max_abs, mut max_rel, mut max_ulp) = (0f32, 0f32, 0u64);
    let mut max_scaled = 0f32;
    let (mut se, mut ss) = (0f64, 0f64);
    let mut first: Option<Divergence> = None;
    let mut steps = 0;
    let mut note = |a: f32, b: f32, rms: f32| {
        let e = (a - b).abs();
        let e = if e.is_nan() { f32::INFINITY } else { e };
        max_abs = max_abs.max(e);
        max_rel = max_rel.max(e / b.abs().max(1e-6));
        let sc = b.abs().max(rms);
        if e > 0.0 {
            max_scaled = max_scaled.max(if sc > 0.0 { e / sc } else { f32::INFINITY });
        }
        max_ulp = max_ulp.max(ulp_distance(a, b));
        se += (e as f64) * (e as f64);
        ss += (b as f64) * (b as f64);
    };
    for (s, (a, b)) in out_be.iter().zip(out_core).enumerate() {
        steps += b.len() / d.max(1);
        // Each output's series over the stream: its scale, for outputs that cross zero
        // (a one-output model's per-step vector is that one value).
        let series: Vec<f32> = (0..d.max(1))
            .map(|c| {
                rms(&b
                    .iter()
                    .skip(c)
                    .step_by(d.max(1))
                    .copied()
                    .collect::<Vec<_>>())
            })
            .collect();
        if a.len() != b.len() && first.is_none() {
            first = Some(Divergence {
                stream: s,
                step: Some(a.len().min(b.len()) / d.max(1)),
                layer: None,
                index: 0,
                backend: f32::NAN,
                core: f32::NAN,
            });
        }
        for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
            let row = &b[i / d.max(1) * d..(i / d.max(1) + 1) * d.max(1)];
            let r = rms(row).max(series[i % d.max(1)]);
            note(x, y, r);
            if !tier.ok(x, y, r) && first.is_none() {
                first = Some(Divergence {
                    stream: s,
                    step: Some(i / d.max(1)),
                    layer: None,
                    index: i % d.max(1),
                    backend: x,
                    core: y,
                });
            }
        }
    }
    for (s, (la, lb)) in st_be.iter().zip(st_core).enumerate() {
        for (l, (a, b)) in la.iter().zip(lb).enumerate() {
            let r = rms(b);
            for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
                note(x, y, r);
                if !tier.ok(x, y, r) && first.is_none() {
                    first = Some(Divergence {
                        stream: s,
                        step: None,
                        layer: Some(l),
                        index: i,
                        backend: x,
                        core: y,
                    });
                }
            }
        }
    }
    Report {
        ok: first.is_none(),
        tier,
        backend,
        path: path.to_string(),
        streams: out_core.len(),
        steps,
        max_abs_err: max_abs,
        max_rel_err: max_rel,
        max_scaled_err: max_scaled,
        max_ulp,
        nmse: if ss > 0.0 { se / ss } else { se },
        first_divergence: first,
    }
}

pub(crate) fn f32s(m: &Model<'_>, layer: Option<u16>, role: Role) -> BResult<Vec<f32>> {
    let t = m
        .find(layer, role)
        .ok_or_else(|| crate::BackendError::Shape {
            op: "verify",
            msg: format!("model has no {} tensor", role.name()),
        })?;
    tinyssm_host::tensor_f32(&t).ok_or_else(|| crate::BackendError::Shape {
        op: "verify",
        msg: format!("{} tensor has an inconsistent layout", role.name()),
    })
}

/// The scan path (the training ops) computes in f32 with dequantized weights: it stands for
/// the core's float compute mode only; w8a8 models go to the step path.
pub(crate) fn float_compute_only(m: &Model<'_>) -> BResult<()> {
    match m.config().compute {
        tinyssm_core::Compute::Float => Ok(()),
        c => Err(crate::BackendError::Unavailable(format!(
            "the scan path (the training ops) computes f32 activations; this model computes {} (int8 activations): verify it on the step path (--path step --backend cuda or cuda-emu), which quantizes activations as the core does",
            c.name()
        ))),
    }
}

/// Runs a blob on the backend's training ops (whole-sequence scans) over `batch` streams of
/// input vectors (`[batch, time, d_input]`, padded; `lens` valid steps): every valid step's
/// outputs per stream and each layer's state after each stream's last step, in the core's
/// layout. The block kind's [`crate::blocks::BatchKind::blob_forward`] computes it; a model
/// or kind the batch paths do not run is `BackendError::Unavailable`.
pub fn blob_forward<B: Backend>(
    be: &B,
    m: &Model<'_>,
    x: &[f32],
    time: usize,
    lens: &[usize],
) -> BResult<BlobOut> {
    struct Fwd<'a, 'm, B> {
        be: &'a B,
        m: &'a Model<'m>,
        v: VectorModel,
        x: &'a [f32],
        time: usize,
        lens: &'a [usize],
    }
    impl<B: Backend> KindFn for Fwd<'_, '_, B> {
        type Out = BResult<BlobOut>;
        fn call<K: BatchKind>(self, kind: &K) -> BResult<BlobOut> {
            kind.blob_forward(self.be, self.m, &self.v, self.x, self.time, self.lens)
        }
    }
    float_compute_only(m)?;
    let v = VectorModel::of(m)?;
    run_kind(
        &v.block,
        "verify's scan path",
        Fwd {
            be,
            m,
            v,
            x,
            time,
            lens,
        },
    )
}

/// The feature frames (`n_mels` each) of a model's own front end (the core's
/// [`tinyssm_core::frontend::FrontEnd`] over the blob's filterbank) for a clip of samples:
/// exactly the vectors the core's `step_sample` feeds its model.
pub fn front_end_frames(m: &Model<'_>, samples: &[f32]) -> BResult<Vec<f32>> {
    let fe = m
        .front_end()
        .ok_or_else(|| crate::BackendError::Unavailable("the model has no front end".into()))?;
    let c = *fe.config();
    let err = |e: tinyssm_core::StepError| crate::BackendError::Shape {
        op: "front end",
        msg: e.to_string(),
    };
    let mut st = vec![0f32; c.state_len()];
    let mut sc = vec![0f32; c.scratch_len()];
    let mut out = vec![0f32; c.n_mels as usize];
    let mut frames = Vec::new();
    for &x in samples {
        if fe.push(x, &mut st, &mut sc, &mut out).map_err(err)? {
            frames.extend_from_slice(&out);
        }
    }
    Ok(frames)
}

/// Runs a blob through the **step path** ([`crate::cuda::step`]: the core's reference step
/// for every stream, one launch per time step) over `batch` streams of input vectors
/// (`[batch, time, d_input]`, padded; `lens` valid steps): every valid step's outputs per
/// stream and each layer's state after each stream's last step, in the core's layout.
#[allow(clippy::type_complexity)]
pub fn step_blob_forward<D: crate::cuda::Device>(
    dev: &D,
    m: &Model<'_>,
    x: &[f32],
    time: usize,
    lens: &[usize],
) -> BResult<(Vec<Vec<f32>>, Vec<Vec<Vec<f32>>>)> {
    use crate::cuda::step::StepRunner;
    let batch = lens.len();
    if batch == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut run = StepRunner::new(dev, m, batch)?;
    let (di, o) = (run.model().d_in(), run.model().d_out());
    crate::backend::check_len("step", "inputs", x.len(), batch * time * di)?;
    if let Some(&l) = lens.iter().find(|&&l| l > time) {
        return Err(crate::BackendError::Shape {
            op: "step",
            msg: format!("a stream of {l} steps in a batch of {time}"),
        });
    }
    // Time windows whose inputs and outputs fit in ~64 Mi floats.
    let window = ((64usize << 20) / (batch * (di + o).max(1))).clamp(1, time.max(1));
    let mut outs: Vec<Vec<f32>> = lens.iter().map(|&l| Vec::with_capacity(l * o)).collect();
    let mut t0 = 0;
    while t0 < time {
        let w = window.min(time - t0);
        let mut xw = vec![0f32; batch * w * di];
        for b in 0..batch {
            xw[b * w * di..(b + 1) * w * di]
                .copy_from_slice(&x[(b * time + t0) * di..(b * time + t0 + w) * di]);
        }
        let lw: Vec<usize> = lens.iter().map(|&l| l.saturating_sub(t0).min(w)).collect();
        if lw.iter().all(|&l| l == 0) {
            break;
        }
        let y = run.run(&xw, w, &lw)?;
        for (b, &l) in lw.iter().enumerate() {
            outs[b].extend_from_slice(&y[b * w * o..(b * w + l) * o]);
        }
        t0 += w;
    }
    let st = run.states()?;
    let per = run.model().state_len();
    let layers = (m.config().n_layers as usize).max(1);
    let finals = (0..batch)
        .map(|b| {
            st[b * per..(b + 1) * per]
                .chunks((per / layers).max(1))
                .map(|v| v.to_vec())
                .collect()
        })
        .collect();
    Ok((outs, finals))
}

/// Where an integer backend and the core first disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntDivergence {
    pub stream: usize,
    /// Output row (a model step), or `None` for a final-state difference.
    pub step: Option<usize>,
    pub index: usize,
    pub backend: i64,
    pub core: i64,
}

/// The report of an integer-only model's verification (`tinyssm verify --json` on a
/// `compute int` model): every output of every step and every final state value compared
/// for equality; `ok` only when none differs.
#[derive(Debug, Clone, Serialize)]
pub struct IntReport {
    pub ok: bool,
    pub backend: String,
    pub path: String,
    pub streams: usize,
    /// Output rows (model steps) over all streams.
    pub steps: usize,
    /// Values compared (outputs and final states).
    pub values: usize,
    /// Values that differ (a length mismatch counts every missing value).
    pub differing: usize,
    /// Largest |backend − core| in LSB of the value's format.
    pub max_abs_lsb: u64,
    pub first_divergence: Option<IntDivergence>,
}

/// Compares integer outputs (`[stream][rows × d]`) and final states (`[stream][…]`) for
/// equality.
pub fn compare_int(
    backend: String,
    path: &str,
    out_be: &[Vec<i32>],
    out_core: &[Vec<i32>],
    d: usize,
    st_be: &[Vec<i32>],
    st_core: &[Vec<i32>],
) -> IntReport {
    let d = d.max(1);
    let (mut values, mut differing, mut max_lsb, mut steps) = (0usize, 0usize, 0u64, 0usize);
    let mut first: Option<IntDivergence> = None;
    let mut pairs = |s: usize, a: &[i32], b: &[i32], rows: bool| {
        values += a.len().max(b.len());
        differing += a.len().abs_diff(b.len());
        if a.len() != b.len() && first.is_none() {
            let i = a.len().min(b.len());
            first = Some(IntDivergence {
                stream: s,
                step: rows.then_some(i / d),
                index: if rows { i % d } else { i },
                backend: a.get(i).map_or(i64::MIN, |&v| v as i64),
                core: b.get(i).map_or(i64::MIN, |&v| v as i64),
            });
        }
        for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
            if x != y {
                differing += 1;
                max_lsb = max_lsb.max((x as i64).abs_diff(y as i64));
                if first.is_none() {
                    first = Some(IntDivergence {
                        stream: s,
                        step: rows.then_some(i / d),
                        index: if rows { i % d } else { i },
                        backend: x as i64,
                        core: y as i64,
                    });
                }
            }
        }
    };
    for (s, (a, b)) in out_be.iter().zip(out_core).enumerate() {
        steps += b.len() / d;
        pairs(s, a, b, true);
    }
    for (s, (a, b)) in st_be.iter().zip(st_core).enumerate() {
        pairs(s, a, b, false);
    }
    if out_be.len() != out_core.len() || st_be.len() != st_core.len() {
        differing += 1;
    }
    IntReport {
        ok: differing == 0,
        backend,
        path: path.to_string(),
        streams: out_core.len(),
        steps,
        values,
        differing,
        max_abs_lsb: max_lsb,
        first_divergence: first,
    }
}

/// Runs an integer-only blob through the **integer step path** ([`crate::cuda::step_int`])
/// over whole streams of `i16` inputs (audio models: PCM samples; vector models: `d_input`
/// values per step in the model's input format), from the initial state: each stream's
/// outputs (one row per model step) and its final state (the core's whole state vector).
#[allow(clippy::type_complexity)]
pub fn int_step_forward<D: crate::cuda::Device>(
    dev: &D,
    m: &Model<'_>,
    streams: &[Vec<i16>],
) -> BResult<(Vec<Vec<i32>>, Vec<Vec<i32>>)> {
    use crate::cuda::step_int::StepIntRunner;
    if streams.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut run = StepIntRunner::new(dev, m, streams.len())?;
    let outs = run.run_streams(streams)?;
    let st = run.states()?;
    let per = run.model().state_len();
    Ok((outs, st.chunks(per.max(1)).map(|c| c.to_vec()).collect()))
}
