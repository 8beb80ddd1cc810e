//! `hipl clip-embed` and `hipl tokenize` end to end.
#![cfg(feature = "candle")]
mod clip_common;

use std::process::Command;

use clip_common::*;

fn hipl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hipl"))
}

#[test]
fn clip_embed_writes_projected_embeddings() {
    let out = tempfile::tempdir().unwrap();
    let status = hipl()
        .args(["clip-embed", "--model"])
        .arg(tiny_dir())
        .arg("--image")
        .arg(fixtures().join("rgb.png"))
        .arg("--image")
        .arg(fixtures().join("grey.png"))
        .args(["--text", "a photo of a cat", "--text", "a damaged object ."])
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
    let read = |name: &str| {
        let a: ndarray::Array2<f32> = ndarray_npy::read_npy(out.path().join(name)).unwrap();
        candle_core::Tensor::from_vec(
            a.iter().copied().collect(),
            a.dim(),
            &candle_core::Device::Cpu,
        )
        .unwrap()
    };
    assert_close(
        "cli image embeds",
        &read("image_embeds.npy"),
        &npy("vision_embeds.npy"),
        1e-4,
    );
    let text = read("text_embeds.npy");
    assert_close(
        "cli text embeds",
        &text,
        &npy("text_embeds.npy").narrow(0, 0, 2).unwrap(),
        1e-4,
    );
}

#[test]
fn clip_embed_without_inputs_fails_with_a_message() {
    let out = tempfile::tempdir().unwrap();
    let o = hipl()
        .args(["clip-embed", "--model"])
        .arg(tiny_dir())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--image/--text"));
}

#[test]
fn tokenize_prints_ids_as_json() {
    let o = hipl()
        .args(["tokenize", "a photo of a cat", "Hi!"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: Vec<Vec<u32>> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0], vec![49406, 320, 1125, 539, 320, 2368, 49407]);
    assert_eq!(v.len(), 2);
}
