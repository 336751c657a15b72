//! Where a step reads its tensors from: the [`Tensors`] trait, between the kernels (which
//! take [`Weights`]) and the model (which implements it over its blob). Blocks and stages
//! see their tensors only through it, so they do not depend on [`crate::Model`], and a
//! table of views resolved once can replace the look-ups without touching them.

use crate::error::StepError;
use crate::kernels::{IntWeights, Kernels, QuantI8R, Weights};
use crate::role::{LayerIndex, Role};

/// A model's tensors by layer and role, and the kernel set to step them with. A tensor the
/// layout promises but that is missing or of another dtype is [`StepError::Internal`]
/// (parsing checked every tensor, so this is a bug, never a panic).
pub trait Tensors<'a> {
    /// The kernel set.
    fn kernels(&self) -> Kernels;
    /// Tensor `role` of `layer` (`None`: model-global).
    fn w(&self, layer: LayerIndex, role: Role) -> Result<Weights<'a>, StepError>;

    fn f32s(&self, layer: LayerIndex, role: Role) -> Result<&'a [f32], StepError> {
        match self.w(layer, role)? {
            Weights::F32(w) => Ok(w),
            _ => Err(StepError::Internal),
        }
    }

    fn i16s(&self, layer: LayerIndex, role: Role) -> Result<&'a [i16], StepError> {
        match self.w(layer, role)? {
            Weights::Int(IntWeights::I16(w)) => Ok(w),
            _ => Err(StepError::Internal),
        }
    }

    fn i32s(&self, layer: LayerIndex, role: Role) -> Result<&'a [i32], StepError> {
        match self.w(layer, role)? {
            Weights::Int(IntWeights::I32(w)) => Ok(w),
            _ => Err(StepError::Internal),
        }
    }

    fn i8r(&self, layer: LayerIndex, role: Role) -> Result<QuantI8R<'a>, StepError> {
        match self.w(layer, role)? {
            Weights::Int(IntWeights::I8R(w)) => Ok(w),
            _ => Err(StepError::Internal),
        }
    }

    /// [`Self::i32s`] when `present` (an optional tensor the configuration has).
    fn opt_i32s(
        &self,
        present: bool,
        layer: LayerIndex,
        role: Role,
    ) -> Result<Option<&'a [i32]>, StepError> {
        if present {
            self.i32s(layer, role).map(Some)
        } else {
            Ok(None)
        }
    }

    /// [`Self::f32s`] when `present` (an optional tensor the configuration has).
    fn opt_f32s(
        &self,
        present: bool,
        layer: LayerIndex,
        role: Role,
    ) -> Result<Option<&'a [f32]>, StepError> {
        if present {
            self.f32s(layer, role).map(Some)
        } else {
            Ok(None)
        }
    }
}
