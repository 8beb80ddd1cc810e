//! CLIP's tokenizer: byte-level BPE over `bpe_simple_vocab_16e6.txt.gz`, or a checkpoint's
//! `tokenizer.json` through the `tokenizers` crate.
//!
//! Every sequence is `[start, tokens.., end]`, cut to the context length (77) with the end
//! token kept as the last id, then padded with 0 as OpenAI's `clip.tokenize` does.
//! (`transformers` pads with the end token instead; pooling at the first end token makes
//! the two paddings give the same embeddings.)
// LIMITATION: letter, number and white-space classes come from the `regex` and
// `unicode-normalization` crates' Unicode tables, Python's from its `unicodedata` version;
// characters assigned in between can split differently. Pinning both to one Unicode
// version would lift it.
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::text_clean;
use crate::{Error, Result};

/// The merge list the library carries (OpenAI CLIP, MIT; see `data/SOURCES.md`).
static BUNDLED_BPE: &[u8] = include_bytes!("../../../data/bpe_simple_vocab_16e6.txt.gz");

/// Id of `<|startoftext|>` in CLIP's vocabulary.
pub const SOT: u32 = 49406;
/// Id of `<|endoftext|>` in CLIP's vocabulary.
pub const EOT: u32 = 49407;
/// CLIP's context length.
pub const CONTEXT_LENGTH: usize = 77;

/// OpenAI's byte-to-character table: printable Latin-1 bytes map to themselves, the others
/// to U+0100 onwards, so every byte string is a string of visible characters.
fn byte_chars() -> [char; 256] {
    let mut bs: Vec<u32> = (33..=126).chain(161..=172).chain(174..=255).collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut table = ['\0'; 256];
    for (b, c) in bs.iter().zip(cs) {
        table[*b as usize] = char::from_u32(c).unwrap_or('\0');
    }
    table
}

/// Byte order of the first 256 vocabulary entries (printable first, as OpenAI lists them).
fn byte_order() -> Vec<u8> {
    let mut bs: Vec<u8> = (33..=126u8).chain(161..=172).chain(174..=255).collect();
    for b in 0..=255u8 {
        if !bs.contains(&b) {
            bs.push(b);
        }
    }
    bs
}

/// OpenAI's byte-pair encoder.
struct Bpe {
    encoder: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    byte_chars: [char; 256],
}

impl Bpe {
    fn from_gz(bytes: &[u8], origin: &Path) -> Result<Self> {
        let bad = |reason: String| Error::BadFile {
            path: origin.to_path_buf(),
            reason,
        };
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_string(&mut text)
            .map_err(|e| bad(format!("not a gzip-compressed UTF-8 merge list: {e}")))?;

        // the header line, then the 49152 - 256 - 2 merges CLIP uses
        let n_merges = 49152 - 256 - 2;
        let lines: Vec<&str> = text.split('\n').skip(1).take(n_merges).collect();
        if lines.len() < n_merges {
            return Err(bad(format!(
                "expected {n_merges} merges, found {}",
                lines.len()
            )));
        }
        let byte_chars = byte_chars();
        let mut vocab: Vec<String> = byte_order()
            .iter()
            .map(|&b| byte_chars[b as usize].to_string())
            .collect();
        let with_end: Vec<String> = vocab.iter().map(|v| format!("{v}</w>")).collect();
        vocab.extend(with_end);
        let mut ranks = HashMap::with_capacity(n_merges);
        for (rank, line) in lines.iter().enumerate() {
            let mut parts = line.split_whitespace();
            let (a, b) = match (parts.next(), parts.next()) {
                (Some(a), Some(b)) => (a, b),
                _ => {
                    return Err(bad(format!(
                        "merge {} is not two symbols: {line:?}",
                        rank + 1
                    )))
                }
            };
            vocab.push(format!("{a}{b}"));
            ranks.insert((a.to_string(), b.to_string()), rank);
        }
        vocab.push("<|startoftext|>".into());
        vocab.push("<|endoftext|>".into());
        let encoder = vocab
            .into_iter()
            .enumerate()
            .map(|(i, v)| (v, i as u32))
            .collect();
        Ok(Bpe {
            encoder,
            ranks,
            byte_chars,
        })
    }

    /// Merges one pre-token (already mapped to byte characters) into vocabulary entries.
    fn bpe(&self, token: &str) -> Vec<String> {
        let chars: Vec<char> = token.chars().collect();
        let mut word: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
        if let Some(last) = word.last_mut() {
            last.push_str("</w>");
        }
        while word.len() > 1 {
            let best = word
                .windows(2)
                .filter_map(|p| {
                    self.ranks
                        .get(&(p[0].clone(), p[1].clone()))
                        .map(|r| (*r, p))
                })
                .min_by_key(|(r, _)| *r);
            let (first, second) = match best {
                Some((_, p)) => (p[0].clone(), p[1].clone()),
                None => break,
            };
            let mut merged = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == first && word[i + 1] == second {
                    merged.push(format!("{first}{second}"));
                    i += 2;
                } else {
                    merged.push(word[i].clone());
                    i += 1;
                }
            }
            word = merged;
        }
        word
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        static PAT: OnceLock<regex::Regex> = OnceLock::new();
        let pat = PAT.get_or_init(|| {
            regex::Regex::new(
                r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+",
            )
            .expect("static regex")
        });
        let text = text_clean::clean(text);
        let mut ids = Vec::new();
        for m in pat.find_iter(&text) {
            match m.as_str() {
                "<|startoftext|>" => ids.push(SOT),
                "<|endoftext|>" => ids.push(EOT),
                tok => {
                    let mapped: String = tok.bytes().map(|b| self.byte_chars[b as usize]).collect();
                    for piece in self.bpe(&mapped) {
                        // every merge result and byte is in the vocabulary by construction
                        if let Some(id) = self.encoder.get(&piece) {
                            ids.push(*id);
                        }
                    }
                }
            }
        }
        ids
    }
}

enum Inner {
    Bpe(Box<Bpe>),
    Json(Box<tokenizers::Tokenizer>),
}

/// CLIP's tokenizer, either OpenAI's BPE or a checkpoint's `tokenizer.json`.
pub struct ClipTokenizer {
    inner: Inner,
    context_length: usize,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner {
            Inner::Bpe(_) => "bpe",
            Inner::Json(_) => "tokenizer.json",
        };
        write!(f, "ClipTokenizer({kind}, context {})", self.context_length)
    }
}

impl ClipTokenizer {
    /// Reads a gzip-compressed merge list such as `bpe_simple_vocab_16e6.txt.gz`.
    pub fn from_bpe_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bpe = Bpe::from_gz(&bytes, path)?;
        Ok(ClipTokenizer {
            inner: Inner::Bpe(Box::new(bpe)),
            context_length: CONTEXT_LENGTH,
        })
    }

    /// The merge list compiled into the library.
    pub fn bundled() -> Result<Self> {
        let bpe = Bpe::from_gz(
            BUNDLED_BPE,
            Path::new("<bundled bpe_simple_vocab_16e6.txt.gz>"),
        )?;
        Ok(ClipTokenizer {
            inner: Inner::Bpe(Box::new(bpe)),
            context_length: CONTEXT_LENGTH,
        })
    }

    /// Finds the merge list: `explicit`, else `$HIPL_BPE`, else
    /// `../shared/data/bpe_simple_vocab_16e6.txt.gz`, else the bundled copy.
    pub fn locate(explicit: Option<&Path>) -> Result<Self> {
        if let Some(p) = explicit {
            return Self::from_bpe_file(p);
        }
        if let Some(p) = std::env::var_os("HIPL_BPE") {
            return Self::from_bpe_file(&PathBuf::from(p));
        }
        let shared = Path::new("../shared/data/bpe_simple_vocab_16e6.txt.gz");
        if shared.is_file() {
            return Self::from_bpe_file(shared);
        }
        Self::bundled()
    }

    /// Loads a Hugging Face `tokenizer.json` (its normaliser does NFC, white space and
    /// lower-casing, without ftfy or HTML decoding).
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        let tok = tokenizers::Tokenizer::from_file(path).map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(ClipTokenizer {
            inner: Inner::Json(Box::new(tok)),
            context_length: CONTEXT_LENGTH,
        })
    }

    /// The tokenizer for a checkpoint directory: its `tokenizer.json` if it has one, else
    /// the BPE merge list found by [`ClipTokenizer::locate`].
    pub fn for_checkpoint(dir: &Path, bpe: Option<&Path>) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        if bpe.is_none() && json.is_file() {
            return Self::from_tokenizer_json(&json);
        }
        Self::locate(bpe)
    }

    /// Sets the context length (77 for CLIP).
    pub fn with_context_length(mut self, n: usize) -> Result<Self> {
        if n < 2 {
            return Err(Error::invalid("context_length", "at least 2", n));
        }
        self.context_length = n;
        Ok(self)
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// `[start, tokens.., end]`, not cut and not padded.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match &self.inner {
            Inner::Bpe(bpe) => {
                let mut ids = vec![SOT];
                ids.extend(bpe.encode(text));
                ids.push(EOT);
                Ok(ids)
            }
            Inner::Json(tok) => {
                let enc = tok
                    .encode(text, true)
                    .map_err(|e| Error::invalid("text", "text the tokenizer can encode", e))?;
                Ok(enc.get_ids().to_vec())
            }
        }
    }

    /// Exactly `context_length` ids: cut keeping the end token last, padded with 0.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.encode(text)?;
        let n = self.context_length;
        if ids.len() > n {
            let end = *ids.last().unwrap_or(&EOT);
            ids.truncate(n);
            ids[n - 1] = end;
        }
        ids.resize(n, 0);
        Ok(ids)
    }

    /// [`ClipTokenizer::tokenize`] for each text; an empty list is an error.
    pub fn tokenize_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<u32>>> {
        if texts.is_empty() {
            return Err(Error::invalid(
                "texts",
                "at least one text",
                "an empty list",
            ));
        }
        texts.iter().map(|t| self.tokenize(t.as_ref())).collect()
    }

    /// Ids for a learnable-prompt template `[V1..Vn] suffix`: the start token, `n_ctx`
    /// placeholder tokens (`X`, whose embeddings the prompt replaces), the suffix's tokens
    /// and the end token, padded to the context length.
    pub fn prompt_template(&self, n_ctx: usize, suffix: &str) -> Result<Vec<u32>> {
        let placeholders = vec!["X"; n_ctx].join(" ");
        let ids = self.tokenize(&format!("{placeholders} {suffix}"))?;
        let x = self.encode("X")?;
        let end = ids.iter().position(|&i| i == EOT).unwrap_or(ids.len());
        if x.len() != 3 || end < n_ctx + 1 || ids[1..=n_ctx].iter().any(|&i| i != x[1]) {
            return Err(Error::invalid(
                "n_ctx",
                format!(
                    "a prompt length that fits the context of {}",
                    self.context_length
                ),
                n_ctx,
            ));
        }
        Ok(ids)
    }
}
