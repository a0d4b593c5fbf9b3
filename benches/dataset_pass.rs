//! What the dataset pass's reductions cost: the same rows through
//! `dataset::pass::attention_pass` with a reducer that does nothing (a plain
//! batched forward with the attention maps) and with the head statistics,
//! then the coreference probe's per-row choices. Run:
//! `cargo bench --bench dataset_pass [-- ROWS]` (default 3000 generated pairs
//! on `models/all-MiniLM-L6-v2`). A benchmark, not a test.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use bertscope::dataset::pass::{attention_pass, BatchAttention};
use bertscope::dataset::stats::{RowKeys, StatsSums};
use bertscope::tokenize::Encoded;
use bertscope::LoadedModel;

fn rows(n: usize) -> Vec<(String, String)> {
    let text = std::fs::read_to_string("assets/demo/claims-train.tsv").unwrap_or_default();
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut state = 7u64;
    let mut next = move |m: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize % m.max(1)
    };
    let mut sentence = |lo: usize, hi: usize| {
        let len = lo + next(hi - lo + 1);
        (0..len)
            .map(|_| words[next(words.len())])
            .collect::<Vec<_>>()
            .join(" ")
    };
    (0..n).map(|_| (sentence(5, 40), sentence(3, 25))).collect()
}

fn time(what: &str, f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    let s = start.elapsed().as_secs_f64();
    println!("{what:<34} {s:>8.2} s");
    s
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3000);
    let model = match LoadedModel::load("models/all-MiniLM-L6-v2", &candle_core::Device::Cpu) {
        Ok(m) => m,
        Err(e) => {
            println!("skipped: {e} (run scripts/fetch-demo-model.sh)");
            return;
        }
    };
    let pairs = rows(n);
    let inputs: Vec<(&str, Option<&str>)> = pairs
        .iter()
        .map(|(a, b)| (a.as_str(), Some(b.as_str())))
        .collect();
    let encoded: Vec<Encoded> = model
        .tokenizer
        .encode_batch(&inputs, 128, true)
        .unwrap_or_default();
    let keys: Vec<RowKeys> = encoded.iter().map(RowKeys::of).collect();
    let lengths: Vec<usize> = encoded.iter().map(Encoded::len).collect();
    let (pad, never) = (model.tokenizer.pad_id(), AtomicBool::new(false));
    let config = model.config();
    println!(
        "{n} pairs, {} tokens, MiniLM",
        lengths.iter().sum::<usize>()
    );
    let run = |reduce: &mut dyn FnMut(&BatchAttention) -> bertscope::Result<()>| {
        if let Err(e) = attention_pass(&model.model, pad, &encoded, reduce, &mut |_, _| {}, &never)
        {
            println!("failed: {e}");
        }
    };
    let plain = time("forward with attention maps", || run(&mut |_| Ok(())));
    let mut sums = StatsSums::new(config.num_layers(), config.num_heads(), 0);
    let stats = time("forward + head statistics", || {
        run(&mut |attn| {
            sums.add(attn, &lengths, &keys);
            Ok(())
        })
    });
    println!("head statistics cost {:.3}× the plain pass", stats / plain);
}
