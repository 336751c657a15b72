//! The model format's version (what this build reads and writes, and what changed in each
//! minor version). The layout itself is documented in [`crate::format`].

/// The format major version this build reads and writes.
pub const VERSION_MAJOR: u16 = 1;
/// The format minor version this build writes (and the newest it reads).
///
/// - 1.0: the first format.
/// - 1.1: [`crate::Config`] gains `front_end` (an audio front end and its mel filterbank tensor).
///   1.0 blobs are still read (no front end).
/// - 1.2: weight matrices may be bf16, int8 (per-output-channel scales) or int4 (groups of
///   32, f16 scales), laid out as [`crate::DType`] documents; [`crate::Config`] gains `compute`
///   (the step's arithmetic, [`crate::Compute`]). Migration: 1.0 and 1.1 blobs are read as
///   `Compute::Float` and hold only f32/f16 tensors, so they step exactly as before; a
///   1.1 reader refuses 1.2 blobs by their minor version (re-convert with `--weights f32`
///   or `f16` for an older reader).
/// - 1.3: integer-only models: [`crate::Compute::Int`], the dtypes [`crate::DType::I16`],
///   [`crate::DType::I32`] and [`crate::DType::I8R`], and the roles `int.plan`,
///   `int.layer_plan` and `frontend.window` that only such models have. Migration: nothing
///   changes for float and w8a8 models (1.0–1.2 blobs read as before); a 1.2 reader
///   refuses 1.3 blobs by their minor version.
/// - 1.4: w8a8 matrices with a calibrated static activation scale, [`crate::DType::I8S`].
///   Migration: the writer still writes 1.3 for every blob that holds no `I8S` tensor (all
///   other blobs are unchanged, byte for byte, and a 1.3 reader keeps reading them); a 1.3
///   reader refuses static-scale w8a8 blobs by their minor version (re-convert without
///   `--calibrate` for dynamic scales).
/// - 1.5: explicit stacks, [`crate::Arch::Stack`]: an input stage, a layer table of up to
///   [`crate::blocks::MAX_BLOCK_CONFIGS`] block configurations of any registered kinds
///   (mixed per layer), and a head; the gated MLP block kind. Migration: none — the
///   single-kind forms of 1.0–1.4 are unchanged, the writer keeps writing them (1.3, or 1.4
///   with static w8a8 scales) for every model that is one block configuration throughout,
///   so those blobs stay byte-identical; a 1.4 reader refuses stack blobs by their minor
///   version. A 1.0–1.4 header holding the stack variant is malformed.
/// - 1.6: compact float tensors for small flash: a sparse mel filterbank
///   ([`crate::frontend::FrontEndConfig::filter_nnz`]: each band's non-zero bins only),
///   and the block kinds' compact encodings ([`crate::Config::is_compact`]): S4D's `dA` in
///   Q1.15 ([`crate::DType::I16`] in a float or w8a8 model), `C·dB` as int8 rows with one
///   scale per channel ([`crate::DType::I8`]; a mode tensor's rows are its channels,
///   [`crate::TensorSpec::rows_cols`]), `D` and the output bias f16. Migration: none — the
///   writer keeps the 1.2–1.5 header layout (no `filter_nnz`) and minor for every blob
///   without these encodings (byte-identical, as before); a 1.5 reader refuses 1.6 blobs by
///   their minor version (re-convert with `--no-compact` for one).
pub const VERSION_MINOR: u16 = 7;
/// The minor version written for blobs that use no 1.4 feature.
pub const VERSION_MINOR_BASE: u16 = 3;

/// The stream snapshot format version this build writes and reads
/// ([`crate::snapshot`]): 1, the first.
pub const SNAPSHOT_VERSION: u16 = 1;
