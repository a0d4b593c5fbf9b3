//! What the app remembers across restarts (eframe persistence).

use serde::{Deserialize, Serialize};

use crate::ui::inspect::InspectSettings;
use crate::ui::selection::Selection;
use crate::ui::training::form::TrainForm;

/// The views of the main panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum View {
    #[default]
    Head,
    Model,
    Matrix,
    MaskedLm,
    Train,
    Compare,
    Explain,
    Tokens,
    Heads,
    Data,
}

impl View {
    pub const ALL: [View; 10] = [
        View::Tokens,
        View::Head,
        View::Model,
        View::Matrix,
        View::MaskedLm,
        View::Explain,
        View::Heads,
        View::Data,
        View::Train,
        View::Compare,
    ];

    pub fn label(self) -> &'static str {
        match self {
            View::Head => "Head view",
            View::Model => "Model view",
            View::Matrix => "Matrix view",
            View::MaskedLm => "Masked LM",
            View::Train => "Training",
            View::Compare => "Compare",
            View::Explain => "Explain",
            View::Tokens => "Tokens",
            View::Heads => "Heads",
            View::Data => "Data",
        }
    }

    /// The `--view` name.
    pub fn parse(name: &str) -> Option<View> {
        match name {
            "head" => Some(View::Head),
            "model" => Some(View::Model),
            "matrix" => Some(View::Matrix),
            "mlm" => Some(View::MaskedLm),
            "train" => Some(View::Train),
            "compare" => Some(View::Compare),
            "explain" => Some(View::Explain),
            "tokens" => Some(View::Tokens),
            "heads" => Some(View::Heads),
            "data" => Some(View::Data),
            _ => None,
        }
    }
}

/// Everything persisted between sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub model: Option<String>,
    pub text_a: String,
    pub text_b: String,
    pub view: View,
    pub selection: Selection,
    pub top_k: usize,
    /// Token positions the user masked by clicking.
    pub masked: Vec<usize>,
    /// The training view's form.
    #[serde(default)]
    pub train: TrainForm,
    /// Heads switched off, the neuron panel.
    #[serde(default)]
    pub inspect: InspectSettings,
}

impl Default for Settings {
    fn default() -> Self {
        let first = crate::ui::examples::EXAMPLES[0];
        Settings {
            model: None,
            text_a: first.text_a.to_string(),
            text_b: first.text_b.unwrap_or_default().to_string(),
            view: View::Head,
            selection: Selection::default(),
            top_k: 5,
            masked: Vec::new(),
            train: TrainForm::default(),
            inspect: InspectSettings::default(),
        }
    }
}

pub const STORAGE_KEY: &str = "bertscope-settings";
