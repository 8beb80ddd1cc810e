//! The candle CLIP against `transformers` (and a literal PyTorch loop for DPAM and
//! prompts) on the tiny fixture model: f32 outputs agree within 1e-4.
#![cfg(feature = "candle")]
mod clip_common;

use candle_core::{DType, Device, Tensor};
use clip_common::*;
use hipl::model::clip::{
    ClipTokenizer, PosInterpolation, TextOptions, TextPrompts, VisionOptions, VisionPrompts,
};

const TOL: f32 = 1e-4;

fn pixels(names: &[&str]) -> Tensor {
    let ts: Vec<Tensor> = names.iter().map(|n| npy(n)).collect();
    Tensor::stack(&ts, 0).unwrap()
}

fn all_layers(n: usize) -> Vec<usize> {
    (0..=n).collect()
}

/// Compares every returned layer with `[L + 1, B, N, W]` reference states.
fn check_layers(what: &str, got: &std::collections::BTreeMap<usize, Tensor>, want: &Tensor) {
    for (l, t) in got {
        assert_close(&format!("{what} layer {l}"), t, &want.get(*l).unwrap(), TOL);
    }
}

#[test]
fn vision_tower_matches_transformers() {
    let m = tiny(DType::F32);
    let x = pixels(&["pixels_rgb_32.npy", "pixels_grey_32.npy"]);
    let opts = VisionOptions {
        layers: all_layers(4),
        ..Default::default()
    };
    let out = m.vision.forward(&x, &opts).unwrap();
    assert_eq!(out.grid, (4, 4));
    check_layers("vision", &out.layers, &npy("vision_hidden.npy"));
    assert_close("vision pooled", &out.pooled, &npy("vision_pooled.npy"), TOL);
    assert_close(
        "vision embeds",
        &out.image_embeds,
        &npy("vision_embeds.npy"),
        TOL,
    );
    assert_eq!(out.patch_tokens(4).unwrap().dims(), &[2, 16, 32]);
    let want = npy("vision_hidden.npy").get(4).unwrap();
    assert_close("vision last hidden", &out.last_hidden, &want, TOL);
}

#[test]
fn other_grid_interpolates_position_embeddings_bicubically_like_transformers() {
    let m = tiny(DType::F32);
    let x = pixels(&["pixels_rgb_48.npy"]);
    let opts = VisionOptions {
        layers: all_layers(4),
        ..Default::default()
    };
    let out = m.vision.forward(&x, &opts).unwrap();
    assert_eq!(out.grid, (6, 6));
    check_layers("vision 48px", &out.layers, &npy("vision48_hidden.npy"));
    assert_close(
        "vision 48px embeds",
        &out.image_embeds,
        &npy("vision48_embeds.npy"),
        TOL,
    );
}

#[test]
fn position_embeddings_match_torch_interpolate_for_both_modes() {
    let m = tiny(DType::F32);
    for (mode, how) in [
        ("bicubic", PosInterpolation::Bicubic),
        ("bilinear", PosInterpolation::Bilinear),
    ] {
        for (gh, gw) in [(6, 6), (7, 5)] {
            let got = m.vision.position_embeddings(gh, gw, how).unwrap();
            let want = npy(&format!("pos_{mode}_{gh}x{gw}.npy"));
            assert_close(&format!("pos {mode} {gh}x{gw}"), &got, &want, 1e-5);
        }
    }
}

#[test]
fn bilinear_interpolation_runs_anomalyclip_style() {
    let m = tiny(DType::F32);
    let x = pixels(&["pixels_rgb_48.npy"]);
    let opts = VisionOptions {
        layers: all_layers(4),
        interpolation: PosInterpolation::Bilinear,
        ..Default::default()
    };
    let out = m.vision.forward(&x, &opts).unwrap();
    check_layers(
        "vision 48px bilinear",
        &out.layers,
        &npy("vision48_bilinear_hidden.npy"),
    );
    assert_close(
        "vision 48px bilinear embeds",
        &out.image_embeds,
        &npy("vision48_bilinear_embeds.npy"),
        TOL,
    );
}

#[test]
fn dpam_value_value_path_matches_reference() {
    let m = tiny(DType::F32);
    let x = pixels(&["pixels_rgb_32.npy", "pixels_grey_32.npy"]);
    let opts = VisionOptions {
        layers: all_layers(4),
        dpam_from: Some(3),
        ..Default::default()
    };
    let out = m.vision.forward(&x, &opts).unwrap();
    check_layers("dpam", &out.layers, &npy("dpam_hidden.npy"));
    // the image embedding keeps the original path
    assert_close(
        "dpam embeds",
        &out.image_embeds,
        &npy("dpam_embeds.npy"),
        TOL,
    );
    let projected = m.vision.project_tokens(&out.layers[&4]).unwrap();
    assert_close(
        "dpam projected tokens",
        &projected,
        &npy("dpam_proj_tokens.npy"),
        TOL,
    );
    assert_close(
        "dpam embeds = plain",
        &out.image_embeds,
        &npy("vision_embeds.npy"),
        TOL,
    );
}

#[test]
fn vision_prompts_are_appended_replaced_and_stripped() {
    let m = tiny(DType::F32);
    let x = pixels(&["pixels_rgb_32.npy", "pixels_grey_32.npy"]);
    let prompts = VisionPrompts::new()
        .at(1, npy("vprompt_1.npy"))
        .at(3, npy("vprompt_3.npy"));
    let opts = VisionOptions {
        layers: all_layers(4),
        prompts: Some(&prompts),
        ..Default::default()
    };
    let out = m.vision.forward(&x, &opts).unwrap();
    assert_eq!(
        out.layers[&2].dims(),
        &[2, 17, 32],
        "prompt tokens stripped"
    );
    check_layers("vision prompts", &out.layers, &npy("vprompt_hidden.npy"));
    assert_close(
        "vision prompts embeds",
        &out.image_embeds,
        &npy("vprompt_embeds.npy"),
        TOL,
    );

    let prompts = VisionPrompts::new().at(2, npy("vprompt_1.npy"));
    let opts = VisionOptions {
        layers: all_layers(4),
        dpam_from: Some(2),
        prompts: Some(&prompts),
        ..Default::default()
    };
    let out = m.vision.forward(&x, &opts).unwrap();
    check_layers(
        "vision prompts + dpam",
        &out.layers,
        &npy("vprompt_dpam_hidden.npy"),
    );
    assert_close(
        "vision prompts + dpam embeds",
        &out.image_embeds,
        &npy("vprompt_dpam_embeds.npy"),
        TOL,
    );
}

#[test]
fn text_tower_matches_transformers() {
    let m = tiny(DType::F32);
    let fx = json("text_ids.json");
    let texts: Vec<String> = fx["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().into())
        .collect();
    let ids: Vec<Vec<u32>> = fx["ids"].as_array().unwrap().iter().map(ids_of).collect();
    let tok = ClipTokenizer::bundled().unwrap();
    assert_eq!(tok.tokenize_batch(&texts).unwrap(), ids);

    let opts = TextOptions {
        layers: all_layers(3),
        ..Default::default()
    };
    let out = m.text.forward(&ids, &opts).unwrap();
    check_layers("text", &out.layers, &npy("text_hidden.npy"));
    assert_close("text pooled", &out.pooled, &npy("text_pooled.npy"), TOL);
    assert_close(
        "text embeds",
        &out.text_embeds,
        &npy("text_embeds.npy"),
        TOL,
    );
}

#[test]
fn legacy_eos_config_pools_at_the_largest_id() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = std::fs::read_to_string(tiny_dir().join("config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    v["text_config"]["eos_token_id"] = 2.into();
    std::fs::write(dir.path().join("config.json"), v.to_string()).unwrap();
    std::fs::copy(
        tiny_dir().join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let m = hipl::model::clip::ClipModel::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(m.config.text.eos_token_id, 2);
    let ids: Vec<Vec<u32>> = json("text_ids.json")["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(ids_of)
        .collect();
    let out = m.text.forward(&ids, &TextOptions::default()).unwrap();
    assert_close(
        "legacy text embeds",
        &out.text_embeds,
        &npy("text_embeds.npy"),
        TOL,
    );
}

#[test]
fn text_prompts_replace_placeholders_and_deep_positions() {
    let m = tiny(DType::F32);
    let want_ids = ids_of(&json("tprompt_ids.json")["ids"]);
    let tok = ClipTokenizer::bundled().unwrap();
    let ids = tok.prompt_template(4, "object .").unwrap();
    assert_eq!(ids, want_ids);

    // one row of ids shared by a batch of two prompt sets
    let prompts = TextPrompts::new()
        .with_prefix(npy("tprompt_prefix.npy"))
        .deep_at(2, npy("tprompt_deep2.npy"));
    let opts = TextOptions {
        layers: all_layers(3),
        prompts: Some(&prompts),
    };
    let out = m.text.forward(&[ids], &opts).unwrap();
    check_layers("text prompts", &out.layers, &npy("tprompt_hidden.npy"));
    assert_close(
        "text prompts embeds",
        &out.text_embeds,
        &npy("tprompt_embeds.npy"),
        TOL,
    );
}

#[test]
fn gradients_reach_prompt_tokens_in_differentiable_mode() {
    let mut m = tiny(DType::F32);
    m.set_differentiable(true);
    let prefix = candle_core::Var::from_tensor(&npy("tprompt_prefix.npy")).unwrap();
    let vp = candle_core::Var::from_tensor(&npy("vprompt_1.npy")).unwrap();
    let ids = ClipTokenizer::bundled()
        .unwrap()
        .prompt_template(4, "object .")
        .unwrap();

    let prompts = TextPrompts::new().with_prefix(prefix.as_tensor().clone());
    let t = m
        .text
        .forward(
            &[ids],
            &TextOptions {
                layers: vec![],
                prompts: Some(&prompts),
            },
        )
        .unwrap();
    let vprompts = VisionPrompts::new().at(1, vp.as_tensor().clone());
    let x = pixels(&["pixels_rgb_32.npy", "pixels_grey_32.npy"]);
    let v = m
        .vision
        .forward(
            &x,
            &VisionOptions {
                prompts: Some(&vprompts),
                ..Default::default()
            },
        )
        .unwrap();
    // the differentiable path computes the same values
    assert_close(
        "differentiable text embeds",
        &t.text_embeds,
        &npy("tprompt_embeds_nodeep.npy"),
        TOL,
    );
    let loss = (t.text_embeds * v.image_embeds).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    for (name, var) in [("text prefix", &prefix), ("vision prompt", &vp)] {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            norm.is_finite() && norm > 0.0,
            "{name}: gradient norm {norm}"
        );
    }
}

#[test]
fn half_precision_weights_load_and_stay_close() {
    let x = pixels(&["pixels_rgb_32.npy", "pixels_grey_32.npy"]);
    let ids: Vec<Vec<u32>> = json("text_ids.json")["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(ids_of)
        .collect();
    let want_v = npy("vision_embeds.npy");
    let want_t = npy("text_embeds.npy");
    // relative to the largest reference value: f16 keeps 11 bits, bf16 8
    for (dtype, tol) in [(DType::F16, 1e-2f32), (DType::BF16, 5e-2)] {
        let m = tiny(dtype);
        let v = m.vision.forward(&x, &VisionOptions::default()).unwrap();
        let t = m.text.forward(&ids, &TextOptions::default()).unwrap();
        assert_eq!(v.image_embeds.dtype(), dtype);
        let scale = 1.0f32.max(max_abs_diff(&want_v, &want_v.zeros_like().unwrap()));
        assert_close(
            &format!("{dtype:?} vision embeds"),
            &v.image_embeds,
            &want_v,
            tol * scale,
        );
        let scale = 1.0f32.max(max_abs_diff(&want_t, &want_t.zeros_like().unwrap()));
        assert_close(
            &format!("{dtype:?} text embeds"),
            &t.text_embeds,
            &want_t,
            tol * scale,
        );
    }
}

#[test]
fn patch14_model_at_518px_runs_on_a_37x37_grid() {
    // the tiny weights with a 14-pixel patch and a 2 x 2 trained grid, like ViT-L/14's
    // 16 x 16 at 224 px, then run at 518 px as AnomalyCLIP does
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;
    let mut ts =
        candle_core::safetensors::load(tiny_dir().join("model.safetensors"), &dev).unwrap();
    let patch = Tensor::randn(0f32, 0.05, (32, 3, 14, 14), &dev).unwrap();
    let pos = Tensor::randn(0f32, 0.5, (5, 32), &dev).unwrap();
    ts.insert(
        "vision_model.embeddings.patch_embedding.weight".into(),
        patch,
    );
    ts.insert(
        "vision_model.embeddings.position_embedding.weight".into(),
        pos,
    );
    candle_core::safetensors::save(&ts, dir.path().join("model.safetensors")).unwrap();
    let cfg = std::fs::read_to_string(tiny_dir().join("config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    v["vision_config"]["patch_size"] = 14.into();
    v["vision_config"]["image_size"] = 28.into();
    std::fs::write(dir.path().join("config.json"), v.to_string()).unwrap();
    let m = hipl::model::clip::ClipModel::load(dir.path(), DType::F32, &dev).unwrap();

    let img = hipl::model::clip::preprocess::load_images(&[fixtures().join("rgb.png")], 518, &dev)
        .unwrap();
    let opts = VisionOptions {
        layers: vec![2, 4],
        dpam_from: Some(3),
        ..Default::default()
    };
    let out = m.vision.forward(&img, &opts).unwrap();
    assert_eq!(out.grid, (37, 37));
    assert_eq!(out.patch_tokens(4).unwrap().dims(), &[1, 37 * 37, 32]);
    let finite = out.layers[&4]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(finite.iter().all(|x| x.is_finite()));
}

#[test]
fn prompt_gradient_agrees_with_finite_differences() {
    let mut m = tiny(DType::F32);
    m.set_differentiable(true);
    let ids = ClipTokenizer::bundled()
        .unwrap()
        .prompt_template(4, "object .")
        .unwrap();
    let base = npy("tprompt_prefix.npy").to_dtype(DType::F64).unwrap();
    let loss = |p: &Tensor| -> Tensor {
        let prompts = TextPrompts::new().with_prefix(p.to_dtype(DType::F32).unwrap());
        let opts = TextOptions {
            layers: vec![],
            prompts: Some(&prompts),
        };
        let e = m
            .text
            .forward(std::slice::from_ref(&ids), &opts)
            .unwrap()
            .text_embeds;
        e.sqr().unwrap().sum_all().unwrap()
    };
    let var = candle_core::Var::from_tensor(&base.to_dtype(DType::F32).unwrap()).unwrap();
    let grads = loss(var.as_tensor()).backward().unwrap();
    let g = grads
        .get(var.as_tensor())
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();

    let h = 1e-2;
    for (b, i, k) in [(0usize, 0usize, 3usize), (1, 2, 17), (0, 3, 31)] {
        let bump = |s: f64| {
            let mut d = vec![0f64; 2 * 4 * 32];
            d[(b * 4 + i) * 32 + k] = s;
            let d = Tensor::from_vec(d, (2, 4, 32), &Device::Cpu).unwrap();
            let l = loss(&(&base + d).unwrap());
            l.to_scalar::<f32>().unwrap() as f64
        };
        let fd = (bump(h) - bump(-h)) / (2.0 * h);
        let an = g
            .get(b)
            .unwrap()
            .get(i)
            .unwrap()
            .get(k)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let rel = (fd - an).abs() / fd.abs().max(an.abs()).max(1e-3);
        assert!(
            rel < 2e-2,
            "d loss / d prefix[{b},{i},{k}]: analytic {an}, numeric {fd}"
        );
    }
}
