//! What the user asked for in a frame; views return these, the app applies them.

use crate::ui::selection::SentenceFilter;
use crate::ui::state::View;

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
}
