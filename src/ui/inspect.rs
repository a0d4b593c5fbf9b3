//! What the next analysis asks of the model besides the plain forward pass:
//! the heads switched off (ablation) and the head whose queries and keys the
//! neuron view shows. Pure rules, no drawing.

use serde::{Deserialize, Serialize};

use crate::ui::selection::Selection;
use crate::{HeadSet, Inspect};

/// The user's inspection settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InspectSettings {
    /// Heads switched off. Not remembered across restarts: a fresh start
    /// shows the model as it is.
    #[serde(skip)]
    pub ablated: HeadSet,
    /// Model view: a click switches a head off instead of opening it.
    #[serde(default)]
    pub ablate_mode: bool,
    /// The head view's neuron panel is open.
    #[serde(default)]
    pub neuron_view: bool,
}

impl InspectSettings {
    /// The head the neuron panel shows: the first head drawn in the selected
    /// layer; `None` while the panel is closed.
    pub fn neuron_head(&self, sel: &Selection, heads: usize) -> Option<(usize, usize)> {
        if !self.neuron_view || heads == 0 {
            return None;
        }
        let head = (0..heads).find(|&h| sel.head_on(h)).unwrap_or(0);
        Some((sel.layer, head))
    }

    /// What the next analysis of a model with `heads` heads per layer asks for.
    pub fn inspect(&self, sel: &Selection, heads: usize) -> Inspect {
        Inspect {
            ablate: self.ablated.clone(),
            neurons: self.neuron_head(sel, heads),
        }
    }

    /// Switch `(layer, head)` off, or on again.
    pub fn toggle(&mut self, layer: usize, head: usize) {
        self.ablated.toggle((layer, head));
    }

    /// After loading a model: forget the heads a `layers × heads` model does
    /// not have (all of them when it is another model).
    pub fn fit(&mut self, same_model: bool, layers: usize, heads: usize) {
        self.ablated = if same_model {
            self.ablated
                .iter()
                .filter(|&(l, h)| l < layers && h < heads)
                .collect()
        } else {
            HeadSet::new()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_neuron_head_is_the_first_head_shown_and_only_while_open() {
        let mut s = InspectSettings::default();
        let mut sel = Selection::default();
        sel.fit(2, 4);
        sel.layer = 1;
        assert_eq!(s.neuron_head(&sel, 4), None);
        s.neuron_view = true;
        assert_eq!(s.neuron_head(&sel, 4), Some((1, 0)));
        sel.isolate_head(2);
        sel.toggle_head(3);
        assert_eq!(s.neuron_head(&sel, 4), Some((1, 2)));
        s.toggle(0, 3);
        let inspect = s.inspect(&sel, 4);
        assert_eq!(inspect.neurons, Some((1, 2)));
        assert_eq!(inspect.ablate.to_string(), "0:3");
    }

    #[test]
    fn ablated_heads_fit_the_loaded_model() {
        let mut s = InspectSettings::default();
        s.toggle(0, 1);
        s.toggle(5, 0);
        s.toggle(1, 7);
        s.toggle(1, 7);
        assert_eq!(s.ablated.to_string(), "0:1,5:0");
        s.fit(true, 2, 4);
        assert_eq!(s.ablated.to_string(), "0:1");
        s.fit(false, 2, 4);
        assert!(s.ablated.is_empty());
    }
}
