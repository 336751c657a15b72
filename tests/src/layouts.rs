//! A text dump of the canonical layout of every test configuration (and its integer-only,
//! front-end and option variants): tensor specs in order, buffer sizes, input and output
//! widths, or the validation error. `tests/tests/layouts.rs` compares it with
//! `tests/fixtures/layouts-1x.txt`, recorded from the code before the block-stack
//! refactor: a regression fixture that proves format 1.x layouts did not move.

use std::fmt::Write;

use tinyssm_core::frontend::{FrontEndConfig, MelScale, Window};
use tinyssm_core::{Arch, Compute, Config};

/// The configurations dumped: every test configuration, each with its compute modes,
/// and the vector models with a front end.
pub fn variants() -> Vec<(String, Config)> {
    let fe = FrontEndConfig {
        sample_rate: 8000,
        frame_len: 200,
        hop: 80,
        n_fft: 256,
        n_mels: 0,
        f_min: 0.0,
        f_max: 4000.0,
        window: Window::Hann,
        mel_scale: MelScale::Htk,
        area_norm: false,
        log_eps: 1e-6,
        filter_nnz: 0,
    };
    use crate::configs::{mamba1_config, mamba2_config, mamba_sensor_config, s4d_config};
    let (m1, m2, s4, ms) = (
        mamba1_config(),
        mamba2_config(),
        s4d_config(),
        mamba_sensor_config(),
    );
    let flips = [
        (
            "mamba1",
            Arch::Mamba1(tinyssm_core::Mamba1Config {
                in_proj_bias: !m1.in_proj_bias,
                conv_bias: !m1.conv_bias,
                out_proj_bias: !m1.out_proj_bias,
                tied_embeddings: !m1.tied_embeddings,
                ..m1
            }),
        ),
        (
            "mamba2",
            Arch::Mamba2(tinyssm_core::Mamba2Config {
                in_proj_bias: !m2.in_proj_bias,
                conv_bias: !m2.conv_bias,
                out_proj_bias: !m2.out_proj_bias,
                tied_embeddings: !m2.tied_embeddings,
                ..m2
            }),
        ),
        (
            "s4d",
            Arch::S4d(tinyssm_core::S4dConfig {
                prenorm: !s4.prenorm,
                glu: !s4.glu,
                final_norm: !s4.final_norm,
                ..s4
            }),
        ),
        (
            "mamba-sensor",
            Arch::MambaSensor(tinyssm_core::MambaSensorConfig {
                in_proj_bias: !ms.in_proj_bias,
                conv_bias: !ms.conv_bias,
                out_proj_bias: !ms.out_proj_bias,
                ..ms
            }),
        ),
    ];
    let mut out = Vec::new();
    for (name, c) in crate::configs::all() {
        for compute in [Compute::Float, Compute::W8a8, Compute::Int] {
            let v = Config { compute, ..c };
            out.push((format!("{name}/{}", compute.name()), v));
            if c.d_input() > 0 {
                let fe = FrontEndConfig {
                    n_mels: c.d_input() as u32,
                    ..fe
                };
                out.push((
                    format!("{name}/{}/frontend", compute.name()),
                    Config {
                        front_end: Some(fe),
                        ..v
                    },
                ));
            }
        }
        // Option flips that change the layout.
        let flipped = flips.iter().find(|(n, _)| *n == name).map(|(_, a)| *a);
        if let Some(arch) = flipped {
            for compute in [Compute::Float, Compute::Int] {
                out.push((
                    format!("{name}/flipped/{}", compute.name()),
                    Config { arch, compute, ..c },
                ));
            }
        }
    }
    out
}

/// The dump of [`variants`].
pub fn dump() -> String {
    let mut s = String::new();
    for (name, c) in variants() {
        let _ = writeln!(s, "== {name}");
        if let Err(e) = c.validate() {
            let _ = writeln!(s, "invalid: {e}");
            continue;
        }
        let z = c.sizes().expect("sizes of a valid config");
        let _ = writeln!(
            s,
            "in {} vocab {:?} out {} | state {} per_layer {} scratch {} model_state {} model_scratch {}",
            c.d_input(),
            c.vocab_size(),
            c.d_output(),
            z.state,
            z.state_per_layer,
            z.scratch,
            z.model_state,
            z.model_scratch
        );
        for i in 0..c.n_tensors() {
            let t = c.tensor_spec(i).expect("spec of every index");
            let _ = writeln!(
                s,
                "{i} {:?} {} {:?}",
                t.layer,
                t.role.name(),
                &t.shape[..t.rank as usize]
            );
        }
        let _ = writeln!(s, "n_tensors {}", c.n_tensors());
    }
    s
}
