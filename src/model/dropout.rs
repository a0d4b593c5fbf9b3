//! Dropout for training, drawn from a seeded generator so that the same seed
//! and data give the same weights (candle's CPU device ignores seeds).

use std::sync::Mutex;

use candle_core::Tensor;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use rayon::prelude::*;

use crate::error::Result;
use crate::model::grad_kernels;

/// Mask elements drawn from one generator; the blocks are drawn in parallel.
const MASK_BLOCK: usize = 1 << 16;

/// The dropout probabilities of a BERT and the generator that draws the masks.
pub struct TrainDropout {
    rng: Mutex<SmallRng>,
    /// `hidden_dropout_prob`: embeddings and both residual branches.
    pub hidden: f64,
    /// `attention_probs_dropout_prob`.
    pub attention: f64,
    /// `classifier_dropout`, else `hidden_dropout_prob`.
    pub classifier: f64,
}

impl TrainDropout {
    pub fn new(seed: u64, hidden: f64, attention: f64, classifier: f64) -> Self {
        TrainDropout {
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            hidden,
            attention,
            classifier,
        }
    }

    /// Restart the generator from `seed` (each epoch draws from its own seed,
    /// so that a resumed run draws the same masks).
    pub fn reseed(&self, seed: u64) {
        *self.rng.lock().unwrap_or_else(|e| e.into_inner()) = SmallRng::seed_from_u64(seed);
    }

    /// Draw the mask of `n` elements: each `1/(1-p)` with probability `1-p`,
    /// else 0; none (and nothing drawn) when `p` is 0. One number comes from
    /// the run's generator; blocks of [`MASK_BLOCK`] elements are then drawn
    /// in parallel, each from a generator seeded by it and the block's index,
    /// so the mask depends on the seed alone, not on the thread count.
    pub(crate) fn draw(&self, n: usize, p: f64) -> Option<Vec<f32>> {
        if p <= 0.0 {
            return None;
        }
        let keep = 1.0 - p;
        let scale = (1.0 / keep) as f32;
        // `keep` as a fraction of 2³²: a uniform u32 below it keeps its element.
        let threshold = (keep * 4_294_967_296.0) as u64;
        let seed: u64 = self.rng.lock().unwrap_or_else(|e| e.into_inner()).random();
        let mut mask = vec![0f32; n];
        mask.par_chunks_mut(MASK_BLOCK)
            .enumerate()
            .for_each(|(block, values)| {
                let stream = (block as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut rng = SmallRng::seed_from_u64(seed ^ stream);
                // Two 32-bit draws from each 64-bit one: half the generator's work.
                for pair in values.chunks_mut(2) {
                    let draw = rng.next_u64();
                    for (v, half) in pair.iter_mut().zip([draw & 0xffff_ffff, draw >> 32]) {
                        if half < threshold {
                            *v = scale;
                        }
                    }
                }
            });
        Some(mask)
    }

    /// Zero each element with probability `p` and scale the rest by `1/(1-p)`:
    /// one fused node on host `f32` (`grad_kernels::dropout`), else a product.
    pub fn apply(&self, x: &Tensor, p: f64) -> Result<Tensor> {
        let Some(mask) = self.draw(x.elem_count(), p) else {
            return Ok(x.clone());
        };
        if grad_kernels::fused_cpu(x) {
            return grad_kernels::dropout(x, mask);
        }
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?;
        Ok(x.mul(&mask)?)
    }
}

/// Apply dropout when training (`Some`), the identity otherwise.
pub fn maybe(
    dropout: Option<&TrainDropout>,
    x: Tensor,
    p: impl Fn(&TrainDropout) -> f64,
) -> Result<Tensor> {
    match dropout {
        Some(d) => d.apply(&x, p(d)),
        None => Ok(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn dropout_keeps_expectation_and_is_seeded() {
        let x = Tensor::ones(20_000, candle_core::DType::F32, &Device::Cpu).unwrap();
        let a = TrainDropout::new(7, 0.1, 0.1, 0.1).apply(&x, 0.25).unwrap();
        let b = TrainDropout::new(7, 0.1, 0.1, 0.1).apply(&x, 0.25).unwrap();
        let a: Vec<f32> = a.to_vec1().unwrap();
        assert_eq!(a, b.to_vec1::<f32>().unwrap());
        let zeros = a.iter().filter(|&&v| v == 0.0).count() as f64 / a.len() as f64;
        assert!((zeros - 0.25).abs() < 0.02, "{zeros}");
        let mean: f64 = a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64;
        assert!((mean - 1.0).abs() < 0.03, "{mean}");
    }
}
