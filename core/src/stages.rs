//! The stages around the blocks of a stack: the input stage ([`Stem`]) and the final norm
//! with its output projection ([`Head`]). Their descriptions are here (below the blocks,
//! whose format-1.x configurations name them); their checks, tensors and steps are the
//! stack's ([`crate::stack`]). Their wire form (postcard; variant and field order are the
//! format) is part of a format 1.5 stack header ([`crate::blocks::StackConfig`]).

use serde::{Deserialize, Serialize};

/// The input stage: what turns a step's input into the residual stream.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Stem {
    /// A token id selects a row of the embedding matrix ([`crate::Role::Embedding`],
    /// `[vocab, d_model]`).
    Embedding { vocab: u32 },
    /// The embedding row, then a LayerNorm ([`crate::Role::Ln0`], [`crate::Role::Ln0Bias`]) with `eps`
    /// (RWKV's `ln0`).
    EmbeddingLn { vocab: u32, eps: f32 },
    /// An input vector of `d_input` values through a linear encoder with bias
    /// ([`crate::Role::Encoder`] `[d_model, d_input]`, [`crate::Role::EncoderBias`]).
    Encoder { d_input: u32 },
}

/// The norm before the head.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FinalNorm {
    None,
    /// RMSNorm with weight [`crate::Role::NormF`].
    Rms {
        eps: f32,
    },
    /// LayerNorm with weight and bias ([`crate::Role::NormF`], [`crate::Role::NormFBias`]).
    Layer {
        eps: f32,
    },
}

/// What the head produces each step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Out {
    /// Logits over the stem's vocabulary: [`crate::Role::LmHead`] `[vocab, d_model]`, or the
    /// embedding matrix when `tied`.
    LmHead { tied: bool },
    /// `d_output` values from a linear decoder with bias ([`crate::Role::Decoder`]
    /// `[d_output, d_model]`, [`crate::Role::DecoderBias`]).
    Decoder { d_output: u32 },
}

/// The final norm and the output projection.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub norm: FinalNorm,
    pub out: Out,
}
