//! Integer-only conversion (`tinyssm convert --compute int --calibrate …`): calibration of
//! a float model's activation ranges through the core's own float step
//! ([`tinyssm_core::Model::step_probed`]), the choice of every site's Q format, and the
//! encoding of the integer tensors and plans (layouts: `tinyssm_core::int_step`).
//!
//! Formats: an `i16` site holding values up to `max` gets `f = floor(log2(32767 / max))`
//! fraction bits (clamped to `0..=15`); Mamba's recurrent state (`i32`) the same against
//! `2^31 − 1` with 2× headroom, S4D's from the bound that no input can exceed
//! (`s4d::state_frac`); `C·dB` and `D` are stored below `2^22`, Mamba's `A` below
//! `2^30`. Matrices: int8 per output row (`scale = max|w| / 127`), the row's requantization
//! folding its scale, the input's and the output's formats into one multiplier and shift.

use std::collections::BTreeMap;

use tinyssm_core::int_step::{self, plan, GLOBAL_PLAN_LEN};
use tinyssm_core::probe::{Probe, Site};
use tinyssm_core::stack::{FinalNorm, Out, Stem};
use tinyssm_core::{Block, Compute, Config, DType, Input, Model, Role, TensorSpec};
use tinyssm_host::writer::{quantize_row_i8, spec_name};
use tinyssm_host::{tensor_f32, write_blob, TensorData};

use crate::error::ToolError;

mod mamba1;
mod s4d;

/// Largest |value| seen at each site of each layer (`None` = model-global).
#[derive(Debug, Clone, Default)]
pub struct Ranges {
    pub max: BTreeMap<(Option<u16>, Site), f32>,
    /// Steps observed.
    pub steps: usize,
}

impl Probe for Ranges {
    fn observe(&mut self, layer: Option<u16>, site: Site, values: &[f32]) {
        let m = values
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f32, |m, v| m.max(v.abs()));
        let e = self.max.entry((layer, site)).or_insert(0.0);
        *e = e.max(m);
        if site == Site::Input {
            self.steps += 1;
        }
    }
}

impl Ranges {
    /// The largest |value| seen at `site` (0 where nothing was seen).
    pub fn get(&self, layer: Option<u16>, site: Site) -> f32 {
        self.max.get(&(layer, site)).copied().unwrap_or(0.0)
    }
}

/// Runs `streams` through the model's probed float step from its initial state, one
/// stream at a time, handing every step's intermediate values to `probe`. Streams are
/// samples for models with a front end, otherwise `d_input`-vectors back to back. Returns
/// the number of steps; none at all is an error.
pub fn run_probed(
    model: &Model<'_>,
    streams: &[Vec<f32>],
    probe: &mut impl Probe,
) -> Result<usize, ToolError> {
    let usage = |e: tinyssm_core::StepError| ToolError::Usage(format!("calibration: {e}"));
    let mut st = vec![0f32; model.state_len()];
    let mut sc = vec![0f32; model.scratch_len()];
    let mut o = vec![0f32; model.d_output()];
    let mut steps = 0;
    for s in streams {
        model.reset(&mut st).map_err(usage)?;
        if let Some(fe) = model.front_end() {
            for &x in s {
                let stepped = model
                    .step_sample_probed(&fe, x, &mut st, &mut sc, &mut o, probe)
                    .map_err(usage)?;
                steps += stepped as usize;
            }
        } else {
            for row in s.chunks_exact(model.d_input().max(1)) {
                model
                    .step_probed(Input::Vector(row), &mut st, &mut sc, &mut o, probe)
                    .map_err(usage)?;
                steps += 1;
            }
        }
    }
    if steps == 0 {
        return Err(ToolError::Usage(
            "calibration: the calibration set produced no model step".into(),
        ));
    }
    Ok(steps)
}

/// Every site's range over `streams` ([`run_probed`]).
pub fn calibrate(model: &Model<'_>, streams: &[Vec<f32>]) -> Result<Ranges, ToolError> {
    let mut r = Ranges::default();
    run_probed(model, streams, &mut r)?;
    Ok(r)
}

/// Fraction bits for values up to `max` below `limit`, clamped to `lo..=hi`.
fn frac_for(max: f64, limit: f64, lo: i32, hi: i32) -> i32 {
    if max <= 0.0 || !max.is_finite() {
        return hi;
    }
    ((limit / max).log2().floor() as i32).clamp(lo, hi)
}

fn f16site(max: f32) -> i32 {
    frac_for(max as f64, 32767.0, 0, 15)
}

fn amax(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

fn q16(v: &[f32], f: i32) -> TensorData {
    TensorData::I16(
        v.iter()
            .map(|&x| (x as f64 * 2f64.powi(f)).round().clamp(-32768.0, 32767.0) as i16)
            .collect(),
    )
}

fn q32(v: &[f32], f: i32) -> Vec<i32> {
    v.iter()
        .map(|&x| {
            (x as f64 * 2f64.powi(f))
                .round()
                .clamp(i32::MIN as f64, i32::MAX as f64) as i32
        })
        .collect()
}

/// `(multiplier, rshift)` with `multiplier · 2^-rshift ≈ scale`, multiplier in
/// `[2^30, 2^31)`.
pub fn requant_params(scale: f64) -> Option<(i32, i32)> {
    if scale == 0.0 {
        return Some((0, 0));
    }
    if !(scale > 0.0 && scale.is_finite()) {
        return None;
    }
    let e = scale.log2().floor() as i32;
    let mut rshift = 30 - e;
    let mut mult = (scale * 2f64.powi(rshift)).round();
    if mult >= 2f64.powi(31) {
        mult /= 2.0;
        rshift -= 1;
    }
    if rshift < 0 {
        return None;
    }
    if rshift > 63 {
        return Some((0, 0));
    }
    Some((mult as i32, rshift))
}

/// An int8 matrix with per-row requantization from input format `fin` into the row's
/// output format `fout(r)`, and its bias in accumulator units.
fn i8r(
    name: &str,
    w: &[f32],
    rows: usize,
    cols: usize,
    bias: Option<&[f32]>,
    fin: i32,
    fout: impl Fn(usize) -> i32,
) -> Result<(TensorData, Option<Vec<i32>>), ToolError> {
    let bad = |msg: String| ToolError::BadValues {
        name: name.into(),
        msg,
    };
    if w.len() != rows * cols || cols == 0 {
        return Err(bad("inconsistent shape".into()));
    }
    let mut q = vec![0i8; w.len()];
    let mut rq = Vec::with_capacity(2 * rows);
    let mut bq = bias.map(|_| Vec::with_capacity(rows));
    for r in 0..rows {
        let row = &w[r * cols..(r + 1) * cols];
        let sw = quantize_row_i8(row, &mut q[r * cols..(r + 1) * cols]) as f64;
        let (mult, rshift) = requant_params(sw * 2f64.powi(fout(r) - fin))
            .ok_or_else(|| bad(format!("row {r}: no integer requantization")))?;
        rq.extend_from_slice(&[mult, rshift]);
        let sum_q: i64 = q[r * cols..(r + 1) * cols]
            .iter()
            .map(|&v| (v as i64).abs())
            .sum();
        let mut b_abs = 0i64;
        if let (Some(b), Some(bq)) = (bias, bq.as_mut()) {
            let v = if sw == 0.0 {
                0.0
            } else {
                (b[r] as f64 / (sw * 2f64.powi(-fin))).round()
            };
            if v.abs() >= 2f64.powi(31) {
                return Err(bad(format!(
                    "row {r}: bias {} does not fit the i32 accumulator",
                    b[r]
                )));
            }
            b_abs = (v as i64).abs();
            bq.push(v as i32);
        }
        if sum_q * 32768 + b_abs >= 1 << 31 {
            return Err(bad(format!(
                "row {r}: Σ|q|·2^15 + |bias| reaches 2^31 (the i32 accumulator could wrap)"
            )));
        }
    }
    Ok((TensorData::I8R { q, rq }, bq))
}

/// Per-tensor data of the integer model, keyed by (layer, role).
type Tensors = BTreeMap<(Option<u16>, u8), TensorData>;

fn put(t: &mut Tensors, layer: Option<u16>, role: Role, d: TensorData) {
    t.insert((layer, role.code()), d);
}

/// A tensor of the float model as f32.
fn f32_of(m: &Model<'_>, layer: Option<u16>, role: Role) -> Result<Vec<f32>, ToolError> {
    let name = match layer {
        Some(l) => format!("layers.{l}.{}", role.name()),
        None => role.name().to_string(),
    };
    let t = m.find(layer, role).ok_or_else(|| ToolError::BadValues {
        name: name.clone(),
        msg: "missing in the source model".into(),
    })?;
    tensor_f32(&t).ok_or(ToolError::BadValues {
        name,
        msg: "has no float values (already an integer-only model?)".into(),
    })
}

fn eps_q(eps: f32, fin: i32) -> i32 {
    (eps as f64 * 2f64.powi(2 * fin + 16))
        .round()
        .clamp(0.0, i32::MAX as f64) as i32
}

/// What a block kind's integer conversion works with: the float model, its calibration
/// ranges, the residual stream's format, and the integer tensors made so far.
pub(crate) struct Cx<'a, 'm> {
    pub m: &'a Model<'m>,
    pub cfg: Config,
    pub ranges: &'a Ranges,
    /// Fraction bits of the residual stream (`i16`).
    pub fr: i32,
    t: Tensors,
}

impl Cx<'_, '_> {
    /// A tensor of the float model as f32.
    pub fn f32(&self, layer: Option<u16>, role: Role) -> Result<Vec<f32>, ToolError> {
        f32_of(self.m, layer, role)
    }

    /// Stores an integer tensor of the converted model.
    pub fn put(&mut self, layer: Option<u16>, role: Role, d: TensorData) {
        put(&mut self.t, layer, role, d);
    }

    /// A matrix as `I8R` rows (input format `fin`, row `r`'s output format `fout(r)`) and
    /// its bias, if any, as `i32` in the accumulator's format.
    pub fn linear(
        &mut self,
        layer: Option<u16>,
        role: Role,
        bias_role: Option<Role>,
        fin: i32,
        fout: &dyn Fn(usize) -> i32,
    ) -> Result<(), ToolError> {
        let cfg = &self.cfg;
        let spec = cfg
            .tensor_spec(
                cfg.tensor_index(layer, role)
                    .ok_or_else(|| ToolError::BadValues {
                        name: role.name().into(),
                        msg: "no such tensor".into(),
                    })?,
            )
            .ok_or_else(|| ToolError::BadValues {
                name: role.name().into(),
                msg: "no spec".into(),
            })?;
        let (rows, cols) = spec.rows_cols().unwrap_or((0, 0));
        let w = self.f32(layer, role)?;
        let b = bias_role.map(|br| self.f32(layer, br)).transpose()?;
        let (d, bq) = i8r(
            &spec_name(&spec),
            &w,
            rows as usize,
            cols as usize,
            b.as_deref(),
            fin,
            fout,
        )?;
        self.put(layer, role, d);
        if let (Some(br), Some(bq)) = (bias_role, bq) {
            self.put(layer, br, TensorData::I32(bq));
        }
        Ok(())
    }
}

/// One block kind's integer conversion: each layer's Q formats (its `IntLayerPlan`, layout
/// `tinyssm_core::int_step::plan`) and integer tensors, the layer's input and output being
/// the residual stream (`Cx::fr`).
pub(crate) trait IntKind {
    fn layer(&self, cx: &mut Cx<'_, '_>, layer: u16) -> Result<Vec<i32>, ToolError>;
}

/// The integer conversion's registration point: the block kinds it converts, each in its
/// file here (the only place in `tinyssm-tools` that names a block kind).
fn int_kind(b: &Block) -> Option<&dyn IntKind> {
    match b {
        Block::S4d(b) => Some(b),
        Block::Mamba1(b) => Some(b),
        _ => None,
    }
}

/// Builds the integer-only blob of a float (or w8a8) model from its calibration ranges: a
/// vector model ([`supports`]) of one block kind that converts ([`IntKind`]).
pub fn to_int(m: &Model<'_>, ranges: &Ranges) -> Result<Vec<u8>, ToolError> {
    let cfg = *m.config();
    let mut out_cfg = cfg;
    out_cfg.compute = Compute::Int;
    out_cfg
        .validate()
        .map_err(tinyssm_host::HostError::Invalid)?;
    let stack = cfg.stack();
    let kind = match (stack.blocks(), stack.stem, stack.head.out) {
        ([b], Stem::Encoder { .. }, Out::Decoder { .. }) => int_kind(b).ok_or_else(|| {
            ToolError::Usage(format!(
                "--compute int has no conversion of block kind {}",
                b.name()
            ))
        })?,
        _ => {
            return Err(ToolError::Usage(
                "--compute int converts vector models (encoder input, decoder head) of one \
                 block kind"
                    .into(),
            ))
        }
    };
    let mut g = vec![0i32; GLOBAL_PLAN_LEN];
    g[plan::G_VERSION] = int_step::PLAN_VERSION;
    let fin = f16site(ranges.get(None, Site::Input));
    let fr = f16site(ranges.get(None, Site::Resid));
    g[plan::G_IN_FRAC] = fin;
    g[plan::G_RESID_FRAC] = fr;
    let out_max = ranges.get(None, Site::Output) as f64;
    let fout = frac_for(out_max * 2.0, 2f64.powi(31), 0, 24);
    g[plan::G_OUT_FRAC] = fout;
    let mut cx = Cx {
        m,
        cfg,
        ranges,
        fr,
        t: Tensors::new(),
    };
    if let Some(fe) = &cfg.front_end {
        front_end_tensors(m, fe, &mut cx.t, &mut g)?;
    }
    cx.linear(None, Role::Encoder, Some(Role::EncoderBias), fin, &|_| fr)?;
    let mut layer_plans = Vec::new();
    for l in 0..cfg.n_layers as u16 {
        layer_plans.push(kind.layer(&mut cx, l)?);
    }
    // The final norm (the integer step's: RMSNorm, or LayerNorm with a bias) and decoder.
    let feat = match stack.head.norm {
        FinalNorm::None => fr,
        FinalNorm::Rms { eps } | FinalNorm::Layer { eps } => {
            let w = cx.f32(None, Role::NormF)?;
            let fw = f16site(amax(&w));
            let fnf = f16site(ranges.get(None, Site::FinalNorm));
            g[plan::G_NORMF_FRAC] = fnf;
            g[plan::G_NORMF_EPS] = eps_q(eps, fr);
            g[plan::G_NORMF_W_FRAC] = fw;
            cx.put(None, Role::NormF, q16(&w, fw));
            if matches!(stack.head.norm, FinalNorm::Layer { .. }) {
                let b = cx.f32(None, Role::NormFBias)?;
                cx.put(None, Role::NormFBias, TensorData::I32(q32(&b, fnf)));
            }
            fnf
        }
        n => {
            return Err(ToolError::Usage(format!(
                "--compute int has no integer final norm {n:?}"
            )))
        }
    };
    cx.linear(None, Role::Decoder, Some(Role::DecoderBias), feat, &|_| {
        fout
    })?;
    let mut t = cx.t;
    put(&mut t, None, Role::IntPlan, TensorData::I32(g));
    for (l, p) in layer_plans.into_iter().enumerate() {
        put(
            &mut t,
            Some(l as u16),
            Role::IntLayerPlan,
            TensorData::I32(p),
        );
    }
    write_blob(
        &out_cfg,
        |ts: &TensorSpec| -> Result<TensorData, ToolError> {
            t.remove(&(ts.layer, ts.role.code()))
                .ok_or_else(|| ToolError::BadValues {
                    name: spec_name(ts),
                    msg: "not produced by the integer conversion".into(),
                })
        },
    )
}

/// Whether `path` starts with the model magic.
pub fn is_tssm(path: &std::path::Path) -> bool {
    std::fs::File::open(path)
        .and_then(|mut f| {
            let mut m = [0u8; 4];
            std::io::Read::read_exact(&mut f, &mut m).map(|_| m == tinyssm_core::format::MAGIC)
        })
        .unwrap_or(false)
}

/// `n` indices spread evenly over `0..len` (all of them when `n ≥ len`).
fn spread(len: usize, n: usize) -> Vec<usize> {
    if n >= len {
        return (0..len).collect();
    }
    (0..n).map(|i| i * len / n).collect()
}

/// The calibration streams of a `--calibrate` spec (training data only).
pub fn calibration_streams(model: &Model<'_>, spec: &str) -> Result<Vec<Vec<f32>>, ToolError> {
    use tinyssm_data::{self as data, ecg, Split};
    let usage = |e: String| ToolError::Usage(format!("--calibrate {spec}: {e}"));
    let (name, count) = match spec.split_once(':') {
        Some((a, b)) => (
            a,
            Some(
                b.parse::<usize>()
                    .map_err(|_| usage(format!("`{b}` is not a count")))?,
            ),
        ),
        None => (spec, None),
    };
    let root = data::data_dir();
    let streams = match name {
        "fsdd" => {
            let fe = model
                .config()
                .front_end
                .ok_or_else(|| usage("fsdd needs a model with an audio front end".into()))?;
            let files = data::fsdd_files(&root, Split::Train).map_err(|e| usage(e.to_string()))?;
            spread(files.len(), count.unwrap_or(300))
                .into_iter()
                .map(|i| data::fsdd_clip(&files[i].0, &fe).map_err(|e| usage(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?
        }
        "ecg" => {
            if model.d_input() != 1 || model.config().front_end.is_some() {
                return Err(usage("ecg needs a model with one input per step".into()));
            }
            let (sig, _, _) = ecg::record_100(&root).map_err(|e| usage(e.to_string()))?;
            let train = &sig[..ecg::test_start(sig.len())];
            let n = count.unwrap_or(72_000).min(train.len());
            vec![train[..n].to_vec()]
        }
        "basicmotions" => {
            let cases =
                data::basicmotions(&root, Split::Train).map_err(|e| usage(e.to_string()))?;
            spread(cases.len(), count.unwrap_or(usize::MAX))
                .into_iter()
                .map(|i| cases[i].feats.clone())
                .collect()
        }
        _ => {
            let p = std::path::Path::new(spec);
            match p.extension().and_then(|e| e.to_str()) {
                Some("wav") => {
                    let (rate, ch, x) = tinyssm_host::io::read_wav(p)?;
                    if let Some(fe) = &model.config().front_end {
                        if ch != 1 {
                            return Err(usage("an audio model calibrates on mono audio".into()));
                        }
                        if rate != fe.sample_rate {
                            return Err(usage(format!(
                                "the recording is {rate} Hz, the model's front end takes {} Hz",
                                fe.sample_rate
                            )));
                        }
                    } else if ch != model.d_input() {
                        return Err(usage(format!(
                            "{ch} channels, the model takes {} inputs per step",
                            model.d_input()
                        )));
                    }
                    vec![x]
                }
                Some("csv") => {
                    let (cols, x) = tinyssm_host::io::read_csv(p)?;
                    if cols != model.d_input() {
                        return Err(usage(format!(
                            "{cols} columns, the model takes {} inputs",
                            model.d_input()
                        )));
                    }
                    vec![x]
                }
                _ => {
                    return Err(usage(
                        "expected fsdd[:N], ecg[:N], basicmotions[:N], a .wav or a .csv file"
                            .into(),
                    ))
                }
            }
        }
    };
    if streams.is_empty() {
        return Err(usage("empty calibration set".into()));
    }
    Ok(streams)
}

/// The integer front end's window (Q0.31) and filterbank (i16, its own fraction bits).
fn front_end_tensors(
    m: &Model<'_>,
    fe: &tinyssm_core::frontend::FrontEndConfig,
    t: &mut Tensors,
    g: &mut [i32],
) -> Result<(), ToolError> {
    let mut win = vec![0i32; fe.frame_len as usize];
    tinyssm_core::frontend_int::window_q31(fe, &mut win)
        .map_err(tinyssm_host::HostError::Invalid)?;
    put(t, None, Role::Window, TensorData::I32(win));
    let fb = f32_of(m, None, Role::MelFilters)?;
    let mut q = vec![0i16; fb.len()];
    let ff = tinyssm_core::frontend_int::quantize_filters(&fb, &mut q)
        .map_err(tinyssm_host::HostError::Invalid)?;
    g[plan::G_FILTER_FRAC] = ff as i32;
    put(t, None, Role::MelFilters, TensorData::I16(q));
    Ok(())
}

/// The dtype an integer-only model stores for `spec` (for messages and checks).
pub fn int_dtype(spec: &TensorSpec) -> DType {
    spec.int_dtype()
}

/// Whether `cfg` can be converted to integer-only: a vector model (encoder input stage,
/// decoder head) of one block configuration throughout whose kind has an integer mode.
pub fn supports(cfg: &Config) -> bool {
    let s = cfg.stack();
    matches!(s.blocks(), [b] if b.modes().int)
        && s.d_input() > 0
        && matches!(s.head.out, tinyssm_core::stack::Out::Decoder { .. })
}
