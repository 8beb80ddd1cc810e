//! Token ids against OpenAI's tokenizer (open_clip's SimpleTokenizer with ftfy) and
//! `transformers`' CLIPTokenizerFast, on 240 varied strings.
#![cfg(feature = "candle")]
mod clip_common;

use std::io::Read;

use clip_common::*;
use hipl::model::clip::tokenizer::{ClipTokenizer, EOT, SOT};

fn rows() -> Vec<(String, Vec<u32>, Vec<u32>)> {
    json("tokens.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["text"].as_str().unwrap().to_string(),
                ids_of(&r["ids"]),
                ids_of(&r["hf_fast_ids"]),
            )
        })
        .collect()
}

#[test]
fn bpe_ids_equal_openai_on_every_fixture_string() {
    let tok = ClipTokenizer::bundled().unwrap();
    let rows = rows();
    assert!(rows.len() >= 200);
    let mut bad = Vec::new();
    for (text, want, _) in &rows {
        let got = tok.tokenize(text).unwrap();
        if &got != want {
            bad.push(format!(
                "{text:?}\n  got  {:?}\n  want {:?}",
                &got[..12.min(got.len())],
                &want[..12]
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} strings differ:\n{}",
        bad.len(),
        rows.len(),
        bad.join("\n")
    );
}

#[test]
fn tokenizer_json_ids_equal_transformers_fast_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let mut json = String::new();
    let gz = std::fs::File::open(fixtures().join("tokenizer.json.gz")).unwrap();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut json)
        .unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, json).unwrap();
    let tok = ClipTokenizer::from_tokenizer_json(&path).unwrap();
    for (text, _, want) in rows() {
        assert_eq!(tok.encode(&text).unwrap(), want, "{text:?}");
    }
}

#[test]
fn long_text_is_cut_to_77_with_the_end_token_last() {
    let tok = ClipTokenizer::bundled().unwrap();
    let ids = tok.tokenize(&"word ".repeat(200)).unwrap();
    assert_eq!(ids.len(), 77);
    assert_eq!((ids[0], ids[76]), (SOT, EOT));
    let short = tok.tokenize("a cat").unwrap();
    assert_eq!(&short[..4], &[SOT, 320, 2368, EOT]);
    assert!(short[4..].iter().all(|&i| i == 0));
}

#[test]
fn special_token_text_maps_to_special_ids() {
    let tok = ClipTokenizer::bundled().unwrap();
    assert_eq!(
        tok.encode("a <|endoftext|>").unwrap(),
        vec![SOT, 320, EOT, EOT]
    );
}

#[test]
fn shared_merge_list_matches_the_bundled_copy() {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/bpe_simple_vocab_16e6.txt.gz");
    let path = if shared.is_file() {
        shared
    } else {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/bpe_simple_vocab_16e6.txt.gz")
    };
    let a = ClipTokenizer::from_bpe_file(&path).unwrap();
    let b = ClipTokenizer::bundled().unwrap();
    let text = "Scratches & dents on a metal nut — 3 of them!";
    assert_eq!(a.tokenize(text).unwrap(), b.tokenize(text).unwrap());
}

#[test]
fn empty_text_list_is_an_error() {
    let tok = ClipTokenizer::bundled().unwrap();
    let err = tok.tokenize_batch::<&str>(&[]).unwrap_err().to_string();
    assert!(err.contains("texts") && err.contains("empty"), "{err}");
}

#[test]
fn prompt_too_long_for_the_context_is_an_error() {
    let tok = ClipTokenizer::bundled().unwrap();
    let err = tok.prompt_template(80, "object .").unwrap_err().to_string();
    assert!(err.contains("n_ctx"), "{err}");
}
