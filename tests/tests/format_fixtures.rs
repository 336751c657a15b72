//! Format fixtures of every 1.x minor from 1.2 on, each written by the commit that
//! introduced that minor, with the outputs that commit's runtime gave on a fixed input
//! (tests/fixtures/format/README.md says which commit and command made each file). Every
//! blob must still parse and give the recorded outputs bit for bit: through the reference
//! kernels always, and through the fast kernels wherever their arithmetic has not changed
//! since (see [`Fast::LastBits`] for the one place it has).

use std::path::PathBuf;

use tinyssm_core::{Compute, DType, Kernels, Model};
use tinyssm_host::{AlignedBuf, Runner};
use tinyssm_tests::fixtures;

fn dir() -> PathBuf {
    fixtures().join("format")
}

/// The blob's bytes, after checking the minor version in its header (bytes 6..8, LE).
fn blob(name: &str, minor: u16) -> Vec<u8> {
    let b = std::fs::read(dir().join(name)).unwrap();
    assert_eq!(&b[4..6], &1u16.to_le_bytes(), "{name}: major version");
    assert_eq!(
        u16::from_le_bytes([b[6], b[7]]),
        minor,
        "{name}: fixture is format 1.{minor}"
    );
    b
}

/// The fixed input every fixture was run on (48 steps of 3 channels).
fn input() -> Vec<f32> {
    let text = std::fs::read_to_string(dir().join("s4d-input.csv")).unwrap();
    let (cols, x) = tinyssm_host::io::parse_csv(&text).unwrap();
    assert_eq!((cols, x.len()), (3, 48 * 3));
    x
}

/// The outputs recorded by the old `tinyssm run` (an f32 `.npy`, so exact).
fn recorded(name: &str) -> Vec<u32> {
    let (shape, y) = tinyssm_host::io::read_f32_npy(&dir().join(name)).unwrap();
    assert_eq!(shape, [48, 4], "{name}");
    y.iter().map(|v| v.to_bits()).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn run(m: Model<'_>, x: &[f32]) -> Vec<f32> {
    let mut r = Runner::new(m);
    let id = r.open();
    r.feed_vectors(id, x).unwrap()
}

/// How a fixture's outputs through the fast kernels compare with the recording.
#[derive(Clone, Copy, PartialEq)]
enum Fast {
    /// Bit for bit.
    Exact,
    /// Within `1e-5 · max|y|`: the writing commit's fast f32 dot summed a short row (fewer
    /// than 32 terms: this model's 16) in four accumulators of four lanes; since f534179
    /// ("short fast dots inline") it sums it in one accumulator of four lanes, so float
    /// compute over bf16/int8/int4 rows differs from the 1.2 recording in the last bits
    /// (about 2 ulp, measured). The blob is read the same; the reference kernels, whose
    /// arithmetic did not change, still match bit for bit.
    LastBits,
}

/// A float or w8a8 fixture: parses as format 1.`minor` with the expected compute mode and
/// matrix dtype, and steps to the outputs that the writing commit's `tinyssm run
/// --reference-kernels` recorded, bit for bit, and to those of its `tinyssm run` (fast
/// kernels) as `fast` says.
fn check_float(stem: &str, minor: u16, compute: Compute, matrix: DType, fast: Fast) {
    let b = blob(&format!("{stem}.tssm"), minor);
    let buf = AlignedBuf::from_bytes(&b);
    let m = Model::parse(buf.as_bytes()).unwrap();
    assert_eq!(m.format_minor(), minor, "{stem}");
    assert_eq!(m.config().compute, compute, "{stem}");
    let dtypes: Vec<DType> = (0..m.n_tensors())
        .map(|i| m.tensor(i).unwrap().dtype)
        .collect();
    assert!(dtypes.contains(&matrix), "{stem}: no {matrix:?} tensor");
    let x = input();
    let reference = run(m.with_kernels(Kernels::Reference), &x);
    assert_eq!(
        bits(&reference),
        recorded(&format!("{stem}.ref.out.npy")),
        "{stem}: reference kernels"
    );
    let y = run(m.with_kernels(Kernels::Fast), &x);
    let want = recorded(&format!("{stem}.out.npy"));
    match fast {
        Fast::Exact => assert_eq!(bits(&y), want, "{stem}: fast kernels"),
        Fast::LastBits => {
            let want: Vec<f32> = want.into_iter().map(f32::from_bits).collect();
            let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
            let err = y
                .iter()
                .zip(&want)
                .fold(0f32, |a, (p, q)| a.max((p - q).abs()));
            println!("{stem}: fast kernels max |y - recorded| {err:e} (max |y| {scale})");
            assert!(err <= 1e-5 * scale, "{stem}: fast kernels differ by {err}");
        }
    }
}

#[test]
fn format_1_2_bf16() {
    check_float(
        "s4d-glu-prenorm-bf16-v1.2",
        2,
        Compute::Float,
        DType::Bf16,
        Fast::LastBits,
    );
}

#[test]
fn format_1_2_int8() {
    check_float(
        "s4d-glu-prenorm-int8-v1.2",
        2,
        Compute::Float,
        DType::I8,
        Fast::LastBits,
    );
}

#[test]
fn format_1_2_int4() {
    check_float(
        "s4d-glu-prenorm-int4-v1.2",
        2,
        Compute::Float,
        DType::I4,
        Fast::LastBits,
    );
}

#[test]
fn format_1_2_w8a8_dynamic() {
    check_float(
        "s4d-glu-prenorm-w8a8-v1.2",
        2,
        Compute::W8a8,
        DType::I8,
        Fast::Exact,
    );
}

#[test]
fn format_1_4_w8a8_static() {
    check_float(
        "s4d-glu-prenorm-w8a8s-v1.4",
        4,
        Compute::W8a8,
        DType::I8S,
        Fast::Exact,
    );
}

/// `x · 2^frac` rounded (ties away from zero) and saturated to `i16`: how the writing
/// commit's `tinyssm_tools::eval::int_stream` fed vector inputs to an integer-only model.
fn to_i16(x: f32, frac: u32) -> i16 {
    (x as f64 * 2f64.powi(frac as i32))
        .round()
        .clamp(-32768.0, 32767.0) as i16
}

/// The integer-only fixture (format 1.3): the raw i32 outputs of every step and the final
/// raw state, as recorded, in both kernel sets.
#[test]
fn format_1_3_integer_only() {
    let stem = "s4d-glu-prenorm-int-v1.3";
    let b = blob(&format!("{stem}.tssm"), 3);
    let buf = AlignedBuf::from_bytes(&b);
    let m = Model::parse(buf.as_bytes()).unwrap();
    assert_eq!(m.format_minor(), 3);
    assert_eq!(m.config().compute, Compute::Int);
    // The recording: two comment lines with the I/O formats, 48 rows of 4 outputs, a
    // comment, one row with the final state.
    let text = std::fs::read_to_string(dir().join(format!("{stem}.out.csv"))).unwrap();
    let mut lines = text.lines();
    let io = m.int_io().unwrap();
    assert_eq!(
        lines.next().unwrap(),
        format!(
            "# input_frac {}, output_frac {}",
            io.input_frac, io.output_frac
        )
    );
    let ints = |l: &str| -> Vec<i32> { l.split(',').map(|v| v.parse().unwrap()).collect() };
    let rows: Vec<&str> = lines.filter(|l| !l.starts_with('#')).collect();
    assert_eq!(rows.len(), 49);
    let want_out: Vec<i32> = rows[..48].iter().flat_map(|l| ints(l)).collect();
    let want_state = ints(rows[48]);
    assert_eq!(want_out.len(), 48 * 4);

    let x = input();
    for k in [Kernels::Fast, Kernels::Reference] {
        let m = m.with_kernels(k);
        let mut st = vec![0i32; m.state_len()];
        let mut sc = vec![0i32; m.scratch_len()];
        let mut o = vec![0i32; m.d_output()];
        m.reset_int(&mut st).unwrap();
        let mut q = vec![0i16; m.d_input()];
        let mut ys = Vec::new();
        for row in x.chunks_exact(m.d_input()) {
            for (qv, &v) in q.iter_mut().zip(row) {
                *qv = to_i16(v, io.input_frac);
            }
            m.step_int(&q, &mut st, &mut sc, &mut o).unwrap();
            ys.extend_from_slice(&o);
        }
        assert_eq!(ys, want_out, "{stem}: outputs, {k:?} kernels");
        assert_eq!(st, want_state, "{stem}: final state, {k:?} kernels");
    }
}
