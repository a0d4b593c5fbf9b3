//! Orthogonal Procrustes in two dimensions: the rotation or reflection that
//! best lays one centred layout over another (least squares), so that an
//! animation across checkpoints shows the data moving, not axes flipping.

/// `points` rotated or reflected (never scaled or moved) to lie as close as
/// possible to `target` (same rows, both centred).
pub fn align(points: &[[f64; 2]], target: &[[f64; 2]]) -> Vec<[f64; 2]> {
    // For a rotation by θ the fit is best where tan θ = Σ(a×b) / Σ(a·b); a
    // reflection is a rotation of the points with y negated. Keep the better.
    let fit = |flip: f64| {
        let (mut dot, mut cross) = (0.0, 0.0);
        for (a, b) in points.iter().zip(target) {
            let (ax, ay) = (a[0], flip * a[1]);
            dot += ax * b[0] + ay * b[1];
            cross += ax * b[1] - ay * b[0];
        }
        (cross.atan2(dot), dot.hypot(cross))
    };
    let (rotation, kept) = fit(1.0);
    let (reflection, kept_flipped) = fit(-1.0);
    let (theta, flip) = if kept_flipped > kept {
        (reflection, -1.0)
    } else {
        (rotation, 1.0)
    };
    let (sin, cos) = theta.sin_cos();
    points
        .iter()
        .map(|p| {
            let (x, y) = (p[0], flip * p[1]);
            [cos * x - sin * y, sin * x + cos * y]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Vec<[f64; 2]> {
        // Centred: each coordinate sums to zero.
        vec![[1.0, 2.0], [-3.0, 0.5], [2.5, -1.0], [-0.5, -1.5]]
    }

    fn transform(points: &[[f64; 2]], theta: f64, flip: bool) -> Vec<[f64; 2]> {
        let (sin, cos) = theta.sin_cos();
        points
            .iter()
            .map(|p| {
                let y = if flip { -p[1] } else { p[1] };
                [cos * p[0] - sin * y, sin * p[0] + cos * y]
            })
            .collect()
    }

    fn close(a: &[[f64; 2]], b: &[[f64; 2]]) -> bool {
        a.iter()
            .zip(b)
            .all(|(p, q)| (p[0] - q[0]).abs() < 1e-9 && (p[1] - q[1]).abs() < 1e-9)
    }

    #[test]
    fn undoes_a_known_rotation_and_a_known_reflection() {
        let target = layout();
        for theta in [0.3, 2.0, -2.9] {
            for flip in [false, true] {
                let moved = transform(&target, theta, flip);
                let back = align(&moved, &target);
                assert!(close(&back, &target), "θ {theta}, flip {flip}: {back:?}");
            }
        }
    }

    #[test]
    fn keeps_pairwise_distances() {
        let target = layout();
        let noisy: Vec<[f64; 2]> = transform(&target, 1.1, true)
            .iter()
            .enumerate()
            .map(|(i, p)| [p[0] + 0.1 * i as f64, p[1] - 0.05])
            .collect();
        let aligned = align(&noisy, &target);
        let dist = |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).hypot(a[1] - b[1]);
        for i in 0..noisy.len() {
            for j in 0..noisy.len() {
                let (before, after) = (dist(noisy[i], noisy[j]), dist(aligned[i], aligned[j]));
                assert!((before - after).abs() < 1e-9);
            }
        }
    }
}
