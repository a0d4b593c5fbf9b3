//! Line contrast: how an attention weight becomes a line's opacity. By
//! default the opacity is the weight itself; at hundreds of tokens most heads
//! spread their weight thinly and their lines vanish, so a head's weights can
//! be taken relative to its largest shown weight, and a gamma below 1 lifts
//! faint lines. Pure math, shared by the head and model views.

use serde::{Deserialize, Serialize};

/// The smallest gamma offered (lower turns every line opaque).
pub const MIN_GAMMA: f32 = 0.2;

/// How weights become opacities.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Contrast {
    /// Opacity from the weight divided by the head's largest shown weight.
    pub per_head: bool,
    /// Opacity = (weight or relative weight)^gamma; 1 is linear.
    pub gamma: f32,
}

impl Default for Contrast {
    fn default() -> Self {
        Contrast {
            per_head: false,
            gamma: 1.0,
        }
    }
}

impl Contrast {
    /// Whether weights are drawn as they are.
    pub fn is_raw(self) -> bool {
        !self.per_head && self.gamma() == 1.0
    }

    fn gamma(self) -> f32 {
        if self.gamma.is_finite() {
            self.gamma.clamp(MIN_GAMMA, 1.0)
        } else {
            1.0
        }
    }

    /// The opacity (0..=1) of a line of weight `w` in a head whose largest
    /// shown weight is `head_max` (ignored unless `per_head`).
    pub fn opacity(self, w: f32, head_max: f32) -> f32 {
        let base = if self.per_head {
            if head_max > 0.0 {
                w / head_max
            } else {
                0.0
            }
        } else {
            w
        };
        let base = base.clamp(0.0, 1.0);
        let gamma = self.gamma();
        if gamma == 1.0 {
            base
        } else {
            base.powf(gamma)
        }
    }

    /// The smallest weight whose opacity reaches `min_opacity`: lines below
    /// it are not drawn.
    pub fn min_weight(self, min_opacity: f32, head_max: f32) -> f32 {
        let relative = min_opacity.clamp(0.0, 1.0).powf(1.0 / self.gamma());
        if self.per_head {
            relative * head_max.max(0.0)
        } else {
            relative
        }
    }

    /// What the opacity means, said on screen.
    pub fn describe(self) -> String {
        let base = if self.per_head {
            "weight ÷ the head's largest shown weight"
        } else {
            "weight"
        };
        let gamma = self.gamma();
        if gamma == 1.0 {
            format!("line opacity = {base}")
        } else {
            format!("line opacity = ({base})^{gamma:.2}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_weights_are_opacities() {
        let c = Contrast::default();
        assert!(c.is_raw());
        assert_eq!(c.opacity(0.25, 0.5), 0.25);
        assert_eq!(c.opacity(1.5, 0.5), 1.0);
        assert_eq!(c.min_weight(0.1, 0.5), 0.1);
        assert_eq!(c.describe(), "line opacity = weight");
    }

    #[test]
    fn per_head_contrast_divides_by_the_largest_weight() {
        let c = Contrast {
            per_head: true,
            gamma: 1.0,
        };
        assert!(!c.is_raw());
        // A head whose weights are spread thinly: its largest is 0.02.
        assert!((c.opacity(0.02, 0.02) - 1.0).abs() < 1e-6);
        assert!((c.opacity(0.005, 0.02) - 0.25).abs() < 1e-6);
        assert_eq!(c.opacity(0.005, 0.0), 0.0, "an empty head draws nothing");
        // Lines of at least 10% opacity: weights of at least 10% of the largest.
        assert!((c.min_weight(0.1, 0.02) - 0.002).abs() < 1e-7);
        assert!(c.describe().contains("largest"));
    }

    #[test]
    fn gamma_lifts_faint_lines_and_lowers_the_threshold_to_match() {
        let c = Contrast {
            per_head: false,
            gamma: 0.5,
        };
        assert!((c.opacity(0.04, 1.0) - 0.2).abs() < 1e-6);
        assert_eq!(c.opacity(1.0, 1.0), 1.0);
        // The weight at the threshold has exactly the threshold's opacity.
        let w = c.min_weight(0.1, 1.0);
        assert!((w - 0.01).abs() < 1e-6);
        assert!((c.opacity(w, 1.0) - 0.1).abs() < 1e-6);
        assert!(c.describe().ends_with("^0.50"), "{}", c.describe());

        let both = Contrast {
            per_head: true,
            gamma: 0.5,
        };
        let w = both.min_weight(0.1, 0.02);
        assert!((both.opacity(w, 0.02) - 0.1).abs() < 1e-6);
        // Out-of-range gammas (a hand-edited settings file) are clamped.
        let wild = Contrast {
            per_head: false,
            gamma: f32::NAN,
        };
        assert_eq!(wild.opacity(0.3, 1.0), 0.3);
        let low = Contrast {
            per_head: false,
            gamma: 0.0,
        };
        assert!((low.opacity(0.5, 1.0) - 0.5f32.powf(MIN_GAMMA)).abs() < 1e-6);
    }
}
