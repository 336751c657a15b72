//! The batch columns of the support matrix (`tinyssm support`) agree with the code: the
//! CUDA step packers accept exactly the block kinds `tinyssm_cuda::support` lists, model by
//! model, and every kind the core registers has a row.

use tinyssm_core::{Compute, DType, Model};
use tinyssm_cuda::cuda::step::StepModel;
use tinyssm_cuda::cuda::step_int::StepIntModel;
use tinyssm_cuda::support::{for_kind, STEP_INT_KINDS, STEP_KINDS};
use tinyssm_tests::{configs, random_blob_mode, repo_root};

#[test]
fn the_float_step_path_packs_exactly_the_listed_kinds() {
    for (name, cfg) in configs::all() {
        let buf = random_blob_mode(&cfg, 7, (DType::F32, Compute::Float)).unwrap();
        let m = Model::parse(buf.as_bytes()).unwrap();
        let kind = m.stack().blocks()[0].name();
        let claimed = STEP_KINDS.contains(&kind) && m.d_input() > 0;
        let packed = StepModel::new(&m);
        assert_eq!(
            packed.is_ok(),
            claimed,
            "{name} ({kind}): the step path {} it, the support table says {claimed}",
            if packed.is_ok() { "packs" } else { "refuses" }
        );
        assert_eq!(for_kind(kind).step, STEP_KINDS.contains(&kind));
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
            int && STEP_INT_KINDS.contains(&kind),
            "{}: kind {kind}, compute {}",
            path.display(),
            m.config().compute.name()
        );
        if int {
            seen.push(kind);
        }
    }
    for k in STEP_INT_KINDS {
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
