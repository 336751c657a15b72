//! The batch columns of the support matrix (`tinyssm support`) agree with the code: the
//! CUDA step packers accept exactly the block kinds `tinyssm_cuda::support` lists, model by
//! model, and every kind the core registers has a row.

use tinyssm_core::{Compute, DType, Model};
use tinyssm_cuda::cuda::step::StepModel;
use tinyssm_cuda::cuda::step_int::StepIntModel;
use tinyssm_cuda::support::for_kind;
use tinyssm_tests::{as_stack, configs, random_blob_mode, repo_root};

#[test]
fn the_float_step_path_packs_exactly_the_listed_kinds() {
    for (name, cfg) in configs::all() {
        let buf = random_blob_mode(&cfg, 7, (DType::F32, Compute::Float)).unwrap();
        let m = Model::parse(buf.as_bytes()).unwrap();
        let kind = m.stack().blocks()[0].name();
        let claimed = for_kind(kind).step && m.d_input() > 0;
        let packed = StepModel::new(&m);
        assert_eq!(
            packed.is_ok(),
            claimed,
            "{name} ({kind}): the step path {} it, the support table says {claimed}",
            if packed.is_ok() { "packs" } else { "refuses" }
        );
    }
}

#[test]
fn the_integer_step_path_packs_every_shipped_integer_model_and_no_float_one() {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("models")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "tssm") {
            continue;
        }
        let file = tinyssm_host::ModelFile::open(&path).unwrap();
        let m = file.model();
        let kind = m.stack().blocks()[0].name();
        let int = m.config().compute == Compute::Int;
        let packed = StepIntModel::new(&m).is_ok();
        assert_eq!(
            packed,
            int && for_kind(kind).step_int,
            "{}: kind {kind}, compute {}",
            path.display(),
            m.config().compute.name()
        );
        if int {
            seen.push(kind);
        }
    }
    for (k, _) in tinyssm_cuda::blocks::KINDS
        .iter()
        .filter(|(_, s)| s.step_int)
    {
        assert!(
            seen.contains(k),
            "no shipped integer-only {k} model checks {k}"
        );
    }
}

#[test]
fn every_registered_kind_has_a_support_row() {
    let table = tinyssm_tools::support::markdown();
    for k in tinyssm_core::blocks::KINDS {
        assert!(
            table.contains(&format!("| `{}` |", k.name)),
            "{} missing from\n{table}",
            k.name
        );
    }
}

/// The step packers read the model's stack (input stage, blocks, head), not its header
/// form: a single-kind model and the same model written as an explicit format 1.5 stack
/// pack into the same kernel parameters and weight buffer.
#[test]
fn the_step_paths_pack_a_model_and_its_stack_form_alike() {
    let mut n = 0;
    for (name, cfg) in configs::all() {
        let stack = as_stack(&cfg);
        let (a, b) = (
            random_blob_mode(&cfg, 7, (DType::F32, Compute::Float)).unwrap(),
            random_blob_mode(&stack, 7, (DType::F32, Compute::Float)).unwrap(),
        );
        let (ma, mb) = (
            Model::parse(a.as_bytes()).unwrap(),
            Model::parse(b.as_bytes()).unwrap(),
        );
        match (StepModel::new(&ma), StepModel::new(&mb)) {
            (Ok(pa), Ok(pb)) => {
                assert_eq!(format!("{pa:?}"), format!("{pb:?}"), "{name}");
                n += 1;
            }
            (Err(ea), Err(eb)) => assert_eq!(ea.to_string(), eb.to_string(), "{name}"),
            (a, b) => panic!("{name}: {:?} vs {:?}", a.is_ok(), b.is_ok()),
        }
    }
    assert!(n >= 2, "only {n} models packed");
    for entry in std::fs::read_dir(repo_root().join("models")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "tssm") {
            continue;
        }
        let file = tinyssm_host::ModelFile::open(&path).unwrap();
        let m = file.model();
        if m.config().compute != Compute::Int {
            continue;
        }
        let cfg = as_stack(m.config());
        // The same tensors under the stack header.
        let blob = tinyssm_host::write_blob(&cfg, |spec| {
            use tinyssm_core::{IntWeights, Weights};
            use tinyssm_host::TensorData;
            Ok::<_, tinyssm_host::HostError>(match m.find(spec.layer, spec.role).unwrap().weights {
                Weights::F32(v) => TensorData::F32(v.to_vec()),
                Weights::Int(IntWeights::I16(v)) => TensorData::I16(v.to_vec()),
                Weights::Int(IntWeights::I32(v)) => TensorData::I32(v.to_vec()),
                Weights::Int(IntWeights::I8R(w)) => TensorData::I8R {
                    q: w.q.to_vec(),
                    rq: w.rq.to_vec(),
                },
                w => panic!("{}: {w:?}", spec.role.name()),
            })
        });
        let Ok(blob) = blob else {
            panic!("{}: {:?}", path.display(), blob.err())
        };
        let buf = tinyssm_host::AlignedBuf::from_bytes(&blob);
        let ms = Model::parse(buf.as_bytes()).unwrap();
        assert_eq!(
            format!("{:?}", StepIntModel::new(&m).unwrap()),
            format!("{:?}", StepIntModel::new(&ms).unwrap()),
            "{}",
            path.display()
        );
    }
}

/// Verify's scan path (`tinyssm_cuda::verify::blob_forward` on the CPU backend) runs a model
/// and its stack form alike, and refuses what it does not run with the reason.
#[test]
fn the_scan_path_runs_a_model_and_its_stack_form_alike() {
    use tinyssm_cuda::verify::blob_forward;
    let mut n = 0;
    for (name, cfg) in configs::all() {
        let stack = as_stack(&cfg);
        let (a, b) = (
            random_blob_mode(&cfg, 3, (DType::F32, Compute::Float)).unwrap(),
            random_blob_mode(&stack, 3, (DType::F32, Compute::Float)).unwrap(),
        );
        let (ma, mb) = (
            Model::parse(a.as_bytes()).unwrap(),
            Model::parse(b.as_bytes()).unwrap(),
        );
        let (time, lens) = (6, [6, 4]);
        let x: Vec<f32> = (0..lens.len() * time * ma.d_input())
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0)
            .collect();
        let (ra, rb) = (
            blob_forward(&tinyssm_cuda::Cpu, &ma, &x, time, &lens),
            blob_forward(&tinyssm_cuda::Cpu, &mb, &x, time, &lens),
        );
        match (ra, rb) {
            (Ok(ya), Ok(yb)) => {
                assert_eq!(ya, yb, "{name}");
                assert_eq!(ya.0[1].len(), 4 * ma.d_output(), "{name}");
                n += 1;
            }
            (Err(ea), Err(eb)) => {
                let e = ea.to_string();
                assert_eq!(e, eb.to_string(), "{name}");
                assert!(
                    e.contains("vector models") || e.contains("verify"),
                    "{name}: {e}"
                );
            }
            (a, b) => panic!("{name}: {:?} vs {:?}", a.is_ok(), b.is_ok()),
        }
    }
    assert!(n >= 1, "the scan path ran no model");
}
