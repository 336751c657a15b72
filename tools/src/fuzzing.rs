//! The bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs`, run with cargo-fuzz on
//! nightly), here so that `tests/tests/fuzz_corpus.rs` replays the committed corpora
//! (`fuzz/corpus/<target>/`) through the same code on stable. Each takes arbitrary bytes and
//! must return, never panic, hang or allocate without bound: what it returns is not checked
//! (errors are the expected outcome for almost every input).

use std::path::Path;

use tinyssm_core::{Aligned, Input, Model};

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// The fuzz targets, by name (the `fuzz/Cargo.toml` binaries and corpus folders).
pub const TARGETS: &[(&str, Body)] = &[
    ("parse", parse),
    ("rwkv_cpp", rwkv_cpp),
    ("csv", csv),
    ("npy", npy),
    ("wav", wav),
    ("safetensors", safetensors),
    ("pth", pth),
];

/// Inputs larger than this are skipped (the readers' limits are tested elsewhere).
pub const MAX_INPUT: usize = 1 << 16;

/// `Model::parse` (and `parse_skip_crc`) of arbitrary bytes; a blob that parses is reset
/// and stepped twice in its compute mode (tokens, vectors or audio samples).
pub fn parse(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    // A 16-byte aligned copy, as a loader or `include_model!` provides.
    let mut buf = Box::new(Aligned([0u8; MAX_INPUT]));
    buf.0[..data.len()].copy_from_slice(data);
    let blob = &buf.0[..data.len()];
    for m in [Model::parse(blob), Model::parse_skip_crc(blob)]
        .into_iter()
        .flatten()
    {
        if m.state_len() > 1 << 20 || m.scratch_len() > 1 << 20 {
            continue;
        }
        if let Some(net) = m.net() {
            // A network streams: two periods of frames, then its end.
            let mut bufs = crate::import::atennuate::NetBuffers::new(net.plan());
            let (mut st, scratch) = bufs.split();
            let x = vec![0.25f32; net.config().d_input as usize];
            let mut sink = |_: &[f32]| Ok(());
            if net.reset(&mut st).is_ok() {
                for _ in 0..2 * net.plan().period.min(4096) {
                    let _ = net.feed(&mut st, scratch, &x, &mut sink);
                }
                let _ = net.finish(&mut st, scratch, &mut sink);
            }
            continue;
        }
        if m.int_io().is_some() {
            let mut st = vec![0i32; m.state_len()];
            let mut sc = vec![0i32; m.scratch_len()];
            let mut out = vec![0i32; m.d_output()];
            let _ = m.reset_int(&mut st);
            let x = vec![1000i16; m.d_input()];
            let fe = m.front_end_int();
            for t in 0..2i16 {
                let _ = m.step_int(&x, &mut st, &mut sc, &mut out);
                if let Some(fe) = &fe {
                    let _ = m.step_sample_int(fe, t * 9000, &mut st, &mut sc, &mut out);
                }
            }
            continue;
        }
        let mut st = vec![0f32; m.state_len()];
        let mut sc = vec![0f32; m.scratch_len()];
        let mut out = vec![0f32; m.d_output()];
        let _ = m.reset(&mut st);
        let x = vec![0.25f32; m.d_input()];
        let fe = m.front_end();
        for t in 0..2u32 {
            let input = if m.vocab_size().is_some() {
                Input::Token(t)
            } else {
                Input::Vector(&x)
            };
            let _ = m.step(input, &mut st, &mut sc, &mut out);
            if let Some(fe) = &fe {
                let _ = m.step_sample(fe, 0.5, &mut st, &mut sc, &mut out);
            }
        }
        let mut snap = vec![0u8; m.snapshot_len()];
        if m.snapshot(&st, &mut snap).is_ok() {
            let _ = m.restore(&snap, &mut st);
        }
    }
}

/// The rwkv.cpp file reader: header, tensor table, and the first tensor's values.
pub fn rwkv_cpp(data: &[u8]) {
    if let Ok(f) = crate::import::rwkv_cpp::RwkvCppFile::parse(data, Path::new("fuzz")) {
        let _ = f.version();
        let (v, d) = (f.n_vocab as usize, f.n_embed as usize);
        let _ = f.get("emb.weight", &[v, d]);
    }
}

/// The CSV reader (`run --csv`, calibration files).
pub fn csv(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tinyssm_host::io::parse_csv(text);
    }
}

/// The `.npy` readers (token ids, float arrays).
pub fn npy(data: &[u8]) {
    let p = Path::new("fuzz.npy");
    let _ = tinyssm_host::io::parse_tokens_npy(data, p);
    let _ = tinyssm_host::io::parse_f32_npy(data, p);
}

/// The WAV reader (`run --wav`, calibration recordings).
pub fn wav(data: &[u8]) {
    let _ = tinyssm_host::io::parse_wav(data, Path::new("fuzz.wav"));
}

/// A safetensors file through the importers' tensor store: every tensor read at its own
/// shape (dtype conversion and the finiteness check included).
pub fn safetensors(data: &[u8]) {
    let files = vec![(Path::new("fuzz.safetensors").to_path_buf(), data.to_vec())];
    if let Ok(store) = crate::import::store::TensorStore::from_files(files) {
        let names: Vec<String> = store.names().map(String::from).collect();
        for n in names {
            if let Some(shape) = store.shape(&n) {
                if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) < Some(1 << 20) {
                    let _ = store.get(&n, &shape);
                }
            }
        }
    }
}

/// A PyTorch checkpoint (zip + pickle) through the `.pth` reader (written to a temporary
/// file: the reader takes a path).
pub fn pth(data: &[u8]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let p = std::env::temp_dir().join(format!(
        "tinyssm-fuzz-{}-{}.pth",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    // A fresh file of ours (never an existing path: `create_new`), removed after.
    let Ok(mut f) = std::fs::File::create_new(&p) else {
        return;
    };
    if std::io::Write::write_all(&mut f, data).is_ok() {
        drop(f);
        let _ = crate::import::pth::read_state_dict(&p);
    }
    let _ = std::fs::remove_file(&p);
}
