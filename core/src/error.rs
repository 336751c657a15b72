//! Error types of the core. Small, `Copy`, no allocation; `Display` for humans and
//! `defmt::Format` (feature `defmt`) for firmware logs.

use core::fmt;

/// Why a model blob was rejected by [`crate::Model::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// The blob is shorter than the structure that must be there.
    Truncated { needed: u64, got: u64 },
    /// The first four bytes are not `TSSM`.
    BadMagic,
    /// The format's major version is not one this build reads.
    UnsupportedVersion {
        found_major: u16,
        found_minor: u16,
        supported_major: u16,
    },
    /// The blob does not start on a 16-byte boundary, so tensors cannot be borrowed in place.
    MisalignedBlob,
    /// The CRC-32 stored in the preamble does not match the bytes.
    CrcMismatch { stored: u32, computed: u32 },
    /// The preamble's offsets or lengths are inconsistent with each other or the blob.
    BadLayout,
    /// The postcard-encoded header could not be decoded.
    BadHeader,
    /// A configuration value is out of range; the string names it.
    BadConfig(&'static str),
    /// Sizes derived from the configuration overflow the address space.
    DimensionOverflow,
    /// The tensor table has the wrong number of entries for this configuration.
    TensorCount { expected: u32, found: u32 },
    /// Tensor `index` is not the tensor the layout expects at that position.
    UnexpectedTensor { index: u32 },
    /// Tensor `index` has a shape other than the configuration implies.
    WrongShape { index: u32 },
    /// Tensor `index` has a dtype code this build does not know.
    UnknownDtype { index: u32, code: u8 },
    /// Tensor `index` has a dtype not allowed for its role (e.g. f16 for the SSM `A`).
    DtypeNotAllowed { index: u32, code: u8 },
    /// Tensor `index` has a byte length other than its shape and dtype imply.
    WrongLength { index: u32 },
    /// Tensor `index` lies (partly) outside the data section.
    TensorOutOfBounds { index: u32 },
    /// Tensor `index` does not start on a 16-byte boundary.
    MisalignedTensor { index: u32 },
    /// Tensor `index` overlaps the previous tensor (tensors are stored in order).
    TensorOverlap { index: u32 },
    /// A reserved field (quantization table in format v1) is not empty.
    ReservedNotEmpty,
    /// Bytes follow the data section.
    TrailingBytes,
    /// The model asks a block kind for a compute mode it does not implement.
    ModeUnsupported {
        block: &'static str,
        mode: &'static str,
    },
    /// The model's block kind is not compiled into this build (its cargo feature of
    /// `tinyssm-core` is off).
    KindNotBuilt {
        block: &'static str,
        feature: &'static str,
    },
    /// A block kind that keeps values in the block scratch from one layer to the next
    /// (RWKV v7's layer-0 value residual) in a stack with other block configurations.
    BlockAlone { block: &'static str },
    /// A format 1.5 explicit stack in a build without the `stacks` feature of
    /// `tinyssm-core`.
    StacksNotBuilt,
    /// A format 1.7 multi-rate network in a build without the `net` feature of
    /// `tinyssm-core`.
    NetNotBuilt,
    /// Tensor `index` stores a parameter out of its range (the input bound of a
    /// [`crate::DType::I8S`] matrix must be finite and at least [`crate::format::I8S_MIN_XMAX`]).
    BadValue { index: u32 },
    /// Tensor `index` holds a NaN or an infinity (a weight, a quantization scale or an
    /// input bound): checked on the bit patterns by [`crate::Model::parse`].
    NonFinite { index: u32 },
    /// Tensor `index` holds a value its role forbids: a negative quantization scale or
    /// mel filter weight.
    Negative { index: u32 },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FormatError::*;
        match *self {
            Truncated { needed, got } => {
                write!(f, "model blob truncated: needs {needed} bytes, has {got}")
            }
            BadMagic => write!(f, "not a tinyssm model (bad magic)"),
            UnsupportedVersion { found_major, found_minor, supported_major } => write!(
                f,
                "unsupported model format version {found_major}.{found_minor}; this build reads versions {supported_major}.0 to {supported_major}.{}",
                crate::version::VERSION_MINOR
            ),
            MisalignedBlob => write!(f, "model blob is not 16-byte aligned in memory"),
            CrcMismatch { stored, computed } => write!(
                f,
                "model blob CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            BadLayout => write!(f, "model blob preamble offsets are inconsistent"),
            BadHeader => write!(f, "model header could not be decoded"),
            BadConfig(what) => write!(f, "invalid model configuration: {what}"),
            KindNotBuilt { block, feature } => write!(
                f,
                "block kind `{block}` is not in this build (enable the `{feature}` feature of tinyssm-core)"
            ),
            StacksNotBuilt => write!(
                f,
                "the model is an explicit block stack (format 1.5) and this build reads single-kind models only (enable the `stacks` feature of tinyssm-core)"
            ),
            NetNotBuilt => write!(
                f,
                "the model is a multi-rate network (format 1.7) and this build has no networks (enable the `net` feature of tinyssm-core)"
            ),
            BlockAlone { block } => write!(
                f,
                "invalid model configuration: block kind `{block}` carries values from layer to layer and cannot share a stack with other block configurations"
            ),
            ModeUnsupported { block, mode } => write!(
                f,
                "invalid model configuration: block kind `{block}` has no `{mode}` compute mode"
            ),
            DimensionOverflow => write!(f, "model dimensions overflow"),
            TensorCount { expected, found } => {
                write!(f, "tensor table has {found} entries, the configuration needs {expected}")
            }
            UnexpectedTensor { index } => write!(f, "tensor {index} is not the expected tensor"),
            WrongShape { index } => write!(f, "tensor {index} has the wrong shape"),
            UnknownDtype { index, code } => write!(f, "tensor {index} has unknown dtype code {code}"),
            DtypeNotAllowed { index, code } => {
                write!(f, "tensor {index}: dtype code {code} is not allowed for this tensor")
            }
            WrongLength { index } => write!(f, "tensor {index} byte length does not match its shape"),
            TensorOutOfBounds { index } => write!(f, "tensor {index} lies outside the data section"),
            MisalignedTensor { index } => write!(f, "tensor {index} is not 16-byte aligned"),
            TensorOverlap { index } => write!(f, "tensor {index} overlaps the previous tensor"),
            ReservedNotEmpty => write!(f, "reserved header field is not empty"),
            TrailingBytes => write!(f, "bytes follow the data section"),
            BadValue { index } => write!(
                f,
                "tensor {index} stores an out-of-range parameter (an int8s input bound must be finite and >= 1e-30)"
            ),
            NonFinite { index } => write!(
                f,
                "tensor {index} holds a NaN or infinite value (a weight, scale or bound)"
            ),
            Negative { index } => write!(
                f,
                "tensor {index} holds a negative value where its role allows none (a quantization scale or mel filter weight)"
            ),
        }
    }
}

impl core::error::Error for FormatError {}

#[cfg(feature = "defmt")]
impl defmt::Format for FormatError {
    fn format(&self, f: defmt::Formatter) {
        use FormatError::*;
        match *self {
            Truncated { needed, got } => {
                defmt::write!(f, "truncated: needs {} has {}", needed, got)
            }
            BadMagic => defmt::write!(f, "bad magic"),
            UnsupportedVersion {
                found_major,
                found_minor,
                supported_major,
            } => defmt::write!(
                f,
                "unsupported version {}.{} (reads {}.x)",
                found_major,
                found_minor,
                supported_major
            ),
            MisalignedBlob => defmt::write!(f, "misaligned blob"),
            CrcMismatch { stored, computed } => {
                defmt::write!(f, "crc mismatch {=u32:x} != {=u32:x}", stored, computed)
            }
            BadLayout => defmt::write!(f, "bad layout"),
            BadHeader => defmt::write!(f, "bad header"),
            BadConfig(what) => defmt::write!(f, "bad config: {=str}", what),
            DimensionOverflow => defmt::write!(f, "dimension overflow"),
            TensorCount { expected, found } => {
                defmt::write!(f, "tensor count {} != {}", found, expected)
            }
            UnexpectedTensor { index } => defmt::write!(f, "unexpected tensor {}", index),
            WrongShape { index } => defmt::write!(f, "wrong shape {}", index),
            UnknownDtype { index, code } => defmt::write!(f, "unknown dtype {} at {}", code, index),
            DtypeNotAllowed { index, code } => {
                defmt::write!(f, "dtype {} not allowed at {}", code, index)
            }
            WrongLength { index } => defmt::write!(f, "wrong length {}", index),
            TensorOutOfBounds { index } => defmt::write!(f, "out of bounds {}", index),
            MisalignedTensor { index } => defmt::write!(f, "misaligned tensor {}", index),
            TensorOverlap { index } => defmt::write!(f, "overlap {}", index),
            ReservedNotEmpty => defmt::write!(f, "reserved not empty"),
            TrailingBytes => defmt::write!(f, "trailing bytes"),
            BadValue { index } => defmt::write!(f, "bad value in tensor {}", index),
            NonFinite { index } => defmt::write!(f, "non-finite value in tensor {}", index),
            Negative { index } => defmt::write!(f, "negative value in tensor {}", index),
            KindNotBuilt { block, feature } => {
                defmt::write!(
                    f,
                    "block kind {=str} not built (feature {=str})",
                    block,
                    feature
                )
            }
            StacksNotBuilt => defmt::write!(f, "stack blob; feature stacks not built"),
            NetNotBuilt => defmt::write!(f, "net blob; feature net not built"),
            BlockAlone { block } => {
                defmt::write!(f, "block kind {=str} cannot share a stack", block)
            }
            ModeUnsupported { block, mode } => {
                defmt::write!(f, "block kind {=str} has no {=str} mode", block, mode)
            }
        }
    }
}

/// Why a step was refused. Only caller-side shape errors: a parsed model always steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepError {
    /// The state buffer is shorter than [`crate::Model::state_len`].
    StateTooShort { needed: usize, got: usize },
    /// The scratch buffer is shorter than [`crate::Model::scratch_len`].
    ScratchTooShort { needed: usize, got: usize },
    /// The output buffer is shorter than [`crate::Model::d_output`].
    OutputTooShort { needed: usize, got: usize },
    /// The view table given to [`crate::Model::with_views`] is shorter than
    /// [`crate::Model::n_tensors`].
    ViewsTooShort { needed: usize, got: usize },
    /// The input vector has the wrong length.
    InputLength { expected: usize, got: usize },
    /// The token id is not below the vocabulary size.
    TokenOutOfRange { token: u32, vocab: u32 },
    /// A token was given to a model that takes vectors, or the other way round.
    WrongInputKind,
    /// A float step on an integer-only model, or an integer step on a float model
    /// ([`crate::Compute::Int`] models step with [`crate::Model::step_int`]).
    WrongCompute,
    /// Input value `index` of the step (a vector element, or the audio sample: 0) is NaN
    /// or infinite. Nothing was computed: the state is unchanged.
    NonFiniteInput { index: usize },
    /// The step produced a NaN or infinite output: a finite input or state too large for
    /// f32 arithmetic (beyond ~1e18 in magnitude) overflowed inside it. The stream's state
    /// was reset to the initial state, so the next step starts clean; `out` holds the
    /// non-finite values.
    Overflow,
    /// A per-step call on a multi-rate network ([`crate::Arch::Net`]), which streams
    /// through [`crate::Model::net`] instead.
    NetModel,
    /// An internal invariant failed (a bug; reported, never a panic).
    Internal,
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use StepError::*;
        match *self {
            StateTooShort { needed, got } => {
                write!(
                    f,
                    "state buffer too short: needs {needed} elements, has {got}"
                )
            }
            ScratchTooShort { needed, got } => {
                write!(
                    f,
                    "scratch buffer too short: needs {needed} elements, has {got}"
                )
            }
            ViewsTooShort { needed, got } => {
                write!(
                    f,
                    "tensor view table too short: needs {needed} entries, has {got}"
                )
            }
            OutputTooShort { needed, got } => {
                write!(
                    f,
                    "output buffer too short: needs {needed} elements, has {got}"
                )
            }
            InputLength { expected, got } => {
                write!(
                    f,
                    "input vector has {got} values, the model takes {expected}"
                )
            }
            TokenOutOfRange { token, vocab } => {
                write!(f, "token {token} out of range for vocabulary of {vocab}")
            }
            WrongInputKind => write!(f, "wrong input kind for this model (tokens vs vectors)"),
            WrongCompute => write!(
                f,
                "wrong step for this model's compute mode (integer-only models step with step_int)"
            ),
            NonFiniteInput { index } => write!(
                f,
                "input value {index} is NaN or infinite (nothing computed, state unchanged)"
            ),
            Overflow => write!(
                f,
                "the step overflowed f32 (NaN or infinite output from a too large input or \
                 state); the stream was reset to its initial state"
            ),
            NetModel => write!(
                f,
                "the model is a multi-rate network: stream it through Model::net, not step by step"
            ),
            Internal => write!(f, "internal error in tinyssm-core"),
        }
    }
}

impl core::error::Error for StepError {}

#[cfg(feature = "defmt")]
impl defmt::Format for StepError {
    fn format(&self, f: defmt::Formatter) {
        use StepError::*;
        match *self {
            StateTooShort { needed, got } => defmt::write!(f, "state short {} < {}", got, needed),
            ScratchTooShort { needed, got } => {
                defmt::write!(f, "scratch short {} < {}", got, needed)
            }
            OutputTooShort { needed, got } => defmt::write!(f, "output short {} < {}", got, needed),
            ViewsTooShort { needed, got } => defmt::write!(f, "views short {} < {}", got, needed),
            InputLength { expected, got } => defmt::write!(f, "input len {} != {}", got, expected),
            TokenOutOfRange { token, vocab } => defmt::write!(f, "token {} >= {}", token, vocab),
            WrongInputKind => defmt::write!(f, "wrong input kind"),
            WrongCompute => defmt::write!(f, "wrong compute mode"),
            NonFiniteInput { index } => defmt::write!(f, "non-finite input {}", index),
            Overflow => defmt::write!(f, "overflow: stream reset"),
            NetModel => defmt::write!(f, "net model: use Model::net"),
            Internal => defmt::write!(f, "internal"),
        }
    }
}

/// Why a stream snapshot was refused ([`crate::snapshot`]). The state is untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Shorter than its header says (a torn write).
    Truncated { needed: usize, got: usize },
    /// Longer than its header says.
    TrailingBytes,
    /// The first four bytes are not `TSSS`.
    BadMagic,
    /// A snapshot format version this build does not read.
    UnsupportedVersion { found: u16 },
    /// Its CRC does not match its bytes (corrupted).
    CrcMismatch { stored: u32, computed: u32 },
    /// A float stream's snapshot given to an integer-only model's restore, or the reverse.
    WrongElementType,
    /// The snapshot is of another model (`snapshot`: the CRC-32 of the model it was taken
    /// from).
    OtherModel { snapshot: u32, model: u32 },
    /// A float state value is NaN or infinite.
    NonFinite,
    /// The state buffer is shorter than [`crate::Model::state_len`].
    StateTooShort { needed: usize, got: usize },
    /// The output buffer is shorter than [`crate::Model::snapshot_len`].
    BufferTooShort { needed: usize, got: usize },
    /// A multi-rate network's stream ([`crate::Model::net`]: values and counters) has no
    /// snapshot form.
    NetModel,
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SnapshotError::*;
        match *self {
            Truncated { needed, got } => write!(
                f,
                "snapshot truncated (a torn write?): {got} bytes, needs {needed}"
            ),
            TrailingBytes => write!(f, "bytes follow the snapshot"),
            BadMagic => write!(f, "not a tinyssm stream snapshot (bad magic)"),
            UnsupportedVersion { found } => write!(
                f,
                "snapshot format version {found}; this build reads version {}",
                crate::version::SNAPSHOT_VERSION
            ),
            CrcMismatch { stored, computed } => write!(
                f,
                "snapshot CRC mismatch (corrupted): stored {stored:#010x}, computed {computed:#010x}"
            ),
            WrongElementType => write!(
                f,
                "snapshot of a float stream restored into an integer-only one, or the reverse"
            ),
            OtherModel { snapshot, model } => write!(
                f,
                "snapshot of another model (model CRC {snapshot:#010x}; this model's is {model:#010x})"
            ),
            NonFinite => write!(f, "snapshot state holds a NaN or infinite value"),
            StateTooShort { needed, got } => write!(
                f,
                "state buffer too short: needs {needed} elements, has {got}"
            ),
            BufferTooShort { needed, got } => write!(
                f,
                "snapshot buffer too short: needs {needed} bytes, has {got}"
            ),
            NetModel => write!(
                f,
                "a multi-rate network's stream has no snapshot form"
            ),
        }
    }
}

impl core::error::Error for SnapshotError {}

#[cfg(feature = "defmt")]
impl defmt::Format for SnapshotError {
    fn format(&self, f: defmt::Formatter) {
        use SnapshotError::*;
        match *self {
            Truncated { needed, got } => {
                defmt::write!(f, "snapshot truncated {} < {}", got, needed)
            }
            TrailingBytes => defmt::write!(f, "snapshot trailing bytes"),
            BadMagic => defmt::write!(f, "snapshot bad magic"),
            UnsupportedVersion { found } => defmt::write!(f, "snapshot version {}", found),
            CrcMismatch { stored, computed } => {
                defmt::write!(f, "snapshot crc {=u32:#x} != {=u32:#x}", stored, computed)
            }
            WrongElementType => defmt::write!(f, "snapshot element type"),
            OtherModel { snapshot, model } => {
                defmt::write!(
                    f,
                    "snapshot of model {=u32:#x}, not {=u32:#x}",
                    snapshot,
                    model
                )
            }
            NonFinite => defmt::write!(f, "snapshot non-finite"),
            StateTooShort { needed, got } => defmt::write!(f, "state short {} < {}", got, needed),
            BufferTooShort { needed, got } => defmt::write!(f, "buffer short {} < {}", got, needed),
            NetModel => defmt::write!(f, "net stream: no snapshot"),
        }
    }
}
