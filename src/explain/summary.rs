//! One sentence that says what an explanation shows.

use crate::tokenize::is_special;

/// "the prediction *X* rests mostly on *a*, *b*, *c*": the `count` tokens
/// (or words) with the largest positive scores, special tokens left out.
pub fn sentence(target: &str, tokens: &[String], scores: &[f32], count: usize) -> String {
    let mut ranked: Vec<(usize, f32)> = scores
        .iter()
        .copied()
        .enumerate()
        .filter(|&(i, s)| s > 0.0 && tokens.get(i).is_some_and(|t| !is_special(t)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut names: Vec<String> = Vec::new();
    for (i, _) in ranked {
        let name = format!("*{}*", tokens[i]);
        if !names.contains(&name) {
            names.push(name);
        }
        if names.len() == count {
            break;
        }
    }
    if names.is_empty() {
        return format!("no ordinary token speaks for the prediction *{target}*");
    }
    format!(
        "the prediction *{target}* rests mostly on {}",
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_strongest_ordinary_tokens_once() {
        let tokens: Vec<String> = ["[CLS]", "fact", "check", "false", "false", "[SEP]"]
            .map(String::from)
            .to_vec();
        let scores = [9.0, 0.2, 0.1, 0.5, 0.4, 3.0];
        assert_eq!(
            sentence("disagreed", &tokens, &scores, 3),
            "the prediction *disagreed* rests mostly on *false*, *fact*, *check*"
        );
        assert!(sentence("x", &tokens, &[-1.0; 6], 3).starts_with("no ordinary token"));
    }
}
