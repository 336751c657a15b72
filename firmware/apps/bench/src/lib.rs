//! Instruction-count benchmarks: images that run a piece of work between two **marker
//! functions**, so that the `insn_count` QEMU plugin (`firmware/qemu-plugin/`) counts the
//! instructions executed in between. DWT CYCCNT reads 0 under QEMU; instruction counts are
//! what it can measure, deterministically.
//!
//! - A begin marker is a tiny function with the symbol `tinyssm_begin_<B>`; an end marker
//!   has the symbol `tinyssm_span_<S>__<B>`: span `S` runs from a call of begin marker `B`
//!   to the call of this end marker. Several spans may share a begin marker (a step that
//!   ends a frame and one that does not). The host (`scripts/firmware-bench.sh`) finds the
//!   markers in the symbol table and passes each pair to the plugin as
//!   `span=S:BEGIN-END`. A span counts the begin marker's two instructions, the caller's
//!   instructions between the two calls (argument set-up, the branch to the end marker)
//!   and everything the work calls: a handful of instructions over the work itself.
//! - Markers are naked functions of two instructions (`movs r0, #id; bx lr`, `id` unique
//!   so that no two are merged); on hardware they cost nothing worth measuring.
//! - [`paint_stack`] fills the free stack with a pattern at start-up and
//!   [`stack_high_water`] finds the deepest word overwritten since: the stack high-water
//!   mark, printed over semihosting with the image's other facts.
//!
//! Binaries: `insn-calib` (known instruction sequences for the plugin's own test),
//! `bench-kernels` (matvec kernels), `bench-<model>` (one per shipped spoken-digit model).

#![no_std]
#![deny(clippy::undocumented_unsafe_blocks)]

use tinyssm_board::println;
use tinyssm_core::{include_model, Aligned, Kernels, Model};

pub use tinyssm_board;
pub use tinyssm_core;

/// Defines a begin marker `fn $name()` with the symbol `tinyssm_begin_$name`.
#[macro_export]
macro_rules! begin_marker {
    ($name:ident, $id:literal) => {
        #[unsafe(naked)]
        #[unsafe(export_name = concat!("tinyssm_begin_", stringify!($name)))]
        pub extern "C" fn $name() {
            core::arch::naked_asm!("movs r0, #{id}", "bx lr", id = const $id)
        }
    };
}

/// Defines an end marker `fn $name()` for span `$span` begun by begin marker `$begin`,
/// with the symbol `tinyssm_span_$span__$begin`.
#[macro_export]
macro_rules! end_marker {
    ($name:ident, $span:ident, $begin:ident, $id:literal) => {
        #[unsafe(naked)]
        #[unsafe(export_name = concat!(
            "tinyssm_span_", stringify!($span), "__", stringify!($begin)
        ))]
        pub extern "C" fn $name() {
            core::arch::naked_asm!("movs r0, #{id}", "bx lr", id = const $id)
        }
    };
}

/// The word [`paint_stack`] fills the free stack with.
pub const STACK_PAINT: u32 = 0x5afe_c0de;

unsafe extern "C" {
    /// Lowest address of the stack region (cortex-m-rt's `link.x`: the end of the statics).
    static _stack_end: u32;
    /// One past the highest address of the stack region (the initial stack pointer).
    static _stack_start: u32;
}

/// Bytes below the current stack pointer that [`paint_stack`] leaves alone (its own frame).
const PAINT_GAP: usize = 64;

fn stack_bounds() -> (usize, usize) {
    (
        (&raw const _stack_end) as usize,
        (&raw const _stack_start) as usize,
    )
}

fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads the stack pointer into a register; no memory is touched.
    unsafe { core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack)) };
    sp
}

/// Fills the free stack (from the end of the statics up to a little below the current
/// stack pointer) with [`STACK_PAINT`]. Call first thing in `main`.
#[inline(never)]
pub fn paint_stack() {
    let (lo, _) = stack_bounds();
    let top = (stack_pointer() - PAINT_GAP) & !3;
    let mut p = lo;
    while p < top {
        // SAFETY: [lo, top) is the unused part of the stack region that link.x reserves
        // below the stack pointer (no Rust object lives there: the statics end at lo, the
        // live frames lie above top); word-aligned volatile stores, nothing reads them
        // as a Rust value.
        unsafe { core::ptr::write_volatile(p as *mut u32, STACK_PAINT) };
        p += 4;
    }
}

/// The stack high-water mark in bytes: from the top of the stack down to the deepest
/// word that no longer holds [`STACK_PAINT`] (stack that [`paint_stack`] could not paint,
/// i.e. `main`'s own frame, counts as used).
#[inline(never)]
pub fn stack_high_water() -> usize {
    let (lo, hi) = stack_bounds();
    let mut p = lo;
    while p < hi {
        // SAFETY: a volatile, word-aligned read inside the stack region reserved by
        // link.x; the value is only compared.
        let w = unsafe { core::ptr::read_volatile(p as *const u32) };
        if w != STACK_PAINT {
            break;
        }
        p += 4;
    }
    hi - p
}

/// Statics and stack as the linker laid them out: (.data + .bss + .uninit bytes, stack
/// region bytes).
pub fn ram_layout() -> (usize, usize) {
    let (lo, hi) = stack_bounds();
    (lo - 0x2000_0000, hi - lo)
}

/// The FSDD clip as little-endian f32 samples (see `build.rs`).
pub static INPUT_F32: &Aligned<[u8]> = include_model!(concat!(env!("OUT_DIR"), "/input.f32"));
/// The same clip as 16-bit PCM, for the integer-only models.
pub static INPUT_I16: &Aligned<[u8]> = include_model!(concat!(env!("OUT_DIR"), "/input.i16"));
/// Name of the embedded FSDD recording.
pub const CLIP: &str = env!("TINYSSM_FW_CLIP");

begin_marker!(begin_clip_ref, 10);
end_marker!(end_clip_ref, clip_ref, begin_clip_ref, 11);
begin_marker!(begin_step_ref, 12);
end_marker!(end_frame_ref, frame_ref, begin_step_ref, 13);
end_marker!(end_sample_ref, sample_ref, begin_step_ref, 14);
begin_marker!(begin_clip_fast, 20);
end_marker!(end_clip_fast, clip_fast, begin_clip_fast, 21);
begin_marker!(begin_step_fast, 22);
end_marker!(end_frame_fast, frame_fast, begin_step_fast, 23);
end_marker!(end_sample_fast, sample_fast, begin_step_fast, 24);
begin_marker!(begin_clip_int, 30);
end_marker!(end_clip_int, clip_int, begin_clip_int, 31);
begin_marker!(begin_step_int, 32);
end_marker!(end_frame_int, frame_int, begin_step_int, 33);
end_marker!(end_sample_int, sample_int, begin_step_int, 34);

/// One model image: `model_app!("fsdd-s4d")` embeds `models/fsdd-s4d.tssm`, declares its
/// buffers (sizes from `build.rs`) and an entry point that calls [`run_model`].
#[macro_export]
macro_rules! model_app {
    ($name:literal) => {
        mod config {
            include!(concat!(env!("OUT_DIR"), "/", $name, ".rs"));
        }

        #[$crate::tinyssm_board::entry]
        fn main() -> ! {
            // cortex-m-rt turns these into `&'static mut` borrows, taken once.
            static mut STATE: [u32; config::STATE_LEN] = [0; config::STATE_LEN];
            static mut SCRATCH: [u32; config::SCRATCH_LEN] = [0; config::SCRATCH_LEN];
            static mut OUT: [u32; config::D_OUTPUT] = [0; config::D_OUTPUT];
            // Every tensor's view, resolved once by `Model::with_views`.
            static mut VIEWS: [$crate::tinyssm_core::Weights<'static>; config::N_TENSORS] =
                [$crate::tinyssm_core::Weights::EMPTY; config::N_TENSORS];
            $crate::paint_stack();
            let ok = $crate::run_model(
                $name,
                &config::BLOB.0,
                config::MODEL_CRC32,
                config::INT,
                config::SAMPLE_RATE,
                STATE,
                SCRATCH,
                OUT,
                VIEWS,
            );
            $crate::tinyssm_board::exit(ok)
        }
    };
}

/// The spans of one pass over the clip.
struct Marks {
    clip: (extern "C" fn(), extern "C" fn()),
    step: extern "C" fn(),
    frame: extern "C" fn(),
    sample: extern "C" fn(),
}

const MARKS_REF: Marks = Marks {
    clip: (begin_clip_ref, end_clip_ref),
    step: begin_step_ref,
    frame: end_frame_ref,
    sample: end_sample_ref,
};
const MARKS_FAST: Marks = Marks {
    clip: (begin_clip_fast, end_clip_fast),
    step: begin_step_fast,
    frame: end_frame_fast,
    sample: end_sample_fast,
};
const MARKS_INT: Marks = Marks {
    clip: (begin_clip_int, end_clip_int),
    step: begin_step_int,
    frame: end_frame_int,
    sample: end_sample_int,
};

/// Streams the clip through a float or w8a8 model with kernels `k`, every call of
/// `step_sample` (the front end and its window resolved once) between markers. Returns (frames, argmax of the last frame).
fn pass_float(
    model: &Model<'_>,
    m: &Marks,
    state: &mut [f32],
    scratch: &mut [f32],
    out: &mut [f32],
) -> Result<(u32, usize), tinyssm_core::StepError> {
    model.reset(state)?;
    // The window computed once (bit-identical features; see `FrontEnd::with_window`).
    // The window (200 values) and the mel band ranges (2 × 40).
    let mut wbuf = [0f32; 288];
    let fe = model
        .front_end()
        .ok_or(tinyssm_core::StepError::WrongInputKind)?;
    let table = fe.window_table(&mut wbuf)?;
    // The front end resolved once for the stream (`Model::step_sample`).
    let fe = fe.with_window(&table)?;
    let mut frames = 0;
    (m.clip.0)();
    for c in INPUT_F32.0.chunks_exact(4) {
        let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        (m.step)();
        let r = model.step_sample(&fe, x, state, scratch, out);
        match r {
            Ok(true) => {
                (m.frame)();
                frames += 1;
            }
            Ok(false) => (m.sample)(),
            Err(e) => return Err(e),
        }
    }
    (m.clip.1)();
    let out = &out[..model.d_output()];
    let best = out
        .iter()
        .enumerate()
        .fold(0, |b, (i, y)| if *y > out[b] { i } else { b });
    Ok((frames, best))
}

/// [`pass_float`] for an integer-only model (`step_sample_int` on 16-bit PCM).
fn pass_int(
    model: &Model<'_>,
    state: &mut [i32],
    scratch: &mut [i32],
    out: &mut [i32],
) -> Result<(u32, usize), tinyssm_core::StepError> {
    let m = &MARKS_INT;
    model.reset_int(state)?;
    let fe = model
        .front_end_int()
        .ok_or(tinyssm_core::StepError::WrongInputKind)?;
    let mut frames = 0;
    (m.clip.0)();
    for c in INPUT_I16.0.chunks_exact(2) {
        let x = i16::from_le_bytes([c[0], c[1]]);
        (m.step)();
        let r = model.step_sample_int(&fe, x, state, scratch, out);
        match r {
            Ok(true) => {
                (m.frame)();
                frames += 1;
            }
            Ok(false) => (m.sample)(),
            Err(e) => return Err(e),
        }
    }
    (m.clip.1)();
    let out = &out[..model.d_output()];
    let best = out
        .iter()
        .enumerate()
        .fold(0, |b, (i, y)| if *y > out[b] { i } else { b });
    Ok((frames, best))
}

/// Runs one model image: the clip through the model (float and w8a8 models: once with
/// `Kernels::Reference`, once with `Kernels::Fast`; integer-only models once), then prints
/// what the host needs besides the plugin's counts: samples, frames, the sample rate,
/// buffer bytes, statics, stack high-water mark. `false` on any error. The model reads its
/// tensors from `views` (resolved once, `Model::with_views`).
#[allow(clippy::too_many_arguments)]
pub fn run_model<'v>(
    name: &str,
    blob: &'v [u8],
    crc: u32,
    int: bool,
    sample_rate: u32,
    state: &mut [u32],
    scratch: &mut [u32],
    out: &mut [u32],
    views: &'v mut [tinyssm_core::Weights<'v>],
) -> bool {
    let samples = if int {
        INPUT_I16.0.len() / 2
    } else {
        INPUT_F32.0.len() / 4
    };
    println!(
        "tinyssm bench on {}: {name}.tssm ({} bytes) on {CLIP} ({samples} samples)",
        tinyssm_board::BOARD,
        blob.len()
    );
    if samples == 0 {
        println!("error: no clip embedded (the build found no FSDD recording)");
        return false;
    }
    let model = match Model::parse(blob) {
        Ok(m) => m,
        Err(e) => {
            println!("error: model: {e}");
            return false;
        }
    };
    if model.crc32() != crc {
        println!(
            "error: model crc {:#010x}, built for {crc:#010x}",
            model.crc32()
        );
        return false;
    }
    let model = match model.with_views(views) {
        Ok(m) => m,
        Err(e) => {
            println!("error: views: {e}");
            return false;
        }
    };
    let words = state.len() + scratch.len() + out.len();
    let result = if int {
        let (s, c, o) = (as_i32(state), as_i32(scratch), as_i32(out));
        pass_int(&model, s, c, o).map(|r| [("int", r)])
    } else {
        let (s, c, o) = (as_f32(state), as_f32(scratch), as_f32(out));
        let r = pass_float(&model.with_kernels(Kernels::Reference), &MARKS_REF, s, c, o).and_then(
            |r| {
                let f = pass_float(&model.with_kernels(Kernels::Fast), &MARKS_FAST, s, c, o)?;
                Ok([("ref", r), ("fast", f)])
            },
        );
        match r {
            Ok([a, b]) => {
                report_pass(a);
                Ok([b])
            }
            Err(e) => Err(e),
        }
    };
    match result {
        Ok([r]) => report_pass(r),
        Err(e) => {
            println!("error: step: {e}");
            return false;
        }
    }
    let (statics, stack_region) = ram_layout();
    println!("samples {samples}");
    println!("sample_rate {sample_rate}");
    println!("buffer_bytes {}", words * 4);
    println!("statics_bytes {statics}");
    println!("stack_region_bytes {stack_region}");
    println!("stack_high_water_bytes {}", stack_high_water());
    println!("done");
    true
}

fn report_pass((kernels, (frames, argmax)): (&str, (u32, usize))) {
    println!("pass {kernels} frames {frames} argmax {argmax}");
}

fn as_f32(x: &mut [u32]) -> &mut [f32] {
    // SAFETY: u32 and f32 have the same size and alignment and every bit pattern is a
    // valid f32; the borrow is exclusive and its lifetime carried over.
    unsafe { core::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<f32>(), x.len()) }
}

fn as_i32(x: &mut [u32]) -> &mut [i32] {
    // SAFETY: as in `as_f32`, for i32.
    unsafe { core::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<i32>(), x.len()) }
}
