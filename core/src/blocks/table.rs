//! The layer table: which block each layer of a stack is. Format 1.x single-kind models
//! have one block configuration in every layer; a format 1.5 stack ([`StackConfig`]) lists
//! up to [`MAX_BLOCK_CONFIGS`] configurations, of any kinds, and a table that names one per
//! layer — so a stack may mix kinds (Mamba layers with gated MLP layers, later attention).

use serde::{Deserialize, Serialize};

use super::Block;
use crate::error::FormatError;
use crate::list::List;
use crate::stages::{Head, Stem};

/// Most distinct block configurations in one stack (1 in a build without the `stacks`
/// feature, which reads single-kind models only).
pub const MAX_BLOCK_CONFIGS: usize = if cfg!(feature = "stacks") { 4 } else { 1 };
/// Longest layer table. Layer `l` is configuration `table[l % table.len()]`: a table as
/// long as the stack names every layer; a shorter one repeats (a hybrid's period — one
/// attention layer in eight is a table of eight). 1 without the `stacks` feature.
pub const MAX_LAYER_TABLE: usize = if cfg!(feature = "stacks") { 32 } else { 1 };

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
        let i = if !cfg!(feature = "stacks") || t.len() == 1 {
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

#[cfg(test)]
mod tests {
    // A mixed stack of S4D and MLP blocks: needs both kinds and the stack form.
    #[cfg(all(feature = "stacks", feature = "block-s4d", feature = "block-mlp"))]
    mod mixed {
        use super::super::*;
        use crate::blocks::mlp::{MlpAct, MlpBlock, MlpNorm};
        use crate::blocks::s4d::S4dBlock;
        use crate::config::Config;
        use crate::dtype::Compute;
        use crate::stages::{FinalNorm, Out};

        fn mixed(table: &[u8], n_layers: u32) -> Config {
            let s4d = Block::S4d(S4dBlock {
                d_model: 8,
                d_state: 4,
                norm_eps: 1e-5,
                prenorm: true,
                glu: true,
            });
            let mlp = |d_ffn| {
                Block::Mlp(MlpBlock {
                    d_model: 8,
                    d_ffn,
                    norm: MlpNorm::Layer { eps: 1e-5 },
                    act: MlpAct::Silu,
                })
            };
            Config {
                n_layers,
                arch: crate::blocks::Arch::Stack(StackConfig {
                    stem: Stem::Encoder { d_input: 3 },
                    layers: LayerTable {
                        blocks: List::from_slice(&[s4d, mlp(16), mlp(5)]).unwrap(),
                        table: List::from_slice(table).unwrap(),
                    },
                    head: Head {
                        norm: FinalNorm::Rms { eps: 1e-5 },
                        out: Out::Decoder { d_output: 2 },
                    },
                }),
                front_end: None,
                compute: Compute::Float,
            }
        }

        /// Every tensor index maps to a (layer, role) that maps back to it, each layer's
        /// tensors are its own block's, and the state is the sum of the layers' states —
        /// for tables shorter than, as long as, and (cut) longer than the stack.
        #[test]
        fn layout_of_a_mixed_stack_round_trips_and_sums_the_layers() {
            for (table, n) in [
                (&[0u8, 1, 2, 1][..], 7u32),
                (&[2, 0, 1][..], 3),
                (&[0, 1, 2, 2, 2, 1][..], 4),
            ] {
                let c = mixed(table, n);
                let tall = n < table.len() as u32;
                let v = c.validate();
                let st = c.stack();
                // A table longer than the stack leaves configurations unused only when the
                // stack ends before them; that is still a valid model when all appear.
                if tall && (0..3).any(|b| !(0..n as usize).any(|l| st.layers.config_of(l) == b)) {
                    assert!(v.is_err());
                    continue;
                }
                v.unwrap();
                let lay = c.layout();
                let mut per_layer = std::vec![0usize; n as usize];
                for i in 0..lay.n_tensors(&c) {
                    let s = lay.spec(&c, i).unwrap();
                    assert_eq!(lay.index(&c, s.layer, s.role), Some(i), "{table:?} {i}");
                    if let Some(l) = s.layer {
                        let b = st.block(l as usize).unwrap();
                        assert_eq!(b.shape(s.role), Some((s.rank, s.shape)));
                        per_layer[l as usize] += 1;
                    }
                }
                assert!(lay.spec(&c, lay.n_tensors(&c)).is_none());
                for (l, &k) in per_layer.iter().enumerate() {
                    let mut r = crate::role::RoleList::new();
                    st.block(l).unwrap().roles(&mut r);
                    assert_eq!(k, r.len, "layer {l}");
                    assert_eq!(st.layers.config_of(l), table[l % table.len()] as usize);
                }
                let want: u64 = (0..n as usize)
                    .map(|l| st.block(l).unwrap().state_len().unwrap())
                    .sum();
                assert_eq!(c.sizes().unwrap().model_state as u64, want);
                assert_eq!(c.sizes().unwrap().state_per_layer, 0);
            }
        }
    }
}
