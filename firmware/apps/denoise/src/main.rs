//! The `denoise` image: a multi-rate network blob (format 1.7: aTENNuate's speech denoiser,
//! `tinyssm convert weights.pt --weights int8 --compute w8a8`) hears an embedded excerpt one
//! sample at a time through [`tinyssm_core::net::Net::feed`], then ends the stream
//! ([`tinyssm_core::net::Net::finish`]), in static buffers sized by `build.rs` from the
//! blob's plan. It runs the excerpt twice from the initial state, with
//! [`Kernels::Reference`] and with the fast kernels, each between instruction-count
//! markers (spans `net_ref` and `net_fast`), and prints per run one `run` line: the kernel
//! set (and, per operation, its own work between two more markers: spans `op<i>`), samples
//! in and out, FNV-1a checksums of every output's bits (the outputs aligned
//! with the input) and of the state after the last input (values and counters), and the bits of the first and last outputs; then the buffers'
//! sizes and the stack high-water marks (the parse's, and the stream's from there on). `tests/tests/qemu_denoise.rs` compares the
//! reference run with the host's, bit for bit. Any error exits non-zero.

#![no_std]
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks)]

use tinyssm_board::println;
use tinyssm_core::net::{Net, NetState, Sink};
use tinyssm_core::{Kernels, Model, StepError, Weights};
use tinyssm_fw_bench::{begin_marker, end_marker};

mod config {
    include!(concat!(env!("OUT_DIR"), "/net.rs"));
}

begin_marker!(begin_net_ref, 100);
end_marker!(end_net_ref, net_ref, begin_net_ref, 101);
begin_marker!(begin_net_fast, 102);
end_marker!(end_net_fast, net_fast, begin_net_fast, 103);
// Per operation: `op_b<i>` / `op_e<i>` around its own work on each frame, and the tables
// `OP_BEGIN`, `OP_END` (span `op<i>`; `scripts/denoise-bench.sh` sums them per layer).
include!(concat!(env!("OUT_DIR"), "/markers.rs"));

/// FNV-1a (32-bit) over little-endian words.
#[derive(Clone, Copy)]
struct Fnv(u32);

impl Fnv {
    const fn new() -> Self {
        Fnv(0x811c_9dc5)
    }
    fn word(mut self, w: u32) -> Self {
        for b in w.to_le_bytes() {
            self.0 = (self.0 ^ b as u32).wrapping_mul(0x0100_0193);
        }
        self
    }
}

/// Outputs kept for the report: the first and last few.
const SHOWN: usize = 4;

/// What one run reports.
struct Run {
    /// Outputs aligned with the input (the stream's end emits up to a whole period more:
    /// the reference's zero padding, not part of the signal).
    limit: usize,
    outputs: usize,
    /// The state (values, then counters) after the last input, before the end.
    state: Fnv,
    fnv: Fnv,
    first: [u32; SHOWN],
    last: [u32; SHOWN],
}

impl Sink for Run {
    fn frame(&mut self, y: &[f32]) -> Result<(), StepError> {
        self.take(y);
        Ok(())
    }
    #[inline(always)]
    fn op(&mut self, i: usize, begin: bool) {
        let t = if begin { &OP_BEGIN } else { &OP_END };
        if let Some(f) = t.get(i) {
            f();
        }
    }
}

impl Run {
    fn take(&mut self, y: &[f32]) {
        for v in y {
            if self.outputs == self.limit {
                return;
            }
            let b = v.to_bits();
            if self.outputs < SHOWN {
                self.first[self.outputs] = b;
            }
            self.last[self.outputs % SHOWN] = b;
            self.outputs += 1;
            self.fnv = self.fnv.word(b);
        }
    }
}

/// Streams the input through `net` from its initial state and ends the stream.
fn stream(
    net: &Net<'_, '_>,
    st: &mut NetState<'_>,
    scratch: &mut [f32],
    input: &[f32],
    run: &mut Run,
) -> Result<(), StepError> {
    net.reset(st)?;
    for x in input.chunks_exact(1) {
        net.feed(st, scratch, x, run)?;
    }
    let state = st
        .values
        .iter()
        .map(|v| v.to_bits())
        .chain(st.counters.iter().copied())
        .fold(Fnv::new(), Fnv::word);
    net.finish(st, scratch, run)?;
    run.state = state;
    Ok(())
}

fn run(
    model: &Model<'_>,
    name: &str,
    values: &mut [f32],
    counters: &mut [u32],
    scratch: &mut [f32],
    input: &[f32],
) -> bool {
    let Some(net) = model.net() else {
        println!("error: the blob is not a network");
        return false;
    };
    let mut st = NetState { values, counters };
    let mut r = Run {
        limit: input.len(),
        outputs: 0,
        state: Fnv::new(),
        fnv: Fnv::new(),
        first: [0; SHOWN],
        last: [0; SHOWN],
    };
    let res = if model.kernels() == Kernels::Reference {
        begin_net_ref();
        let res = stream(&net, &mut st, scratch, input, &mut r);
        end_net_ref();
        res
    } else {
        begin_net_fast();
        let res = stream(&net, &mut st, scratch, input, &mut r);
        end_net_fast();
        res
    };
    if let Err(e) = res {
        println!("error: {name}: {e}");
        return false;
    }
    // The last outputs in stream order.
    let n = r.outputs;
    let last: [u32; SHOWN] = core::array::from_fn(|i| r.last[(n + i) % SHOWN]);
    println!(
        "run {name} samples {} outputs {n} fnv {:#010x} state {:#010x} first {:08x} {:08x} {:08x} {:08x} last {:08x} {:08x} {:08x} {:08x}",
        input.len(),
        r.fnv.0,
        r.state.0,
        r.first[0],
        r.first[1],
        r.first[2],
        r.first[3],
        last[0],
        last[1],
        last[2],
        last[3]
    );
    n == input.len()
}

#[cortex_m_rt::entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` borrows, taken once before anything
    // else runs: no `static mut` is touched directly.
    static mut VALUES: [f32; config::STATE_LEN] = [0.0; config::STATE_LEN];
    static mut COUNTERS: [u32; config::COUNTERS_LEN] = [0; config::COUNTERS_LEN];
    static mut SCRATCH: [f32; config::SCRATCH_LEN] = [0.0; config::SCRATCH_LEN];
    // Every tensor's view, resolved once (`Model::with_views`).
    static mut VIEWS: [Weights<'static>; config::N_TENSORS] = [Weights::EMPTY; config::N_TENSORS];
    tinyssm_fw_bench::paint_stack();
    tinyssm_board::init();
    let blob = &config::BLOB.0;
    if blob.is_empty() {
        println!(
            "error: built without a network (set TINYSSM_FW_NET_BLOB and TINYSSM_FW_NET_INPUT)"
        );
        tinyssm_board::exit(false);
    }
    let input: &[f32] = match bytemuck::try_cast_slice::<u8, f32>(&config::INPUT.0) {
        Ok(x) => x,
        Err(_) => {
            println!("error: input is not whole f32 samples");
            tinyssm_board::exit(false);
        }
    };
    println!(
        "tinyssm denoise on {}: network blob ({} bytes), {} input samples",
        tinyssm_board::BOARD,
        blob.len(),
        input.len()
    );
    let model = match Model::parse(blob) {
        Ok(m) if m.crc32() == config::MODEL_CRC32 => m,
        Ok(m) => {
            println!("error: model crc {:#010x}, built for another", m.crc32());
            tinyssm_board::exit(false);
        }
        Err(e) => {
            println!("error: model: {e}");
            tinyssm_board::exit(false);
        }
    };
    let model = match model.with_views(VIEWS) {
        Ok(m) => m,
        Err(e) => {
            println!("error: views: {e}");
            tinyssm_board::exit(false);
        }
    };
    println!(
        "crc32 {:#010x} compute {} period {} delay {}",
        model.crc32(),
        model.config().compute.name(),
        config::PERIOD,
        config::DELAY
    );
    // The stack the parse took; then the stream's own, painted afresh.
    let parse_stack = tinyssm_fw_bench::stack_high_water();
    tinyssm_fw_bench::paint_stack();
    let mut ok = true;
    let runs = [
        (config::RUN_REFERENCE, Kernels::Reference),
        (config::RUN_FAST, Kernels::default()),
    ];
    for k in runs.iter().filter(|r| r.0).map(|r| r.1) {
        let name = if k == Kernels::Reference {
            "reference"
        } else {
            "fast"
        };
        ok &= run(
            &model.with_kernels(k),
            name,
            VALUES,
            COUNTERS,
            SCRATCH,
            input,
        );
    }
    println!(
        "ram state {} B counters {} B scratch {} B views {} B stack {} B (parse {} B, stream {} B)",
        4 * config::STATE_LEN,
        4 * config::COUNTERS_LEN,
        4 * config::SCRATCH_LEN,
        core::mem::size_of::<[Weights<'static>; config::N_TENSORS]>(),
        parse_stack.max(tinyssm_fw_bench::stack_high_water()),
        parse_stack,
        tinyssm_fw_bench::stack_high_water()
    );
    tinyssm_board::exit(ok)
}
