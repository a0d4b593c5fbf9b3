//! Principal components of row vectors: centred, not scaled, the first two
//! kept — the covariance by one matrix product, its top eigenvectors by
//! subspace iteration with Rayleigh–Ritz (exact to rounding; the result is
//! what `numpy.linalg.eigh` / scikit-learn's PCA give, up to sign).

/// The 2-D layout of `n` rows and the share of the total variance each axis
/// holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    pub points: Vec<[f64; 2]>,
    pub explained_variance_ratio: [f64; 2],
}

/// Vectors in the iterated subspace (more than two: faster convergence).
const BLOCK: usize = 12;
const MAX_ITERATIONS: usize = 3000;
/// Residual ‖Cv − λv‖ relative to λ₁ at which the top two are done.
const TOLERANCE: f64 = 1e-10;

/// PCA of `data` (`n × d`, row-major). Each axis is signed so that its
/// largest-magnitude loading is positive (scikit-learn's convention).
pub fn pca(data: &[f32], n: usize, d: usize) -> Pca {
    if n == 0 || d == 0 {
        return Pca {
            points: vec![[0.0; 2]; n],
            explained_variance_ratio: [0.0; 2],
        };
    }
    let mean: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| f64::from(data[i * d + j])).sum::<f64>() / n as f64)
        .collect();
    let centred: Vec<f32> = data
        .chunks_exact(d)
        .flat_map(|row| {
            row.iter()
                .zip(&mean)
                .map(|(&x, &m)| (f64::from(x) - m) as f32)
        })
        .collect();
    let cov = covariance(&centred, n, d);
    let total: f64 = (0..d).map(|j| cov[j * d + j]).sum();
    let (values, vectors) = top_eigen(&cov, d);
    let mut points = vec![[0.0; 2]; n];
    for (axis, v) in vectors.iter().enumerate() {
        for (i, p) in points.iter_mut().enumerate() {
            let row = &centred[i * d..(i + 1) * d];
            p[axis] = row.iter().zip(v).map(|(&x, &w)| f64::from(x) * w).sum();
        }
    }
    let ratio = |k: usize| {
        if total > 0.0 {
            values.get(k).copied().unwrap_or(0.0).max(0.0) / total
        } else {
            0.0
        }
    };
    Pca {
        points,
        explained_variance_ratio: [ratio(0), ratio(1)],
    }
}

/// `XᵀX / (n − 1)` of the centred `x` (`n × d`), as f64.
fn covariance(x: &[f32], n: usize, d: usize) -> Vec<f64> {
    let mut c = vec![0f32; d * d];
    // SAFETY: `x` holds n·d values and `c` d·d; the strides describe `xᵀ`
    // (d × n) and `x` (n × d) read row-major from `x`, and `c` row-major.
    unsafe {
        gemm::gemm(
            d,
            d,
            n,
            c.as_mut_ptr(),
            1,
            d as isize,
            false,
            x.as_ptr(),
            d as isize,
            1,
            x.as_ptr(),
            1,
            d as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        );
    }
    let scale = 1.0 / (n.max(2) - 1) as f64;
    c.into_iter().map(|v| f64::from(v) * scale).collect()
}

/// The two largest eigenvalues of the symmetric `c` (`d × d`) and their
/// unit eigenvectors (fewer when `d < 2`).
fn top_eigen(c: &[f64], d: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let p = BLOCK.min(d);
    // A fixed start: every coordinate in every vector, mixed by a simple
    // generator, so no eigenvector is orthogonal to the start by design.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut q: Vec<Vec<f64>> = (0..p)
        .map(|_| {
            (0..d)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
                })
                .collect()
        })
        .collect();
    let mut values = vec![0.0; p];
    for _ in 0..MAX_ITERATIONS {
        orthonormalise(&mut q);
        let w = times(&q, c, d);
        // Rayleigh–Ritz: H = Qᵀ C Q, H = V Θ Vᵀ, Q ← Q V, CQ ← (CQ) V.
        let h: Vec<f64> = (0..p)
            .flat_map(|i| (0..p).map(|j| dot(&q[i], &w[j])).collect::<Vec<_>>())
            .collect();
        let (theta, v) = jacobi(h, p);
        let rotate = |m: &[Vec<f64>]| -> Vec<Vec<f64>> {
            (0..p)
                .map(|k| {
                    let mut out = vec![0.0; d];
                    for (i, row) in m.iter().enumerate() {
                        let f = v[i * p + k];
                        for (o, x) in out.iter_mut().zip(row) {
                            *o += f * x;
                        }
                    }
                    out
                })
                .collect()
        };
        q = rotate(&q);
        let cq = rotate(&w);
        values = theta;
        let scale = values[0].abs().max(f64::MIN_POSITIVE);
        let converged = (0..p.min(2)).all(|k| {
            let r: f64 = cq[k]
                .iter()
                .zip(&q[k])
                .map(|(a, b)| (a - values[k] * b).powi(2))
                .sum();
            r.sqrt() <= TOLERANCE * scale
        });
        if converged || values[0] == 0.0 {
            break;
        }
        q = cq;
    }
    let keep = p.min(2);
    let vectors = q
        .into_iter()
        .take(keep)
        .map(|mut v| {
            let biggest = v
                .iter()
                .copied()
                .fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
            if biggest < 0.0 {
                v.iter_mut().for_each(|x| *x = -*x);
            }
            v
        })
        .collect();
    (values.into_iter().take(keep).collect(), vectors)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `C v` for each vector `v` of `q` (`c` symmetric, `d × d`), as one product.
fn times(q: &[Vec<f64>], c: &[f64], d: usize) -> Vec<Vec<f64>> {
    let p = q.len();
    let flat: Vec<f64> = q.iter().flatten().copied().collect();
    let mut out = vec![0f64; p * d];
    // SAFETY: `flat` is p × d, `c` d × d and `out` p × d, all row-major as
    // the strides say; `Q·C = (C·Qᵀ)ᵀ` since `c` is symmetric.
    unsafe {
        gemm::gemm(
            p,
            d,
            d,
            out.as_mut_ptr(),
            1,
            d as isize,
            false,
            flat.as_ptr(),
            1,
            d as isize,
            c.as_ptr(),
            1,
            d as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    out.chunks_exact(d.max(1)).map(<[f64]>::to_vec).collect()
}

/// Modified Gram–Schmidt, twice for stability; a vector that vanishes is
/// replaced by a unit axis.
fn orthonormalise(q: &mut [Vec<f64>]) {
    for _pass in 0..2 {
        for i in 0..q.len() {
            for j in 0..i {
                let (done, rest) = q.split_at_mut(i);
                let r = dot(&done[j], &rest[0]);
                for (x, y) in rest[0].iter_mut().zip(&done[j]) {
                    *x -= r * y;
                }
            }
            let norm = dot(&q[i], &q[i]).sqrt();
            if norm > 1e-300 {
                q[i].iter_mut().for_each(|x| *x /= norm);
            } else {
                let d = q[i].len();
                q[i] = (0..d).map(|k| f64::from(u8::from(k == i % d))).collect();
            }
        }
    }
}

/// Eigen-decomposition of the symmetric `p × p` `h` by cyclic Jacobi:
/// eigenvalues descending and the eigenvectors as the columns of `v`.
fn jacobi(mut a: Vec<f64>, p: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v: Vec<f64> = (0..p * p)
        .map(|k| f64::from(u8::from(k / p == k % p)))
        .collect();
    for _sweep in 0..100 {
        let off: f64 = (0..p)
            .flat_map(|i| (0..p).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * p + j].powi(2))
            .sum();
        let norm: f64 = a.iter().map(|x| x * x).sum();
        if off <= 1e-30 * norm.max(f64::MIN_POSITIVE) {
            break;
        }
        for i in 0..p {
            for j in i + 1..p {
                let aij = a[i * p + j];
                if aij == 0.0 {
                    continue;
                }
                let tau = (a[j * p + j] - a[i * p + i]) / (2.0 * aij);
                let t = tau.signum() / (tau.abs() + (1.0 + tau * tau).sqrt());
                let t = if tau == 0.0 { 1.0 } else { t };
                let (cos, sin) = (1.0 / (1.0 + t * t).sqrt(), t / (1.0 + t * t).sqrt());
                for k in 0..p {
                    let (aki, akj) = (a[k * p + i], a[k * p + j]);
                    a[k * p + i] = cos * aki - sin * akj;
                    a[k * p + j] = sin * aki + cos * akj;
                }
                for k in 0..p {
                    let (aik, ajk) = (a[i * p + k], a[j * p + k]);
                    a[i * p + k] = cos * aik - sin * ajk;
                    a[j * p + k] = sin * aik + cos * ajk;
                }
                for k in 0..p {
                    let (vki, vkj) = (v[k * p + i], v[k * p + j]);
                    v[k * p + i] = cos * vki - sin * vkj;
                    v[k * p + j] = sin * vki + cos * vkj;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..p).collect();
    order.sort_by(|&x, &y| a[y * p + y].total_cmp(&a[x * p + x]));
    let values = order.iter().map(|&k| a[k * p + k]).collect();
    let vectors = (0..p)
        .flat_map(|row| order.iter().map(move |&k| (row, k)))
        .map(|(row, k)| v[row * p + k])
        .collect();
    (values, vectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalises_a_symmetric_matrix() {
        let (values, v) = jacobi(vec![2.0, 1.0, 1.0, 2.0], 2);
        assert!((values[0] - 3.0).abs() < 1e-12 && (values[1] - 1.0).abs() < 1e-12);
        assert!((v[0].abs() - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
    }

    #[test]
    fn points_on_a_line_have_one_component() {
        // Rows along (3, 4): all the variance on the first axis.
        let data: Vec<f32> = (0..10)
            .flat_map(|i| [3.0 * i as f32, 4.0 * i as f32, 1.0])
            .collect();
        let p = pca(&data, 10, 3);
        assert!((p.explained_variance_ratio[0] - 1.0).abs() < 1e-6);
        assert!(p.explained_variance_ratio[1].abs() < 1e-6);
        // Centred: the first point is 4.5 steps of length 5 below the mean.
        assert!((p.points[0][0] + 22.5).abs() < 1e-4, "{:?}", p.points[0]);
    }
}
