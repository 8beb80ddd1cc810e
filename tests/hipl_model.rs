//! HiPL's model layer on the tiny random CLIP fixture: shapes, gate, gradients, a short
//! training run, smoothing, losses and bad inputs.
#![cfg(feature = "candle")]

mod clip_common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use hipl::model::clip::{ClipConfig, ClipModel, ClipTokenizer};
use hipl::model::hipl::{
    dice_loss, focal_loss, gaussian_kernel, gaussian_smooth, hipl_loss, image_focal_loss,
    upsample_bilinear, ExpertKind, Hipl, HiplConfig, HiplOutput, HscRule, MAX_SIGMA,
};
use hipl::Error;

const S: usize = 32;

struct Built {
    model: Hipl,
    prompt_vars: VarMap,
    hsc_vars: VarMap,
}

fn build(config: HiplConfig, differentiable: bool) -> Built {
    let mut clip: ClipModel = clip_common::tiny(DType::F32);
    clip.set_differentiable(differentiable);
    let tok = ClipTokenizer::bundled().unwrap();
    let (prompt_vars, hsc_vars) = (VarMap::new(), VarMap::new());
    let dev = Device::Cpu;
    let model = Hipl::new(
        clip,
        &tok,
        config,
        VarBuilder::from_varmap(&prompt_vars, DType::F32, &dev),
        VarBuilder::from_varmap(&hsc_vars, DType::F32, &dev),
    )
    .unwrap();
    Built {
        model,
        prompt_vars,
        hsc_vars,
    }
}

fn tiny_config() -> HiplConfig {
    HiplConfig::for_clip(&clip_common::tiny(DType::F32).config, S)
}

/// `b` different images `[b, 3, S, S]`: smooth ramps, each with its own slope.
fn images(b: usize) -> Tensor {
    let dev = Device::Cpu;
    let ramp = Tensor::arange(0f32, (S * S) as f32, &dev)
        .unwrap()
        .reshape((1, 1, S, S))
        .unwrap()
        / (S * S) as f64;
    let imgs: Vec<Tensor> = (0..b)
        .map(|i| {
            let r = (ramp.as_ref().unwrap() * (1.0 + i as f64)).unwrap();
            Tensor::cat(&[&r, &(1.0 - &r).unwrap(), &(&r * 0.5).unwrap()], 1).unwrap()
        })
        .collect();
    Tensor::cat(&imgs, 0).unwrap()
}

fn scalar(t: &Tensor) -> f32 {
    t.to_dtype(DType::F32).unwrap().to_scalar::<f32>().unwrap()
}

fn max_abs(t: &Tensor) -> f32 {
    scalar(&t.abs().unwrap().flatten_all().unwrap().max(0).unwrap())
}

fn check_shapes(out: &HiplOutput, b: usize, layers: usize, k: usize) {
    assert_eq!(out.layer_maps.len(), layers);
    for m in &out.layer_maps {
        assert_eq!(m.dims(), &[b, 2, S, S]);
        // two probabilities per pixel
        let sum = m.sum(1).unwrap();
        assert!(max_abs(&(sum - 1.0).unwrap()) < 1e-5);
    }
    assert_eq!(out.image_logits.dims(), &[b, 2]);
    assert_eq!(out.gate.dims(), &[b, 2, k]);
    assert_eq!(out.text_embeds.dims(), &[b, 2, 16]);
    assert_eq!(out.anomaly_map(4.0).unwrap().dims(), &[b, S, S]);
    assert_eq!(out.image_scores().unwrap().dims(), &[b]);
}

#[test]
fn paper_defaults_spread_layers_over_a_vit_l() {
    let json = r#"{"projection_dim": 768,
        "text_config": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12},
        "vision_config": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                          "image_size": 336, "patch_size": 14}}"#;
    let clip = ClipConfig::from_json(json).unwrap();
    let c = HiplConfig::for_clip(&clip, 518);
    assert_eq!(c.map_layers, vec![6, 12, 18, 24]);
    assert_eq!(c.dpam_from, Some(6));
    assert_eq!(c.prompt_len, 12);
    assert_eq!(c.experts.len(), 4);
    assert_eq!(c.temperature, 0.07);
    assert_eq!(c.sigma, 4.0);
    assert_eq!(c.hsc.alpha, 100.0);
    assert_eq!(c.hsc.rule, HscRule::Threshold { top_k: None });
    assert_eq!((c.hsc.d_out, c.hsc.global_dim), (768, 768));
    c.validate(&clip).unwrap();

    let json = serde_json::to_string(&c).unwrap();
    let back: HiplConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
}

#[test]
fn config_errors_name_the_field() {
    let clip = clip_common::tiny(DType::F32).config;
    let ok = HiplConfig::for_clip(&clip, S);
    let cases: Vec<(&str, HiplConfig)> = vec![
        (
            "map_layers",
            HiplConfig {
                map_layers: vec![2, 9],
                ..ok.clone()
            },
        ),
        (
            "hsc_layer",
            HiplConfig {
                hsc_layer: 0,
                ..ok.clone()
            },
        ),
        (
            "image_size",
            HiplConfig {
                image_size: 30,
                ..ok.clone()
            },
        ),
        // one patch (N = 1 has no hypergraph), and a grid past 128 × 128 patches
        (
            "image_size",
            HiplConfig {
                image_size: clip.vision.patch_size,
                ..ok.clone()
            },
        ),
        (
            "image_size",
            HiplConfig {
                image_size: 129 * clip.vision.patch_size,
                ..ok.clone()
            },
        ),
        (
            "prompt_len",
            HiplConfig {
                prompt_len: 0,
                ..ok.clone()
            },
        ),
        (
            "experts",
            HiplConfig {
                experts: vec![],
                ..ok.clone()
            },
        ),
        (
            "vision_prompt_layers",
            HiplConfig {
                vision_prompt_layers: vec![5],
                ..ok.clone()
            },
        ),
        (
            "temperature",
            HiplConfig {
                temperature: 0.0,
                ..ok.clone()
            },
        ),
        (
            "sigma",
            HiplConfig {
                sigma: f64::NAN,
                ..ok.clone()
            },
        ),
    ];
    for (field, c) in cases {
        let msg = c.validate(&clip).unwrap_err().to_string();
        assert!(msg.contains(&format!("`{field}`")), "{field}: {msg}");
    }
    let mut c = ok.clone();
    c.hsc.alpha = -1.0;
    assert!(c
        .validate(&clip)
        .unwrap_err()
        .to_string()
        .contains("hsc.alpha"));
    c = ok;
    c.hsc.rule = HscRule::Knn { k: 17 };
    assert!(c
        .validate(&clip)
        .unwrap_err()
        .to_string()
        .contains("hsc.rule.k"));
}

#[test]
fn shapes_for_one_and_three_images_and_per_image_prompts() {
    let built = build(tiny_config(), false);
    let out1 = built.model.forward(&images(1)).unwrap();
    check_shapes(&out1, 1, 4, 4);

    let out3 = built.model.forward(&images(3)).unwrap();
    check_shapes(&out3, 3, 4, 4);

    // image 0 of the batch sees the same prompts as the single image
    let t0 = out3.text_embeds.narrow(0, 0, 1).unwrap();
    assert!(max_abs(&(t0 - &out1.text_embeds).unwrap()) < 1e-4);
    // other images get other prompts
    for i in 1..3 {
        let ti = out3.text_embeds.narrow(0, i, 1).unwrap();
        let t0 = out3.text_embeds.narrow(0, 0, 1).unwrap();
        assert!(max_abs(&(ti - t0).unwrap()) > 1e-6, "image {i}");
    }
}

#[test]
fn without_visual_prompts_one_pass_serves() {
    let c = HiplConfig {
        vision_prompt_layers: vec![],
        experts: vec![ExpertKind::Ssm, ExpertKind::Conv],
        ..tiny_config()
    };
    let built = build(c, false);
    let out = built.model.forward(&images(2)).unwrap();
    check_shapes(&out, 2, 4, 2);
}

#[test]
fn gate_rows_sum_to_one() {
    let built = build(tiny_config(), false);
    let out = built.model.forward(&images(3)).unwrap();
    let sums = out.gate.sum(2).unwrap();
    assert!(max_abs(&(sums - 1.0).unwrap()) < 1e-6);
    assert!(scalar(&out.gate.flatten_all().unwrap().min(0).unwrap()) > 0.0);
}

fn masks_and_labels(b: usize) -> (Tensor, Tensor) {
    let dev = Device::Cpu;
    let mut m = vec![0f32; b * S * S];
    let mut labels = vec![0f32; b];
    for i in (0..b).filter(|i| i % 2 == 1) {
        labels[i] = 1.0;
        for y in 8..16 {
            for x in 8..20 {
                m[i * S * S + y * S + x] = 1.0;
            }
        }
    }
    (
        Tensor::from_vec(m, (b, S, S), &dev).unwrap(),
        Tensor::from_vec(labels, b, &dev).unwrap(),
    )
}

#[test]
fn gradients_reach_every_prompt_and_hsc_variable() {
    let built = build(tiny_config(), true);
    let (masks, labels) = masks_and_labels(2);
    let out = built.model.forward(&images(2)).unwrap();
    let loss = hipl_loss(&out, &masks, &labels).unwrap();
    let grads = loss.total.backward().unwrap();
    let check = |map: &VarMap, group: &str| {
        let data = map.data().lock().unwrap();
        assert!(!data.is_empty(), "{group}: no variables");
        for (name, var) in data.iter() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{group}: no gradient for {name}"));
            assert!(max_abs(g) > 0.0, "{group}: zero gradient for {name}");
        }
    };
    check(&built.prompt_vars, "prompt");
    check(&built.hsc_vars, "hsc");
}

#[test]
fn the_loss_falls_when_trained_on_synthetic_defects() {
    let built = build(tiny_config(), true);
    let dev = Device::Cpu;
    // normal ramps; the odd images carry a bright rectangle where the mask is 1
    let (masks, labels) = masks_and_labels(4);
    let bright = masks.unsqueeze(1).unwrap().repeat((1, 3, 1, 1)).unwrap();
    let pixels = (images(4) + (bright * 2.0).unwrap()).unwrap();

    let vars: Vec<Var> = built
        .prompt_vars
        .all_vars()
        .into_iter()
        .chain(built.hsc_vars.all_vars())
        .collect();
    let params = ParamsAdamW {
        lr: 1e-2,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(vars, params).unwrap();
    let mut losses = vec![];
    for _ in 0..30 {
        let out = built.model.forward(&pixels).unwrap();
        let loss = hipl_loss(&out, &masks, &labels).unwrap();
        losses.push(scalar(&loss.total));
        opt.backward_step(&loss.total).unwrap();
    }
    let _ = dev;
    let (first, last) = (losses[0], *losses.last().unwrap());
    eprintln!("hipl loss over 30 AdamW steps: {first:.4} -> {last:.4} ({losses:?})");
    assert!(last.is_finite() && last < 0.7 * first, "{losses:?}");
}

#[test]
fn gaussian_smoothing_keeps_the_mass_away_from_the_border() {
    let dev = Device::Cpu;
    let mut v = vec![0f32; 2 * 40 * 40];
    v[20 * 40 + 20] = 3.0;
    v[40 * 40 + 15 * 40 + 22] = 1.0;
    v[40 * 40 + 25 * 40 + 18] = 2.0;
    let maps = Tensor::from_vec(v, (2, 40, 40), &dev).unwrap();
    let out = gaussian_smooth(&maps, 1.5).unwrap();
    let sums = out.sum((1, 2)).unwrap().to_vec1::<f32>().unwrap();
    assert!((sums[0] - 3.0).abs() < 1e-5 && (sums[1] - 3.0).abs() < 1e-5);
    // symmetric around the impulse, peak at the impulse
    let row = out
        .get(0)
        .unwrap()
        .get(20)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!((row[19] - row[21]).abs() < 1e-7 && row[20] > row[19]);
    // sigma 0 is the identity
    let same = gaussian_smooth(&maps, 0.0).unwrap();
    assert!(max_abs(&(same - &maps).unwrap()) == 0.0);
}

#[test]
fn gaussian_smoothing_matches_a_hand_computed_1d_case() {
    // one row: the vertical pass reflects onto the row itself, so it is the identity
    let dev = Device::Cpu;
    let mut v = vec![0f32; 11];
    v[5] = 1.0;
    let row = Tensor::from_vec(v, (1, 1, 11), &dev).unwrap();
    let out = gaussian_smooth(&row, 0.5).unwrap().flatten_all().unwrap();
    let out = out.to_vec1::<f32>().unwrap();
    // sigma 0.5: radius floor(2.5) = 2, weights exp(-k^2 / 0.5) for k = -2..=2
    let w: Vec<f64> = [-2i32, -1, 0, 1, 2]
        .iter()
        .map(|&k| (-(k * k) as f64 / 0.5).exp())
        .collect();
    let s: f64 = w.iter().sum();
    let mut want = vec![0f64; 11];
    for (j, wk) in w.iter().enumerate() {
        want[3 + j] = wk / s;
    }
    for (g, w) in out.iter().zip(&want) {
        assert!((*g as f64 - w).abs() < 1e-6, "{out:?} vs {want:?}");
    }
    assert_eq!(gaussian_kernel(4.0).unwrap().len(), 33);

    // reflection at the border: an impulse at 0 keeps its mass (SciPy's reflect mode)
    let mut v = vec![0f32; 11];
    v[0] = 1.0;
    let edge = Tensor::from_vec(v, (1, 1, 11), &dev).unwrap();
    let out = gaussian_smooth(&edge, 0.5)
        .unwrap()
        .to_vec3::<f32>()
        .unwrap();
    let o = &out[0][0];
    assert!((o[0] as f64 - (w[2] + w[1]) / s).abs() < 1e-6);
    assert!((o[1] as f64 - (w[3] + w[0]) / s).abs() < 1e-6);
    assert!((o[2] as f64 - w[4] / s).abs() < 1e-6);
}

#[test]
fn a_sigma_below_an_eighth_pixel_gives_the_unit_kernel_not_nan() {
    assert_eq!(gaussian_kernel(0.0).unwrap(), vec![1.0]);
    // 2 sigma^2 underflows to 0 here: the old kernel was exp(0 / 0) = NaN
    assert_eq!(gaussian_kernel(1e-200).unwrap(), vec![1.0]);
    assert_eq!(gaussian_kernel(0.1).unwrap(), vec![1.0]);
}

#[test]
fn sigma_outside_zero_to_max_sigma_is_refused_naming_sigma_the_range_and_the_value() {
    assert_eq!(gaussian_kernel(MAX_SIGMA).unwrap().len(), 513);
    let clip = clip_common::tiny(DType::F32).config;
    let ok = HiplConfig::for_clip(&clip, S);
    for (sigma, shown) in [
        (-0.5, "-0.5"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
        (2.0 * MAX_SIGMA, "128"),
    ] {
        let c = HiplConfig {
            sigma,
            ..ok.clone()
        };
        let errors = [
            gaussian_kernel(sigma).unwrap_err().to_string(),
            c.validate(&clip).unwrap_err().to_string(),
        ];
        for msg in errors {
            assert!(
                msg.contains("`sigma`") && msg.contains("0..=64") && msg.contains(shown),
                "{sigma}: {msg}"
            );
        }
    }

    // a checkpoint's configuration arrives as JSON: a huge sigma parses, then is refused
    let mut json = serde_json::to_value(&ok).unwrap();
    json["sigma"] = serde_json::json!(1e12);
    let c: HiplConfig = serde_json::from_value(json).unwrap();
    let msg = c.validate(&clip).unwrap_err().to_string();
    assert!(msg.contains("`sigma`") && msg.contains("0..=64"), "{msg}");
}

#[test]
fn bilinear_upsampling_matches_candle_forward() {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (2, 2, 4, 3), &dev).unwrap();
    let ours = upsample_bilinear(&x, 13, 9).unwrap();
    let theirs = x.upsample_bilinear2d(13, 9, false).unwrap();
    assert!(max_abs(&(ours - theirs).unwrap()) < 1e-5);
}

#[test]
fn focal_and_dice_equal_hand_computed_values() {
    let dev = Device::Cpu;
    // one image, 1 x 2 pixels: p_abnormal = 0.8, 0.3; mask = 1, 0
    let probs = Tensor::from_vec(vec![0.2f32, 0.7, 0.8, 0.3], (1, 2, 1, 2), &dev).unwrap();
    let mask = Tensor::from_vec(vec![1f32, 0.0], (1, 1, 2), &dev).unwrap();
    // p_t = 0.8 and 0.7
    let f = |p: f64| -(1.0 - p).powi(2) * (p + 1e-6).ln();
    let want = (f(0.8) + f(0.7)) / 2.0;
    assert!((scalar(&focal_loss(&probs, &mask).unwrap()) as f64 - want).abs() < 1e-6);

    // abnormal: 1 - (2*0.8 + 1) / (1.1 + 1 + 1); normal vs 1 - mask: 1 - (2*0.7 + 1) / (0.9 + 1 + 1)
    let want = (1.0 - 2.6 / 3.1) + (1.0 - 2.4 / 2.9);
    assert!((scalar(&dice_loss(&probs, &mask).unwrap()) as f64 - want).abs() < 1e-6);

    // logits (0, ln 3): p_abnormal = 0.75; labels 1 and 0 over two images
    let logits = Tensor::from_vec(vec![0f32, 3f32.ln(), 0.0, 3f32.ln()], (2, 2), &dev).unwrap();
    let labels = Tensor::from_vec(vec![1f32, 0.0], 2, &dev).unwrap();
    let g = |p: f64| -(1.0 - p).powi(2) * p.ln();
    let want = (g(0.75) + g(0.25)) / 2.0;
    let got = scalar(&image_focal_loss(&logits, &labels).unwrap()) as f64;
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
}

fn arg_of(e: Error) -> String {
    match e {
        Error::InvalidArgument { arg, .. } | Error::Shape { arg, .. } => arg,
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn bad_inputs_name_the_argument() {
    let built = build(tiny_config(), false);
    let dev = Device::Cpu;
    let wrong = Tensor::zeros((1, 3, 48, 48), DType::F32, &dev).unwrap();
    assert_eq!(arg_of(built.model.forward(&wrong).unwrap_err()), "pixels");
    let wrong = Tensor::zeros((1, 32, 32), DType::F32, &dev).unwrap();
    assert_eq!(arg_of(built.model.forward(&wrong).unwrap_err()), "pixels");

    let out = built.model.forward(&images(2)).unwrap();
    let (masks, labels) = masks_and_labels(2);
    let small = Tensor::zeros((2, 16, 16), DType::F32, &dev).unwrap();
    assert_eq!(
        arg_of(hipl_loss(&out, &small, &labels).unwrap_err()),
        "masks"
    );
    let soft = (&masks * 0.5).unwrap();
    let e = hipl_loss(&out, &soft, &labels).unwrap_err();
    assert!(e.to_string().contains("0.5"), "{e}");
    assert_eq!(arg_of(e), "masks");
    let bad = Tensor::from_vec(vec![0f32, 2.0], 2, &dev).unwrap();
    assert_eq!(arg_of(hipl_loss(&out, &masks, &bad).unwrap_err()), "labels");
    let nan = Tensor::from_vec(vec![0f32, f32::NAN], 2, &dev).unwrap();
    assert_eq!(arg_of(hipl_loss(&out, &masks, &nan).unwrap_err()), "labels");
    let three = Tensor::zeros(3, DType::F32, &dev).unwrap();
    assert_eq!(
        arg_of(hipl_loss(&out, &masks, &three).unwrap_err()),
        "labels"
    );
    assert_eq!(arg_of(out.anomaly_map(-1.0).unwrap_err()), "sigma");

    // a layer beyond the 4-block tower
    let c = HiplConfig {
        map_layers: vec![2, 5],
        ..tiny_config()
    };
    let tok = ClipTokenizer::bundled().unwrap();
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    let e = Hipl::new(clip_common::tiny(DType::F32), &tok, c, vb.clone(), vb).unwrap_err();
    assert_eq!(arg_of(e), "map_layers");
}

#[test]
fn anomaly_map_sums_the_layers_abnormal_probabilities() {
    let built = build(tiny_config(), false);
    let out = built.model.forward(&images(2)).unwrap();
    let mut want = Tensor::zeros((2, S, S), DType::F32, &Device::Cpu).unwrap();
    for m in &out.layer_maps {
        want = (want + m.get_on_dim(1, 1).unwrap()).unwrap();
    }
    let got = out.anomaly_map(0.0).unwrap();
    assert!(max_abs(&(&got - &want).unwrap()) < 1e-6);
    // smoothing keeps the total where the map is smooth enough: within 1%
    let smooth = out.anomaly_map(4.0).unwrap();
    let (a, b) = (
        scalar(&got.sum_all().unwrap()),
        scalar(&smooth.sum_all().unwrap()),
    );
    assert!((a - b).abs() < 0.01 * a, "{a} vs {b}");

    let scores = out.image_scores().unwrap().to_vec1::<f32>().unwrap();
    let logits = out.image_logits.to_vec2::<f32>().unwrap();
    for (s, l) in scores.iter().zip(&logits) {
        let want = 1.0 / (1.0 + (l[0] - l[1]).exp());
        assert!((s - want).abs() < 1e-6 && *s > 0.0 && *s < 1.0);
    }
}
