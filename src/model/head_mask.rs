//! Which attention heads are switched off, and what the encoder reports on the
//! side: the inspection options of one forward pass.

use std::collections::BTreeSet;
use std::fmt;

use crate::error::{BertError, Result};

/// A set of `(layer, head)` pairs, 0-based. An ablated head's context vector
/// is zeroed before the attention output projection (what `head_mask = 0`
/// does in `transformers`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct HeadSet(BTreeSet<(usize, usize)>);

impl HeadSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse `L:H,L:H,…` (0-based; spaces allowed; empty means none).
    pub fn parse(text: &str) -> Result<Self> {
        let mut set = HeadSet::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            set.insert(parse_pair(part)?);
        }
        Ok(set)
    }

    pub fn insert(&mut self, (layer, head): (usize, usize)) -> bool {
        self.0.insert((layer, head))
    }

    /// Switch a head on if it is off, off if it is on; true when it is now off.
    pub fn toggle(&mut self, pair: (usize, usize)) -> bool {
        if self.0.remove(&pair) {
            false
        } else {
            self.0.insert(pair);
            true
        }
    }

    pub fn contains(&self, layer: usize, head: usize) -> bool {
        self.0.contains(&(layer, head))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.0.iter().copied()
    }

    /// The heads of one layer that are off.
    pub fn in_layer(&self, layer: usize) -> impl Iterator<Item = usize> + '_ {
        self.0
            .range((layer, 0)..(layer + 1, 0))
            .map(|&(_, head)| head)
    }

    /// Every pair must name a head of a `layers × heads` model.
    pub fn check(&self, layers: usize, heads: usize) -> Result<()> {
        match self.0.iter().find(|&&(l, h)| l >= layers || h >= heads) {
            Some(&(l, h)) => Err(BertError::Input(format!(
                "head {l}:{h} does not exist: the model has {layers} layers (0–{}) of {heads} heads (0–{})",
                layers.saturating_sub(1),
                heads.saturating_sub(1)
            ))),
            None => Ok(()),
        }
    }

    /// Per-layer gates, `[layer][head]`: 0 for an ablated head, 1 otherwise.
    pub fn gates(&self, layers: usize, heads: usize) -> Vec<Vec<f32>> {
        (0..layers)
            .map(|l| {
                (0..heads)
                    .map(|h| if self.contains(l, h) { 0.0 } else { 1.0 })
                    .collect()
            })
            .collect()
    }
}

impl FromIterator<(usize, usize)> for HeadSet {
    fn from_iter<I: IntoIterator<Item = (usize, usize)>>(pairs: I) -> Self {
        HeadSet(pairs.into_iter().collect())
    }
}

impl fmt::Display for HeadSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(l, h)| format!("{l}:{h}")).collect();
        f.write_str(&parts.join(","))
    }
}

/// `L:H`, both 0-based integers.
pub fn parse_pair(part: &str) -> Result<(usize, usize)> {
    let bad = || {
        BertError::Input(format!(
            "\"{part}\" is not a head: write LAYER:HEAD with 0-based numbers, e.g. 0:3"
        ))
    };
    let (layer, head) = part.split_once(':').ok_or_else(bad)?;
    let layer = layer.trim().parse::<usize>().map_err(|_| bad())?;
    let head = head.trim().parse::<usize>().map_err(|_| bad())?;
    Ok((layer, head))
}

/// What one forward pass does besides the plain computation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspect {
    /// Heads whose context is zeroed.
    pub ablate: HeadSet,
    /// Report the query and key vectors of this `(layer, head)`.
    pub neurons: Option<(usize, usize)>,
}

impl Inspect {
    pub fn is_plain(&self) -> bool {
        self.ablate.is_empty() && self.neurons.is_none()
    }
}

/// The query and key vectors of one head for every token of one input (after
/// the projection's bias, before the `1/√d` scaling): `[token][dim]`, flat.
#[derive(Debug, Clone, PartialEq)]
pub struct Neurons {
    pub layer: usize,
    pub head: usize,
    pub tokens: usize,
    pub dim: usize,
    pub queries: Vec<f32>,
    pub keys: Vec<f32>,
}

impl Neurons {
    pub fn query(&self, token: usize) -> &[f32] {
        &self.queries[token * self.dim..(token + 1) * self.dim]
    }

    pub fn key(&self, token: usize) -> &[f32] {
        &self.keys[token * self.dim..(token + 1) * self.dim]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_rejects_what_is_not_one() {
        let set = HeadSet::parse(" 1:2, 0:11 ,1:2").unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![(0, 11), (1, 2)]);
        assert_eq!(set.to_string(), "0:11,1:2");
        assert!(HeadSet::parse("").unwrap().is_empty());
        for bad in ["1", "1:", ":2", "a:b", "-1:2", "1:2:3", "1;2"] {
            let err = HeadSet::parse(bad).unwrap_err().to_string();
            assert!(err.contains("LAYER:HEAD"), "{bad}: {err}");
        }
    }

    #[test]
    fn check_names_the_missing_head() {
        let set = HeadSet::parse("0:1,6:0").unwrap();
        let err = set.check(6, 12).unwrap_err().to_string();
        assert!(err.contains("6:0") && err.contains("6 layers"), "{err}");
        assert!(HeadSet::parse("5:11").unwrap().check(6, 12).is_ok());
    }

    #[test]
    fn toggles_and_lists_a_layer() {
        let mut set = HeadSet::new();
        assert!(set.toggle((2, 3)));
        set.insert((2, 0));
        set.insert((3, 0));
        assert_eq!(set.in_layer(2).collect::<Vec<_>>(), vec![0, 3]);
        assert!(!set.toggle((2, 3)));
        assert_eq!(set.gates(4, 2)[2], vec![0.0, 1.0]);
    }
}
