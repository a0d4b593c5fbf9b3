//! Attention rollout (Abnar & Zuidema 2020): how much of each input token
//! reaches each position through every layer, counting the residual path.

use crate::attention_maps::AttentionMaps;

/// A square `[query][key]` matrix, row-major, `n × n`.
#[derive(Debug, Clone, PartialEq)]
pub struct Square {
    pub n: usize,
    pub data: Vec<f64>,
}

impl Square {
    pub fn identity(n: usize) -> Self {
        let mut data = vec![0.0; n * n];
        for i in 0..n {
            data[i * n + i] = 1.0;
        }
        Square { n, data }
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.n..(i + 1) * self.n]
    }

    /// `self · other`.
    pub fn matmul(&self, other: &Square) -> Square {
        let n = self.n;
        let mut data = vec![0.0; n * n];
        for i in 0..n {
            for k in 0..n {
                let a = self.data[i * n + k];
                if a == 0.0 {
                    continue;
                }
                let (out, row) = (&mut data[i * n..(i + 1) * n], other.row(k));
                for (o, &b) in out.iter_mut().zip(row) {
                    *o += a * b;
                }
            }
        }
        Square { n, data }
    }

    /// Nested rows as `f32`, for JSON and the UI.
    pub fn to_rows(&self) -> Vec<Vec<f32>> {
        (0..self.n)
            .map(|i| self.row(i).iter().map(|&v| v as f32).collect())
            .collect()
    }
}

/// The mean over heads of one layer's attention, `[query][key]`.
pub fn mean_heads(maps: &AttentionMaps, layer: usize) -> Square {
    let n = maps.seq;
    let mut data = vec![0.0; n * n];
    for head in 0..maps.heads {
        for (d, &a) in data.iter_mut().zip(maps.head(layer, head)) {
            *d += a as f64;
        }
    }
    let scale = 1.0 / maps.heads.max(1) as f64;
    data.iter_mut().for_each(|d| *d *= scale);
    Square { n, data }
}

/// `Â_L ⋯ Â_1` with `Â = 0.5·mean_heads(A) + 0.5·I`, each row renormalised
/// to sum 1.
pub fn rollout(maps: &AttentionMaps) -> Square {
    let n = maps.seq;
    let mut acc = Square::identity(n);
    for layer in 0..maps.layers {
        let mut a = mean_heads(maps, layer);
        for i in 0..n {
            let row = &mut a.data[i * n..(i + 1) * n];
            row.iter_mut().for_each(|v| *v *= 0.5);
            row[i] += 0.5;
            let sum: f64 = row.iter().sum();
            if sum > 0.0 {
                row.iter_mut().for_each(|v| *v /= sum);
            }
        }
        acc = a.matmul(&acc);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_layer_of_uniform_attention_mixes_half_and_half() {
        // Two tokens, one layer, one head attending uniformly.
        let maps = AttentionMaps::new(1, 1, 2, vec![0.5; 4]);
        let r = rollout(&maps);
        assert_eq!(r.data, vec![0.75, 0.25, 0.25, 0.75]);
    }

    #[test]
    fn the_last_layer_multiplies_from_the_left() {
        // Layer 0: everyone attends to token 0; layer 1: everyone to token 1.
        let l0 = vec![1.0, 0.0, 1.0, 0.0];
        let l1 = vec![0.0, 1.0, 0.0, 1.0];
        let maps = AttentionMaps::new(2, 1, 2, [l0.clone(), l1.clone()].concat());
        let a0 = Square {
            n: 2,
            data: vec![1.0, 0.0, 0.5, 0.5],
        };
        let a1 = Square {
            n: 2,
            data: vec![0.5, 0.5, 0.0, 1.0],
        };
        assert_eq!(rollout(&maps), a1.matmul(&a0));
        for i in 0..2 {
            let sum: f64 = rollout(&maps).row(i).iter().sum();
            assert!((sum - 1.0).abs() < 1e-12);
        }
    }
}
