//! The multi-rate engine on small programs: streamed outputs against a direct whole-signal
//! computation written here from the operations' definitions (convolutions of every width
//! and padding, resampling, skips), and random programs that must never panic.

use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::kernels::{Kernels, Weights};
use crate::list::List;
use crate::StepError;

/// Tensors by (operation, role code), all f32.
struct Table(Vec<(u16, u8, Vec<f32>)>, Kernels);

impl<'a> Tensors<'a> for &'a Table {
    fn kernels(&self) -> Kernels {
        self.1
    }
    fn w(&self, layer: Option<u16>, role: Role) -> Result<Weights<'a>, StepError> {
        let l = layer.ok_or(StepError::Internal)?;
        self.0
            .iter()
            .find(|t| t.0 == l && t.1 == role.code())
            .map(|t| Weights::F32(&t.2))
            .ok_or(StepError::Internal)
    }
}

struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// One stream's buffers, sized by a net's plan.
struct Buffers {
    values: Vec<f32>,
    counters: Vec<u32>,
    scratch: Vec<f32>,
}

impl Buffers {
    fn new(net: &Net<'_, '_>) -> Self {
        let p = net.plan();
        Buffers {
            values: vec![0f32; p.state_len],
            counters: vec![0u32; p.counters_len],
            scratch: vec![0f32; p.scratch_len],
        }
    }

    /// The state reset to a fresh stream, and the scratch.
    fn fresh(&mut self, net: &Net<'_, '_>) -> (NetState<'_>, &mut [f32]) {
        let mut st = NetState {
            values: &mut self.values,
            counters: &mut self.counters,
        };
        net.reset(&mut st).unwrap();
        (st, &mut self.scratch)
    }
}

fn table(cfg: &NetConfig, seed: u64) -> Table {
    let mut rng = Rng(seed | 1);
    let mut t = Vec::new();
    for i in 0..cfg.ops().len() {
        cfg.op_tensors(i, |role, (rank, dims)| {
            let n: usize = dims[..rank as usize].iter().map(|&d| d as usize).product();
            t.push((i as u16, role.code(), (0..n).map(|_| rng.f()).collect()));
        });
    }
    Table(t, Kernels::Reference)
}

/// The program over a whole signal `x` (`[T, d]` row-major), each operation on all frames
/// of its level at once, padded at the end as `Net::finish` documents; the first `T`
/// output frames.
fn batch(cfg: &NetConfig, t: &Table, x: &[f32]) -> Vec<f32> {
    let d = cfg.d_input as usize;
    let period = cfg.period() as usize;
    let n_in = x.len() / d;
    let mut len = n_in + cfg.end_pad as usize;
    len = len.div_ceil(period) * period;
    let mut sig = vec![0f32; len * d];
    sig[..x.len()].copy_from_slice(x);
    let (mut w, mut frames) = (d, len);
    let mut skips: Vec<Vec<f32>> = Vec::new();
    let get = |i: usize, r: Role| -> &[f32] {
        match (&t).w(Some(i as u16), r).unwrap() {
            Weights::F32(v) => v,
            _ => unreachable!(),
        }
    };
    for (i, op) in cfg.ops().iter().enumerate() {
        match *op {
            Op::Push => skips.push(sig.clone()),
            Op::PopAdd => {
                let s = skips.pop().unwrap();
                for (a, b) in sig.iter_mut().zip(&s) {
                    *a += b;
                }
            }
            Op::Conv { k, pad, .. } => {
                let (wt, b) = (get(i, Role::ConvW), get(i, Role::ConvB));
                let k = k as usize;
                let mut y = vec![0f32; frames * w];
                for tt in 0..frames {
                    for c in 0..w {
                        let mut acc = b[c];
                        for j in 0..k {
                            let src = tt as isize - pad as isize + j as isize;
                            let v = if src >= 0 && (src as usize) < frames {
                                sig[src as usize * w + c]
                            } else {
                                0.0
                            };
                            acc += v * wt[c * k + j];
                        }
                        y[tt * w + c] = acc;
                    }
                }
                sig = y;
            }
            Op::Block(_) => unreachable!("the batch form here covers the other operations"),
            Op::Down { c_out, r, .. } => {
                let m = get(i, Role::NetDown);
                let (co, r) = (c_out as usize, r as usize);
                let nf = frames / r;
                let mut y = vec![0f32; nf * co];
                for tt in 0..nf {
                    for o in 0..co {
                        let mut acc = 0.0;
                        for j in 0..r * w {
                            acc += m[o * r * w + j] * sig[tt * r * w + j];
                        }
                        y[tt * co + o] = acc;
                    }
                }
                (sig, w, frames) = (y, co, nf);
            }
            Op::Up { c_out, r, .. } => {
                let m = get(i, Role::NetUp);
                let (co, r) = (c_out as usize, r as usize);
                let mut y = vec![0f32; frames * r * co];
                for tt in 0..frames {
                    for o in 0..r * co {
                        let mut acc = 0.0;
                        for c in 0..w {
                            acc += m[o * w + c] * sig[tt * w + c];
                        }
                        y[tt * r * co + o] = acc;
                    }
                }
                (sig, w, frames) = (y, co, frames * r);
            }
        }
    }
    sig.truncate(n_in * w);
    sig
}

fn stream(cfg: &NetConfig, t: &Table, x: &[f32]) -> Vec<f32> {
    let plan = NetPlan::new(cfg).unwrap();
    let m: &Table = t;
    let net = Net::new(cfg, &m).unwrap();
    let mut b = Buffers::new(&net);
    let (mut st, scratch) = b.fresh(&net);
    let mut out = Vec::new();
    let mut sink = |y: &[f32]| -> Result<(), StepError> {
        out.extend_from_slice(y);
        Ok(())
    };
    let d = cfg.d_input as usize;
    for f in x.chunks(d) {
        net.feed(&mut st, scratch, f, &mut sink).unwrap();
    }
    net.finish(&mut st, scratch, &mut sink).unwrap();
    out.truncate(x.len() / d * plan.d_output);
    out
}

fn unet(k1: u32, p1: u32, k2: u32, p2: u32, end_pad: u32) -> NetConfig {
    let ops = [
        Op::Push,
        Op::Conv {
            channels: 2,
            k: k1,
            pad: p1,
        },
        Op::Down {
            c_in: 2,
            c_out: 3,
            r: 2,
        },
        Op::Push,
        Op::Conv {
            channels: 3,
            k: k2,
            pad: p2,
        },
        Op::Down {
            c_in: 3,
            c_out: 4,
            r: 3,
        },
        Op::Conv {
            channels: 4,
            k: 3,
            pad: 1,
        },
        Op::Up {
            c_in: 4,
            c_out: 3,
            r: 3,
        },
        Op::PopAdd,
        Op::Conv {
            channels: 3,
            k: k2,
            pad: p2,
        },
        Op::Up {
            c_in: 3,
            c_out: 2,
            r: 2,
        },
        Op::PopAdd,
        Op::Conv {
            channels: 2,
            k: k1,
            pad: p1,
        },
    ];
    NetConfig {
        d_input: 2,
        end_pad,
        sample_rate: 0,
        ops: List::from_slice(&ops).unwrap(),
    }
}

/// Two levels (factors 2 and 3: period 6), convolutions of widths 1–5 with every padding
/// (causal to fully look-ahead), end padding 0 or 3: streamed = whole-signal, to f32
/// rounding of the same sums in another order (none here: the same order), for lengths
/// that do and do not end on a period.
#[test]
fn streamed_equals_the_whole_signal_for_every_conv_padding() {
    for (k1, k2) in [(1, 3), (2, 4), (3, 3), (5, 2)] {
        for p1 in 0..k1 {
            for p2 in 0..k2 {
                for end_pad in [0, 3] {
                    let cfg = unet(k1, p1, k2, p2, end_pad);
                    let t = table(&cfg, 7 + (k1 * 16 + p1 * 4 + p2) as u64);
                    let plan = NetPlan::new(&cfg).unwrap();
                    assert_eq!(plan.period, 6);
                    for frames in [1usize, 5, 6, 25, 60] {
                        let mut rng = Rng(frames as u64 * 31 + 1);
                        let x: Vec<f32> = (0..frames * 2).map(|_| rng.f()).collect();
                        let (s, b) = (stream(&cfg, &t, &x), batch(&cfg, &t, &x));
                        assert_eq!(s.len(), b.len());
                        for (a, w) in s.iter().zip(&b) {
                            assert!(
                                (a - w).abs() <= 1e-5 * w.abs().max(1.0),
                                "k {k1}/{k2} pad {p1}/{p2} end {end_pad} frames {frames}: {a} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The instrumentation events of a stream (`Sink::op`): every begin is closed by an end of
/// the same operation before another begins (so per-operation counts never overlap), and
/// over a stream and its end every operation runs.
#[test]
fn operation_events_pair_up_and_cover_the_program() {
    struct Events {
        open: Option<usize>,
        seen: Vec<usize>,
        frames: usize,
    }
    impl Sink for Events {
        fn frame(&mut self, _: &[f32]) -> Result<(), StepError> {
            assert_eq!(self.open, None, "a frame out while an operation is open");
            self.frames += 1;
            Ok(())
        }
        fn op(&mut self, i: usize, begin: bool) {
            if begin {
                assert_eq!(self.open, None, "op {i} begins inside op {:?}", self.open);
                self.open = Some(i);
                self.seen[i] += 1;
            } else {
                assert_eq!(self.open, Some(i), "op {i} ends");
                self.open = None;
            }
        }
    }
    let cfg = unet(3, 1, 2, 0, 1);
    let t = table(&cfg, 5);
    let m: &Table = &t;
    let net = Net::new(&cfg, &m).unwrap();
    let mut b = Buffers::new(&net);
    let (mut st, scratch) = b.fresh(&net);
    let mut ev = Events {
        open: None,
        seen: vec![0; cfg.ops().len()],
        frames: 0,
    };
    let mut rng = Rng(3);
    for _ in 0..25 {
        let x = [rng.f(), rng.f()];
        net.feed(&mut st, scratch, &x, &mut ev).unwrap();
    }
    net.finish(&mut st, scratch, &mut ev).unwrap();
    assert_eq!(ev.open, None);
    assert!(ev.seen.iter().all(|&n| n > 0), "{:?}", ev.seen);
    assert!(ev.frames >= 25);
}

/// The delay of the two-level program: its look-ahead, as the plan finds it, reached and
/// never exceeded by the stream's emissions.
#[test]
fn the_plan_delay_bounds_every_emission() {
    let cfg = unet(3, 1, 3, 1, 0);
    let t = table(&cfg, 3);
    let plan = NetPlan::new(&cfg).unwrap();
    let m: &Table = &t;
    let net = Net::new(&cfg, &m).unwrap();
    let mut b = Buffers::new(&net);
    let (mut st, scratch) = b.fresh(&net);
    let (mut emitted, mut worst) = (0usize, 0usize);
    for f in 0..120usize {
        let mut n = 0;
        let mut sink = |_: &[f32]| -> Result<(), StepError> {
            n += 1;
            Ok(())
        };
        net.feed(&mut st, scratch, &[0.5, -0.5], &mut sink).unwrap();
        for p in emitted..emitted + n {
            assert!(f <= p + plan.delay, "output {p} after input {f}");
            worst = worst.max(f - p);
        }
        emitted += n;
    }
    assert_eq!(worst, plan.delay);
    assert!(plan.delay > 0);
}

/// Bad programs are errors, never panics.
#[test]
fn malformed_programs_are_refused() {
    let ok = unet(3, 1, 3, 1, 0);
    let mut ops: Vec<Op> = ok.ops().to_vec();
    let with = |ops: &[Op]| NetConfig {
        d_input: 2,
        end_pad: 0,
        sample_rate: 0,
        ops: List::from_slice(ops).unwrap(),
    };
    assert!(with(&ops).validate().is_ok());
    ops.remove(8); // a PopAdd
    assert!(with(&ops).validate().is_err());
    let mut o2 = ok.ops().to_vec();
    o2[1] = Op::Conv {
        channels: 2,
        k: 3,
        pad: 3,
    };
    assert!(with(&o2).validate().is_err());
    o2[1] = Op::Conv {
        channels: 5,
        k: 3,
        pad: 1,
    };
    assert!(with(&o2).validate().is_err());
    let mut o3 = ok.ops().to_vec();
    o3[2] = Op::Down {
        c_in: 2,
        c_out: 3,
        r: 0,
    };
    assert!(with(&o3).validate().is_err());
    // A period beyond the bound.
    let down = |r| {
        (
            Op::Down {
                c_in: 2,
                c_out: 2,
                r,
            },
            Op::Up {
                c_in: 2,
                c_out: 2,
                r,
            },
        )
    };
    let up = down;
    let ok_deep = [down(64).0, down(64).0, up(64).1, up(64).1];
    assert!(with(&ok_deep).validate().is_ok(), "4096 is the bound");
    let deep = [
        down(64).0,
        down(64).0,
        down(2).0,
        up(2).1,
        up(64).1,
        up(64).1,
    ];
    assert!(with(&deep).validate().is_err());
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Push),
        Just(Op::PopAdd),
        (1u32..4, 0u32..6, 0u32..7).prop_map(|(c, k, p)| Op::Conv {
            channels: c,
            k,
            pad: p
        }),
        (1u32..4, 1u32..4, 0u32..5).prop_map(|(a, b, r)| Op::Down {
            c_in: a,
            c_out: b,
            r
        }),
        (1u32..4, 1u32..4, 0u32..5).prop_map(|(a, b, r)| Op::Up {
            c_in: a,
            c_out: b,
            r
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Random programs: validation and planning never panic; a valid one streams random
    /// input and ends without an error or a panic, one output frame per input frame.
    #[test]
    fn random_programs_never_panic(
        d in 1u32..4,
        end_pad in 0u32..4,
        ops in proptest::collection::vec(op_strategy(), 1..12),
        frames in 0usize..40,
    ) {
        let cfg = NetConfig { d_input: d, end_pad, sample_rate: 0, ops: List::from_slice(&ops).unwrap() };
        if let Ok(plan) = NetPlan::new(&cfg) {
            let t = table(&cfg, 5);
            let mut rng = Rng(9);
            let x: Vec<f32> = (0..frames * d as usize).map(|_| rng.f()).collect();
            let y = stream(&cfg, &t, &x);
            prop_assert_eq!(y.len(), frames * plan.d_output);
        }
    }
}

/// The engine touches exactly its state, counters and scratch: buffers longer than the
/// plan's sizes keep their canaries past the end, through feeding and finishing.
#[test]
fn buffers_are_used_to_their_planned_length_and_no_further() {
    let cfg = unet(3, 1, 4, 2, 1);
    let t = table(&cfg, 11);
    let plan = NetPlan::new(&cfg).unwrap();
    let m: &Table = &t;
    let net = Net::new(&cfg, &m).unwrap();
    const C: f32 = 1234.5;
    let mut values = vec![C; plan.state_len + 64];
    let mut counters = vec![0xdead_beef_u32; plan.counters_len + 16];
    let mut scratch = vec![C; plan.scratch_len + 64];
    let mut st = NetState {
        values: &mut values,
        counters: &mut counters,
    };
    net.reset(&mut st).unwrap();
    let mut sink = |_: &[f32]| -> Result<(), StepError> { Ok(()) };
    for f in 0..50 {
        let x = [f as f32 * 0.1, -0.3];
        net.feed(&mut st, &mut scratch, &x, &mut sink).unwrap();
    }
    net.finish(&mut st, &mut scratch, &mut sink).unwrap();
    assert!(values[plan.state_len..].iter().all(|&v| v == C));
    assert!(counters[plan.counters_len..]
        .iter()
        .all(|&v| v == 0xdead_beef));
    assert!(scratch[plan.scratch_len..].iter().all(|&v| v == C));
    // One value short anywhere is an error, not a panic.
    let mut short = vec![0f32; plan.state_len - 1];
    let mut cn = vec![0u32; plan.counters_len];
    let mut st = NetState {
        values: &mut short,
        counters: &mut cn,
    };
    assert!(matches!(
        net.reset(&mut st),
        Err(StepError::StateTooShort { .. })
    ));
    let mut values = vec![0f32; plan.state_len];
    let mut st = NetState {
        values: &mut values,
        counters: &mut cn,
    };
    net.reset(&mut st).unwrap();
    let mut small = vec![0f32; plan.scratch_len - 1];
    assert!(matches!(
        net.feed(&mut st, &mut small, &[0.0, 0.0], &mut sink),
        Err(StepError::ScratchTooShort { .. })
    ));
    assert!(matches!(
        net.feed(&mut st, &mut scratch, &[f32::NAN, 0.0], &mut sink),
        Err(StepError::NonFiniteInput { index: 0 })
    ));
}

/// A finite input too large for f32 arithmetic overflows inside: no non-finite frame is
/// passed on, the stream is reset and says so, and the frames after it stream exactly as
/// a fresh stream given them.
#[test]
fn an_overflow_resets_the_stream_and_it_recovers() {
    let cfg = unet(3, 1, 3, 0, 0);
    let t = table(&cfg, 21);
    let plan = NetPlan::new(&cfg).unwrap();
    let m: &Table = &t;
    let net = Net::new(&cfg, &m).unwrap();
    let run = |xs: &[[f32; 2]]| -> (Vec<f32>, Vec<usize>) {
        let mut b = Buffers::new(&net);
        let (mut st, scratch) = b.fresh(&net);
        let (mut out, mut overflows) = (Vec::new(), Vec::new());
        for (f, x) in xs.iter().enumerate() {
            let mut sink = |y: &[f32]| -> Result<(), StepError> {
                assert!(
                    y.iter().all(|v| v.is_finite()),
                    "a non-finite frame was passed on"
                );
                out.extend_from_slice(y);
                Ok(())
            };
            match net.feed(&mut st, scratch, x, &mut sink) {
                Ok(()) => {}
                Err(StepError::Overflow) => {
                    overflows.push(f);
                    out.clear();
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        (out, overflows)
    };
    let mut rng = Rng(77);
    let tail: Vec<[f32; 2]> = (0..40).map(|_| [rng.f(), rng.f()]).collect();
    let mut xs = vec![[0.25f32, -0.5]; 3];
    xs.push([3e38, -3e38]);
    // The big frame reaches the output after the network's delay: feed until it overflows.
    xs.extend(std::iter::repeat_n(
        [0.25f32, -0.5],
        plan.delay + plan.period,
    ));
    let (_, overflows) = run(&xs);
    assert!(!overflows.is_empty(), "3e38 did not overflow");
    let last = *overflows.last().unwrap();
    let mut xs = xs[..=last].to_vec();
    xs.extend_from_slice(&tail);
    let (after, o2) = run(&xs);
    assert_eq!(o2, overflows);
    let (fresh, none) = run(&tail);
    assert!(none.is_empty());
    assert_eq!(
        after, fresh,
        "the stream after the reset is not a fresh stream"
    );
}
