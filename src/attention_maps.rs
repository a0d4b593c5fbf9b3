//! Attention probabilities as plain data (no tensors), for the CLI and the UI.

use serde::ser::{Serialize, SerializeSeq, Serializer};

/// Every layer's and head's attention for one input: `[layer][head][query][key]`,
/// stored flat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttentionMaps {
    pub layers: usize,
    pub heads: usize,
    pub seq: usize,
    pub data: Vec<f32>,
}

impl AttentionMaps {
    pub fn new(layers: usize, heads: usize, seq: usize, data: Vec<f32>) -> Self {
        debug_assert_eq!(data.len(), layers * heads * seq * seq);
        AttentionMaps {
            layers,
            heads,
            seq,
            data,
        }
    }

    /// The `[query][key]` matrix of one head, row-major.
    pub fn head(&self, layer: usize, head: usize) -> &[f32] {
        let n = self.seq * self.seq;
        let start = (layer * self.heads + head) * n;
        &self.data[start..start + n]
    }

    pub fn get(&self, layer: usize, head: usize, query: usize, key: usize) -> f32 {
        self.head(layer, head)[query * self.seq + key]
    }
}

/// Serialise as nested arrays `[layer][head][query][key]`.
impl Serialize for AttentionMaps {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Rows<'a>(&'a [f32], usize);
        impl Serialize for Rows<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.chunks(self.1.max(1)))
            }
        }
        let mut layers = serializer.serialize_seq(Some(self.layers))?;
        for layer in 0..self.layers {
            let heads: Vec<Rows> = (0..self.heads)
                .map(|h| Rows(self.head(layer, h), self.seq))
                .collect();
            layers.serialize_element(&heads)?;
        }
        layers.end()
    }
}
