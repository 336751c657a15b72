//! `tinyssm inspect`: what a model is and what it costs.

use serde::Serialize;
use tinyssm_core::Model;

/// Summary of a model, as printed by `tinyssm inspect [--json]`.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub architecture: &'static str,
    pub format_version: String,
    pub n_layers: u32,
    /// Each layer's block kind, in order.
    pub layers: Vec<&'static str>,
    pub config: serde_json::Value,
    pub input: String,
    pub d_output: usize,
    pub n_tensors: usize,
    pub parameters: u64,
    pub weight_bytes: WeightBytes,
    pub state_bytes: usize,
    pub scratch_bytes: usize,
    pub macs_per_step: u64,
    pub file_bytes: usize,
    /// The audio front end, for models that take raw samples.
    pub front_end: Option<tinyssm_core::frontend::FrontEndConfig>,
    /// The step's arithmetic: "float", "w8a8" or "int".
    pub compute: &'static str,
    /// w8a8 models: int8 matrices whose activations take a calibrated static scale
    /// (int8s) and those that scale each input vector dynamically (int8).
    pub w8a8_static_matrices: usize,
    pub w8a8_dynamic_matrices: usize,
}

#[derive(Debug, Serialize)]
pub struct WeightBytes {
    pub f32: u64,
    pub f16: u64,
    pub bf16: u64,
    /// int8 values and their per-row scales.
    pub int8: u64,
    /// int4 values and their per-group scales.
    pub int4: u64,
    /// Integer-only models: int8 matrices with their per-row requantization.
    pub int8r: u64,
    pub i16: u64,
    pub i32: u64,
    pub total: u64,
}

pub fn summarize(m: &Model<'_>) -> Summary {
    let cfg = m.config();
    let architecture = cfg.arch.name();
    // The header's configuration as the format stores it (serde of the single-kind form's
    // fields, or of the stack: stem, block configurations by kind, layer table, head).
    // Non-finite values (Mamba-2's dt_max = ∞) print as null.
    let config = match serde_json::to_value(cfg.arch) {
        Ok(serde_json::Value::Object(o)) => o.into_iter().next().map(|(_, v)| v),
        _ => None,
    }
    .unwrap_or_default();
    let stack = m.stack();
    let layers: Vec<&'static str> = (0..cfg.n_layers as usize)
        .filter_map(|l| stack.block(l).map(|b| b.name()))
        .collect();
    let ws = m.weight_stats();
    let (mut n_static, mut n_dynamic) = (0, 0);
    // Matrices only: an int8 vector (format 1.6's compact S4D C·dB) has no activations.
    for t in (0..m.n_tensors())
        .filter_map(|i| m.tensor(i))
        .filter(|t| t.spec.role.is_matrix())
    {
        match t.dtype {
            tinyssm_core::DType::I8S => n_static += 1,
            tinyssm_core::DType::I8 => n_dynamic += 1,
            _ => {}
        }
    }
    let input = match (m.vocab_size(), &cfg.front_end) {
        (Some(v), _) => format!("tokens (vocab {v})"),
        (None, Some(fe)) => format!(
            "audio at {} Hz: {} log-mel features every {} samples ({}-sample window, {}-point FFT)",
            fe.sample_rate, fe.n_mels, fe.hop, fe.frame_len, fe.n_fft
        ),
        (None, None) => format!("vectors of {}", m.d_input()),
    };
    Summary {
        architecture,
        format_version: format!(
            "{}.{}",
            tinyssm_core::format::VERSION_MAJOR,
            m.format_minor()
        ),
        n_layers: cfg.n_layers,
        layers,
        config,
        input,
        d_output: m.d_output(),
        n_tensors: m.n_tensors(),
        parameters: ws.params,
        weight_bytes: WeightBytes {
            f32: ws.f32_bytes,
            f16: ws.f16_bytes,
            bf16: ws.bf16_bytes,
            int8: ws.int8_bytes,
            int4: ws.int4_bytes,
            int8r: ws.int8r_bytes,
            i16: ws.i16_bytes,
            i32: ws.i32_bytes,
            total: ws.total_bytes,
        },
        state_bytes: m.state_len() * 4,
        scratch_bytes: m.scratch_len() * 4,
        macs_per_step: m.macs_per_step(),
        file_bytes: m.blob_len(),
        front_end: cfg.front_end,
        compute: cfg.compute.name(),
        w8a8_static_matrices: n_static,
        w8a8_dynamic_matrices: n_dynamic,
    }
}

/// `["s4d", "s4d", "mlp"]` → `"s4d ×2, mlp"`.
fn run_lengths(kinds: &[&str]) -> String {
    let mut runs: Vec<(&str, usize)> = Vec::new();
    for &k in kinds {
        match runs.last_mut() {
            Some((last, n)) if *last == k => *n += 1,
            _ => runs.push((k, 1)),
        }
    }
    runs.iter()
        .map(|&(k, n)| {
            if n == 1 {
                k.to_string()
            } else {
                format!("{k} ×{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Human-readable rendering.
pub fn render(s: &Summary) -> String {
    let mut o = String::new();
    o += &format!(
        "architecture   {} ({} layers), format v{}\n",
        s.architecture, s.n_layers, s.format_version
    );
    o += &format!("layers         {}\n", run_lengths(&s.layers));
    o += &format!("input          {}\n", s.input);
    o += &format!("output         {} values per step\n", s.d_output);
    o += &format!(
        "stored values  {} (weights as the step reads them)\n",
        s.parameters
    );
    o += &format!(
        "weight bytes   {} total ({})\n",
        s.weight_bytes.total,
        [
            ("f32", s.weight_bytes.f32),
            ("f16", s.weight_bytes.f16),
            ("bf16", s.weight_bytes.bf16),
            ("int8", s.weight_bytes.int8),
            ("int4", s.weight_bytes.int4),
            ("int8r", s.weight_bytes.int8r),
            ("i16", s.weight_bytes.i16),
            ("i32", s.weight_bytes.i32),
        ]
        .iter()
        .filter(|(n, b)| *b > 0 || (*n == "f32" && s.compute != "int"))
        .map(|(n, b)| format!("{n} {b}"))
        .collect::<Vec<_>>()
        .join(", ")
    );
    if s.compute == "w8a8" {
        o += &format!(
            "compute        w8a8 (activation scales: {} static, {} dynamic)\n",
            s.w8a8_static_matrices, s.w8a8_dynamic_matrices
        );
    } else {
        o += &format!("compute        {}\n", s.compute);
    }
    o += &format!("state bytes    {} per stream\n", s.state_bytes);
    o += &format!("scratch bytes  {}\n", s.scratch_bytes);
    o += &format!("MACs per step  {}\n", s.macs_per_step);
    o += &format!("tensors        {}\n", s.n_tensors);
    o += &format!("file bytes     {}\n", s.file_bytes);
    o += &format!("config         {}\n", s.config);
    if let Some(fe) = &s.front_end {
        o += &format!(
            "front end      {}\n",
            serde_json::to_string(fe).unwrap_or_default()
        );
    }
    o
}

/// Rust source with the model's buffer sizes as `const`s, so firmware can declare
/// `static` state and scratch buffers of exactly the right size.
pub fn codegen(m: &Model<'_>, name: &str) -> String {
    let elem = if m.int_io().is_some() { "i32" } else { "f32" };
    let mut o = String::new();
    o += &format!("// Generated by `tinyssm codegen` from {name}. Do not edit.\n");
    o += &format!("/// CRC-32 of the model blob these sizes belong to.\npub const MODEL_CRC32: u32 = {:#010x};\n", m.crc32());
    o += &format!(
        "/// Model blob length in bytes.\npub const MODEL_BYTES: usize = {};\n",
        m.blob_len()
    );
    o += &format!(
        "/// {elem} elements of recurrent state per stream.\npub const STATE_LEN: usize = {};\n",
        m.state_len()
    );
    o += &format!(
        "/// {elem} elements of scratch per step.\npub const SCRATCH_LEN: usize = {};\n",
        m.scratch_len()
    );
    if let Some(io) = m.int_io() {
        o += &format!(
            "/// Integer-only model: input values are `round(x · 2^INPUT_FRAC)`.\npub const INPUT_FRAC: u32 = {};\n/// Integer-only model: output `o` stands for `o · 2^-OUTPUT_FRAC`.\npub const OUTPUT_FRAC: u32 = {};\n",
            io.input_frac, io.output_frac
        );
    }
    o += &format!(
        "/// Values produced per step.\npub const D_OUTPUT: usize = {};\n",
        m.d_output()
    );
    o += &format!(
        "/// Tensors of the model: the length of a view table for `Model::with_views`.\npub const N_TENSORS: usize = {};\n",
        m.n_tensors()
    );
    match m.vocab_size() {
        Some(v) => {
            o += &format!("/// Vocabulary size (token input).\npub const VOCAB_SIZE: u32 = {v};\n")
        }
        None => {
            o += &format!(
                "/// Values per input vector.\npub const D_INPUT: usize = {};\n",
                m.d_input()
            )
        }
    }
    o
}

/// What `tinyssm inspect` shows of a multi-rate network (`core::net`): its shape, delay,
/// buffers and work.
#[derive(Debug, Clone, Serialize)]
pub struct NetSummary {
    pub operations: usize,
    /// Block kinds by name, with counts.
    pub blocks: Vec<(String, usize)>,
    /// `(channels, input frames per frame)` at each level, from the input down.
    pub levels: Vec<(u32, u32)>,
    pub skips: usize,
    pub d_input: u32,
    pub d_output: usize,
    pub period: usize,
    pub delay_frames: usize,
    pub delay_ms: Option<f64>,
    pub sample_rate: Option<u32>,
    pub state_values: usize,
    pub counters: usize,
    pub scratch_values: usize,
    pub parameters: u64,
    pub macs_per_period: u64,
    pub macs_per_second: Option<f64>,
    /// Per level (as in `levels`): multiply-accumulates per period of the operations that
    /// run there, encoder and decoder together.
    pub level_macs: Vec<u64>,
    /// Per operation: what it is (`s5`, `conv`, `down`, `up`, `push`, `popadd`), its level
    /// (an index into `levels`) and its multiply-accumulates per period.
    pub ops: Vec<(String, usize, u64)>,
    /// A model file's: format version, bytes, compute mode and stored bytes per dtype.
    pub file: Option<NetFile>,
}

/// What a format 1.7 blob adds to a network's summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NetFile {
    pub format: String,
    pub bytes: usize,
    pub compute: &'static str,
    /// `(dtype, bytes)` of the stored tensors.
    pub stored: Vec<(&'static str, u64)>,
}

/// [`summarize_net`] for a parsed network model (`None` if `m` is not one).
pub fn summarize_net_model(m: &tinyssm_core::Model<'_>) -> Option<NetSummary> {
    let net = m.net()?;
    let rate = Some(net.config().sample_rate).filter(|&r| r != 0);
    let mut s = summarize_net(net.config(), net.plan(), rate);
    let mut stored: Vec<(&'static str, u64)> = Vec::new();
    for i in 0..m.n_tensors() {
        let t = m.tensor(i)?;
        let b = t.spec.bytes(t.dtype).unwrap_or(0);
        match stored.iter_mut().find(|(n, _)| *n == t.dtype.name()) {
            Some(e) => e.1 += b,
            None => stored.push((t.dtype.name(), b)),
        }
    }
    s.file = Some(NetFile {
        format: format!("1.{}", m.format_minor()),
        bytes: m.blob_len(),
        compute: m.config().compute.name(),
        stored,
    });
    Some(s)
}

/// Summarizes a network and its plan (`sample_rate`: its input rate, where known).
pub fn summarize_net(
    cfg: &tinyssm_core::net::NetConfig,
    plan: &tinyssm_core::net::NetPlan,
    sample_rate: Option<u32>,
) -> NetSummary {
    use tinyssm_core::net::Op;
    let mut blocks: Vec<(String, usize)> = Vec::new();
    let mut levels = vec![(cfg.d_input, 1u32)];
    let (mut f, mut skips, mut params) = (1u32, 0usize, 0u64);
    for (i, op) in cfg.ops().iter().enumerate() {
        match op {
            Op::Block(b) => match blocks.iter_mut().find(|(n, _)| n == b.name()) {
                Some(e) => e.1 += 1,
                None => blocks.push((b.name().to_string(), 1)),
            },
            Op::Push => skips += 1,
            Op::Down { c_out, r, .. } => {
                f = f.saturating_mul(*r);
                levels.push((*c_out, f));
            }
            Op::Up { r, .. } => f /= (*r).max(1),
            _ => {}
        }
        cfg.op_tensors(i, |_, (rank, dims)| {
            params += dims[..rank as usize]
                .iter()
                .map(|&d| d as u64)
                .product::<u64>();
        });
    }
    let macs = cfg.macs_per_period();
    let mut level_macs = vec![0u64; levels.len()];
    let mut ops = Vec::with_capacity(cfg.ops().len());
    cfg.macs_by_op(|i, f, m| {
        let l = levels
            .iter()
            .position(|&(_, lf)| lf as u64 == f)
            .unwrap_or(0);
        level_macs[l] += m;
        let kind = match cfg.ops()[i] {
            Op::Push => "push".to_string(),
            Op::PopAdd => "popadd".to_string(),
            Op::Conv { .. } => "conv".to_string(),
            Op::Block(b) => b.name().to_string(),
            Op::Down { .. } => "down".to_string(),
            Op::Up { .. } => "up".to_string(),
        };
        ops.push((kind, l, m));
    });
    NetSummary {
        operations: cfg.ops().len(),
        blocks,
        levels,
        skips,
        d_input: cfg.d_input,
        d_output: plan.d_output,
        period: plan.period,
        delay_frames: plan.delay,
        delay_ms: sample_rate.map(|r| plan.delay as f64 * 1000.0 / r as f64),
        sample_rate,
        state_values: plan.state_len,
        counters: plan.counters_len,
        scratch_values: plan.scratch_len,
        parameters: params,
        macs_per_period: macs,
        macs_per_second: sample_rate.map(|r| macs as f64 * r as f64 / plan.period as f64),
        level_macs,
        ops,
        file: None,
    }
}

/// The text form of [`NetSummary`].
pub fn render_net(s: &NetSummary) -> String {
    let blocks: Vec<String> = s.blocks.iter().map(|(n, c)| format!("{n} ×{c}")).collect();
    let levels: Vec<String> = s
        .levels
        .iter()
        .map(|(c, f)| match s.sample_rate {
            Some(r) => format!("{c} ch @ {} Hz", r as f64 / *f as f64),
            None => format!("{c} ch @ 1/{f}"),
        })
        .collect();
    let per_s =
        |v: Option<f64>, unit: &str| v.map(|x| format!(" ({x:.1} {unit})")).unwrap_or_default();
    let mut o = String::new();
    o += &format!(
        "architecture   multi-rate network: {} operations, {} skip connections\n",
        s.operations, s.skips
    );
    o += &format!("blocks         {}\n", blocks.join(", "));
    o += &format!("levels         {}\n", levels.join(" → "));
    o += &format!(
        "input          {} value(s) per frame{}; output {} per frame\n",
        s.d_input,
        s.sample_rate
            .map(|r| format!(" at {r} Hz"))
            .unwrap_or_default(),
        s.d_output
    );
    o += &format!(
        "period         {} frames (streams end padded to a multiple)\n",
        s.period
    );
    o += &format!(
        "delay          {} frames{}: the network's look-ahead, the least constant delay that streams exactly\n",
        s.delay_frames,
        per_s(s.delay_ms, "ms")
    );
    o += &format!(
        "state          {} f32 + {} counters per stream; scratch {} f32\n",
        s.state_values, s.counters, s.scratch_values
    );
    o += &format!(
        "stored values  {} (weights as the step reads them)\n",
        s.parameters
    );
    o += &format!(
        "MACs           {} per period{}\n",
        s.macs_per_period,
        s.macs_per_second
            .map(|m| format!(" ({:.3} G per second of input)", m / 1e9))
            .unwrap_or_default()
    );
    let total = s.macs_per_period.max(1) as f64;
    let by_level: Vec<String> = s
        .levels
        .iter()
        .zip(&s.level_macs)
        .map(|(&(c, f), &m)| {
            let at = match s.sample_rate {
                Some(r) => format!("{} Hz", r as f64 / f as f64),
                None => format!("1/{f}"),
            };
            format!("{c} ch @ {at} {:.0}%", 100.0 * m as f64 / total)
        })
        .collect();
    o += &format!("MACs by level  {}\n", by_level.join(", "));
    if let Some(f) = &s.file {
        let stored: Vec<String> = f.stored.iter().map(|(d, b)| format!("{d} {b} B")).collect();
        o += &format!(
            "file           format {}, {} bytes, compute {}; tensors {}\n",
            f.format,
            f.bytes,
            f.compute,
            stored.join(", ")
        );
    }
    o
}
