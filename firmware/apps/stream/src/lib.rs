//! The `stream` images: a shipped model hears its embedded inputs, one sample at a time, on
//! the device.
//!
//! - `fsdd-s4d`, `fsdd-s4d-int8`, `fsdd-mamba`, `fsdd-mamba-int8` (float and w8a8): every
//!   FSDD clip through [`Model::step_sample`] (the front end, its window and mel band
//!   ranges resolved once per run) with [`Kernels::Reference`];
//! - `fsdd-s4d-int`, `fsdd-mamba-int` (integer-only): every clip as 16-bit PCM through
//!   [`Model::step_sample_int`];
//! - `ecg-rpeak`, `ecg-rpeak-int8`: the ECG stretch (mV) through [`Model::step`]
//!   with [`Kernels::Reference`], one value per step;
//! - `ecg-rpeak-int` (integer-only): the stretch in the model's input format through
//!   [`Model::step_int`].
//!
//! Each binary embeds its model blob (16-byte aligned, [`tinyssm_core::include_model!`],
//! buffer sizes from `build.rs`) and the inputs (read at build time). Each input runs from
//! the initial state; the image prints, over semihosting, one `run` line per input (bits of
//! the last step's outputs, argmax, count of positive outputs, FNV-1a checksums of the
//! input, of every output and of the final state) and exits 0. Any error, panic or fault
//! exits non-zero. `tests/tests/qemu_fsdd.rs` compares all of it, bit for bit, with the
//! host core. The integer images format no float, so that on a Cortex-M0 they link no
//! soft-float routine.

#![no_std]
#![deny(clippy::undocumented_unsafe_blocks)]

use tinyssm_board::println;
use tinyssm_core::{include_model, Aligned, Input, Kernels, Model};

pub use tinyssm_board;
pub use tinyssm_core;

mod fsdd {
    include!(concat!(env!("OUT_DIR"), "/fsdd.rs"));
}
mod ecg {
    include!(concat!(env!("OUT_DIR"), "/ecg.rs"));
}
pub use ecg::{ECG_INPUT_FRAC, ECG_LEN, ECG_START};
pub use fsdd::FSDD_CLIPS;

/// The FSDD clips, concatenated, as little-endian f32 samples (see `build.rs`).
static FSDD_F32: &Aligned<[u8]> = include_model!(concat!(env!("OUT_DIR"), "/fsdd.f32"));
/// The same samples as little-endian 16-bit PCM.
static FSDD_I16: &Aligned<[u8]> = include_model!(concat!(env!("OUT_DIR"), "/fsdd.i16"));
/// The ECG stretch in mV, little-endian f32.
static ECG_F32: &Aligned<[u8]> = include_model!(concat!(env!("OUT_DIR"), "/ecg.f32"));
/// The ECG stretch in `ecg-rpeak-int`'s input format, little-endian i16.
static ECG_I16: &Aligned<[u8]> = include_model!(concat!(env!("OUT_DIR"), "/ecg.i16"));

/// One image. `stream_app!("fsdd-s4d")` (float or w8a8 FSDD), `stream_app!(int
/// "fsdd-s4d-int")` (integer-only FSDD), `stream_app!(ecg "ecg-rpeak")` and
/// `stream_app!(ecg_int "ecg-rpeak-int")` embed `models/<name>.tssm`, declare its state,
/// scratch and output buffers (sizes computed by `build.rs` from the blob, as `tinyssm
/// codegen` prints them) and an entry point that calls [`tinyssm_board::init`], then the
/// runner, and exits with its result.
#[macro_export]
macro_rules! stream_app {
    ($name:literal) => {
        $crate::stream_app!(@app $name, f32, 0.0, run_fsdd);
    };
    (int $name:literal) => {
        $crate::stream_app!(@app $name, i32, 0, run_fsdd_int);
    };
    (ecg $name:literal) => {
        $crate::stream_app!(@app $name, f32, 0.0, run_ecg);
    };
    (ecg_int $name:literal) => {
        $crate::stream_app!(@app $name, i32, 0, run_ecg_int);
    };
    (@app $name:literal, $t:ty, $zero:expr, $run:ident) => {
        mod config {
            include!(concat!(env!("OUT_DIR"), "/", $name, ".rs"));
        }

        #[$crate::tinyssm_board::entry]
        fn main() -> ! {
            // cortex-m-rt turns these into `&'static mut` borrows, taken once before
            // anything else runs: no `static mut` is touched directly.
            static mut STATE: [$t; config::STATE_LEN] = [$zero; config::STATE_LEN];
            static mut SCRATCH: [$t; config::SCRATCH_LEN] = [$zero; config::SCRATCH_LEN];
            static mut OUT: [$t; config::D_OUTPUT] = [$zero; config::D_OUTPUT];
            // Every tensor's view, resolved once at start-up (`Model::with_views`; none
            // on a board without the RAM for it).
            static mut VIEWS: [$crate::tinyssm_core::Weights<'static>; config::N_VIEWS] =
                [$crate::tinyssm_core::Weights::EMPTY; config::N_VIEWS];
            $crate::tinyssm_board::init();
            let ok = match $crate::open($name, &config::BLOB.0, config::MODEL_CRC32, VIEWS) {
                Some(model) => $crate::$run(&model, STATE, SCRATCH, OUT),
                None => false,
            };
            $crate::tinyssm_board::exit(ok)
        }
    };
}

/// FNV-1a (32-bit) over little-endian bytes.
#[derive(Clone, Copy)]
struct Fnv(u32);

impl Fnv {
    const fn new() -> Self {
        Fnv(0x811c_9dc5)
    }
    fn bytes(mut self, bs: &[u8]) -> Self {
        for &b in bs {
            self.0 = (self.0 ^ b as u32).wrapping_mul(0x0100_0193);
        }
        self
    }
    fn words(self, xs: impl IntoIterator<Item = u32>) -> Self {
        xs.into_iter().fold(self, |h, w| h.bytes(&w.to_le_bytes()))
    }
}

/// A value the report can print: its bits, and whether it is positive / greater.
trait Value: Copy {
    fn bits(self) -> u32;
    fn gt(self, other: Self) -> bool;
    fn positive(self) -> bool;
}

impl Value for f32 {
    fn bits(self) -> u32 {
        self.to_bits()
    }
    fn gt(self, other: Self) -> bool {
        self > other
    }
    fn positive(self) -> bool {
        self > 0.0
    }
}

impl Value for i32 {
    fn bits(self) -> u32 {
        self as u32
    }
    fn gt(self, other: Self) -> bool {
        self > other
    }
    fn positive(self) -> bool {
        self > 0
    }
}

/// Parses the blob, checks it is the one the buffers were sized for, prints the header,
/// and resolves every tensor into `views` once (the steps then read their tensors from it;
/// an empty `views`: the steps look each tensor up).
pub fn open<'m>(
    name: &str,
    blob: &'m [u8],
    crc: u32,
    views: &'m mut [tinyssm_core::Weights<'m>],
) -> Option<Model<'m>> {
    let fpscr = tinyssm_board::fpscr();
    println!(
        "tinyssm stream on {}: {name}.tssm ({} bytes), fpscr {}",
        tinyssm_board::BOARD,
        blob.len(),
        Hex(fpscr)
    );
    let model = match Model::parse(blob) {
        Ok(m) => m.with_kernels(Kernels::Reference),
        Err(e) => {
            println!("error: model: {e}");
            return None;
        }
    };
    if model.crc32() != crc {
        println!(
            "error: model crc {:#010x}, built for {crc:#010x}",
            model.crc32()
        );
        return None;
    }
    println!("crc32 {:#010x}", model.crc32());
    if views.is_empty() {
        return Some(model);
    }
    match model.with_views(views) {
        Ok(m) => Some(m),
        Err(e) => {
            println!("error: views: {e}");
            None
        }
    }
}

/// `0x…` or `none`.
struct Hex(Option<u32>);

impl core::fmt::Display for Hex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v:#010x}"),
            None => f.write_str("none"),
        }
    }
}

/// What one input's run accumulates.
struct Run {
    input: Fnv,
    outputs: Fnv,
    steps: u32,
    positive: u32,
}

impl Run {
    fn new() -> Self {
        Run {
            input: Fnv::new(),
            outputs: Fnv::new(),
            steps: 0,
            positive: 0,
        }
    }
    fn output<T: Value>(&mut self, out: &[T]) {
        self.steps += 1;
        self.positive += out.iter().filter(|y| y.positive()).count() as u32;
        self.outputs = self.outputs.words(out.iter().map(|y| y.bits()));
    }
    /// The report line: `run <input> samples <n> steps <s> input_fnv <h> outputs_fnv <h>
    /// state_fnv <h> checksum <h> argmax <i> positive <p> last <h>,<h>,...`
    fn print<T: Value>(self, input: &str, samples: usize, out: &[T], state: &[T]) {
        let best = out
            .iter()
            .enumerate()
            .fold(0, |b, (i, y)| if y.gt(out[b]) { i } else { b });
        let state_bits = state.iter().map(|y| y.bits());
        println!(
            "run {input} samples {samples} steps {} input_fnv {:#010x} outputs_fnv {:#010x} \
             state_fnv {:#010x} checksum {:#010x} argmax {best} positive {} last {}",
            self.steps,
            self.input.0,
            self.outputs.0,
            Fnv::new().words(state_bits.clone()).0,
            self.outputs.words(state_bits).0,
            self.positive,
            Bits(out),
        );
    }
}

/// Comma-separated output bits.
struct Bits<'a, T>(&'a [T]);

impl<T: Value> core::fmt::Display for Bits<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, y) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{:#010x}", y.bits())?;
        }
        Ok(())
    }
}

fn f32_at(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn i16_at(b: &[u8]) -> i16 {
    i16::from_le_bytes([b[0], b[1]])
}

/// The embedded clips as (name, byte range of their f32 samples).
fn clips(elem: usize) -> impl Iterator<Item = (&'static str, usize, usize)> {
    FSDD_CLIPS.iter().scan(0usize, move |at, &(name, n)| {
        let start = *at;
        *at += n * elem;
        Some((name, start, n))
    })
}

fn done(ok: bool) -> bool {
    if ok {
        println!("done");
    }
    ok
}

/// Every FSDD clip through a float or w8a8 model ([`Model::step_sample`]).
pub fn run_fsdd(
    model: &Model<'_>,
    state: &mut [f32],
    scratch: &mut [f32],
    out: &mut [f32],
) -> bool {
    let (ns, no) = (model.state_len(), model.d_output());
    // The front end resolved once, with its window and mel band ranges computed once
    // (the FSDD models: a 200-sample window and 40 bands); bit-identical to
    // the per-frame window of `Model::step_sample` without it, which the host side runs.
    let Some(fe) = model.front_end() else {
        println!("error: the model takes no audio");
        return false;
    };
    let mut wbuf = [0f32; 288];
    let fe = match fe.window_table(&mut wbuf).and_then(|t| fe.with_window(&t)) {
        Ok(fe) => fe,
        Err(e) => {
            println!("error: window table: {e}");
            return false;
        }
    };
    for (name, start, n) in clips(4) {
        if let Err(e) = model.reset(state) {
            println!("error: reset: {e}");
            return false;
        }
        let mut run = Run::new();
        for b in FSDD_F32.0[start..start + 4 * n].chunks_exact(4) {
            run.input = run.input.bytes(b);
            match model.step_sample(&fe, f32_at(b), state, scratch, out) {
                Ok(true) => run.output(&out[..no]),
                Ok(false) => {}
                Err(e) => {
                    println!("error: step: {e}");
                    return false;
                }
            }
        }
        run.print(name, n, &out[..no], &state[..ns]);
    }
    done(true)
}

/// Every FSDD clip, as 16-bit PCM, through an integer-only model
/// ([`Model::step_sample_int`]).
pub fn run_fsdd_int(
    model: &Model<'_>,
    state: &mut [i32],
    scratch: &mut [i32],
    out: &mut [i32],
) -> bool {
    let (ns, no) = (model.state_len(), model.d_output());
    let Some(fe) = model.front_end_int() else {
        println!("error: the model takes no audio");
        return false;
    };
    for (name, start, n) in clips(2) {
        if let Err(e) = model.reset_int(state) {
            println!("error: reset: {e}");
            return false;
        }
        let mut run = Run::new();
        for b in FSDD_I16.0[start..start + 2 * n].chunks_exact(2) {
            run.input = run.input.bytes(b);
            match model.step_sample_int(&fe, i16_at(b), state, scratch, out) {
                Ok(true) => run.output(&out[..no]),
                Ok(false) => {}
                Err(e) => {
                    println!("error: step: {e}");
                    return false;
                }
            }
        }
        run.print(name, n, &out[..no], &state[..ns]);
    }
    done(true)
}

/// The ECG stretch (mV) through a float or w8a8 model, one value per [`Model::step`].
pub fn run_ecg(model: &Model<'_>, state: &mut [f32], scratch: &mut [f32], out: &mut [f32]) -> bool {
    let (ns, no) = (model.state_len(), model.d_output());
    if let Err(e) = model.reset(state) {
        println!("error: reset: {e}");
        return false;
    }
    let mut run = Run::new();
    for b in ECG_F32.0.chunks_exact(4) {
        run.input = run.input.bytes(b);
        if let Err(e) = model.step(Input::Vector(&[f32_at(b)]), state, scratch, out) {
            println!("error: step: {e}");
            return false;
        }
        run.output(&out[..no]);
    }
    run.print(ecg::NAME, ECG_LEN, &out[..no], &state[..ns]);
    done(true)
}

/// The ECG stretch, in the model's input format, through an integer-only model
/// ([`Model::step_int`]).
pub fn run_ecg_int(
    model: &Model<'_>,
    state: &mut [i32],
    scratch: &mut [i32],
    out: &mut [i32],
) -> bool {
    let (ns, no) = (model.state_len(), model.d_output());
    match model.int_io() {
        Some(io) if io.input_frac == ECG_INPUT_FRAC => {}
        io => {
            println!("error: input format {io:?}, the samples are Q{ECG_INPUT_FRAC}");
            return false;
        }
    }
    if let Err(e) = model.reset_int(state) {
        println!("error: reset: {e}");
        return false;
    }
    let mut run = Run::new();
    for b in ECG_I16.0.chunks_exact(2) {
        run.input = run.input.bytes(b);
        if let Err(e) = model.step_int(&[i16_at(b)], state, scratch, out) {
            println!("error: step: {e}");
            return false;
        }
        run.output(&out[..no]);
    }
    run.print(ecg::NAME, ECG_LEN, &out[..no], &state[..ns]);
    done(true)
}
