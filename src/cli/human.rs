//! Human-readable output of the CLI commands.

use bertscope::catalog::ModelSummary;
use bertscope::engine::{AttentionResult, ClassifyResult, FillMaskResult};
use bertscope::tokenize::is_special;

pub fn attention(result: &AttentionResult, words: bool) {
    println!("{} tokens:", result.tokens.len());
    for (i, (token, ty)) in result.tokens.iter().zip(&result.token_type_ids).enumerate() {
        println!(
            "  {i:>3}  {token}  (id {}, segment {ty})",
            result.input_ids[i]
        );
    }
    let maps = &result.attentions;
    println!(
        "\n{} layers x {} heads; per head, the strongest link between two ordinary tokens:",
        maps.layers, maps.heads
    );
    let ordinary = |i: usize| !is_special(&result.tokens[i]);
    for layer in 0..maps.layers {
        let mut line = format!("  layer {layer:>2}:");
        for head in 0..maps.heads {
            let mut best: Option<(usize, usize, f32)> = None;
            for q in (0..maps.seq).filter(|&q| ordinary(q)) {
                for k in (0..maps.seq).filter(|&k| k != q && ordinary(k)) {
                    let w = maps.get(layer, head, q, k);
                    if best.is_none_or(|(_, _, b)| w > b) {
                        best = Some((q, k, w));
                    }
                }
            }
            if let Some((q, k, w)) = best {
                line.push_str(&format!(
                    "  h{head}: {}→{} {:.2}",
                    result.tokens[q], result.tokens[k], w
                ));
            }
        }
        println!("{line}");
    }
    attention_extras(result, words);
    println!("\n(use --json for every weight)");
}

/// `--neurons`: one head's query·key products; `--words`: the words.
fn attention_extras(result: &AttentionResult, words: bool) {
    if let Some(n) = &result.neurons {
        println!(
            "\nlayer {} head {}: each token's query and the key it scores highest (q·k/√d)",
            n.layer, n.head
        );
        let scale = 1.0 / (n.dim as f32).sqrt();
        for q in 0..n.tokens.min(result.tokens.len()) {
            let scores: Vec<f32> = (0..n.tokens)
                .map(|k| {
                    n.query(q)
                        .iter()
                        .zip(n.key(k))
                        .map(|(a, b)| a * b)
                        .sum::<f32>()
                        * scale
                })
                .collect();
            let best = bertscope::engine::top_indices(&scores, 1);
            if let Some(&k) = best.first() {
                println!(
                    "  {} → {}  {:.3}",
                    result.tokens[q], result.tokens[k], scores[k]
                );
            }
        }
    }
    if words {
        let grouped = bertscope::explain::words::group(&result.tokens);
        println!("\n{} words: {}", grouped.len(), grouped.words.join(" | "));
    }
}

pub fn fill_mask(result: &FillMaskResult) {
    println!("{}", result.tokens.join(" "));
    for mask in &result.masks {
        println!("\n[MASK] at position {}:", mask.index);
        for p in &mask.predictions {
            let bar = "█".repeat((p.score * 40.0).round() as usize);
            println!("  {:<16} {:>6.2}%  {bar}", p.token_str, p.score * 100.0);
        }
    }
}

pub fn classify(result: &ClassifyResult) {
    for p in &result.predictions {
        let bar = "█".repeat((p.score * 40.0).round() as usize);
        println!("  {:<20} {:>6.2}%  {bar}", p.label, p.score * 100.0);
    }
}

pub fn models(models: &[ModelSummary]) {
    if models.is_empty() {
        println!("No models found in ./models or the Hugging Face cache.");
        println!("Fetch the demo model with: bash scripts/fetch-demo-model.sh");
        return;
    }
    for m in models {
        let mut heads = Vec::new();
        if m.has_mlm_head {
            heads.push("masked-LM".to_string());
        }
        if let Some(labels) = &m.classifier_labels {
            heads.push(format!("classifier [{}]", labels.join(", ")));
        }
        if heads.is_empty() {
            heads.push("encoder only".to_string());
        }
        println!(
            "{}\n    {} layers x {} heads, hidden {}, vocabulary {}; heads: {}\n    {}",
            m.name,
            m.layers,
            m.heads,
            m.hidden_size,
            m.vocab_size,
            heads.join(", "),
            m.path.display()
        );
    }
}

pub fn bench(load_ms: f64, times: &[(usize, f64)]) {
    println!("model load: {load_ms:.1} ms");
    for (len, ms) in times {
        println!("forward seq {len:>4}: {ms:>8.2} ms (median, batch 1, attentions returned)");
    }
}
