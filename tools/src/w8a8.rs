//! Static activation scales of a w8a8 model (`tinyssm convert --compute w8a8 --calibrate
//! …`): a calibration pass through the source model's float step samples the input
//! vector of every int8 matrix ([`ActSamples`]); per matrix, [`plan`] picks the clipping
//! bound that minimizes the squared quantization error over the samples, and keeps the
//! matrix at the dynamic per-vector scale where the static one loses more than
//! [`MAX_SNR_LOSS_DB`] of mean per-vector SNR against it (inputs whose range swings by
//! orders of magnitude from step to step, such as Mamba's `out_proj` input). Static
//! matrices are stored as [`tinyssm_core::DType::I8S`].

use std::collections::BTreeMap;

use tinyssm_core::probe::{Probe, Site};
use tinyssm_core::{Config, Model, Role};

use crate::error::ToolError;

/// Vectors kept per calibration site (every `stride`-th one seen; the stride doubles
/// whenever the store fills, so the kept vectors stay spread over the whole set).
pub const SAMPLE_CAP: usize = 4096;

/// A matrix keeps the dynamic scale when the static one's mean per-vector SNR is lower by
/// more than this (one bit of resolution).
pub const MAX_SNR_LOSS_DB: f64 = 6.0;

/// Candidate bounds: `max · 2^(-k/4)` for `k` in `0..=CANDIDATES` (down to `max / 2^8`).
const CANDIDATES: i32 = 32;

/// Where the input vector of matrix `role` (in `layer`) is observed by the float step's
/// probes (the stack and its block kind say: `tinyssm_core::stack::Stack::matrix_input`).
/// `None` for a matrix whose input no probe sees (the embedding and heads of token models).
pub fn matrix_input_site(
    cfg: &Config,
    layer: Option<u16>,
    role: Role,
) -> Option<(Option<u16>, Site)> {
    cfg.stack().matrix_input(layer, role)
}

type Key = (Option<u16>, Site);

/// Samples of the input vectors of a model's matrices, taken by a probed float step.
#[derive(Debug, Clone, Default)]
pub struct ActSamples {
    sites: BTreeMap<Key, Sampled>,
    /// Steps observed.
    pub steps: usize,
}

#[derive(Debug, Clone)]
struct Sampled {
    stride: usize,
    seen: usize,
    vecs: Vec<Vec<f32>>,
}

impl ActSamples {
    /// A probe for the matrix input sites of `cfg`'s layers (an error for an architecture
    /// whose matrices' inputs are not probed).
    pub fn for_config(cfg: &Config) -> Result<Self, ToolError> {
        let mut sites = BTreeMap::new();
        for spec in (0..cfg.n_tensors()).filter_map(|i| cfg.tensor_spec(i)) {
            if !spec.role.is_matrix() {
                continue;
            }
            let key = matrix_input_site(cfg, spec.layer, spec.role).ok_or_else(|| {
                ToolError::Usage(format!(
                    "static w8a8 scales are calibrated for S4D and Mamba sensor models; the input of {} is not observed in this model (leave out --calibrate for dynamic scales)",
                    tinyssm_host::writer::spec_name(&spec)
                ))
            })?;
            sites.insert(
                key,
                Sampled {
                    stride: 1,
                    seen: 0,
                    vecs: Vec::new(),
                },
            );
        }
        Ok(ActSamples { sites, steps: 0 })
    }

    /// The kept vectors of a site.
    pub fn vectors(&self, layer: Option<u16>, site: Site) -> &[Vec<f32>] {
        self.sites
            .get(&(layer, site))
            .map_or(&[][..], |s| s.vecs.as_slice())
    }
}

impl Probe for ActSamples {
    fn observe(&mut self, layer: Option<u16>, site: Site, values: &[f32]) {
        let Some(s) = self.sites.get_mut(&(layer, site)) else {
            return;
        };
        if s.seen.is_multiple_of(s.stride) {
            if s.vecs.len() == SAMPLE_CAP {
                let mut i = 0;
                s.vecs.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                s.stride *= 2;
            }
            if s.seen.is_multiple_of(s.stride) {
                s.vecs.push(values.to_vec());
            }
        }
        s.seen += 1;
    }
}

/// Samples every matrix's input over `streams` ([`crate::intq::run_probed`]).
pub fn sample(model: &Model<'_>, streams: &[Vec<f32>]) -> Result<ActSamples, ToolError> {
    let mut p = ActSamples::for_config(model.config())?;
    p.steps = crate::intq::run_probed(model, streams, &mut p)?;
    Ok(p)
}

/// `x` quantized to int8 with bound `c` and back, as the core's w8a8 product does
/// (`round_half_away(x · 127 / c)` clamped to ±127, times `c / 127`).
fn fake_quant(x: f32, c: f32) -> f32 {
    let (inv, s) = (127.0 / c, c / 127.0);
    (x * inv).round().clamp(-127.0, 127.0) * s
}

fn absmax(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

/// `(Σx², Σ(x − q(x))²)` of one vector at bound `c`.
fn energy(v: &[f32], c: f32) -> (f64, f64) {
    v.iter().fold((0.0, 0.0), |(s, e), &x| {
        let d = (x - fake_quant(x, c)) as f64;
        (s + (x as f64) * (x as f64), e + d * d)
    })
}

/// SNR in dB of one vector's quantization (capped at 120 dB for an exact one).
fn snr_db(signal: f64, err: f64) -> f64 {
    if err <= signal * 1e-12 {
        120.0
    } else {
        10.0 * (signal / err).log10()
    }
}

/// Mean per-vector SNR at a bound per vector (`None`: the vector's own absmax).
fn mean_snr(vecs: &[Vec<f32>], bound: Option<f32>) -> f64 {
    let mut sum = 0.0;
    let mut n = 0usize;
    for v in vecs {
        let c = bound.unwrap_or_else(|| absmax(v));
        if c <= 0.0 || !c.is_finite() {
            continue;
        }
        let (s, e) = energy(v, c);
        if s > 0.0 {
            sum += snr_db(s, e);
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// The scale chosen for one int8 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixScale {
    pub layer: Option<u16>,
    pub role: Role,
    /// The calibration site of its input, and the largest |value| seen there.
    pub site: Site,
    pub max: f32,
    /// Over the sampled vectors: the 10th and 90th percentiles of each vector's own
    /// `max |x|`, and the median `|x|` of all their elements (how much the range moves
    /// from step to step, and where the bulk of the values lies).
    pub vec_max_p10: f32,
    pub vec_max_p90: f32,
    pub median_abs: f32,
    /// The bound minimizing the squared quantization error over the samples.
    pub bound: f32,
    /// Mean per-vector SNR of the input's quantization, dynamic and at `bound`.
    pub snr_dynamic_db: f64,
    pub snr_static_db: f64,
    /// Whether the matrix gets the static scale (else it stays dynamic).
    pub is_static: bool,
}

/// Chooses each int8 matrix's activation scale from the samples (see the module
/// documentation). Matrices stored in other dtypes are left out.
pub fn plan(
    cfg: &Config,
    samples: &ActSamples,
    is_int8: impl Fn(Role) -> bool,
) -> Result<Vec<MatrixScale>, ToolError> {
    let mut out = Vec::new();
    for spec in (0..cfg.n_tensors()).filter_map(|i| cfg.tensor_spec(i)) {
        if !spec.role.is_matrix() || !is_int8(spec.role) {
            continue;
        }
        let name = tinyssm_host::writer::spec_name(&spec);
        let (l, site) = matrix_input_site(cfg, spec.layer, spec.role).ok_or_else(|| {
            ToolError::Usage(format!("the input of {name} is not observed in this model"))
        })?;
        let vecs = samples.vectors(l, site);
        let max = vecs.iter().fold(0f32, |m, v| m.max(absmax(v)));
        if !(max.is_finite() && max >= tinyssm_core::format::I8S_MIN_XMAX) {
            return Err(ToolError::Usage(format!(
                "calibration: the input of {name} ({site:?}) stayed at {max} over the calibration set; a static scale needs a nonzero finite range"
            )));
        }
        let mut best = (f64::INFINITY, max);
        for k in 0..=CANDIDATES {
            let c = max * 2f32.powf(-(k as f32) / 4.0);
            if c < tinyssm_core::format::I8S_MIN_XMAX {
                break;
            }
            let err: f64 = vecs.iter().map(|v| energy(v, c).1).sum();
            if err < best.0 {
                best = (err, c);
            }
        }
        let bound = best.1;
        let pct = |mut v: Vec<f32>, p: f64| {
            v.sort_by(f32::total_cmp);
            v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let vmax: Vec<f32> = vecs.iter().map(|v| absmax(v)).collect();
        let all: Vec<f32> = vecs.iter().flatten().map(|x| x.abs()).collect();
        let snr_dynamic_db = mean_snr(vecs, None);
        let snr_static_db = mean_snr(vecs, Some(bound));
        out.push(MatrixScale {
            layer: spec.layer,
            role: spec.role,
            site,
            max,
            vec_max_p10: pct(vmax.clone(), 0.1),
            vec_max_p90: pct(vmax, 0.9),
            median_abs: pct(all, 0.5),
            bound,
            snr_dynamic_db,
            snr_static_db,
            is_static: snr_static_db >= snr_dynamic_db - MAX_SNR_LOSS_DB,
        });
    }
    Ok(out)
}

/// The static bound `plan` gave matrix `role` of `layer` (`None`: dynamic scale).
pub fn static_bound(plan: &[MatrixScale], layer: Option<u16>, role: Role) -> Option<f32> {
    plan.iter()
        .find(|m| m.layer == layer && m.role == role && m.is_static)
        .map(|m| m.bound)
}

/// One line per matrix, for the converter's report.
pub fn describe(plan: &[MatrixScale]) -> String {
    let mut s = String::new();
    for m in plan {
        let name = match m.layer {
            Some(l) => format!("layers.{l}.{}", m.role.name()),
            None => m.role.name().to_string(),
        };
        s += &format!(
            "  {name:<29} input max {:>9.4} (per-step max p10 {:.3}, p90 {:.3}; median |x| {:.3})  bound {:>9.4}  SNR dynamic {:5.1} dB, static {:5.1} dB  -> {}\n",
            m.max,
            m.vec_max_p10,
            m.vec_max_p90,
            m.median_abs,
            m.bound,
            m.snr_dynamic_db,
            m.snr_static_db,
            if m.is_static { "static" } else { "dynamic" }
        );
    }
    s
}
