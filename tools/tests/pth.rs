//! RWKV PyTorch checkpoints (`.pth`): converted like rwkv.cpp's own converter converts them,
//! and corrupt archives are errors, never panics.

use std::path::{Path, PathBuf};

use tinyssm_core::Model;
use tinyssm_host::{AlignedBuf, Runner};
use tinyssm_tools::{convert_dir, WeightDtype};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn logits(blob: &[u8], tokens: &[u32]) -> Vec<f32> {
    let buf = AlignedBuf::from_bytes(blob);
    let m = Model::parse(buf.as_bytes()).unwrap();
    let mut r = Runner::new(m);
    let id = r.open();
    r.feed_tokens(id, tokens).unwrap()
}

/// Each checkpoint (f32, f16 and bf16 storage; gen_rwkv_pth.py / gen_rwkv6.py) against the
/// FP32 rwkv.cpp file rwkv.cpp's converter made from it: the same model, step for step.
#[test]
fn pth_converts_like_rwkv_cpp_converter() {
    let tokens: Vec<u32> = (0..20).map(|i| (i * 37 + 5) % 64).collect();
    let cases = [
        ("rwkv-pth/rwkv-v4", "rwkv4", false),
        ("rwkv-pth/rwkv-v5.1", "rwkv5.1", false),
        ("rwkv-pth/rwkv-v5.2", "rwkv5.2", true),
        ("rwkv6/rwkv6-tiny", "rwkv6", true),
        ("rwkv-pth/rwkv-v7", "rwkv7", true),
    ];
    for (stem, arch, exact) in cases {
        let pth = fixtures().join(format!("{stem}.pth"));
        let bin = fixtures().join(format!("{stem}-FP32.bin"));
        let a = convert_dir(&pth, WeightDtype::F32).unwrap();
        let b = convert_dir(&bin, WeightDtype::F32).unwrap();
        let buf = AlignedBuf::from_bytes(&a);
        let s = tinyssm_tools::inspect::summarize(&Model::parse(buf.as_bytes()).unwrap());
        assert_eq!(s.architecture, arch, "{stem}");
        if exact {
            // No transcendental transform involved: the blobs must be identical.
            assert!(a == b, "{stem}: blobs differ");
        }
        let (ya, yb) = (logits(&a, &tokens), logits(&b, &tokens));
        let max = ya
            .iter()
            .zip(&yb)
            .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
            .fold(0f32, f32::max);
        println!("{stem}: .pth vs rwkv.cpp file, max rel. logit difference {max:.2e}");
        assert!(max <= 1e-5, "{stem}: {max}");
        // f16 weights from a checkpoint work too.
        assert!(convert_dir(&pth, WeightDtype::F16).is_ok());
    }
}

#[test]
fn corrupt_pth_is_an_error_not_a_panic() {
    let src = fixtures().join("rwkv-pth/rwkv-v5.2.pth");
    let b = std::fs::read(&src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.pth");
    let check = |bytes: &[u8], what: &str| {
        std::fs::write(&p, bytes).unwrap();
        if let Err(e) = convert_dir(&p, WeightDtype::F32) {
            let msg = e.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "{what}: {msg}");
        }
    };
    for n in (4..b.len()).step_by(211) {
        check(&b[..n], "truncated");
    }
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..400 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut c = b.clone();
        let i = 4 + (x as usize) % (c.len() - 4);
        c[i] ^= (x >> 32) as u8 | 1;
        check(&c, "flipped");
    }
    // A truncated archive is an error with a clear message.
    std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    let e = convert_dir(&p, WeightDtype::F32).unwrap_err().to_string();
    assert!(e.contains("PyTorch checkpoint"), "{e}");
}

/// Found by fuzzing (fuzz/regressions/pth/pickle-string-len-oom): an archive whose pickle
/// holds a string opcode claiming 4 GiB made candle-core's reader allocate it; the importer's
/// pre-scan of the pickle refuses it from the lengths, with nothing allocated.
#[test]
fn a_pickle_string_longer_than_the_pickle_is_refused() {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions/pth/pickle-string-len-oom");
    let e = tinyssm_tools::import::pth::read_state_dict(&p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("remain in the pickle"), "{e}");
}

/// Pickle programs written opcode by opcode (protocol 2, the opcodes `torch.save` emits).
mod pickle {
    pub fn s(x: &str) -> Vec<u8> {
        let mut v = vec![b'X'];
        v.extend((x.len() as u32).to_le_bytes());
        v.extend(x.as_bytes());
        v
    }
    pub fn global(m: &str, c: &str) -> Vec<u8> {
        format!("c{m}\n{c}\n").into_bytes()
    }
    pub fn int(i: u8) -> Vec<u8> {
        vec![b'K', i]
    }
    /// `(items…)` as MARK … TUPLE.
    pub fn tup(items: &[Vec<u8>]) -> Vec<u8> {
        let mut v = vec![b'('];
        items.iter().for_each(|i| v.extend(i));
        v.push(b't');
        v
    }
    /// `torch._utils._rebuild_tensor_v2` applied to `args`.
    pub fn rebuild(args: &[Vec<u8>]) -> Vec<u8> {
        let mut v = global("torch._utils", "_rebuild_tensor_v2");
        v.extend(tup(args));
        v.push(b'R');
        v
    }
    /// A storage's persistent id: ("storage", torch.FloatStorage, key, "cpu", n).
    pub fn storage(key: &str, n: u8) -> Vec<u8> {
        let mut v = tup(&[
            s("storage"),
            global("torch", "FloatStorage"),
            s(key),
            s("cpu"),
            int(n),
        ]);
        v.push(b'Q');
        v
    }
    /// The arguments of a `[2, 3]` view of storage "0" with the given strides.
    pub fn view_args(stride: (u8, u8)) -> Vec<Vec<u8>> {
        vec![
            storage("0", 6),
            int(0),
            tup(&[int(2), int(3)]),
            tup(&[int(stride.0), int(stride.1)]),
            vec![0x89],
            {
                let mut d = global("collections", "OrderedDict");
                d.extend([b')', b'R']);
                d
            },
        ]
    }
    /// `{name: value}` as a whole program.
    pub fn state_dict(name: &str, value: &[u8]) -> Vec<u8> {
        let mut v = vec![0x80, 2, b'}', b'('];
        v.extend(s(name));
        v.extend(value);
        v.extend([b'u', b'.']);
        v
    }
}

/// A `torch.save`-shaped archive: `archive/data.pkl` and storage "0" holding 0.0 … 5.0.
fn archive(dir: &Path, pkl: &[u8]) -> PathBuf {
    use std::io::Write;
    let p = dir.join(format!("{:016x}.pth", {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        pkl.hash(&mut h);
        h.finish()
    }));
    let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    let o =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("archive/data.pkl", o).unwrap();
    z.write_all(pkl).unwrap();
    z.start_file("archive/data/0", o).unwrap();
    for i in 0..6 {
        z.write_all(&(i as f32).to_le_bytes()).unwrap();
    }
    z.finish().unwrap();
    p
}

/// A hand-written state dict reads as PyTorch defines it: a transposed view (strides
/// `(1, 2)` over six elements) reads column by column.
#[test]
fn a_strided_tensor_record_reads_as_its_view() {
    use pickle::*;
    let dir = tempfile::tempdir().unwrap();
    let read = |stride| {
        let p = archive(dir.path(), &state_dict("w", &rebuild(&view_args(stride))));
        let sd = tinyssm_tools::import::pth::read_state_dict(&p).unwrap();
        let w = &sd["w"];
        assert_eq!(w.shape, [2, 3]);
        w.data.clone()
    };
    assert_eq!(read((3, 1)), [0., 1., 2., 3., 4., 5.]);
    assert_eq!(read((1, 2)), [0., 2., 4., 1., 3., 5.]);
}

/// Hostile pickles, each refused with a message naming what is wrong. The first was found by
/// fuzzing: a tensor record with three arguments made candle-core's record reader index past
/// them (`rebuild_args` removes the fourth); the importer now reads the records itself and
/// runs only candle's pickle machine, bounded by the pre-scan.
#[test]
fn malformed_tensor_records_and_expanding_pickles_are_refused() {
    use pickle::*;
    let dir = tempfile::tempdir().unwrap();
    let refuse = |pkl: Vec<u8>, want: &str| {
        let p = archive(dir.path(), &pkl);
        let e = tinyssm_tools::import::pth::read_state_dict(&p)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "want `{want}`, got: {e}");
        assert!(!e.contains('\n'), "{e}");
    };
    let args = view_args((3, 1));
    refuse(
        state_dict("w", &rebuild(&args[..3])),
        "tensor `w`: a tensor record with fewer than four arguments",
    );
    let mut short_id = tup(&[s("storage"), global("torch", "FloatStorage")]);
    short_id.push(b'Q');
    let mut a = args.clone();
    a[0] = short_id;
    refuse(state_dict("w", &rebuild(&a)), "malformed storage id");
    let mut a = args.clone();
    a[0] = s("storage");
    refuse(state_dict("w", &rebuild(&a)), "not a persistent id");
    let mut v = global("torch._tensor", "_rebuild_from_type_v2");
    v.extend(tup(&[rebuild(&args)]));
    v.push(b'R');
    refuse(state_dict("w", &v), "without its arguments");
    let mut v = global("torch._utils", "_rebuild_parameter");
    v.extend(tup(&[int(1)]));
    v.push(b'R');
    refuse(state_dict("w", &v), "without its tensor");
    let mut a = args.clone();
    a[3] = tup(&[int(3), int(2)]);
    refuse(state_dict("w", &rebuild(&a)), "reaches past its storage");
    let mut a = args.clone();
    a[3] = tup(&[int(3)]);
    refuse(state_dict("w", &rebuild(&a)), "2 sizes and 1 strides");
    let mut a = args.clone();
    let mut huge = vec![0x8a, 8];
    huge.extend((1u64 << 62).to_le_bytes());
    a[2] = tup(&[huge.clone(), huge]);
    refuse(state_dict("w", &rebuild(&a)), "the size overflows");
    let mut a = args.clone();
    let mut long_storage = tup(&[
        s("storage"),
        global("torch", "FloatStorage"),
        s("0"),
        s("cpu"),
        vec![0x8a, 4, 0, 0, 0, 0x40],
    ]);
    long_storage.push(b'Q');
    a[0] = long_storage;
    refuse(
        state_dict("w", &rebuild(&a)),
        "claims more data than the file holds",
    );
    let mut a = args.clone();
    a[0] = storage("0", 7);
    refuse(
        state_dict("w", &rebuild(&a)),
        "holds 24 bytes, its record claims 28",
    );
    let mut a = args.clone();
    a[0] = storage("nope", 6);
    refuse(state_dict("w", &rebuild(&a)), "storage `archive/data/nope`");
    // LONG1 wider than an i64 (candle shifts each byte by 8·i).
    let mut v = vec![0x8a, 9];
    v.extend([1; 9]);
    refuse(state_dict("w", &v), "9-byte integer");
    // A list doubled through the memo forty times: 2^40 objects from 200 bytes.
    let mut v = vec![0x80, 2, b']', b'q', 0];
    for _ in 0..40 {
        v.extend([b'h', 0, b'h', 0, 0x86, b'q', 0]);
    }
    v.push(b'.');
    refuse(v, "expands to more than");
    // Objects nested 10,000 deep (candle drops, clones and prints them recursively).
    let mut v = vec![0x80, 2, b']'];
    v.extend([0x85; 10_000]);
    v.push(b'.');
    refuse(v, "nests objects more than 100 deep");
}
