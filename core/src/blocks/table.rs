//! The layer table: which block each layer of a stack is. Format 1.x single-kind models
//! have one block configuration in every layer; a format 1.5 stack ([`StackConfig`]) lists
//! up to [`MAX_BLOCK_CONFIGS`] configurations, of any kinds, and a table that names one per
//! layer — so a stack may mix kinds (Mamba layers with gated MLP layers, later attention).

use serde::{Deserialize, Serialize};

use super::Block;
use crate::error::FormatError;
use crate::list::List;
use crate::stages::{Head, Stem};

/// Most distinct block configurations in one stack.
pub const MAX_BLOCK_CONFIGS: usize = 4;
/// Longest layer table. Layer `l` is configuration `table[l % table.len()]`: a table as
/// long as the stack names every layer; a shorter one repeats (a hybrid's period — one
/// attention layer in eight is a table of eight).
pub const MAX_LAYER_TABLE: usize = 32;

/// The blocks of a stack: distinct configurations and the table of which one each layer is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerTable {
    pub blocks: List<Block, MAX_BLOCK_CONFIGS>,
    pub table: List<u8, MAX_LAYER_TABLE>,
}

impl LayerTable {
    /// Every layer the one block `b` (all format 1.x models).
    pub const fn uniform(b: Block) -> Self {
        LayerTable {
            blocks: List::one(b),
            table: List::one(0),
        }
    }

    /// Whether every layer is the same configuration.
    pub fn is_uniform(&self) -> bool {
        self.blocks.len() == 1
    }

    /// Index into [`Self::blocks`] of layer `l`'s configuration.
    #[inline]
    pub fn config_of(&self, l: usize) -> usize {
        let t = self.table.as_slice();
        let i = if t.len() == 1 {
            t.first()
        } else {
            t.get(l % t.len().max(1))
        };
        i.copied().unwrap_or(0) as usize
    }

    /// Layer `l`'s block (validation guarantees that every table entry names one).
    #[inline]
    pub fn block(&self, l: usize) -> Option<&Block> {
        self.blocks.get(self.config_of(l))
    }

    /// Checks the table and every configuration: entries name a configuration, every
    /// configuration is used, all share one residual width, and a kind that keeps values
    /// in the block scratch from one layer to the next shares the stack with nothing.
    pub(crate) fn validate(&self) -> Result<(), FormatError> {
        let blocks = self.blocks.as_slice();
        for b in blocks {
            b.validate()?;
        }
        let t = self.table.as_slice();
        if t.iter().any(|&i| i as usize >= blocks.len()) {
            return Err(FormatError::BadConfig(
                "layer table names a block configuration that does not exist",
            ));
        }
        if (0..blocks.len()).any(|i| !t.contains(&(i as u8))) {
            return Err(FormatError::BadConfig(
                "every block configuration must be used by the layer table",
            ));
        }
        let d = blocks.first().map(|b| b.d_model());
        if blocks.iter().any(|b| Some(b.d_model()) != d) {
            return Err(FormatError::BadConfig(
                "every block of a stack must have the same d_model",
            ));
        }
        if blocks.len() > 1 {
            if let Some(b) = blocks.iter().find(|b| b.scratch_carries()) {
                return Err(FormatError::BlockAlone { block: b.name() });
            }
        }
        Ok(())
    }
}

/// A model as a format 1.5 header stores it: input stage, layer table, final norm and head
/// ([`crate::Arch::Stack`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StackConfig {
    pub stem: Stem,
    pub layers: LayerTable,
    pub head: Head,
}
