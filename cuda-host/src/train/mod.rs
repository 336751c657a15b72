//! `tinyssm train`: batch training on a [`Backend`] from a TOML configuration, with AdamW,
//! linear warm-up + cosine decay, global gradient-norm clipping and a fixed seed. Writes a
//! checkpoint `tinyssm convert` imports, plus the loss/accuracy history.
//!
//! The trainer in one place: its models ([`s4d`], [`mamba`]: forward and backward in the
//! checkpoint layout, over the backend's ops), the optimizer step and schedule (here), and
//! the training curves ([`plot`]).

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tinyssm_data::{self as data, ecg, Example, Split};

use crate::backend::{AdamW, Backend};
pub mod mamba;
pub mod plot;
pub mod s4d;

use self::s4d::{backward, DeviceParams, S4dParams, S4dShape};

/// The training configuration file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// `fsdd` (spoken digits).
    pub dataset: String,
    pub model: ModelConfig,
    pub optim: OptimConfig,
    #[serde(default)]
    pub augment: AugmentConfig,
    /// Settings of the `ecg` dataset.
    #[serde(default)]
    pub ecg: EcgConfig,
    #[serde(default)]
    pub seed: u64,
}

/// The R-peak detection task on MIT-BIH record 100: one step per 360 Hz sample, a per-step
/// target that is 1 for `label_len` samples from each annotated beat on.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EcgConfig {
    /// Training window in samples (random offsets in the first 80% of the record).
    pub window: usize,
    pub label_len: usize,
    pub pos_weight: f32,
    /// Windows per epoch.
    pub windows_per_epoch: usize,
}

impl Default for EcgConfig {
    fn default() -> Self {
        EcgConfig {
            window: 1440,
            label_len: 18,
            pos_weight: 1.0,
            windows_per_epoch: 512,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `s4d` or `mamba` (Mamba-1 blocks on sensor vectors).
    pub arch: String,
    pub d_model: usize,
    pub d_state: usize,
    pub n_layers: usize,
    /// Mamba: inner width (default 2·d_model).
    #[serde(default)]
    pub d_inner: Option<usize>,
    /// Mamba: conv kernel (default 4).
    #[serde(default)]
    pub d_conv: Option<usize>,
    /// Mamba: dt rank (default ⌈d_model/16⌉).
    #[serde(default)]
    pub dt_rank: Option<usize>,
}

/// The network being trained.
pub enum Net {
    S4d(S4dParams),
    Mamba(crate::train::mamba::MambaParams),
}

/// A forward pass of either network.
pub enum Fwd<B: Backend> {
    S4d(crate::train::s4d::Forward<B>),
    Mamba(crate::train::mamba::MambaForward<B>),
}

impl<B: Backend> Fwd<B> {
    pub fn logits(&self) -> &B::Buf {
        match self {
            Fwd::S4d(f) => &f.logits,
            Fwd::Mamba(f) => &f.logits,
        }
    }
}

impl Net {
    pub fn build(m: &ModelConfig, d_input: usize, d_output: usize, rng: &mut StdRng) -> Net {
        if m.arch == "mamba" {
            let s = crate::train::mamba::MambaShape {
                d_input,
                d_model: m.d_model,
                d_inner: m.d_inner.unwrap_or(2 * m.d_model),
                d_state: m.d_state,
                d_conv: m.d_conv.unwrap_or(4),
                dt_rank: m.dt_rank.unwrap_or(m.d_model.div_ceil(16)),
                n_layers: m.n_layers,
                d_output,
                norm_eps: 1e-5,
            };
            Net::Mamba(crate::train::mamba::MambaParams::init(s, rng))
        } else {
            let s = S4dShape {
                d_input,
                d_model: m.d_model,
                d_state: m.d_state,
                n_layers: m.n_layers,
                d_output,
                norm_eps: 1e-5,
            };
            Net::S4d(S4dParams::init(s, rng))
        }
    }
    pub fn params(&self) -> &[crate::train::s4d::Param] {
        match self {
            Net::S4d(p) => &p.params,
            Net::Mamba(p) => &p.params,
        }
    }
    pub fn params_mut(&mut self) -> &mut [crate::train::s4d::Param] {
        match self {
            Net::S4d(p) => &mut p.params,
            Net::Mamba(p) => &mut p.params,
        }
    }
    pub fn d_input(&self) -> usize {
        match self {
            Net::S4d(p) => p.shape.d_input,
            Net::Mamba(p) => p.shape.d_input,
        }
    }
    pub fn d_output(&self) -> usize {
        match self {
            Net::S4d(p) => p.shape.d_output,
            Net::Mamba(p) => p.shape.d_output,
        }
    }
    pub fn n_params(&self) -> usize {
        self.params().iter().map(|p| p.data.len()).sum()
    }
    pub fn fold_input_norm(&mut self, mean: &[f32], std: &[f32]) {
        match self {
            Net::S4d(p) => p.fold_input_norm(mean, std),
            Net::Mamba(p) => p.fold_input_norm(mean, std),
        }
    }
    pub fn save_checkpoint(
        &self,
        dir: &Path,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> std::io::Result<()> {
        match self {
            Net::S4d(p) => p.save_checkpoint(dir, extra),
            Net::Mamba(p) => p.save_checkpoint(dir, extra),
        }
    }
    /// Forward with logits at `rows`.
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        dp: &DeviceParams<B>,
        x: &[f32],
        batch: usize,
        time: usize,
        rows: Vec<usize>,
    ) -> Result<Fwd<B>, crate::BackendError> {
        Ok(match self {
            Net::S4d(p) => Fwd::S4d(crate::train::s4d::forward_rows(
                be, &p.shape, dp, x, batch, time, rows,
            )?),
            Net::Mamba(p) => Fwd::Mamba(crate::train::mamba::forward(
                be, &p.shape, &dp.w, x, batch, time, rows,
            )?),
        })
    }
    pub fn backward<B: Backend>(
        &self,
        be: &B,
        dp: &mut DeviceParams<B>,
        f: &Fwd<B>,
        dl: &B::Buf,
    ) -> Result<(), crate::BackendError> {
        match (self, f) {
            (Net::S4d(p), Fwd::S4d(f)) => backward(be, &p.shape, dp, f, dl),
            (Net::Mamba(p), Fwd::Mamba(f)) => {
                crate::train::mamba::backward(be, &p.shape, &dp.w, &mut dp.g, f, dl)
            }
            _ => Err(crate::BackendError::Unavailable(
                "forward and network differ".into(),
            )),
        }
    }
}

fn last_rows(lens: &[usize], time: usize) -> Vec<usize> {
    lens.iter()
        .enumerate()
        .map(|(b, &n)| b * time + n.clamp(1, time) - 1)
        .collect()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f32,
    /// Learning rate of the SSM parameters (`log_dt`, `A`), without weight decay.
    pub ssm_lr: f32,
    pub weight_decay: f32,
    pub warmup_steps: usize,
    /// Global gradient-norm clip.
    pub clip: f32,
}

/// Training-time augmentation of the feature sequences.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// Random gain, ± this many dB (a constant shift of the log-mel features).
    #[serde(default)]
    pub gain_db: f32,
    /// Gaussian noise added to the normalised features, this standard deviation.
    #[serde(default)]
    pub feature_noise: f32,
}

/// Options from the command line.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub out: PathBuf,
    pub max_steps: Option<usize>,
    pub seed: Option<u64>,
    pub progress: bool,
}

/// One point of the history.
#[derive(Debug, Clone, Serialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub step: usize,
    pub train_loss: f32,
    pub train_accuracy: f32,
    pub test_loss: f32,
    pub test_accuracy: f32,
    pub seconds: f64,
}

/// What a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub backend: String,
    pub n_params: usize,
    pub steps: usize,
    pub train_examples: usize,
    pub test_examples: usize,
    pub history: Vec<EpochStats>,
    pub final_test_accuracy: f32,
    pub samples_per_second: f64,
    pub checkpoint: PathBuf,
}

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error(transparent)]
    Backend(#[from] crate::BackendError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing an output (the message names the path).
    #[error(transparent)]
    Output(#[from] tinyssm_host::HostError),
}

impl TrainConfig {
    /// Reads and checks a TOML file.
    pub fn load(path: &Path) -> Result<TrainConfig, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let c: TrainConfig = toml::from_str(&text).map_err(|e| {
            TrainError::Config(format!(
                "{}: {}",
                path.display(),
                e.to_string().lines().collect::<Vec<_>>().join(" ")
            ))
        })?;
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(m.into()));
        if !["fsdd", "ecg", "basicmotions"].contains(&self.dataset.as_str()) {
            return bad("dataset: `fsdd`, `ecg` or `basicmotions`");
        }
        if self.dataset == "ecg" && (self.ecg.window < 16 || self.ecg.windows_per_epoch == 0) {
            return bad("ecg: window must be >= 16 and windows_per_epoch > 0");
        }
        if !crate::support::TRAIN_ARCHES
            .iter()
            .any(|&(a, _)| a == self.model.arch)
        {
            return bad("model.arch: `s4d` or `mamba`");
        }
        if self.dataset == "ecg" && self.model.arch != "s4d" {
            return bad("the ecg dataset trains `s4d` models in this build");
        }
        let m = &self.model;
        if m.d_model == 0 || m.n_layers == 0 || m.d_state < 2 || !m.d_state.is_multiple_of(2) {
            return bad("model: d_model and n_layers must be > 0, d_state even and >= 2");
        }
        let o = &self.optim;
        if o.epochs == 0 || o.batch_size == 0 {
            return bad("optim: epochs and batch_size must be > 0");
        }
        if !(o.lr > 0.0 && o.ssm_lr >= 0.0 && o.weight_decay >= 0.0 && o.clip > 0.0) {
            return bad("optim: lr and clip must be > 0, ssm_lr and weight_decay >= 0");
        }
        Ok(())
    }
}

fn lr_at(step: usize, total: usize, warmup: usize) -> f32 {
    if step < warmup {
        return (step + 1) as f32 / warmup as f32;
    }
    let p = (step - warmup) as f32 / (total.saturating_sub(warmup)).max(1) as f32;
    0.5 * (1.0 + (std::f32::consts::PI * p.min(1.0)).cos())
}

/// Pads a batch into `[batch, time, dim]` with normalisation and augmentation.
fn make_batch(
    data: &[Example],
    idx: &[usize],
    dim: usize,
    mean: &[f32],
    std: &[f32],
    aug: Option<(&AugmentConfig, &mut StdRng)>,
) -> (Vec<f32>, Vec<usize>, Vec<u32>, usize) {
    let time = idx.iter().map(|&i| data[i].len).max().unwrap_or(1).max(1);
    let mut x = vec![0f32; idx.len() * time * dim];
    let mut lens = Vec::with_capacity(idx.len());
    let mut labels = Vec::with_capacity(idx.len());
    let mut aug = aug;
    for (b, &i) in idx.iter().enumerate() {
        let e = &data[i];
        // A gain of g dB scales the power by 10^(g/10): ln-power shifts by g·ln(10)/10.
        let (shift, noise) = match aug.as_mut() {
            Some((a, rng)) if a.gain_db > 0.0 => (
                rng.random_range(-a.gain_db..a.gain_db) * std::f32::consts::LN_10 / 10.0,
                a.feature_noise,
            ),
            Some((a, _)) => (0.0, a.feature_noise),
            None => (0.0, 0.0),
        };
        for (t, row) in e.feats.chunks_exact(dim).enumerate() {
            let dst = &mut x[(b * time + t) * dim..(b * time + t + 1) * dim];
            for j in 0..dim {
                let mut v = (row[j] + shift - mean[j]) / std[j];
                if noise > 0.0 {
                    if let Some((_, rng)) = aug.as_mut() {
                        let (u1, u2): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
                        v += noise
                            * (-2.0 * u1.ln()).sqrt()
                            * (2.0 * std::f32::consts::PI * u2).cos();
                    }
                }
                dst[j] = v;
            }
        }
        lens.push(e.len);
        labels.push(e.label);
    }
    (x, lens, labels, time)
}

/// Loss and accuracy of `p` on `data` (no gradients).
pub fn evaluate<B: Backend>(
    be: &B,
    net: &Net,
    dp: &DeviceParams<B>,
    data: &[Example],
    mean: &[f32],
    std: &[f32],
) -> Result<(f32, f32), TrainError> {
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.sort_by_key(|&i| data[i].len);
    let (mut loss, mut correct) = (0f64, 0usize);
    for chunk in order.chunks(64) {
        let (x, lens, labels, time) = make_batch(data, chunk, net.d_input(), mean, std, None);
        let f = net.forward(be, dp, &x, chunk.len(), time, last_rows(&lens, time))?;
        let mut g = be.zeros(chunk.len() * net.d_output())?;
        let (l, c) = be.softmax_xent(f.logits(), &labels, net.d_output(), &mut g)?;
        loss += l as f64 * chunk.len() as f64;
        correct += c;
    }
    let n = data.len().max(1) as f64;
    Ok(((loss / n) as f32, (correct as f64 / n) as f32))
}

/// Runs a training job.
pub fn train<B: Backend>(
    be: &B,
    cfg: &TrainConfig,
    opt: &TrainOptions,
) -> Result<TrainReport, TrainError> {
    if cfg.dataset == "ecg" {
        return train_ecg(be, cfg, opt);
    }
    train_classifier(be, cfg, opt)
}

/// Global-norm clipping and one AdamW update of every parameter.
fn optimizer_step<B: Backend>(
    be: &B,
    dp: &mut DeviceParams<B>,
    params: &[crate::train::s4d::Param],
    o: &OptimConfig,
    step: usize,
    total: usize,
) -> Result<f32, TrainError> {
    let mut norm2 = 0f64;
    for g in &dp.g {
        norm2 += be.sum_sq(g)?;
    }
    let norm = norm2.sqrt() as f32;
    if norm.is_finite() && norm > o.clip {
        for g in dp.g.iter_mut() {
            be.scale(g, o.clip / norm)?;
        }
    }
    let sched = lr_at(step, total, o.warmup_steps);
    for (k, q) in params.iter().enumerate() {
        let ssm = q.name.ends_with("log_dt")
            || q.name.ends_with("log_A_real")
            || q.name.ends_with("A_imag");
        let lr = if ssm { o.ssm_lr } else { o.lr } * sched;
        let h = AdamW {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: o.weight_decay,
            step: step as u32 + 1,
        };
        let (w, g, m, v) = (&mut dp.w[k], &dp.g[k], &mut dp.m[k], &mut dp.v[k]);
        be.adamw(w, g, m, v, h, q.decay)?;
    }
    Ok(norm)
}

/// Per-step logits of an S4D detector over one long stream, in chunks that carry nothing
/// over — used for the training-time test metric only (the core is the reference).
fn ecg_scores<B: Backend>(
    be: &B,
    s: &S4dShape,
    dp: &DeviceParams<B>,
    x: &[f32],
    beats: &[usize],
    mean: f32,
    std: f32,
) -> Result<ecg::Scores, TrainError> {
    let xn: Vec<f32> = x.iter().map(|v| (v - mean) / std).collect();
    let time = xn.len();
    let rows: Vec<usize> = (0..time).collect();
    let f = crate::train::s4d::forward_rows(be, s, dp, &xn, 1, time, rows)?;
    let y = be.download(&f.logits)?;
    Ok(ecg::decide(&y, beats))
}

fn train_ecg<B: Backend>(
    be: &B,
    cfg: &TrainConfig,
    opt: &TrainOptions,
) -> Result<TrainReport, TrainError> {
    let seed = opt.seed.unwrap_or(cfg.seed);
    let (sig, beats, _fs) = ecg::record_100(&data::data_dir())?;
    let split = ecg::test_start(sig.len());
    let (train_x, test_x) = sig.split_at(split);
    let test_beats: Vec<usize> = beats
        .iter()
        .filter(|&&b| b >= split)
        .map(|&b| b - split)
        .collect();
    let mut target = vec![0f32; sig.len()];
    for &b in &beats {
        let end = (b + cfg.ecg.label_len).min(sig.len());
        target[b.min(end)..end].fill(1.0);
    }
    let n = train_x.len() as f64;
    let mean = (train_x.iter().map(|&v| v as f64).sum::<f64>() / n) as f32;
    let std = ((train_x
        .iter()
        .map(|&v| ((v - mean) as f64).powi(2))
        .sum::<f64>()
        / n)
        .sqrt() as f32)
        .max(1e-6);
    let shape = S4dShape {
        d_input: 1,
        d_model: cfg.model.d_model,
        d_state: cfg.model.d_state,
        n_layers: cfg.model.n_layers,
        d_output: 1,
        norm_eps: 1e-5,
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut params = S4dParams::init(shape, &mut rng);
    let mut dp = DeviceParams::new(be, &params.params)?;
    let o = &cfg.optim;
    let e = &cfg.ecg;
    let w = e.window.min(split);
    let per_epoch = e.windows_per_epoch.div_ceil(o.batch_size);
    let total = opt
        .max_steps
        .unwrap_or(usize::MAX)
        .min(o.epochs * per_epoch);
    if opt.progress {
        eprintln!(
            "ecg record 100: {} train / {} test samples, {} / {} beats; backend {}",
            split,
            test_x.len(),
            beats.len() - test_beats.len(),
            test_beats.len(),
            be.name()
        );
    }
    let mut history = Vec::new();
    let (mut step, mut seen) = (0usize, 0usize);
    let t0 = std::time::Instant::now();
    'epochs: for epoch in 0..o.epochs {
        let (mut ep_loss, mut ep_n) = (0f64, 0usize);
        for _ in 0..per_epoch {
            if step >= total {
                break 'epochs;
            }
            let bsz = o.batch_size;
            let mut x = vec![0f32; bsz * w];
            let mut y = vec![0f32; bsz * w];
            for b in 0..bsz {
                let off = rng.random_range(0..=split - w);
                let gain = if cfg.augment.gain_db > 0.0 {
                    10f32.powf(rng.random_range(-cfg.augment.gain_db..cfg.augment.gain_db) / 20.0)
                } else {
                    1.0
                };
                for t in 0..w {
                    x[b * w + t] = (train_x[off + t] * gain - mean) / std;
                    y[b * w + t] = target[off + t];
                }
            }
            for g in dp.g.iter_mut() {
                be.fill(g, 0.0)?;
            }
            let rows: Vec<usize> = (0..bsz * w).collect();
            let f = crate::train::s4d::forward_rows(be, &shape, &dp, &x, bsz, w, rows)?;
            let mut dl = be.zeros(bsz * w)?;
            let loss = be.sigmoid_bce(&f.logits, &y, e.pos_weight, &mut dl)?;
            backward(be, &shape, &mut dp, &f, &dl)?;
            optimizer_step(be, &mut dp, &params.params, o, step, total)?;
            step += 1;
            seen += bsz;
            ep_loss += loss as f64;
            ep_n += 1;
        }
        // The whole-test-stream metric is costly: every 5 epochs and at the end.
        if (epoch + 1) % 5 != 0 && epoch + 1 != o.epochs {
            if opt.progress {
                eprintln!(
                    "epoch {:3}  train loss {:.4}",
                    epoch + 1,
                    ep_loss / ep_n.max(1) as f64
                );
            }
            continue;
        }
        let sc = ecg_scores(be, &shape, &dp, test_x, &test_beats, mean, std)?;
        let st = EpochStats {
            epoch: epoch + 1,
            step,
            train_loss: (ep_loss / ep_n.max(1) as f64) as f32,
            train_accuracy: f32::NAN,
            test_loss: f32::NAN,
            test_accuracy: sc.f1 as f32,
            seconds: t0.elapsed().as_secs_f64(),
        };
        if opt.progress {
            eprintln!(
                "epoch {:3}  train loss {:.4}  test Se {:.4} +P {:.4} F1 {:.4}  ({:.0} s)",
                st.epoch,
                st.train_loss,
                sc.sensitivity,
                sc.positive_predictivity,
                sc.f1,
                st.seconds
            );
        }
        history.push(st);
    }
    let secs = t0.elapsed().as_secs_f64();
    dp.download_into(be, &mut params.params)?;
    let final_sc = ecg_scores(be, &shape, &dp, test_x, &test_beats, mean, std)?;
    params.fold_input_norm(&[mean], &[std]);
    let mut extra = serde_json::Map::new();
    extra.insert("head".into(), serde_json::json!("classification"));
    extra.insert("labels".into(), serde_json::json!(["r-peak"]));
    let ck = opt.out.join("checkpoint");
    params
        .save_checkpoint(&ck, &extra)
        .map_err(|e| TrainError::Io {
            path: ck.clone(),
            source: e,
        })?;
    let report = TrainReport {
        backend: be.name(),
        n_params: params.n_params(),
        steps: step,
        train_examples: split,
        test_examples: test_x.len(),
        history,
        final_test_accuracy: final_sc.f1 as f32,
        samples_per_second: seen as f64 / secs.max(1e-9),
        checkpoint: ck,
    };
    write_report(&opt.out, &report, "test F1")?;
    Ok(report)
}

/// `report.json` and `curves.png` (through a temporary file) in `out`.
fn write_report(out: &Path, report: &TrainReport, metric: &str) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(report).unwrap_or_default();
    tinyssm_host::io::atomic_write(&out.join("report.json"), |w| {
        std::io::Write::write_all(w, text.as_bytes())
    })?;
    tinyssm_host::io::write_via_temp(&out.join("curves.png"), |tmp| {
        crate::train::plot::curves(tmp, &report.history, metric)
    })?;
    Ok(())
}

/// Sequence classification (fsdd, basicmotions), decided at each sequence's last step.
fn train_classifier<B: Backend>(
    be: &B,
    cfg: &TrainConfig,
    opt: &TrainOptions,
) -> Result<TrainReport, TrainError> {
    let seed = opt.seed.unwrap_or(cfg.seed);
    let root = data::data_dir();
    let t0 = std::time::Instant::now();
    let fe = data::fsdd_front_end();
    let (train_set, test_set, dim, classes, front_end, labels): (
        _,
        _,
        usize,
        usize,
        _,
        Vec<String>,
    ) = if cfg.dataset == "basicmotions" {
        (
            data::basicmotions(&root, Split::Train)?,
            data::basicmotions(&root, Split::Test)?,
            6,
            4,
            None,
            data::BASICMOTIONS_CLASSES
                .iter()
                .map(|c| c.to_lowercase())
                .collect(),
        )
    } else {
        (
            data::fsdd(&root, Split::Train, &fe)?,
            data::fsdd(&root, Split::Test, &fe)?,
            fe.n_mels as usize,
            10,
            Some(fe),
            (0..10).map(|d| d.to_string()).collect(),
        )
    };
    let (mean, std) = data::feature_stats(&train_set, dim);
    if opt.progress {
        eprintln!(
            "{}: {} train / {} test cases, features in {:.1} s; backend {}",
            cfg.dataset,
            train_set.len(),
            test_set.len(),
            t0.elapsed().as_secs_f64(),
            be.name()
        );
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut net = Net::build(&cfg.model, dim, classes, &mut rng);
    let mut dp = DeviceParams::new(be, net.params())?;
    let o = &cfg.optim;
    let per_epoch = train_set.len().div_ceil(o.batch_size);
    let total = opt
        .max_steps
        .unwrap_or(usize::MAX)
        .min(o.epochs * per_epoch);
    let bar = if opt.progress {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} steps {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut history = Vec::new();
    let mut step = 0usize;
    let mut seen = 0usize;
    let t_train = std::time::Instant::now();
    'epochs: for epoch in 0..o.epochs {
        // Shuffle, then sort within windows of 8 batches by length (less padding), then
        // shuffle the batches.
        let mut order: Vec<usize> = (0..train_set.len()).collect();
        order.shuffle(&mut rng);
        for w in order.chunks_mut(8 * o.batch_size) {
            w.sort_by_key(|&i| train_set[i].len);
        }
        let mut batches: Vec<Vec<usize>> = order.chunks(o.batch_size).map(|c| c.to_vec()).collect();
        batches.shuffle(&mut rng);
        let (mut ep_loss, mut ep_correct, mut ep_n) = (0f64, 0usize, 0usize);
        for idx in &batches {
            if step >= total {
                break 'epochs;
            }
            let (x, lens, labels, time) = make_batch(
                &train_set,
                idx,
                dim,
                &mean,
                &std,
                Some((&cfg.augment, &mut rng)),
            );
            for g in dp.g.iter_mut() {
                be.fill(g, 0.0)?;
            }
            let f = net.forward(be, &dp, &x, idx.len(), time, last_rows(&lens, time))?;
            let mut dl = be.zeros(idx.len() * net.d_output())?;
            let (loss, correct) = be.softmax_xent(f.logits(), &labels, net.d_output(), &mut dl)?;
            net.backward(be, &mut dp, &f, &dl)?;
            optimizer_step(be, &mut dp, net.params(), o, step, total)?;
            step += 1;
            seen += idx.len();
            ep_loss += loss as f64 * idx.len() as f64;
            ep_correct += correct;
            ep_n += idx.len();
            bar.set_position(step as u64);
            bar.set_message(format!(
                "epoch {} loss {:.3} acc {:.3}",
                epoch + 1,
                ep_loss / ep_n as f64,
                ep_correct as f64 / ep_n as f64
            ));
        }
        let (test_loss, test_accuracy) = evaluate(be, &net, &dp, &test_set, &mean, &std)?;
        let st = EpochStats {
            epoch: epoch + 1,
            step,
            train_loss: (ep_loss / ep_n.max(1) as f64) as f32,
            train_accuracy: (ep_correct as f64 / ep_n.max(1) as f64) as f32,
            test_loss,
            test_accuracy,
            seconds: t_train.elapsed().as_secs_f64(),
        };
        let line = format!(
            "epoch {:3}  train loss {:.4} acc {:.4}  test loss {:.4} acc {:.4}  ({:.0} s)",
            st.epoch, st.train_loss, st.train_accuracy, st.test_loss, st.test_accuracy, st.seconds
        );
        if bar.is_hidden() {
            // Not a terminal (a log file, CI): plain lines.
            if opt.progress {
                eprintln!("{line}");
            }
        } else {
            bar.println(line);
        }
        history.push(st);
    }
    bar.finish_and_clear();
    let train_secs = t_train.elapsed().as_secs_f64();
    dp.download_into(be, net.params_mut())?;
    let (_, final_acc) = evaluate(be, &net, &dp, &test_set, &mean, &std)?;
    net.fold_input_norm(&mean, &std);
    let mut extra = serde_json::Map::new();
    if let Some(fe) = front_end {
        extra.insert(
            "front_end".into(),
            serde_json::to_value(fe).unwrap_or_default(),
        );
    }
    extra.insert("labels".into(), serde_json::json!(labels));
    let ck = opt.out.join("checkpoint");
    net.save_checkpoint(&ck, &extra)
        .map_err(|e| TrainError::Io {
            path: ck.clone(),
            source: e,
        })?;
    let report = TrainReport {
        backend: be.name(),
        n_params: net.n_params(),
        steps: step,
        train_examples: train_set.len(),
        test_examples: test_set.len(),
        history,
        final_test_accuracy: final_acc,
        samples_per_second: seen as f64 / train_secs.max(1e-9),
        checkpoint: ck,
    };
    write_report(&opt.out, &report, "accuracy")?;
    Ok(report)
}
