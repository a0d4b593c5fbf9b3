//! What the user asked for in a frame; views return these, the app applies them.

use crate::ui::selection::SentenceFilter;
use crate::ui::state::View;
use crate::ui::training::view::TrainAction;

/// A token the pointer is on (or that was clicked), on the query or key side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFocus {
    Query(usize),
    Key(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    SetLayer(usize),
    ToggleHead(usize),
    IsolateHead(usize),
    FocusHead(usize),
    SetFilter(SentenceFilter),
    SetHideSpecial(bool),
    SetRenormalize(bool),
    Hover(Option<TokenFocus>),
    Pin(Option<TokenFocus>),
    /// Open one layer/head in the head view (from the model view).
    OpenHead {
        layer: usize,
        head: usize,
    },
    ToggleMask(usize),
    SetTopK(usize),
    ShowView(View),
    /// Compare view: show this layer/head in the side-by-side views.
    CompareHead {
        layer: usize,
        head: usize,
    },
    /// Compare view: show this epoch's checkpoint as the tuned model (`None`: the saved one).
    ShowEpoch(Option<usize>),
    /// Compare view: rank heads by their change averaged over data, not this input.
    UseMeanChanges(bool),
    /// Something the training view asked for.
    Train(TrainAction),
    /// Switch one head off (or on again): the analysis re-runs without it.
    ToggleAblation {
        layer: usize,
        head: usize,
    },
    /// Switch every head on again.
    ResetAblation,
    /// Model view: a click switches a head off instead of opening it.
    SetAblateMode(bool),
    /// Open or close the head view's neuron panel.
    ShowNeurons(bool),
    /// The neuron panel's key row under the pointer (a token index).
    NeuronKey(Option<usize>),
    /// Draw words (a token and its `##` pieces) instead of tokens.
    SetWords(bool),
    /// *Find similar in data* for this token of the input (its position).
    FindSimilar(usize),
    /// How weights become line opacities (head and model views).
    SetContrast(crate::ui::support::contrast::Contrast),
}
