//! Bad checkpoints, configs, images and inputs each give a clear error, never a panic.
#![cfg(feature = "candle")]
mod clip_common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use clip_common::*;
use hipl::model::clip::{
    ClipModel, ClipTokenizer, TextOptions, TextPrompts, VisionOptions, VisionPrompts,
};
use hipl::Error;

/// A copy of the tiny checkpoint with its tensors changed by `edit`.
fn edited(edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut ts =
        candle_core::safetensors::load(tiny_dir().join("model.safetensors"), &Device::Cpu).unwrap();
    edit(&mut ts);
    candle_core::safetensors::save(&ts, dir.path().join("model.safetensors")).unwrap();
    std::fs::copy(
        tiny_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    dir
}

fn load(dir: &Path) -> hipl::Result<ClipModel> {
    ClipModel::load(dir, DType::F32, &Device::Cpu)
}

#[test]
fn missing_tensor_names_the_key() {
    let key = "vision_model.encoder.layers.2.mlp.fc1.weight";
    let dir = edited(|ts| drop(ts.remove(key)));
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::Checkpoint { key: k, .. } if k == key),
        "{err}"
    );
    assert!(err.to_string().contains("no such tensor"), "{err}");
}

#[test]
fn misshaped_tensor_names_the_key_and_both_shapes() {
    let key = "text_model.encoder.layers.1.self_attn.q_proj.weight";
    let dir = edited(|ts| {
        drop(ts.insert(
            key.into(),
            Tensor::zeros((32, 31), DType::F16, &Device::Cpu).unwrap(),
        ))
    });
    let msg = load(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains(key) && msg.contains("[32, 32]") && msg.contains("[32, 31]"),
        "{msg}"
    );
}

#[test]
fn non_float_tensor_is_an_error() {
    let key = "visual_projection.weight";
    let dir = edited(|ts| {
        drop(ts.insert(
            key.into(),
            Tensor::zeros((16, 32), DType::U8, &Device::Cpu).unwrap(),
        ))
    });
    let msg = load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains(key) && msg.contains("U8"), "{msg}");
}

#[test]
fn truncated_safetensors_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(tiny_dir().join("model.safetensors")).unwrap();
    for keep in [bytes.len() / 2, 6, 0] {
        std::fs::write(dir.path().join("model.safetensors"), &bytes[..keep]).unwrap();
        std::fs::copy(
            tiny_dir().join("config.json"),
            dir.path().join("config.json"),
        )
        .unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::BadFile { .. }), "{keep} bytes: {err}");
        assert!(err.to_string().contains("model.safetensors"), "{err}");
    }
}

#[test]
fn missing_files_are_io_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let msg = load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("config.json"), "{msg}");
    std::fs::copy(
        tiny_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let msg = load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("model.safetensors"), "{msg}");
}

#[test]
fn bad_config_json_is_an_error_naming_the_field() {
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny_dir().join("config.json")).unwrap())
            .unwrap();
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (serde_json::json!("not an object"), "not a CLIP config"),
        (
            {
                let mut v = base.clone();
                v["vision_config"]["num_attention_heads"] = 5.into();
                v
            },
            "vision_config.num_attention_heads",
        ),
        (
            {
                let mut v = base.clone();
                v["text_config"]["hidden_size"] = "wide".into();
                v
            },
            "not a CLIP config",
        ),
        (
            {
                let mut v = base.clone();
                v["vision_config"]["hidden_act"] = "relu".into();
                v
            },
            "vision_config.hidden_act",
        ),
        (
            {
                let mut v = base.clone();
                v["projection_dim"] = 0.into();
                v
            },
            "projection_dim",
        ),
        (
            {
                let mut v = base.clone();
                v.as_object_mut().unwrap().remove("vision_config");
                v
            },
            "vision_config",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        tiny_dir().join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    for (cfg, needle) in cases {
        std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains(needle) && msg.contains("config.json"),
            "want {needle:?} in: {msg}"
        );
    }
    std::fs::write(dir.path().join("config.json"), "{ \"text_config\": ").unwrap();
    assert!(matches!(
        load(dir.path()).unwrap_err(),
        Error::BadFile { .. }
    ));
}

#[test]
fn a_config_that_disagrees_with_the_weights_names_the_tensor() {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny_dir().join("config.json")).unwrap())
            .unwrap();
    v["vision_config"]["intermediate_size"] = 48.into();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        tiny_dir().join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    std::fs::write(dir.path().join("config.json"), v.to_string()).unwrap();
    let msg = load(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("vision_model.encoder.layers.0.mlp.fc1.weight") && msg.contains("[48, 32]"),
        "{msg}"
    );
}

#[test]
fn f32_and_bf16_files_load_too() {
    for dtype in [DType::F32, DType::BF16] {
        let dir = edited(|ts| {
            for t in ts.values_mut() {
                *t = t.to_dtype(dtype).unwrap();
            }
        });
        let m = load(dir.path()).unwrap();
        let x = Tensor::stack(&[npy("pixels_rgb_32.npy"), npy("pixels_grey_32.npy")], 0).unwrap();
        let out = m.vision.forward(&x, &VisionOptions::default()).unwrap();
        // f16 weights widen to f32 exactly; bf16 drops 3 mantissa bits
        let tol = if dtype == DType::F32 { 1e-4 } else { 0.1 };
        assert_close(
            &format!("{dtype:?} file"),
            &out.image_embeds,
            &npy("vision_embeds.npy"),
            tol,
        );
    }
}

#[test]
fn unreadable_and_corrupt_images_are_errors() {
    let err = hipl::model::clip::preprocess::load_rgb(&fixtures().join("corrupt.png")).unwrap_err();
    assert!(matches!(err, Error::Image { .. }), "{err}");
    assert!(err.to_string().contains("corrupt.png"));
    let err = hipl::model::clip::preprocess::load_rgb(&fixtures().join("no-such.png")).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("no-such.png"),
        "{err}"
    );
    let none: [&str; 0] = [];
    let err = hipl::model::clip::preprocess::load_images(&none, 32, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("images"), "{err}");
}

#[test]
fn bad_token_ids_are_errors() {
    let m = tiny(DType::F32);
    let tok = ClipTokenizer::bundled().unwrap();
    let ok = tok.tokenize("a cat").unwrap();
    let mut oov = ok.clone();
    oov[2] = 60000;
    let mut no_end = ok.clone();
    no_end[3] = 320;
    let cases: Vec<(Vec<Vec<u32>>, &str)> = vec![
        (vec![], "empty"),
        (vec![oov], "60000"),
        (vec![no_end], "end token"),
        (vec![ok.clone(), ok[..10].to_vec()], "lengths"),
        (vec![vec![SOT_EOT[0]; 78]], "lengths"),
    ];
    for (ids, needle) in cases {
        let msg = m
            .text
            .forward(&ids, &TextOptions::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains(needle), "want {needle:?} in: {msg}");
    }
}

const SOT_EOT: [u32; 2] = [49406, 49407];

#[test]
fn bad_pixels_layers_and_prompts_are_errors() {
    let m = tiny(DType::F32);
    let dev = Device::Cpu;
    let x = npy("pixels_rgb_32.npy").unsqueeze(0).unwrap();
    let vision_err =
        |x: &Tensor, o: &VisionOptions| m.vision.forward(x, o).unwrap_err().to_string();

    let grey = Tensor::zeros((1, 1, 32, 32), DType::F32, &dev).unwrap();
    assert!(vision_err(&grey, &VisionOptions::default()).contains("pixels"));
    let tiny_img = Tensor::zeros((1, 3, 4, 4), DType::F32, &dev).unwrap();
    assert!(vision_err(&tiny_img, &VisionOptions::default()).contains("pixels"));
    let o = VisionOptions {
        layers: vec![5],
        ..Default::default()
    };
    assert!(vision_err(&x, &o).contains("layers"));
    let o = VisionOptions {
        dpam_from: Some(0),
        ..Default::default()
    };
    assert!(vision_err(&x, &o).contains("dpam_from"));
    let p = VisionPrompts::new().at(1, Tensor::zeros((1, 2, 31), DType::F32, &dev).unwrap());
    let o = VisionOptions {
        prompts: Some(&p),
        ..Default::default()
    };
    let msg = vision_err(&x, &o);
    assert!(
        msg.contains("vision prompts") && msg.contains("31"),
        "{msg}"
    );
    let p = VisionPrompts::new().at(9, Tensor::zeros((2, 32), DType::F32, &dev).unwrap());
    let o = VisionOptions {
        prompts: Some(&p),
        ..Default::default()
    };
    assert!(vision_err(&x, &o).contains("1..=4"));

    let ids = ClipTokenizer::bundled()
        .unwrap()
        .prompt_template(4, "object .")
        .unwrap();
    let p = TextPrompts::new().with_prefix(Tensor::zeros((3, 80, 32), DType::F32, &dev).unwrap());
    let msg = m
        .text
        .forward(
            &[ids],
            &TextOptions {
                layers: vec![],
                prompts: Some(&p),
            },
        )
        .unwrap_err()
        .to_string();
    assert!(msg.contains("text prompt prefix"), "{msg}");
}

#[test]
fn bad_merge_list_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bpe.txt.gz");
    std::fs::write(&p, b"plain text, not gzip").unwrap();
    let msg = ClipTokenizer::from_bpe_file(&p).unwrap_err().to_string();
    assert!(msg.contains("bpe.txt.gz") && msg.contains("gzip"), "{msg}");
    assert!(ClipTokenizer::from_bpe_file(&dir.path().join("absent.gz")).is_err());
}
