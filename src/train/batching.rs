//! How an epoch's rows are cut into batches: in order, shuffled, or shuffled
//! with rows of similar length batched together (length bucketing).

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

use crate::train::{Encodings, TrainConfig, BUCKET_WINDOW};

/// One epoch's batches of row indices: the rows in order, or shuffled; when
/// bucketing, sorted by length (longest first) inside windows of
/// [`BUCKET_WINDOW`] batches and the batches shuffled, so that a batch pads
/// little. Drawn from `rng` alone, so a resumed epoch gets the same batches.
pub(super) fn epoch_batches(
    data: &Encodings,
    cfg: &TrainConfig,
    rng: &mut SmallRng,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..data.rows.len()).collect();
    if !cfg.shuffle {
        return order
            .chunks(cfg.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
    }
    order.shuffle(rng);
    if !cfg.bucketing {
        return order
            .chunks(cfg.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
    }
    let mut batches: Vec<Vec<usize>> = Vec::with_capacity(order.len().div_ceil(cfg.batch_size));
    for window in order.chunks_mut(cfg.batch_size * BUCKET_WINDOW) {
        window.sort_by_key(|&i| std::cmp::Reverse(data.rows[i].len()));
        batches.extend(window.chunks(cfg.batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(rng);
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::Encoded;
    use rand::{Rng, SeedableRng};

    /// Rows of random lengths 3..=120.
    fn rows(n: usize, seed: u64) -> Encodings {
        let mut rng = SmallRng::seed_from_u64(seed);
        let rows = (0..n)
            .map(|_| {
                let len = rng.random_range(3..=120);
                Encoded {
                    tokens: Vec::new(),
                    input_ids: vec![5; len],
                    token_type_ids: vec![0; len],
                    truncated: false,
                }
            })
            .collect();
        Encodings {
            rows,
            labels: vec![0; n],
            special_ids: Vec::new(),
        }
    }

    fn config(shuffle: bool, bucketing: bool) -> TrainConfig {
        TrainConfig {
            batch_size: 16,
            shuffle,
            bucketing,
            ..TrainConfig::default()
        }
    }

    /// Padded tokens of a batching: each batch padded to its longest row.
    fn padded(data: &Encodings, batches: &[Vec<usize>]) -> usize {
        batches
            .iter()
            .map(|b| b.len() * b.iter().map(|&i| data.rows[i].len()).max().unwrap_or(0))
            .sum()
    }

    fn sorted(batches: &[Vec<usize>]) -> Vec<usize> {
        let mut all: Vec<usize> = batches.concat();
        all.sort_unstable();
        all
    }

    #[test]
    fn every_row_once_per_epoch_whatever_the_batching() {
        let data = rows(2_000, 1);
        let every: Vec<usize> = (0..2_000).collect();
        for (shuffle, bucketing) in [(false, false), (true, false), (true, true), (false, true)] {
            let mut rng = SmallRng::seed_from_u64(7);
            let batches = epoch_batches(&data, &config(shuffle, bucketing), &mut rng);
            assert_eq!(
                sorted(&batches),
                every,
                "shuffle {shuffle} bucketing {bucketing}"
            );
            assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= 16));
        }
    }

    #[test]
    fn without_shuffle_the_file_order_is_kept_even_with_bucketing() {
        let data = rows(100, 2);
        let mut rng = SmallRng::seed_from_u64(7);
        let batches = epoch_batches(&data, &config(false, true), &mut rng);
        assert_eq!(batches.concat(), (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn bucketing_cuts_padding_and_is_seeded() {
        let data = rows(4_000, 3);
        let draw = |bucketing: bool, seed: u64| {
            epoch_batches(
                &data,
                &config(true, bucketing),
                &mut SmallRng::seed_from_u64(seed),
            )
        };
        let (plain, bucketed) = (draw(false, 9), draw(true, 9));
        let real: usize = data.rows.iter().map(Encoded::len).sum();
        let (plain_pad, bucket_pad) = (
            padded(&data, &plain) - real,
            padded(&data, &bucketed) - real,
        );
        assert!(
            bucket_pad * 10 < plain_pad,
            "padding {bucket_pad} vs {plain_pad}"
        );
        assert_eq!(bucketed, draw(true, 9));
        assert_ne!(bucketed, draw(true, 10));
        // The batches are shuffled: not longest-first from the start.
        let longest = |b: &Vec<usize>| b.iter().map(|&i| data.rows[i].len()).max().unwrap_or(0);
        let firsts: Vec<usize> = bucketed.iter().take(20).map(longest).collect();
        assert!(firsts.windows(2).any(|w| w[0] < w[1]), "{firsts:?}");
    }

    #[test]
    fn runs_saved_before_bucketing_keep_their_order() {
        let mut json = serde_json::to_value(TrainConfig::default()).unwrap();
        assert_eq!(json["bucketing"], true, "new runs bucket");
        json.as_object_mut().unwrap().remove("bucketing");
        let old: TrainConfig = serde_json::from_value(json).unwrap();
        assert!(!old.bucketing, "an older run.json resumes without it");
    }

    #[test]
    fn runs_saved_before_precision_resume_in_fp32() {
        let mut json = serde_json::to_value(TrainConfig {
            precision: crate::model::precision::Precision::Bf16,
            ..TrainConfig::default()
        })
        .unwrap();
        assert_eq!(json["precision"], "bf16");
        json.as_object_mut().unwrap().remove("precision");
        let old: TrainConfig = serde_json::from_value(json).unwrap();
        assert_eq!(old.precision, crate::model::precision::Precision::Fp32);
    }
}
