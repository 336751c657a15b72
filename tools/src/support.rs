//! The support matrix (`tinyssm support`): every block kind the core registers, with its
//! compute modes and kernels from the core's registry (`tinyssm_core::blocks::KINDS`) and,
//! with the `cuda` feature, what the batch crate covers of it
//! (`tinyssm_cuda::support::for_kind`). ARCHITECTURE.md keeps a copy that
//! `tools/tests/cli.rs` checks against this output.

use std::fmt::Write;

use tinyssm_core::blocks::KINDS;

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "—"
    }
}

/// The matrix as a Markdown table.
pub fn markdown() -> String {
    let mut s = String::new();
    s.push_str(
        "| block kind | float | w8a8 | int | kernels | CPU/CUDA training | batch scan op | CUDA step | CUDA int step |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for k in KINDS {
        let kernels = if k.fast_kernels {
            "reference + fast (own)"
        } else {
            "reference + fast (shared)"
        };
        let built = if k.built { "" } else { " (not built)" };
        let _ = write!(
            s,
            "| `{}`{built} | {} | {} | {} | {kernels} |",
            k.name,
            yes(k.modes.float),
            yes(k.modes.w8a8),
            yes(k.modes.int),
        );
        batch_columns(&mut s, k.name);
        s.push('\n');
    }
    s
}

#[cfg(feature = "cuda")]
fn batch_columns(s: &mut String, kind: &str) {
    let b = tinyssm_cuda::support::for_kind(kind);
    let _ = write!(
        s,
        " {} | {} | {} | {} |",
        yes(b.train),
        b.scan.map_or("—".to_string(), |op| format!("`{op}`")),
        yes(b.step),
        yes(b.step_int),
    );
}

#[cfg(not(feature = "cuda"))]
fn batch_columns(s: &mut String, _kind: &str) {
    s.push_str(" n/a | n/a | n/a | n/a |");
}

/// A note under the table: what the columns mean.
pub const NOTES: &str = "\
float / w8a8 / int: the compute modes the kind's step implements in the core (a model asking
for another is refused at parse). kernels: every kind runs under the scalar reference kernels
and the fast ones; \"own\" means fast kernels of its own beyond the shared matrix products.
training: `tinyssm train` builds it (vector models). batch scan op: the whole-sequence scan op
that the CPU and CUDA backends implement, forward and backward (float compute; w8a8 models are
verified on the step path). CUDA step / int step: the CUDA step paths of `tinyssm verify`
(vector models): float and w8a8 (f32/f16/bf16/int8 matrices) / integer-only. n/a: this build
has no `cuda` feature.
";
