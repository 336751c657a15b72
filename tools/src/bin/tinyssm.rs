//! The `tinyssm` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tinyssm_core::{Compute, DType, Kernels};
use tinyssm_host::{io, HostError, ModelFile, Runner};
use tinyssm_tools::quantize::QuantSpec;
use tinyssm_tools::{convert_dir, inspect, ToolError, WeightDtype};

#[derive(Parser)]
#[command(
    name = "tinyssm",
    version,
    about = "Run trained state space models step by step in fixed memory"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Weights {
    F32,
    F16,
    Bf16,
    Int8,
    Int4,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ComputeArg {
    /// f32 activations (weights dequantized on the fly).
    Float,
    /// int8 weights × int8 activations, i32 accumulation: a dynamic per-vector
    /// activation scale, or with --calibrate a static one per matrix.
    W8a8,
    /// Integer-only step (no floating point: i16 activations, i32 states, int8 matrices;
    /// S4D and Mamba sensor models); needs --calibrate.
    Int,
}

#[derive(Subcommand)]
enum Cmd {
    /// Convert a checkpoint (HF Mamba/Mamba-2, S4D, mamba-sensor directory; rwkv.cpp or
    /// RWKV .pth file) or a .tssm model into a .tssm model, optionally quantized.
    Convert {
        /// Checkpoint directory or file, or a .tssm model to re-encode.
        src: PathBuf,
        /// Output model file.
        #[arg(short, long)]
        out: PathBuf,
        /// Storage dtype of weight matrices (norms, biases, conv, A, D, dt stay f32;
        /// dt_proj stays f16 at int8/int4). int8: per output channel; int4: groups of 32.
        /// At int8/int4 the filterbank is stored sparse and S4D's modes compact (dA Q1.15,
        /// C·dB int8 per channel, D and the output bias f16): format 1.6.
        #[arg(long, value_enum, default_value = "f32")]
        weights: Weights,
        /// At int8/int4: keep the filterbank dense and S4D's vectors f32 (a blob that
        /// format 1.5 readers read).
        #[arg(long)]
        no_compact: bool,
        /// At int8/int4: keep every matrix of at most N values in f32 (mixed precision; for
        /// aTENNuate 4096 keeps 18 of its 44 matrices, 3.7% of the values, and takes its
        /// w8a8 error against f32 from ~17 to ~30 dB: QUANTIZATION.md).
        #[arg(long, value_name = "N")]
        small_f32: Option<u64>,
        /// The step's arithmetic.
        #[arg(long, value_enum, default_value = "float")]
        compute: ComputeArg,
        /// Calibration set for --compute int (activation ranges → Q formats) or
        /// --compute w8a8 (static activation scales instead of dynamic ones), taken from
        /// the training split: `fsdd[:N]` (N clips, default 300), `ecg[:N]` (N samples of
        /// record 100's training region, default 72000), `basicmotions[:N]`, or a .wav
        /// (audio models) or .csv (vector models) file.
        #[arg(long)]
        calibrate: Option<String>,
        /// With --compute w8a8 --calibrate: give every int8 matrix the static scale, also
        /// those whose input the calibration shows loses more than 6 dB of per-vector SNR
        /// against the dynamic scale (which otherwise stay dynamic).
        #[arg(long, requires = "calibrate")]
        all_static: bool,
    },
    /// Stream an input through a model one step at a time; write a [T, d_out] f32 .npy.
    Run {
        model: PathBuf,
        /// Token ids (.npy, 1-D integers).
        #[arg(long, group = "input")]
        tokens: Option<PathBuf>,
        /// Text, fed as bytes (byte-level models).
        #[arg(long, group = "input")]
        text: Option<String>,
        /// CSV: one row per step, one column per input channel.
        #[arg(long, group = "input")]
        csv: Option<PathBuf>,
        /// WAV: one frame per step, one channel per input channel.
        #[arg(long, group = "input")]
        wav: Option<PathBuf>,
        /// Output .npy (one row per step).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Output WAV (32-bit float, the input's rate): for a network that maps audio to
        /// audio (a denoiser), aligned with the input (its look-ahead compensated).
        #[arg(long)]
        out_wav: Option<PathBuf>,
        /// Step with the scalar reference kernels instead of the fast ones.
        #[arg(long)]
        reference_kernels: bool,
        /// Start the stream from this snapshot (of this model, from `--state-out`) instead
        /// of the initial state.
        #[arg(long)]
        state_in: Option<PathBuf>,
        /// Write a snapshot of the stream after the input (continue it with `--state-in`;
        /// the same file as `--state-in` is fine).
        #[arg(long)]
        state_out: Option<PathBuf>,
    },
    /// Generate text with a byte-level language model: feed the prompt, then produce tokens.
    Generate {
        model: PathBuf,
        #[arg(long)]
        prompt: String,
        /// Tokens to generate.
        #[arg(long, default_value_t = 64)]
        tokens: usize,
        /// 0 = greedy (argmax); otherwise sample from softmax(logits / temperature).
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        /// Seed of the sampler (used when temperature > 0).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Denoise a recording with aTENNuate's trained speech denoiser, streamed sample by
    /// sample through the multi-rate network engine; write the clean WAV aligned with the
    /// input (same length and rate; the network's look-ahead compensated).
    Denoise {
        /// aTENNuate's PyTorch checkpoint (`weights.pt`).
        checkpoint: PathBuf,
        /// Noisy mono WAV at 16 kHz.
        #[arg(long)]
        wav: PathBuf,
        /// Output WAV (32-bit float, mono, 16 kHz).
        #[arg(long)]
        out_wav: PathBuf,
        /// Step with the scalar reference kernels instead of the fast ones.
        #[arg(long)]
        reference_kernels: bool,
        /// Quantize every matrix to int8 (per-row scales) and multiply with int8
        /// activations (dynamic per-vector scales), as `--compute w8a8` does.
        #[arg(long)]
        w8a8: bool,
    },
    /// Emit Rust `const`s (buffer sizes) for firmware that declares `static` buffers.
    Codegen {
        model: PathBuf,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Train a model from a TOML configuration; writes <out>/checkpoint (for `convert`)
    /// and <out>/report.json (loss/accuracy history, throughput).
    #[cfg_attr(
        not(feature = "cuda"),
        command(about = NEEDS_CUDA_HELP, long_about = None)
    )]
    Train {
        config: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendKind,
        /// Stop after this many optimizer steps.
        #[arg(long)]
        max_steps: Option<usize>,
        /// Override the configuration's seed.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Run models through the core, step by step, on a dataset split and report accuracy
    /// (or F1), weight bytes and state bytes, side by side.
    Eval {
        #[arg(required = true)]
        models: Vec<PathBuf>,
        #[arg(long, value_enum)]
        dataset: DatasetKind,
        #[arg(long, value_enum, default_value = "test")]
        split: SplitKind,
        #[arg(long)]
        json: bool,
        /// Per-layer SNR of every model's recurrent states (and outputs) against the first
        /// model's, stepping both over the split's streams (at most --streams of them).
        #[arg(long)]
        layers: bool,
        /// Streams used by --layers and --plot.
        #[arg(long, default_value_t = 50)]
        streams: usize,
        /// Draw the first stream's outputs through every model into this PNG.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Run a model on a backend over many streams at once and check every step's outputs
    /// and the final states against the core stepping each stream; non-zero exit if not ok.
    #[cfg_attr(
        not(feature = "cuda"),
        command(about = NEEDS_CUDA_HELP, long_about = None)
    )]
    Verify {
        #[arg(required_unless_present = "all")]
        model: Option<PathBuf>,
        #[arg(long, value_enum, required_unless_present = "all")]
        dataset: Option<DatasetKind>,
        /// Verify every `*.tssm` in this directory on the step path (`--backend cuda` or
        /// `cuda-emu`): float and w8a8 models within their tier, integer-only models bit
        /// for bit, each with the dataset its input takes (audio: FSDD, one input: ECG,
        /// six: BasicMotions); prints one table (`--json`: one array), non-zero exit if
        /// any model failed or could not be verified.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["model", "dataset", "path"])]
        all: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "test")]
        split: SplitKind,
        #[arg(long, default_value_t = 64)]
        streams: usize,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendKind,
        /// `scan`: the training ops (whole-sequence scans) on the backend, within the float
        /// tier; `step`: the step kernels (the core's reference step for every stream, one
        /// launch per time step; `--backend cuda` or `cuda-emu`), against the core's
        /// reference kernels within the step tier (exp, log1p and erf are the device's own).
        /// Integer-only models (`--compute int`) take `--path step` with `--backend cuda`
        /// or `cuda-emu`: the integer step kernels, compared with the core's integer step
        /// for equality (every output and final state value; max |Δ| in LSB and the count
        /// of differing values, which must be 0).
        #[arg(long, value_enum, default_value = "scan")]
        path: PathKind,
        #[arg(long)]
        json: bool,
    },
    /// Print the support matrix: every block kind with its compute modes and kernels in
    /// the core, and what the batch backends (training, scans, CUDA step paths) cover.
    Support,
    /// Print architecture, parameters, weight/state/scratch bytes and MACs per step.
    Inspect {
        model: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DatasetKind {
    Fsdd,
    Ecg,
    Basicmotions,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum SplitKind {
    Train,
    Test,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum BackendKind {
    /// The multithreaded CPU reference.
    Cpu,
    /// The CUDA backend on GPU 0 (NVRTC kernels + cuBLAS).
    Cuda,
    /// The CUDA backend's kernels built for and run on the host (slow; for checking the
    /// CUDA code path where no GPU is).
    CudaEmu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum PathKind {
    /// The training ops (whole-sequence scans) on the backend.
    Scan,
    /// The batched step kernels (CUDA backends only).
    Step,
}

/// `tinyssm --help` of a build without the `cuda` feature, for the commands that need it.
#[cfg(not(feature = "cuda"))]
const NEEDS_CUDA_HELP: &str =
    "Not in this build: needs the `cuda` feature (rebuild tinyssm-tools with default features)";

/// The one-line error of a command that needs the batch crate, in a build without it.
#[cfg(not(feature = "cuda"))]
fn needs_cuda(cmd: &str) -> ToolError {
    ToolError::Usage(format!(
        "`tinyssm {cmd}` needs the `cuda` feature: rebuild with default features (cargo build -p tinyssm-tools)"
    ))
}

/// Runs `$body` with `$dev` bound to the chosen CUDA device (the step path).
#[cfg(feature = "cuda")]
macro_rules! with_device {
    ($kind:expr, $dev:ident => $body:expr) => {
        match $kind {
            BackendKind::Cpu => {
                return Err(ToolError::Usage(
                    "--path step runs the CUDA step kernels: use --backend cuda or cuda-emu".into(),
                ))
            }
            BackendKind::Cuda => {
                let d = tinyssm_cuda::cuda::CudaDevice::new(0)
                    .map_err(|e| ToolError::Usage(e.to_string()))?;
                let $dev = &d;
                $body
            }
            BackendKind::CudaEmu => {
                let dir = tinyssm_cuda::cuda::kernels::cache_dir()
                    .unwrap_or_else(std::env::temp_dir)
                    .join("emu");
                let d = tinyssm_cuda::cuda::emu::EmuDevice::build(&dir)
                    .map_err(|e| ToolError::Usage(e.to_string()))?;
                let $dev = &d;
                $body
            }
        }
    };
}

/// Runs `$body` with `$be` bound to the chosen backend.
#[cfg(feature = "cuda")]
macro_rules! with_backend {
    ($kind:expr, $be:ident => $body:expr) => {
        match $kind {
            BackendKind::Cpu => {
                let $be = &tinyssm_cuda::Cpu;
                $body
            }
            BackendKind::Cuda => {
                let dev =
                    tinyssm_cuda::cuda::open().map_err(|e| ToolError::Usage(e.to_string()))?;
                let $be = &dev;
                $body
            }
            BackendKind::CudaEmu => {
                let dir = tinyssm_cuda::cuda::kernels::cache_dir()
                    .unwrap_or_else(std::env::temp_dir)
                    .join("emu");
                let emu = tinyssm_cuda::cuda::emu::EmuDevice::build(&dir)
                    .map_err(|e| ToolError::Usage(e.to_string()))?;
                let dev = tinyssm_cuda::cuda::CudaBackend::new(emu);
                let $be = &dev;
                $body
            }
        }
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The model a calibration runs: a .tssm as stored, or the checkpoint converted at f32
/// (ranges come from the source model's own float step).
fn calibration_source(src: &std::path::Path) -> Result<tinyssm_host::AlignedBuf, ToolError> {
    let blob = if tinyssm_tools::intq::is_tssm(src) {
        // Checked (preamble first, then the whole model) and loaded once.
        return Ok(tinyssm_host::ModelFile::open(src)?.into_buf());
    } else {
        convert_dir(src, WeightDtype::F32)?
    };
    Ok(tinyssm_host::AlignedBuf::from_bytes(&blob))
}

/// Whether `p` is a zip archive (a PyTorch checkpoint such as aTENNuate's `weights.pt`).
fn is_zip(p: &Path) -> bool {
    std::fs::File::open(p)
        .and_then(|mut f| {
            let mut m = [0u8; 4];
            std::io::Read::read_exact(&mut f, &mut m).map(|_| m)
        })
        .is_ok_and(|m| m == *b"PK\x03\x04")
}

/// Refuses audio a network was not trained on: not mono, or not at its rate.
fn check_net_audio(
    cfg: &tinyssm_core::net::NetConfig,
    p: &Path,
    rate: u32,
    ch: usize,
) -> Result<(), ToolError> {
    let want = cfg.sample_rate;
    if ch != cfg.d_input as usize || (want != 0 && rate != want) {
        return Err(ToolError::Usage(format!(
            "{}: this network takes {}-channel audio at {want} Hz (its training rate), the file has {ch} channel(s) at {rate} Hz; resample it first",
            p.display(),
            cfg.d_input
        )));
    }
    Ok(())
}

/// One line on a streamed network run: output, delay, speed, buffers.
fn net_report(
    net: &tinyssm_core::net::Net<'_, '_>,
    out: &str,
    samples: usize,
    rate: u32,
    secs: f64,
) -> String {
    let plan = net.plan();
    let audio = samples as f64 / rate.max(1) as f64;
    let macs = net.config().macs_per_period() as f64 * rate as f64 / plan.period.max(1) as f64;
    format!(
        "wrote {out} ({samples} samples, {audio:.2} s): streamed with a delay of {} samples ({:.1} ms) in {secs:.2} s ({:.1}x real time, {:.2} G MAC/s of {:.3} G MAC per second of audio); state {} f32 + {} counters, scratch {} f32",
        plan.delay,
        plan.delay as f64 * 1000.0 / rate.max(1) as f64,
        audio / secs.max(1e-9),
        macs * audio / secs.max(1e-9) / 1e9,
        macs / 1e9,
        plan.state_len,
        plan.counters_len,
        plan.scratch_len
    )
}

fn run(cli: Cli) -> Result<(), ToolError> {
    match cli.cmd {
        Cmd::Convert {
            src,
            out,
            weights,
            compute,
            calibrate,
            all_static,
            no_compact,
            small_f32,
        } => {
            if all_static && compute != ComputeArg::W8a8 {
                return Err(ToolError::Usage(
                    "--all-static is for --compute w8a8 --calibrate".into(),
                ));
            }
            if compute == ComputeArg::Int && is_zip(&src) {
                return Err(ToolError::Usage(format!(
                    "{}: a multi-rate network (aTENNuate's checkpoint) has float and w8a8 steps only, no integer-only one",
                    src.display()
                )));
            }
            if compute == ComputeArg::Int {
                if !matches!(weights, Weights::F32 | Weights::Int8) {
                    return Err(ToolError::Usage(
                        "--compute int stores its matrices as int8 (with integer requantization): use --weights int8 or leave --weights out".into(),
                    ));
                }
                let Some(spec) = calibrate else {
                    return Err(ToolError::Usage(
                        "--compute int needs a calibration set to choose its fixed-point formats: add --calibrate fsdd[:N] | ecg[:N] | basicmotions[:N] | <file.wav|file.csv>".into(),
                    ));
                };
                let buf = calibration_source(&src)?;
                let fm = tinyssm_core::Model::parse(buf.as_bytes())
                    .map_err(tinyssm_host::HostError::Invalid)?;
                let streams = tinyssm_tools::intq::calibration_streams(&fm, &spec)?;
                let ranges = tinyssm_tools::intq::calibrate(&fm, &streams)?;
                let blob = tinyssm_tools::intq::to_int(&fm, &ranges)?;
                io::atomic_write(&out, |f| std::io::Write::write_all(f, &blob))?;
                eprintln!(
                    "wrote {} ({} bytes): integer-only, calibrated on {} streams ({} steps)",
                    out.display(),
                    blob.len(),
                    streams.len(),
                    ranges.steps
                );
                return Ok(());
            }
            if calibrate.is_some() && compute != ComputeArg::W8a8 {
                return Err(ToolError::Usage(
                    "--calibrate is for --compute int and --compute w8a8 (static activation scales); a float step has no activation scales to calibrate"
                        .into(),
                ));
            }
            let dtype = match weights {
                Weights::F32 => DType::F32,
                Weights::F16 => DType::F16,
                Weights::Bf16 => DType::Bf16,
                Weights::Int8 => DType::I8,
                Weights::Int4 => DType::I4,
            };
            let compute = match compute {
                ComputeArg::Float => Compute::Float,
                ComputeArg::W8a8 => Compute::W8a8,
                ComputeArg::Int => Compute::Int,
            };
            let spec = QuantSpec {
                weights: dtype,
                compute,
                compact: !no_compact,
            };
            spec.validate()?;
            let small = small_f32.unwrap_or(0);
            if small > 0 && (!matches!(dtype, DType::I8 | DType::I4) || calibrate.is_some()) {
                return Err(ToolError::Usage(
                    "--small-f32 is for --weights int8|int4 without --calibrate".into(),
                ));
            }
            let is_tssm = tinyssm_tools::intq::is_tssm(&src);
            // aTENNuate's PyTorch checkpoint: its network as a format 1.7 blob.
            let net_src = if is_zip(&src) {
                if calibrate.is_some() {
                    return Err(ToolError::Usage(
                        "--calibrate: static activation scales for a network are not built; its w8a8 takes dynamic scales (leave --calibrate out)".into(),
                    ));
                }
                Some(tinyssm_tools::import::atennuate::import(&src)?.to_blob()?)
            } else {
                None
            };
            let blob = if let Some(b) = net_src {
                if dtype == DType::F32 && compute == Compute::Float {
                    b
                } else {
                    tinyssm_tools::quantize::requantize_blob_mixed(&b, spec, small)?
                }
            } else if let Some(cal) = &calibrate {
                let buf = calibration_source(&src)?;
                let fm = tinyssm_core::Model::parse(buf.as_bytes())
                    .map_err(tinyssm_host::HostError::Invalid)?;
                let streams = tinyssm_tools::intq::calibration_streams(&fm, cal)?;
                let samples = tinyssm_tools::w8a8::sample(&fm, &streams)?;
                let mut plan = tinyssm_tools::w8a8::plan(fm.config(), &samples, |r| {
                    tinyssm_tools::quantize::matrix_dtype(r, dtype) == DType::I8
                })?;
                if all_static {
                    for m in &mut plan {
                        m.is_static = true;
                    }
                }
                eprintln!(
                    "w8a8 activation scales calibrated on {} streams ({} steps):\n{}",
                    streams.len(),
                    samples.steps,
                    tinyssm_tools::w8a8::describe(&plan)
                );
                tinyssm_tools::quantize::requantize_static(&fm, spec, &plan)?
            } else if is_tssm {
                let mf = ModelFile::open(&src)?;
                tinyssm_tools::quantize::requantize_mixed(&mf.model(), spec, small)?
            } else if matches!(dtype, DType::F32 | DType::F16) && compute == Compute::Float {
                let w = if dtype == DType::F16 {
                    WeightDtype::F16
                } else {
                    WeightDtype::F32
                };
                convert_dir(&src, w)?
            } else {
                tinyssm_tools::quantize::requantize_blob_mixed(
                    &convert_dir(&src, WeightDtype::F32)?,
                    spec,
                    small,
                )?
            };
            io::atomic_write(&out, |f| std::io::Write::write_all(f, &blob))?;
            let mf = ModelFile::open(&out)?;
            let s = inspect::summarize(&mf.model());
            eprintln!(
                "wrote {} ({} bytes): {} with {} layers, {} parameters",
                out.display(),
                blob.len(),
                s.architecture,
                s.n_layers,
                s.parameters
            );
            Ok(())
        }
        Cmd::Run {
            model,
            tokens,
            text,
            csv,
            wav,
            out,
            out_wav,
            reference_kernels,
            state_in,
            state_out,
        } => {
            let mf = ModelFile::open(&model)?;
            let mut m = mf.model();
            if reference_kernels {
                m = m.with_kernels(Kernels::Reference);
            }
            if m.config().net().is_some() {
                // Every tensor's view resolved once: a network reads its tensors per frame.
                let mut views = vec![tinyssm_core::Weights::EMPTY; m.n_tensors()];
                let mv = m.with_views(&mut views).map_err(HostError::from)?;
                let net = mv
                    .net()
                    .ok_or(HostError::Step(tinyssm_core::StepError::Internal))?;
                if tokens.is_some() || text.is_some() || csv.is_some() {
                    return Err(ToolError::Usage(format!(
                        "{}: this model is a multi-rate network over a waveform: give --wav",
                        model.display()
                    )));
                }
                if state_in.is_some() || state_out.is_some() {
                    return Err(ToolError::Usage(
                        "--state-in/--state-out: a network's stream has no snapshot yet (it runs a whole file)".into(),
                    ));
                }
                let Some(p) = wav else {
                    return Err(ToolError::Usage("give the input: --wav".into()));
                };
                if out.is_none() && out_wav.is_none() {
                    return Err(ToolError::Usage(
                        "give an output: --out-wav (audio) and/or --out (.npy)".into(),
                    ));
                }
                let (rate, ch, x) = io::read_wav(&p)?;
                check_net_audio(net.config(), &p, rate, ch)?;
                let t = std::time::Instant::now();
                let y = tinyssm_tools::import::atennuate::stream_net(&net, &x)
                    .map_err(HostError::from)?;
                let secs = t.elapsed().as_secs_f64();
                if let Some(o) = &out_wav {
                    io::write_wav_f32(o, rate, &y)?;
                }
                if let Some(o) = &out {
                    let d = net.plan().d_output;
                    io::write_f32_npy(o, y.len() / d.max(1), d, &y)?;
                }
                let shown = out_wav
                    .as_ref()
                    .or(out.as_ref())
                    .map(|p| p.display().to_string());
                println!(
                    "{}",
                    net_report(&net, &shown.unwrap_or_default(), x.len(), rate, secs)
                );
                return Ok(());
            }
            let Some(out) = out else {
                return Err(ToolError::Usage("give an output: --out (.npy)".into()));
            };
            if out_wav.is_some() {
                return Err(ToolError::Usage(
                    "--out-wav is for networks that map audio to audio; this model's outputs go to --out (.npy)".into(),
                ));
            }
            let mut runner = Runner::new(m);
            let id = runner.open();
            let d = m.d_output();
            let int = m.int_io().is_some();
            // The stream's starting state: a snapshot, or the initial state.
            let mut int_state = vec![0i32; if int { m.state_len() } else { 0 }];
            if int {
                m.reset_int(&mut int_state).map_err(HostError::from)?;
            }
            if let Some(p) = &state_in {
                let snap = io::read_small(p, m.snapshot_len() as u64, "snapshot")?;
                if int {
                    m.restore_int(&snap, &mut int_state)
                        .map_err(|source| HostError::Snapshot {
                            path: p.clone(),
                            source,
                        })?;
                } else {
                    runner.restore(id, &snap, p)?;
                }
            }
            // Integer-only models: inputs in the model's fixed-point formats (PCM for audio),
            // outputs scaled back to real units.
            let int_run = |x: &[f32], st: &mut Vec<i32>| -> Result<Vec<f32>, ToolError> {
                let (ys, end) = tinyssm_tools::eval::int_stream_from(&m, std::mem::take(st), x)?;
                *st = end;
                let io = m
                    .int_io()
                    .ok_or(HostError::Step(tinyssm_core::StepError::WrongCompute))?;
                let s = 2f32.powi(-(io.output_frac as i32));
                Ok(ys.iter().map(|&v| v as f32 * s).collect())
            };
            let (steps, y) = if int && (tokens.is_some() || text.is_some()) {
                return Err(ToolError::Usage(
                    "integer-only models take vectors or audio (--csv or --wav)".into(),
                ));
            } else if let (true, Some(p)) = (int, &csv) {
                if m.config().front_end.is_some() {
                    return Err(ToolError::Usage(format!(
                        "{}: this integer-only model takes audio (--wav): its features come \
                         from its own integer front end, not from a file",
                        p.display()
                    )));
                }
                let (cols, x) = io::read_csv(p)?;
                check_vectors(&m, cols, p)?;
                (x.len() / cols, int_run(&x, &mut int_state)?)
            } else if let (true, Some(p)) = (int, &wav) {
                let (rate, ch, x) = io::read_wav(p)?;
                match m.config().front_end {
                    Some(c) if ch != 1 || rate != c.sample_rate => {
                        return Err(ToolError::Usage(format!(
                            "{}: this model's front end takes mono audio at {} Hz, the file has {ch} channel(s) at {rate} Hz",
                            p.display(),
                            c.sample_rate
                        )));
                    }
                    Some(_) => {}
                    None => check_vectors(&m, ch, p)?,
                }
                let y = int_run(&x, &mut int_state)?;
                (y.len() / d.max(1), y)
            } else if let Some(p) = tokens {
                let t = io::read_tokens_npy(&p)?;
                check_tokens(&m, &t, &p)?;
                (t.len(), runner.feed_tokens(id, &t)?)
            } else if let Some(s) = text {
                let t = io::text_tokens(&s);
                check_tokens(&m, &t, Path::new("--text"))?;
                (t.len(), runner.feed_tokens(id, &t)?)
            } else if let Some(p) = csv {
                let (cols, x) = io::read_csv(&p)?;
                check_vectors(&m, cols, &p)?;
                (x.len() / cols, runner.feed_vectors(id, &x)?)
            } else if let Some(p) = wav {
                let (rate, ch, x) = io::read_wav(&p)?;
                if let Some(fe) = m.front_end() {
                    // Audio through the model's own front end: one output per frame.
                    let c = fe.config();
                    if ch != 1 || rate != c.sample_rate {
                        return Err(ToolError::Usage(format!(
                            "{}: this model's front end takes mono audio at {} Hz, the file has {ch} channel(s) at {rate} Hz",
                            p.display(),
                            c.sample_rate
                        )));
                    }
                    let y = runner.feed_samples(id, &x)?;
                    (y.len() / d.max(1), y)
                } else {
                    check_vectors(&m, ch, &p)?;
                    (x.len() / ch.max(1), runner.feed_vectors(id, &x)?)
                }
            } else {
                return Err(ToolError::Usage(
                    "give one input: --tokens, --text, --csv or --wav".into(),
                ));
            };
            io::write_f32_npy(&out, steps, d, &y)?;
            eprintln!("wrote {} [{steps}, {d}]", out.display());
            if let Some(p) = &state_out {
                let snap = if int {
                    let mut b = vec![0u8; m.snapshot_len()];
                    m.snapshot_int(&int_state, &mut b)
                        .map_err(|source| HostError::Snapshot {
                            path: p.clone(),
                            source,
                        })?;
                    b
                } else {
                    runner.snapshot(id)?
                };
                io::atomic_write(p, |f| std::io::Write::write_all(f, &snap))?;
                eprintln!(
                    "wrote {} (stream snapshot, {} bytes)",
                    p.display(),
                    snap.len()
                );
            }
            if steps > 0 && d > 0 {
                let last = &y[(steps - 1) * d..];
                let (arg, max) =
                    last.iter()
                        .enumerate()
                        .fold(
                            (0, f32::NEG_INFINITY),
                            |a, (i, &v)| if v > a.1 { (i, v) } else { a },
                        );
                let shown: Vec<String> = last.iter().take(8).map(|v| format!("{v:.4}")).collect();
                eprintln!(
                    "last step: [{}{}], argmax {arg} ({max:.4})",
                    shown.join(", "),
                    if d > 8 { ", ..." } else { "" }
                );
            }
            Ok(())
        }
        Cmd::Denoise {
            checkpoint,
            wav,
            out_wav,
            reference_kernels,
            w8a8,
        } => {
            use tinyssm_tools::import::atennuate;
            let mut m = atennuate::import(&checkpoint)?;
            if w8a8 {
                m = m.w8a8();
            }
            if reference_kernels {
                m = m.with_kernels(Kernels::Reference);
            }
            let t: &atennuate::NetModel = &m;
            let net = tinyssm_core::net::Net::new(&m.cfg, &t).map_err(|e| ToolError::Config {
                path: checkpoint.clone(),
                msg: format!("invalid network: {e}"),
            })?;
            let (rate, ch, x) = io::read_wav(&wav)?;
            check_net_audio(&m.cfg, &wav, rate, ch)?;
            let start = std::time::Instant::now();
            let y = atennuate::stream_net(&net, &x).map_err(HostError::from)?;
            let secs = start.elapsed().as_secs_f64();
            io::write_wav_f32(&out_wav, rate, &y)?;
            println!(
                "{}",
                net_report(&net, &out_wav.display().to_string(), x.len(), rate, secs)
            );
            Ok(())
        }
        Cmd::Generate {
            model,
            prompt,
            tokens,
            temperature,
            seed,
        } => {
            use std::io::Write;
            let mf = ModelFile::open(&model)?;
            let ids = io::text_tokens(&prompt);
            // Each token is printed as it is made (a byte-level model's token is a byte).
            let mut stdout = std::io::stdout().lock();
            let io_err = |e| ToolError::io(std::path::Path::new("<stdout>"), e);
            // The prompt goes out with the first token (nothing is printed for a prompt or
            // model that is refused).
            let mut started = false;
            let mut text = tinyssm_tools::generate::Utf8Stream::default();
            tinyssm_tools::generate::generate_each(
                mf.model(),
                &ids,
                tokens,
                temperature,
                seed,
                |t| {
                    if !started {
                        write!(stdout, "{prompt}").map_err(io_err)?;
                        started = true;
                    }
                    let s = text.push(t.min(255) as u8);
                    if !s.is_empty() {
                        stdout.write_all(s.as_bytes()).map_err(io_err)?;
                        stdout.flush().map_err(io_err)?;
                    }
                    Ok(())
                },
            )?;
            if !started {
                write!(stdout, "{prompt}").map_err(io_err)?;
            }
            writeln!(stdout, "{}", text.finish()).map_err(io_err)?;
            Ok(())
        }
        #[cfg(not(feature = "cuda"))]
        Cmd::Train { .. } => Err(needs_cuda("train")),
        #[cfg(feature = "cuda")]
        Cmd::Train {
            config,
            out,
            backend,
            max_steps,
            seed,
        } => {
            let cfg = tinyssm_cuda::train::TrainConfig::load(&config)
                .map_err(|e| ToolError::Usage(e.to_string()))?;
            let opts = tinyssm_cuda::train::TrainOptions {
                out: out.clone(),
                max_steps,
                seed,
                progress: true,
            };
            let r = with_backend!(backend, be => tinyssm_cuda::train::train(be, &cfg, &opts))
                .map_err(|e| ToolError::Usage(e.to_string()))?;
            eprintln!(
                "trained {} parameters for {} steps ({:.1} samples/s on {}); test accuracy {:.4}; checkpoint {}",
                r.n_params,
                r.steps,
                r.samples_per_second,
                r.backend,
                r.final_test_accuracy,
                r.checkpoint.display()
            );
            Ok(())
        }
        Cmd::Eval {
            models,
            dataset,
            split,
            json,
            layers,
            streams,
            plot,
        } => {
            let split = match split {
                SplitKind::Train => tinyssm_data::Split::Train,
                SplitKind::Test => tinyssm_data::Split::Test,
            };
            if layers || plot.is_some() {
                let ds = match dataset {
                    DatasetKind::Fsdd => "fsdd",
                    DatasetKind::Ecg => "ecg",
                    DatasetKind::Basicmotions => "basicmotions",
                };
                let files: Vec<ModelFile> = models
                    .iter()
                    .map(ModelFile::open)
                    .collect::<Result<_, _>>()?;
                let ms: Vec<_> = files.iter().map(|f| f.model()).collect();
                let inputs = tinyssm_tools::eval::dataset_streams(
                    &ms[0],
                    &models[0],
                    ds,
                    split,
                    streams.max(1),
                )?;
                if let Some(png) = &plot {
                    let refs: Vec<_> = ms.iter().collect();
                    let first = inputs.first().ok_or_else(|| {
                        ToolError::Usage("the dataset split has no streams".into())
                    })?;
                    let traces = tinyssm_tools::eval::stream_outputs(&refs, first)?;
                    let names: Vec<String> =
                        models.iter().map(|p| p.display().to_string()).collect();
                    tinyssm_tools::plot::output_traces(
                        png,
                        &format!(
                            "{ds}: first {} stream, outputs per step",
                            match split {
                                tinyssm_data::Split::Train => "train",
                                tinyssm_data::Split::Test => "test",
                            }
                        ),
                        &names,
                        &traces,
                        ms[0].d_output(),
                    )?;
                    eprintln!("wrote {}", png.display());
                }
                if layers {
                    let mut reports = Vec::new();
                    for (m, p) in ms.iter().zip(&models).skip(1) {
                        let r = tinyssm_tools::eval::layer_snr(&ms[0], &models[0], m, p, &inputs)?;
                        if !json {
                            println!(
                                "{} vs {} ({} streams, {} steps): output SNR {:.1} dB; layer state SNR {}",
                                p.display(),
                                models[0].display(),
                                r.streams,
                                r.steps,
                                r.output_snr_db,
                                r.layer_state_snr_db
                                    .iter()
                                    .enumerate()
                                    .map(|(i, d)| format!("L{i} {d:.1} dB"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            );
                        }
                        reports.push(r);
                    }
                    if json {
                        println!("{}", serde_json::json!({ "layers": reports }));
                    }
                    return Ok(());
                }
            }
            let mut results = Vec::new();
            for p in &models {
                let mf = ModelFile::open(p)?;
                let r = match dataset {
                    DatasetKind::Fsdd => tinyssm_tools::eval::fsdd(&mf.model(), p, split)?,
                    DatasetKind::Basicmotions => {
                        tinyssm_tools::eval::basicmotions(&mf.model(), p, split)?
                    }
                    DatasetKind::Ecg => {
                        if let tinyssm_data::Split::Train = split {
                            return Err(ToolError::Usage(
                                "the ecg dataset is scored on its test split (the last 20% of record 100)".into(),
                            ));
                        }
                        tinyssm_tools::eval::ecg(&mf.model(), p)?
                    }
                };
                if !json {
                    match (&r.accuracy, &r.detection) {
                        (Some(a), _) => println!(
                            "{}: accuracy {:.4} ({}/{}), weight bytes {}, state bytes {}",
                            p.display(),
                            a,
                            r.correct,
                            r.n,
                            r.weight_bytes,
                            r.state_bytes
                        ),
                        (None, Some(d)) => println!(
                            "{}: sensitivity {:.4}, positive predictivity {:.4}, F1 {:.4} (TP {}, FP {}, FN {}), weight bytes {}, state bytes {}",
                            p.display(),
                            d.sensitivity,
                            d.positive_predictivity,
                            d.f1,
                            d.tp,
                            d.fp,
                            d.fn_,
                            r.weight_bytes,
                            r.state_bytes
                        ),
                        _ => {}
                    }
                }
                results.push(r);
            }
            if json {
                let mut v = serde_json::json!({ "models": results });
                if results.len() == 1 {
                    if let Some(a) = results[0].accuracy {
                        v["accuracy"] = serde_json::json!(a);
                    }
                    if let Some(d) = &results[0].detection {
                        v["f1"] = serde_json::json!(d.f1);
                    }
                }
                println!("{v}");
            }
            Ok(())
        }
        #[cfg(not(feature = "cuda"))]
        Cmd::Verify { .. } => Err(needs_cuda("verify")),
        #[cfg(feature = "cuda")]
        Cmd::Verify {
            model,
            dataset,
            all,
            split,
            streams,
            backend,
            path,
            json,
        } => {
            let split = match split {
                SplitKind::Train => tinyssm_data::Split::Train,
                SplitKind::Test => tinyssm_data::Split::Test,
            };
            use tinyssm_tools::eval;
            if let Some(dir) = all {
                let rows =
                    with_device!(backend, dev => eval::verify_all(dev, &dir, split, streams)?);
                if json {
                    println!("{}", serde_json::to_string(&rows).unwrap_or_default());
                } else {
                    print!("{}", eval::all_table(&rows));
                }
                let bad = rows.iter().filter(|r| !r.ok).count();
                return if bad == 0 {
                    Ok(())
                } else {
                    Err(ToolError::Usage(format!(
                        "{bad} of {} models failed or could not be verified",
                        rows.len()
                    )))
                };
            }
            let (Some(model), Some(dataset)) = (model, dataset) else {
                return Err(ToolError::Usage(
                    "give a model and --dataset, or --all DIR".into(),
                ));
            };
            let mf = ModelFile::open(&model)?;
            let m = mf.model();
            if m.config().compute == tinyssm_core::Compute::Int {
                // Integer-only models: the integer step kernels against the core's integer
                // step, bit for bit. `cpu` would compare the core with itself, and the scan
                // (training) ops are float: both are refused with what to use instead.
                if path != PathKind::Step || matches!(backend, BackendKind::Cpu) {
                    return Err(ToolError::Usage(
                        "integer-only models are verified by the integer step kernels, bit for bit against the core: use --path step with --backend cuda (GPU) or --backend cuda-emu (the same kernel source built for and run on the host CPU)".into(),
                    ));
                }
                let data = match dataset {
                    DatasetKind::Fsdd => eval::VerifyData::Fsdd,
                    DatasetKind::Ecg => eval::VerifyData::Ecg,
                    DatasetKind::Basicmotions => eval::VerifyData::Basicmotions,
                };
                let r = with_device!(backend, dev => eval::verify_int_step(dev, &m, data, split, streams)?);
                if json {
                    println!("{}", serde_json::to_string(&r).unwrap_or_default());
                } else {
                    println!(
                        "{}: {} streams, {} steps on {} ({} path, exact): {} values compared, {} differ, max |Δ| {} LSB — {}",
                        model.display(),
                        r.streams,
                        r.steps,
                        r.backend,
                        r.path,
                        r.values,
                        r.differing,
                        r.max_abs_lsb,
                        if r.ok { "ok".to_string() } else { format!("FAILED: first divergence {:?}", r.first_divergence) }
                    );
                }
                return if r.ok {
                    Ok(())
                } else {
                    Err(ToolError::Usage("verification failed".into()))
                };
            }
            let r = match path {
                PathKind::Scan => with_backend!(backend, be => match dataset {
                    DatasetKind::Fsdd => eval::verify_fsdd(be, &m, split, streams)?,
                    DatasetKind::Ecg => eval::verify_ecg(be, &m, streams)?,
                    DatasetKind::Basicmotions => {
                        eval::verify_basicmotions(be, &m, split, streams)?
                    }
                }),
                PathKind::Step => with_device!(backend, dev => match dataset {
                    DatasetKind::Fsdd => eval::verify_fsdd_step(dev, &m, split, streams)?,
                    DatasetKind::Ecg => eval::verify_ecg_step(dev, &m, streams)?,
                    DatasetKind::Basicmotions => {
                        eval::verify_basicmotions_step(dev, &m, split, streams)?
                    }
                }),
            };
            if json {
                println!("{}", serde_json::to_string(&r).unwrap_or_default());
            } else {
                println!(
                    "{}: {} streams, {} steps on {} ({} path, tier {}): max |Δ| {:.3e} ({} ulp), max rel {:.3e}, max scaled {:.3e}, NMSE {:.3e} — {}",
                    model.display(),
                    r.streams,
                    r.steps,
                    r.backend,
                    r.path,
                    match r.tier {
                        tinyssm_cuda::verify::Tier::Exact => "exact".to_string(),
                        tinyssm_cuda::verify::Tier::Float { rel, abs } =>
                            format!("float rel {rel:.0e} abs {abs:.0e}"),
                    },
                    r.max_abs_err,
                    if r.max_ulp == u64::MAX { "NaN".to_string() } else { r.max_ulp.to_string() },
                    r.max_rel_err,
                    r.max_scaled_err,
                    r.nmse,
                    if r.ok { "ok".to_string() } else { format!("FAILED: first divergence {:?}", r.first_divergence) }
                );
            }
            if r.ok {
                Ok(())
            } else {
                Err(ToolError::Usage("verification failed".into()))
            }
        }
        Cmd::Codegen { model, out } => {
            let mf = ModelFile::open(&model)?;
            let src = inspect::codegen(&mf.model(), &model.display().to_string());
            match out {
                Some(p) => io::atomic_write(&p, |f| std::io::Write::write_all(f, src.as_bytes()))?,
                None => print!("{src}"),
            }
            Ok(())
        }
        Cmd::Support => {
            print!(
                "{}\n{}",
                tinyssm_tools::support::markdown(),
                tinyssm_tools::support::NOTES
            );
            Ok(())
        }
        Cmd::Inspect { model, json } => {
            // aTENNuate's PyTorch checkpoint (a zip): its network, as `denoise` runs it.
            if is_zip(&model) {
                let m = tinyssm_tools::import::atennuate::import(&model)?;
                let plan =
                    tinyssm_core::net::NetPlan::new(&m.cfg).map_err(|e| ToolError::Config {
                        path: model.clone(),
                        msg: format!("invalid network: {e}"),
                    })?;
                let s = inspect::summarize_net(&m.cfg, &plan, Some(m.sample_rate));
                return print_summary(&s, json, inspect::render_net);
            }
            let mf = ModelFile::open(&model)?;
            if let Some(s) = inspect::summarize_net_model(&mf.model()) {
                return print_summary(&s, json, inspect::render_net);
            }
            let s = inspect::summarize(&mf.model());
            print_summary(&s, json, inspect::render)
        }
    }
}

/// `inspect`'s output: the summary as JSON, or its text form.
fn print_summary<S: serde::Serialize>(
    s: &S,
    json: bool,
    text: impl FnOnce(&S) -> String,
) -> Result<(), ToolError> {
    if json {
        let j = serde_json::to_string_pretty(s).map_err(|e| ToolError::Usage(e.to_string()))?;
        println!("{j}");
    } else {
        print!("{}", text(s));
    }
    Ok(())
}

fn check_tokens(m: &tinyssm_core::Model<'_>, t: &[u32], src: &Path) -> Result<(), ToolError> {
    let Some(vocab) = m.vocab_size() else {
        return Err(ToolError::Usage(format!(
            "{}: this model takes vectors of {} values (use --csv or --wav)",
            src.display(),
            m.d_input()
        )));
    };
    if let Some((i, tok)) = t.iter().enumerate().find(|(_, &x)| x >= vocab) {
        return Err(ToolError::Usage(format!(
            "{}: token {i} = {tok} is out of range for vocabulary {vocab}",
            src.display()
        )));
    }
    Ok(())
}

fn check_vectors(m: &tinyssm_core::Model<'_>, cols: usize, src: &Path) -> Result<(), ToolError> {
    if m.vocab_size().is_some() {
        return Err(ToolError::Usage(format!(
            "{}: this model takes tokens (use --tokens or --text)",
            src.display()
        )));
    }
    if cols != m.d_input() {
        return Err(ToolError::Usage(format!(
            "{}: {cols} channels per step, the model takes {}",
            src.display(),
            m.d_input()
        )));
    }
    Ok(())
}
