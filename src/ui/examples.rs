//! The example gallery: inputs that show attention doing something visible.

/// One gallery entry.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    pub name: &'static str,
    pub text_a: &'static str,
    pub text_b: Option<&'static str>,
}

pub const EXAMPLES: [Example; 6] = [
    Example {
        name: "Coreference (English): it → animal",
        text_a: "The animal didn't cross the street because it was too tired.",
        text_b: None,
    },
    Example {
        name: "Coreference (English): it → street",
        text_a: "The animal didn't cross the street",
        text_b: Some("because it was too wide."),
    },
    Example {
        name: "Coreference (Chinese): 他 → 胖虎",
        text_a: "胖虎叫大雄去買漫畫，",
        text_b: Some("回來慢了就打他。"),
    },
    Example {
        name: "Cloze (English)",
        text_a: "Paris is the [MASK] of France.",
        text_b: None,
    },
    Example {
        name: "Cloze (Chinese)",
        text_a: "北京是中国的[MASK]都。",
        text_b: None,
    },
    Example {
        name: "Accents and Japanese",
        text_a: "Ein Café in München.",
        text_b: Some("東京は日本の首都です。"),
    },
];

/// The inputs of every example, for the worker to check against a vocabulary.
pub fn example_inputs() -> Vec<(String, Option<String>)> {
    EXAMPLES
        .iter()
        .map(|e| (e.text_a.to_string(), e.text_b.map(str::to_string)))
        .collect()
}
