//! WordPiece tokenisation exactly as `transformers` does it for BERT: from
//! `tokenizer.json`, or rebuilt from `vocab.txt` + `tokenizer_config.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{
    AddedToken, EncodeInput, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::config::read_text_at_most;
use crate::error::{BertError, Result};

/// Largest `tokenizer.json` or `vocab.txt` read: a 4-million-token vocabulary
/// (the most `config.json` may declare) fits; BERT's own is under 1 MB.
const MAX_VOCAB_FILE_BYTES: u64 = 128 << 20;
/// Largest `tokenizer_config.json` / `special_tokens_map.json` read.
const MAX_OPTIONS_FILE_BYTES: u64 = 16 << 20;

/// One encoded input: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub tokens: Vec<String>,
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    /// True when the input was cut to the model's maximum length.
    pub truncated: bool,
}

impl Encoded {
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }
}

/// Whether a token string is a special token (`[CLS]`, `[SEP]`, `[PAD]`,
/// `[MASK]`, `[UNK]`, …), as BERT vocabularies spell them.
pub fn is_special(token: &str) -> bool {
    token.starts_with('[') && token.ends_with(']') && token.len() > 2
}

/// Special tokens as named in `tokenizer_config.json` / `special_tokens_map.json`.
#[derive(Debug, Clone)]
struct SpecialTokens {
    unk: String,
    sep: String,
    pad: String,
    cls: String,
    mask: String,
}

/// Options of the slow `BertTokenizer` that `tokenizer_config.json` may set.
#[derive(Debug, Clone)]
struct VocabOptions {
    do_lower_case: bool,
    tokenize_chinese_chars: bool,
    strip_accents: Option<bool>,
}

/// The tokenizer of a BERT checkpoint.
pub struct BertTokenizer {
    inner: Tokenizer,
    mask_id: Option<u32>,
    mask_token: String,
    pad_id: u32,
    source: PathBuf,
    /// The tokenizer set to truncate at the last maximum length asked for:
    /// built once, not cloned per input (a clone of a BERT vocabulary costs
    /// milliseconds, a hundred times the encoding itself).
    truncating: Mutex<Option<(usize, Arc<Tokenizer>)>>,
}

impl BertTokenizer {
    /// Load from a model directory: the vocabulary of `tokenizer.json` if present,
    /// else `vocab.txt`; options and special tokens from `tokenizer_config.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let config = read_json_opt(&dir.join("tokenizer_config.json"))?;
        let special_map = read_json_opt(&dir.join("special_tokens_map.json"))?;
        let specials = special_tokens(config.as_ref(), special_map.as_ref());
        let options = vocab_options(config.as_ref());
        // `transformers` (v4 and v5 alike) takes only the vocabulary from
        // tokenizer.json and rebuilds the normaliser from tokenizer_config.json's
        // options, so we do the same for both sources.
        let json = dir.join("tokenizer.json");
        let vocab_txt = dir.join("vocab.txt");
        let (vocab, source) = if json.is_file() {
            (vocab_from_json(&json)?, json)
        } else if vocab_txt.is_file() {
            (vocab_from_txt(&vocab_txt)?, vocab_txt)
        } else {
            return Err(BertError::file(
                dir,
                "no tokenizer found (expected tokenizer.json or vocab.txt)",
            ));
        };
        let inner = build(&source, vocab, &specials, &options)?;
        let mask_id = inner.token_to_id(&specials.mask);
        let pad_id = inner.token_to_id(&specials.pad).unwrap_or(0);
        Ok(BertTokenizer {
            inner,
            mask_id,
            mask_token: specials.mask,
            pad_id,
            source,
            truncating: Mutex::new(None),
        })
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn mask_id(&self) -> Option<u32> {
        self.mask_id
    }

    pub fn mask_token(&self) -> &str {
        &self.mask_token
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// `tokenizer.decode([id])` as the fill-mask pipeline uses it for `token_str`.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| BertError::file(&self.source, format!("cannot decode {ids:?}: {e}")))
    }

    /// Encode one sentence or a pair, truncating longest-first to `max_length`
    /// tokens (`usize::MAX`: no truncation).
    pub fn encode(&self, text_a: &str, text_b: Option<&str>, max_length: usize) -> Result<Encoded> {
        let enc = self.with_limit(max_length, |tok| tok.encode(input(text_a, text_b), true))?;
        let enc = enc.map_err(|e| BertError::Input(format!("cannot tokenize input: {e}")))?;
        Ok(encoded(&enc, true))
    }

    /// [`encode`](Self::encode) with each token's byte range in the text
    /// (`(0, 0)` for special tokens); for a pair, ranges in sentence B are
    /// relative to sentence B.
    pub fn encode_with_offsets(
        &self,
        text_a: &str,
        text_b: Option<&str>,
        max_length: usize,
    ) -> Result<(Encoded, Vec<(usize, usize)>)> {
        let enc = self.with_limit(max_length, |tok| tok.encode(input(text_a, text_b), true))?;
        let enc = enc.map_err(|e| BertError::Input(format!("cannot tokenize input: {e}")))?;
        Ok((encoded(&enc, true), enc.get_offsets().to_vec()))
    }

    /// Encode many inputs at once on every core (`tokenizers`' parallel
    /// `encode_batch`), each as [`encode`](Self::encode) would. Without
    /// `with_tokens` the token strings are left empty: training needs ids only.
    pub fn encode_batch(
        &self,
        inputs: &[(&str, Option<&str>)],
        max_length: usize,
        with_tokens: bool,
    ) -> Result<Vec<Encoded>> {
        let batch: Vec<EncodeInput> = inputs.iter().map(|&(a, b)| input(a, b)).collect();
        let encodings = self.with_limit(max_length, |tok| tok.encode_batch(batch, true))?;
        let encodings =
            encodings.map_err(|e| BertError::Input(format!("cannot tokenize input: {e}")))?;
        Ok(encodings.iter().map(|e| encoded(e, with_tokens)).collect())
    }
}

/// An encoded input with where each token came from.
#[derive(Debug, Clone)]
pub struct Located {
    pub encoded: Encoded,
    /// Each token's byte range in its sentence (`(0, 0)` for specials).
    pub offsets: Vec<(usize, usize)>,
    /// Whether each token is one the tokenizer added (`[CLS]`, `[SEP]`).
    pub special: Vec<bool>,
}

impl BertTokenizer {
    /// [`encode_batch`](Self::encode_batch) with token strings, offsets and
    /// which tokens are added specials.
    pub fn encode_batch_located(
        &self,
        inputs: &[(&str, Option<&str>)],
        max_length: usize,
    ) -> Result<Vec<Located>> {
        let batch: Vec<EncodeInput> = inputs.iter().map(|&(a, b)| input(a, b)).collect();
        let encodings = self.with_limit(max_length, |tok| tok.encode_batch(batch, true))?;
        let encodings =
            encodings.map_err(|e| BertError::Input(format!("cannot tokenize input: {e}")))?;
        Ok(encodings
            .iter()
            .map(|e| Located {
                encoded: encoded(e, true),
                offsets: e.get_offsets().to_vec(),
                special: e
                    .get_special_tokens_mask()
                    .iter()
                    .map(|&m| m == 1)
                    .collect(),
            })
            .collect())
    }
}

fn input<'s>(text_a: &'s str, text_b: Option<&'s str>) -> EncodeInput<'s> {
    match text_b {
        Some(b) => (text_a, b).into(),
        None => text_a.into(),
    }
}

fn encoded(enc: &tokenizers::Encoding, with_tokens: bool) -> Encoded {
    Encoded {
        tokens: if with_tokens {
            enc.get_tokens().to_vec()
        } else {
            Vec::new()
        },
        input_ids: enc.get_ids().to_vec(),
        token_type_ids: enc.get_type_ids().to_vec(),
        truncated: !enc.get_overflowing().is_empty(),
    }
}

impl BertTokenizer {
    /// `f` on the tokenizer that truncates at `max_length`; the plain one
    /// (no truncation, no padding) for `usize::MAX`.
    fn with_limit<R>(&self, max_length: usize, f: impl FnOnce(&Tokenizer) -> R) -> Result<R> {
        if max_length == usize::MAX {
            Ok(f(&self.inner))
        } else {
            Ok(f(&*self.truncating_at(max_length)?))
        }
    }

    /// The tokenizer truncating (longest first) at `max_length`, without padding.
    fn truncating_at(&self, max_length: usize) -> Result<Arc<Tokenizer>> {
        let mut cache = self.truncating.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((length, tok)) = cache.as_ref() {
            if *length == max_length {
                return Ok(Arc::clone(tok));
            }
        }
        let mut tok = self.inner.clone();
        tok.with_truncation(Some(TruncationParams {
            max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))
        .map_err(|e| BertError::Input(format!("cannot truncate to {max_length} tokens: {e}")))?;
        tok.with_padding(None);
        let tok = Arc::new(tok);
        *cache = Some((max_length, Arc::clone(&tok)));
        Ok(tok)
    }
}

impl Clone for BertTokenizer {
    fn clone(&self) -> Self {
        BertTokenizer {
            inner: self.inner.clone(),
            mask_id: self.mask_id,
            mask_token: self.mask_token.clone(),
            pad_id: self.pad_id,
            source: self.source.clone(),
            truncating: Mutex::new(None),
        }
    }
}

fn read_json_opt(path: &Path) -> Result<Option<Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = read_text_at_most(path, MAX_OPTIONS_FILE_BYTES)?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| BertError::json(path, &e))
}

/// A special token may be a plain string or an `AddedToken` object with `content`.
fn token_field(value: Option<&Value>, key: &str) -> Option<String> {
    match value?.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Object(obj) => obj.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

fn special_tokens(config: Option<&Value>, map: Option<&Value>) -> SpecialTokens {
    let pick = |key: &str, default: &str| {
        token_field(config, key)
            .or_else(|| token_field(map, key))
            .unwrap_or_else(|| default.to_string())
    };
    SpecialTokens {
        unk: pick("unk_token", "[UNK]"),
        sep: pick("sep_token", "[SEP]"),
        pad: pick("pad_token", "[PAD]"),
        cls: pick("cls_token", "[CLS]"),
        mask: pick("mask_token", "[MASK]"),
    }
}

fn vocab_options(config: Option<&Value>) -> VocabOptions {
    let flag = |key: &str| config.and_then(|c| c.get(key)).and_then(Value::as_bool);
    VocabOptions {
        do_lower_case: flag("do_lower_case").unwrap_or(true),
        tokenize_chinese_chars: flag("tokenize_chinese_chars").unwrap_or(true),
        strip_accents: flag("strip_accents"),
    }
}

/// The parts of a `tokenizer.json` we use: its model's type and vocabulary.
#[derive(serde::Deserialize)]
struct TokenizerFile {
    model: TokenizerModel,
}

#[derive(serde::Deserialize)]
struct TokenizerModel {
    #[serde(rename = "type")]
    kind: Option<String>,
    vocab: HashMap<String, u32>,
    merges: Option<serde::de::IgnoredAny>,
}

/// The WordPiece vocabulary of a `tokenizer.json`. Only the vocabulary is read
/// (see [`BertTokenizer::load`]); deserialising the whole file with `tokenizers`
/// would also panic on some truncated files (its decoder reader `expect`s).
fn vocab_from_json(path: &Path) -> Result<HashMap<String, u32>> {
    let text = read_text_at_most(path, MAX_VOCAB_FILE_BYTES)?;
    let file: TokenizerFile = serde_json::from_str(&text).map_err(|e| BertError::json(path, &e))?;
    let model = file.model;
    let word_piece = match model.kind.as_deref() {
        Some(kind) => kind == "WordPiece",
        // Files written before `type` was recorded: BPE is the one with merges.
        None => model.merges.is_none(),
    };
    if !word_piece {
        return Err(BertError::file(
            path,
            "field `model.type`: not a WordPiece tokenizer (BERT uses WordPiece)",
        ));
    }
    Ok(model.vocab)
}

/// `vocab.txt`: one token a line, its id the line number (as `load_vocab` reads it:
/// a later duplicate wins).
fn vocab_from_txt(path: &Path) -> Result<HashMap<String, u32>> {
    let text = read_text_at_most(path, MAX_VOCAB_FILE_BYTES)?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(index, token)| (token.to_string(), index as u32))
        .collect())
}

/// Build what `transformers`' `BertTokenizer` builds from a vocabulary and options.
fn build(
    path: &Path,
    vocab: HashMap<String, u32>,
    specials: &SpecialTokens,
    options: &VocabOptions,
) -> Result<Tokenizer> {
    if vocab.is_empty() {
        return Err(BertError::file(path, "vocabulary is empty"));
    }
    let id_of = |token: &String| {
        vocab.get(token.as_str()).copied().ok_or_else(|| {
            BertError::file(
                path,
                format!("special token {token} is not in the vocabulary"),
            )
        })
    };
    id_of(&specials.unk)?;
    let sep_id = id_of(&specials.sep)?;
    let cls_id = id_of(&specials.cls)?;
    let model = WordPiece::builder()
        .vocab(vocab.into_iter().collect::<ahash::AHashMap<String, u32>>())
        .unk_token(specials.unk.clone())
        .continuing_subword_prefix("##".into())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|e| BertError::file(path, format!("invalid vocabulary: {e}")))?;
    let mut tok = Tokenizer::new(model);
    let fail = |e: tokenizers::Error| BertError::file(path, format!("cannot build tokenizer: {e}"));
    tok.with_normalizer(Some(BertNormalizer::new(
        true,
        options.tokenize_chinese_chars,
        options.strip_accents,
        options.do_lower_case,
    )))
    .map_err(fail)?;
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_post_processor(Some(BertProcessing::new(
        (specials.sep.clone(), sep_id),
        (specials.cls.clone(), cls_id),
    )));
    tok.with_decoder(Some(WordPieceDecoder::default()));
    let specials: Vec<AddedToken> = [
        &specials.pad,
        &specials.unk,
        &specials.cls,
        &specials.sep,
        &specials.mask,
    ]
    .into_iter()
    .map(|t| AddedToken::from(t.clone(), true))
    .collect();
    tok.add_special_tokens(specials).map_err(fail)?;
    Ok(tok)
}
