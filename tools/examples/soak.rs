//! Soak run (not a test: `scripts/soak.sh` runs it, results go to RELIABILITY.md): shipped
//! models stepped for a long time on real and adversarial inputs, checking that every
//! output stays finite, that the state stays bounded, and that at checkpoints the default
//! (fast) kernels still agree with the reference kernels from the same state.
//!
//! ```text
//! cargo run --release -p tinyssm-tools --example soak -- \
//!     [--int-steps N] [--float-steps N] [--checkpoints K] [--window W] MODEL...
//! ```
//!
//! A *step* is one call into the core: one sample for a model with an audio front end, one
//! input vector otherwise. `--int-steps` (default 10^8) is shared by the integer-only
//! models, `--float-steps` (default 10^7) by the float and w8a8 ones, each model's share
//! split over four inputs:
//! - `real`: the model's dataset looped (FSDD test clips, MIT-BIH record 100, BasicMotions
//!   test cases), from `TINYSSM_DATA`;
//! - `square`: a full-scale square wave (audio ±1.0, 18-sample period; vectors: ±the
//!   integer input format's range for integer-only models, ±8× the data's peak for float
//!   ones, 50-step period, every channel);
//! - `silence`: zeros;
//! - `noise`: uniform white noise over the same full scale (fixed seed).
//!
//! Checks, per (model, input): no step error and every output finite (float); the state
//! stays bounded — for float and w8a8 S4D models (linear: `h ← dA·h + u` per mode) every
//! mode within its closed-form bound `max|u| / (1 − |dA|)`, `max|u|` the largest |input| its
//! channel has seen (probed at the block's input), checked 100 times per run; for other
//! float models the largest |value| of the layers' state (not the front end's ring) over the
//! whole run at most 1.5× its largest over the first half; for integer-only models no state
//! value at the i32 limits (saturated); at `K` checkpoints the state is cloned and `W` further steps run with the
//! reference kernels beside the fast ones from it: integer-only outputs must be equal,
//! float outputs within 1e-3 and w8a8 within 4e-3 of `max(|ref|, rms of the window)`.
//! Exit status 1 when any check fails.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tinyssm_core::probe::{NoProbe, Probe, Site};
use tinyssm_core::{Compute, Input, Kernels, Model, Role};
use tinyssm_data::Split;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Real,
    Square,
    Silence,
    Noise,
}
const KINDS: [Kind; 4] = [Kind::Real, Kind::Square, Kind::Silence, Kind::Noise];

/// An endless input: `d` floats per step.
struct Source {
    kind: Kind,
    d: usize,
    real: Vec<f32>,
    amp: f32,
    period: usize,
    t: usize,
    rng: u64,
}

impl Source {
    fn next(&mut self, out: &mut [f32]) {
        let t = self.t;
        self.t += 1;
        match self.kind {
            Kind::Real => {
                let n = self.real.len() / self.d;
                let i = t % n;
                out.copy_from_slice(&self.real[i * self.d..(i + 1) * self.d]);
            }
            Kind::Square => {
                let v = if (t / (self.period / 2)).is_multiple_of(2) {
                    self.amp
                } else {
                    -self.amp
                };
                out.fill(v);
            }
            Kind::Silence => out.fill(0.0),
            Kind::Noise => {
                for o in out.iter_mut() {
                    self.rng ^= self.rng << 13;
                    self.rng ^= self.rng >> 7;
                    self.rng ^= self.rng << 17;
                    let u = (self.rng >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
                    *o = (2.0 * u - 1.0) * self.amp;
                }
            }
        }
    }
}

/// One stream of a model in its compute mode: float/w8a8 or integer-only.
#[derive(Clone)]
enum Stream {
    Float {
        st: Vec<f32>,
        sc: Vec<f32>,
        out: Vec<f32>,
    },
    Int {
        st: Vec<i32>,
        sc: Vec<i32>,
        out: Vec<i32>,
    },
}

struct Runner<'a> {
    m: Model<'a>,
    audio: bool,
    in_frac: u32,
    /// Float/w8a8 models whose every layer is S4D: each mode's gain `1 / (1 − |dA|)`.
    lti: Option<Lti>,
}

/// The closed-form state bound of a stack of S4D layers.
struct Lti {
    /// Per layer: channels, complex modes per channel, `1 / (1 − |dA|)` per (channel, mode).
    layers: Vec<(usize, usize, Vec<f64>)>,
}

impl Lti {
    fn of(m: &Model<'_>, model_state: usize) -> Option<Lti> {
        if m.config().compute == Compute::Int {
            return None;
        }
        let f32s = |l: u16, r: Role| {
            m.find(Some(l), r)
                .and_then(|t| tinyssm_host::tensor_f32(&t))
        };
        let mut layers = Vec::new();
        let mut len = 0;
        for l in 0..m.config().n_layers as u16 {
            let (da, d) = (f32s(l, Role::DA)?, f32s(l, Role::D)?);
            let h = d.len();
            let half = da.len() / (2 * h.max(1));
            let gain = da
                .chunks_exact(2)
                .map(|a| 1.0 / (1.0 - (a[0] as f64).hypot(a[1] as f64)))
                .collect();
            len += 2 * h * half;
            layers.push((h, half, gain));
        }
        (len == model_state).then_some(Lti { layers })
    }

    /// The largest `|h| / bound` over every mode of `st` (layers back to back), given each
    /// channel's largest |input| so far.
    fn ratio(&self, st: &[f32], umax: &UMax) -> f64 {
        let mut at = 0;
        let mut worst = 0f64;
        for (l, (h, half, gain)) in self.layers.iter().enumerate() {
            for c in 0..*h {
                let u = umax.0.get(l).and_then(|v| v.get(c)).copied().unwrap_or(0.0) as f64;
                for n in 0..*half {
                    let (re, im) = (st[at] as f64, st[at + 1] as f64);
                    at += 2;
                    let bound = u * gain[c * half + n];
                    let mag = re.hypot(im);
                    if mag > 0.0 {
                        worst = worst.max(mag / bound.max(1e-300));
                    }
                }
            }
        }
        worst
    }
}

/// Each layer's per-channel largest |input| to its S4D recurrence (the norm's output).
#[derive(Default)]
struct UMax(Vec<Vec<f32>>);

impl Probe for UMax {
    fn observe(&mut self, layer: Option<u16>, site: Site, values: &[f32]) {
        if let (Some(l), Site::NormOut) = (layer, site) {
            let l = l as usize;
            if self.0.len() <= l {
                self.0.resize(l + 1, Vec::new());
            }
            let v = &mut self.0[l];
            v.resize(values.len().max(v.len()), 0.0);
            for (m, x) in v.iter_mut().zip(values) {
                *m = m.max(x.abs());
            }
        }
    }
}

impl Runner<'_> {
    fn new_stream(&self) -> Result<Stream, String> {
        let m = &self.m;
        if m.config().compute == Compute::Int {
            let mut st = vec![0i32; m.state_len()];
            m.reset_int(&mut st).map_err(|e| e.to_string())?;
            Ok(Stream::Int {
                st,
                sc: vec![0; m.scratch_len()],
                out: vec![0; m.d_output()],
            })
        } else {
            let mut st = vec![0f32; m.state_len()];
            m.reset(&mut st).map_err(|e| e.to_string())?;
            Ok(Stream::Float {
                st,
                sc: vec![0.0; m.scratch_len()],
                out: vec![0.0; m.d_output()],
            })
        }
    }

    /// One step with kernels `k`: whether it produced an output.
    fn step(&self, k: Kernels, s: &mut Stream, x: &[f32]) -> Result<bool, String> {
        self.step_probed(k, s, x, &mut NoProbe)
    }

    /// [`Self::step`], handing a float step's intermediate values to `probe`.
    fn step_probed<P: Probe>(
        &self,
        k: Kernels,
        s: &mut Stream,
        x: &[f32],
        probe: &mut P,
    ) -> Result<bool, String> {
        let m = self.m.with_kernels(k);
        let e = |e: tinyssm_core::StepError| e.to_string();
        match s {
            Stream::Float { st, sc, out } => {
                if self.audio {
                    let fe = m.front_end().ok_or("no front end")?;
                    m.step_sample_probed(&fe, x[0], st, sc, out, probe)
                        .map_err(e)
                } else {
                    m.step_probed(Input::Vector(x), st, sc, out, probe)
                        .map_err(e)?;
                    Ok(true)
                }
            }
            Stream::Int { st, sc, out } => {
                if self.audio {
                    let fe = m.front_end_int().ok_or("no integer front end")?;
                    let pcm = tinyssm_tools::eval::to_i16(x[0], 15);
                    m.step_sample_int(&fe, pcm, st, sc, out).map_err(e)
                } else {
                    let q: Vec<i16> = x
                        .iter()
                        .map(|&v| tinyssm_tools::eval::to_i16(v, self.in_frac))
                        .collect();
                    m.step_int(&q, st, sc, out).map_err(e)?;
                    Ok(true)
                }
            }
        }
    }
}

fn out_f32(s: &Stream) -> Vec<f32> {
    match s {
        Stream::Float { out, .. } => out.clone(),
        Stream::Int { out, .. } => out.iter().map(|&v| v as f32).collect(),
    }
}

/// The largest |value| of the model's part of the state (the layers' recurrent state, not
/// the front end's sample ring), and whether all of it is finite.
fn state_absmax(s: &Stream, model_state: usize) -> (f64, bool) {
    match s {
        Stream::Float { st, .. } => st[..model_state.min(st.len())]
            .iter()
            .fold((0f64, true), |(m, f), &v| {
                (m.max(v.abs() as f64), f && v.is_finite())
            }),
        Stream::Int { st, .. } => (
            st[..model_state.min(st.len())]
                .iter()
                .map(|&v| v.unsigned_abs() as f64)
                .fold(0.0, f64::max),
            true,
        ),
    }
}

struct Outcome {
    steps: u64,
    outputs: u64,
    secs: f64,
    early_max: f64,
    max: f64,
    checkpoint_err: f64,
    checkpoints: usize,
    /// Integer-only: most state values at the i32 limits at one probe.
    saturated: usize,
    /// S4D float/w8a8: the largest `|h| / bound` seen.
    bound_ratio: Option<f64>,
    failure: Option<String>,
}

fn soak(
    r: &Runner<'_>,
    src: &mut Source,
    steps: u64,
    checkpoints: usize,
    window: usize,
    tol: f64,
) -> Outcome {
    let t0 = Instant::now();
    let mut o = Outcome {
        steps: 0,
        outputs: 0,
        secs: 0.0,
        early_max: 0.0,
        max: 0.0,
        checkpoint_err: 0.0,
        checkpoints: 0,
        saturated: 0,
        bound_ratio: None,
        failure: None,
    };
    let mut umax = UMax::default();
    let mut s = match r.new_stream() {
        Ok(s) => s,
        Err(e) => {
            o.failure = Some(e);
            return o;
        }
    };
    let every = (steps / checkpoints.max(1) as u64).max(1);
    let mut x = vec![0f32; src.d];
    let int = matches!(s, Stream::Int { .. });
    let probe_every = (steps / 100).clamp(1, 1024);
    let model_state =
        r.m.config()
            .sizes()
            .map_or(r.m.state_len(), |z| z.model_state);
    while o.steps < steps {
        src.next(&mut x);
        let stepped = if r.lti.is_some() {
            r.step_probed(Kernels::Fast, &mut s, &x, &mut umax)
        } else {
            r.step(Kernels::Fast, &mut s, &x)
        };
        match stepped {
            Ok(true) => {
                o.outputs += 1;
                if let Stream::Float { out, .. } = &s {
                    if let Some(i) = out.iter().position(|v| !v.is_finite()) {
                        o.failure = Some(format!("output {i} not finite at step {}", o.steps));
                        break;
                    }
                }
            }
            Ok(false) => {}
            Err(e) => {
                o.failure = Some(format!("step {}: {e}", o.steps));
                break;
            }
        }
        o.steps += 1;
        if o.steps.is_multiple_of(probe_every) || o.steps == steps {
            let (m, finite) = state_absmax(&s, model_state);
            if !finite {
                o.failure = Some(format!("state not finite at step {}", o.steps));
                break;
            }
            o.max = o.max.max(m);
            if o.steps <= steps / 2 {
                o.early_max = o.max;
            }
            if let Stream::Int { st, .. } = &s {
                o.saturated = o.saturated.max(
                    st[..model_state.min(st.len())]
                        .iter()
                        .filter(|&&v| v == i32::MAX || v == i32::MIN)
                        .count(),
                );
                if o.saturated > 0 {
                    o.failure = Some(format!(
                        "{} state values at the i32 limits at step {}",
                        o.saturated, o.steps
                    ));
                    break;
                }
            }
            if let (Some(lti), Stream::Float { st, .. }) = (&r.lti, &s) {
                let q = lti.ratio(st, &umax);
                o.bound_ratio = Some(o.bound_ratio.unwrap_or(0.0).max(q));
                // f32 rounding: a relative 1e-3 of slack.
                if q > 1.001 {
                    o.failure = Some(format!(
                        "a mode at {q:.4}× its bound max|u| / (1 − |dA|) at step {}",
                        o.steps
                    ));
                    break;
                }
            }
        }
        if o.steps.is_multiple_of(every) {
            // Fast and reference kernels side by side from this state.
            let (mut a, mut b) = (s.clone(), s.clone());
            let mut side = Source {
                kind: src.kind,
                d: src.d,
                real: Vec::new(),
                amp: src.amp,
                period: src.period,
                t: src.t,
                rng: src.rng,
            };
            std::mem::swap(&mut side.real, &mut src.real);
            let (mut ya, mut yb) = (Vec::new(), Vec::new());
            let mut err = None;
            for _ in 0..window {
                side.next(&mut x);
                match (
                    r.step(Kernels::Fast, &mut a, &x),
                    r.step(Kernels::Reference, &mut b, &x),
                ) {
                    (Ok(true), Ok(true)) => {
                        ya.extend(out_f32(&a));
                        yb.extend(out_f32(&b));
                    }
                    (Ok(false), Ok(false)) => {}
                    (ra, rb) => {
                        err = Some(format!("checkpoint: fast {ra:?}, reference {rb:?}"));
                        break;
                    }
                }
            }
            std::mem::swap(&mut side.real, &mut src.real);
            if let Some(e) = err {
                o.failure = Some(e);
                break;
            }
            let rms = (yb.iter().map(|&v| (v as f64).powi(2)).sum::<f64>()
                / yb.len().max(1) as f64)
                .sqrt();
            let worst = ya
                .iter()
                .zip(&yb)
                .map(|(&p, &q)| {
                    let d = (p as f64 - q as f64).abs();
                    if int {
                        d
                    } else {
                        d / (q.abs() as f64).max(rms).max(1e-30)
                    }
                })
                .fold(0f64, f64::max);
            o.checkpoint_err = o.checkpoint_err.max(worst);
            o.checkpoints += 1;
            if worst > tol {
                o.failure = Some(format!(
                    "checkpoint at step {}: fast vs reference {worst:.3e} > {tol:.0e}",
                    o.steps
                ));
                break;
            }
        }
    }
    o.secs = t0.elapsed().as_secs_f64();
    if o.failure.is_none() && o.bound_ratio.is_none() && !int && o.max > 1.5 * o.early_max {
        o.failure = Some(format!(
            "state still growing: max |state| {:.3e} in the second half against {:.3e} in the first",
            o.max, o.early_max
        ));
    }
    o
}

fn real_data(m: &Model<'_>, d: usize) -> Result<Vec<f32>, String> {
    let dir = tinyssm_data::data_dir();
    let e = |e: tinyssm_data::DataError| e.to_string();
    if let Some(fe) = m.config().front_end.as_ref() {
        let files = tinyssm_data::fsdd_files(&dir, Split::Test).map_err(e)?;
        let mut v = Vec::new();
        for (p, _) in files.iter().step_by(6).take(50) {
            v.extend(tinyssm_data::fsdd_clip(p, fe).map_err(e)?);
        }
        Ok(v)
    } else if d == 1 {
        Ok(tinyssm_data::ecg::record_100(&dir).map_err(e)?.0)
    } else if d == 6 {
        let cases = tinyssm_data::basicmotions(&dir, Split::Test).map_err(e)?;
        Ok(cases.into_iter().flat_map(|c| c.feats).collect())
    } else {
        Err(format!("no dataset takes {d} inputs per step"))
    }
}

fn arg(args: &mut Vec<String>, name: &str) -> Option<String> {
    let i = args.iter().position(|a| a == name)?;
    args.remove(i);
    (i < args.len()).then(|| args.remove(i))
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let num = |s: Option<String>, d: f64| -> u64 {
        s.map_or(d, |v| v.parse::<f64>().expect("a number")) as u64
    };
    let int_steps = num(arg(&mut args, "--int-steps"), 1e8);
    let float_steps = num(arg(&mut args, "--float-steps"), 1e7);
    let checkpoints = num(arg(&mut args, "--checkpoints"), 10.0) as usize;
    let window = num(arg(&mut args, "--window"), 4000.0) as usize;
    let paths: Vec<PathBuf> = args.into_iter().map(PathBuf::from).collect();
    if paths.is_empty() {
        eprintln!(
            "usage: soak [--int-steps N] [--float-steps N] [--checkpoints K] [--window W] MODEL..."
        );
        std::process::exit(2);
    }
    let files: Vec<_> = paths
        .iter()
        .map(|p| {
            tinyssm_host::ModelFile::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect();
    let n_int = files
        .iter()
        .filter(|f| f.model().config().compute == Compute::Int)
        .count() as u64;
    let n_float = files.len() as u64 - n_int;
    println!(
        "| model | compute | input | steps | outputs | seconds | max abs state (first half → all) | S4D: max |state| / bound | state values at the i32 limits | checkpoints: max fast–reference difference | result |"
    );
    println!("|---|---|---|---:|---:|---:|---|---:|---:|---|---|");
    let mut failed = 0;
    for (p, f) in paths.iter().zip(&files) {
        let m = f.model();
        let compute = m.config().compute;
        let audio = m.config().front_end.is_some();
        let d = if audio { 1 } else { m.d_input() };
        let in_frac = m.int_io().map_or(0, |io| io.input_frac);
        let (budget, tol) = match compute {
            Compute::Int => (int_steps / n_int.max(1), 0.0),
            Compute::W8a8 => (float_steps / n_float.max(1), 4e-3),
            _ => (float_steps / n_float.max(1), 1e-3),
        };
        let real = match real_data(&m, d) {
            Ok(v) => v,
            Err(e) => {
                println!(
                    "| {} | {} | - | - | - | - | - | - | - | - | NOT RUN: {e} |",
                    name(p),
                    compute.name()
                );
                failed += 1;
                continue;
            }
        };
        let peak = real.iter().fold(0f32, |a, &v| a.max(v.abs()));
        let amp = if audio {
            1.0
        } else if compute == Compute::Int {
            32767.0 / 2f32.powi(in_frac as i32)
        } else {
            8.0 * peak
        };
        let model_state = m.config().sizes().map_or(m.state_len(), |z| z.model_state);
        let lti = Lti::of(&m, model_state);
        let r = Runner {
            m,
            audio,
            in_frac,
            lti,
        };
        for kind in KINDS {
            let mut src = Source {
                kind,
                d,
                real: real.clone(),
                amp,
                period: if audio { 18 } else { 50 },
                t: 0,
                rng: 0x9E37_79B9_7F4A_7C15,
            };
            let o = soak(&r, &mut src, budget / 4, checkpoints, window, tol);
            let verdict = match &o.failure {
                None => "ok".to_string(),
                Some(e) => {
                    failed += 1;
                    format!("FAILED: {e}")
                }
            };
            println!(
                "| {} | {} | {kind:?} | {} | {} | {:.1} | {:.3e} → {:.3e} | {} | {} | {} × {window} steps: {} | {verdict} |",
                name(p),
                compute.name(),
                o.steps,
                o.outputs,
                o.secs,
                o.early_max,
                o.max,
                o.bound_ratio.map_or("-".into(), |q| format!("{q:.3}")),
                if compute == Compute::Int { o.saturated.to_string() } else { "-".into() },
                o.checkpoints,
                if compute == Compute::Int {
                    format!("{} LSB", o.checkpoint_err)
                } else {
                    format!("{:.2e}", o.checkpoint_err)
                },
            );
        }
    }
    if failed > 0 {
        eprintln!("{failed} soak runs failed");
        std::process::exit(1);
    }
}

fn name(p: &Path) -> String {
    p.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}
