//! BERT's masked-LM corruption: 15% of the ordinary tokens are chosen; of those
//! 80% become `[MASK]`, 10% a random token and 10% stay, and the model must
//! predict the original at every chosen position.

use rand::rngs::SmallRng;
use rand::Rng;

use crate::tokenize::{self, BertTokenizer, Encoded};

pub const MASK_PROBABILITY: f64 = 0.15;

/// A corrupted batch and what to predict where.
pub struct MaskedBatch {
    pub rows: Vec<Encoded>,
    /// Flat row indices (`batch_index · padded_length + position`).
    pub positions: Vec<u32>,
    pub targets: Vec<u32>,
}

/// The ids of the special tokens (`[CLS]`, `[SEP]`, …) that occur in `rows`,
/// sorted: masking never picks them. Read from the vocabulary, so the rows
/// need their ids only.
pub fn special_ids(rows: &[Encoded], tokenizer: &BertTokenizer) -> Vec<u32> {
    // Which ids occur, by id: one pass over the rows, no sort of every token.
    let mut seen = vec![false; tokenizer.vocab_size()];
    for &id in rows.iter().flat_map(|r| &r.input_ids) {
        let id = id as usize;
        if id >= seen.len() {
            seen.resize(id + 1, false);
        }
        seen[id] = true;
    }
    (0u32..)
        .zip(seen)
        .filter(|&(id, occurs)| {
            occurs
                && tokenizer
                    .id_to_token(id)
                    .is_some_and(|token| tokenize::is_special(&token))
        })
        .map(|(id, _)| id)
        .collect()
}

/// Corrupt `rows` (padded later to their longest); at least one position per
/// batch. `specials` (sorted, from [`special_ids`]) are never chosen, so the
/// rows need their ids only, not their token strings.
pub fn mask_batch(
    rows: &[Encoded],
    specials: &[u32],
    mask_id: u32,
    vocab_size: usize,
    rng: &mut SmallRng,
) -> MaskedBatch {
    let is_special = |id: &u32| specials.binary_search(id).is_ok();
    let seq = rows.iter().map(Encoded::len).max().unwrap_or(0);
    let mut out = rows.to_vec();
    let mut positions = Vec::new();
    let mut targets = Vec::new();
    let mut chosen = Vec::new();
    for (b, row) in rows.iter().enumerate() {
        for (i, id) in row.input_ids.iter().enumerate() {
            if !is_special(id) && rng.random::<f64>() < MASK_PROBABILITY {
                chosen.push((b, i));
            }
        }
    }
    if chosen.is_empty() {
        let ordinary: Vec<(usize, usize)> = (0..rows.len())
            .flat_map(|b| (0..rows[b].len()).map(move |i| (b, i)))
            .filter(|&(b, i)| !is_special(&rows[b].input_ids[i]))
            .collect();
        if !ordinary.is_empty() {
            chosen.push(ordinary[rng.random_range(0..ordinary.len())]);
        }
    }
    for (b, i) in chosen {
        let original = out[b].input_ids[i];
        let roll: f64 = rng.random();
        if roll < 0.8 {
            out[b].input_ids[i] = mask_id;
        } else if roll < 0.9 {
            out[b].input_ids[i] = rng.random_range(0..vocab_size as u32);
        }
        positions.push((b * seq + i) as u32);
        targets.push(original);
    }
    MaskedBatch {
        rows: out,
        positions,
        targets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn row(n: usize) -> Encoded {
        let mut tokens = vec!["[CLS]".to_string()];
        tokens.extend((0..n).map(|i| format!("w{i}")));
        tokens.push("[SEP]".into());
        Encoded {
            input_ids: (0..tokens.len() as u32).map(|i| i + 10).collect(),
            token_type_ids: vec![0; tokens.len()],
            tokens,
            truncated: false,
        }
    }

    /// The ids of `row`'s `[CLS]` and `[SEP]`, sorted.
    fn specials_of(row: &Encoded) -> Vec<u32> {
        vec![row.input_ids[0], row.input_ids[row.len() - 1]]
    }

    #[test]
    fn masks_fifteen_percent_eighty_ten_ten() {
        let rows: Vec<Encoded> = (0..200).map(|_| row(100)).collect();
        let mut rng = SmallRng::seed_from_u64(1);
        let m = mask_batch(&rows, &specials_of(&rows[0]), 4, 1000, &mut rng);
        let chosen = m.positions.len() as f64 / 20_000.0;
        assert!((chosen - 0.15).abs() < 0.01, "{chosen}");
        let seq = 102;
        let (mut masked, mut kept) = (0, 0);
        for (&p, &t) in m.positions.iter().zip(&m.targets) {
            let (b, i) = (p as usize / seq, p as usize % seq);
            assert!(i > 0 && i < 101, "special token chosen");
            assert_eq!(rows[b].input_ids[i], t);
            let now = m.rows[b].input_ids[i];
            if now == 4 {
                masked += 1;
            } else if now == t {
                kept += 1;
            }
        }
        let n = m.positions.len() as f64;
        assert!((masked as f64 / n - 0.8).abs() < 0.02);
        assert!((kept as f64 / n - 0.1).abs() < 0.02);
    }

    #[test]
    fn at_least_one_position() {
        let mut rng = SmallRng::seed_from_u64(2);
        let m = mask_batch(&[row(1)], &specials_of(&row(1)), 4, 50, &mut rng);
        assert_eq!(m.positions.len(), 1);
    }
}
