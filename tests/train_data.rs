//! The tiny random CLIP loads and runs; batches carry normalised images, binary masks and
//! labels for B > 1; broken datasets fail naming the file; Adam matches its formula.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use hipl::eval::data::{Dataset, Split};
use hipl::eval::synth::{find_source, synthesize, SynthConfig};
use hipl::model::clip::{ClipModel, ClipTokenizer, TextOptions, VisionOptions};
use hipl::train::{select, tiny_clip, Adam, AdamParams, Loader, Sgd, TinyClipSpec};
use hipl::Error;
use std::path::{Path, PathBuf};

fn synth(dir: &Path, classes: usize, test: usize) -> Vec<String> {
    let source = find_source(None).expect("the CC0 images in data/images");
    let cfg = SynthConfig {
        classes: Some(classes),
        size: 64,
        train: 1,
        test,
        seed: 3,
    };
    synthesize(&source, dir, &cfg).unwrap()
}

fn path_of(e: &Error) -> PathBuf {
    match e {
        Error::Io { path, .. } | Error::Format { path, .. } => path.clone(),
        other => panic!("expected an error naming a file, got {other}"),
    }
}

#[test]
fn tiny_clip_round_trips_through_the_loader_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TinyClipSpec {
        image_size: 64,
        ..TinyClipSpec::default()
    };
    tiny_clip::write(dir.path(), &spec, 5).unwrap();
    let model = ClipModel::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(model.config.vision.hidden_size, 64);
    assert_eq!(model.config.vision.grid(), 4);
    assert_eq!(model.config.text.vocab_size, 49408);

    let pixels = Tensor::randn(0f32, 1.0, (2, 3, 64, 64), &Device::Cpu).unwrap();
    let vis = model
        .vision
        .forward(&pixels, &VisionOptions::default())
        .unwrap();
    assert_eq!(vis.image_embeds.dims(), &[2, 64]);
    let tok = ClipTokenizer::bundled().unwrap();
    let ids = tok
        .tokenize_batch(&["a photo of a damaged object"])
        .unwrap();
    let txt = model.text.forward(&ids, &TextOptions::default()).unwrap();
    assert_eq!(txt.text_embeds.dims(), &[1, 64]);
    let v: Vec<f32> = txt.text_embeds.flatten_all().unwrap().to_vec1().unwrap();
    assert!(v.iter().all(|x| x.is_finite()) && v.iter().any(|&x| x != 0.0));

    // the same seed writes the same weights; another seed, others
    let again = tempfile::tempdir().unwrap();
    tiny_clip::write(again.path(), &spec, 5).unwrap();
    let read = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(read(dir.path()), read(again.path()));
    tiny_clip::write(again.path(), &spec, 6).unwrap();
    assert_ne!(read(dir.path()), read(again.path()));
}

#[test]
fn tiny_clip_spec_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TinyClipSpec {
        image_size: 60,
        ..TinyClipSpec::default()
    };
    let e = tiny_clip::write(dir.path(), &spec, 0).unwrap_err();
    assert!(e.to_string().contains("patch_size"), "{e}");
}

#[test]
fn batches_hold_normalised_images_binary_masks_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let classes = synth(dir.path(), 2, 6);
    let ds = Dataset::mvtec(dir.path()).unwrap();
    let samples = select(&ds, &classes[..1], Split::Test).unwrap();
    assert_eq!(samples.len(), 6);
    let loader = Loader::new(samples, 4, 32, &Device::Cpu).unwrap();
    assert_eq!(loader.batches(), 2);

    let order = loader.shuffled(1, 1);
    assert_eq!(order, loader.shuffled(1, 1), "seeded shuffle");
    assert_ne!(order, loader.shuffled(1, 2), "each epoch its own order");
    let mut seen = 0;
    for i in 0..loader.batches() {
        let b = loader.batch(&order, i).unwrap();
        let n = b.len();
        assert_eq!(b.pixels.dims(), &[n, 3, 32, 32]);
        assert_eq!(b.masks.dims(), &[n, 32, 32]);
        assert_eq!(b.labels.dims(), &[n]);
        let labels: Vec<f32> = b.labels.to_vec1().unwrap();
        let masks: Vec<Vec<Vec<f32>>> = b.masks.to_vec3().unwrap();
        for (j, m) in masks.iter().enumerate() {
            let on = m.iter().flatten().filter(|&&v| v == 1.0).count();
            assert!(m.iter().flatten().all(|&v| v == 0.0 || v == 1.0));
            assert_eq!(on > 0, labels[j] == 1.0, "{:?}", b.paths[j]);
        }
        // CLIP normalisation puts [0, 1] pixels into about [-1.8, 2.2]
        let px: Vec<f32> = b.pixels.flatten_all().unwrap().to_vec1().unwrap();
        assert!(px.iter().all(|v| (-1.8..=2.2).contains(v)));
        assert!(px.iter().any(|&v| v < 0.0));
        seen += n;
    }
    assert_eq!(seen, 6);
}

#[test]
fn unknown_class_is_named_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let classes = synth(dir.path(), 1, 2);
    let ds = Dataset::mvtec(dir.path()).unwrap();
    let e = select(&ds, &["nope".to_string()], Split::Test).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("nope") && msg.contains(&classes[0]), "{msg}");
}

#[test]
fn broken_datasets_fail_naming_the_file() {
    // a missing mask: the listing names the mask it looked for
    let dir = tempfile::tempdir().unwrap();
    let classes = synth(dir.path(), 1, 2);
    let gt = dir.path().join(&classes[0]).join("ground_truth");
    let mask = walk(&gt).into_iter().next().unwrap();
    std::fs::remove_file(&mask).unwrap();
    let e = Dataset::mvtec(dir.path()).unwrap_err();
    assert_eq!(path_of(&e), mask, "{e}");

    // a mask of another size than its image
    let dir = tempfile::tempdir().unwrap();
    let classes = synth(dir.path(), 1, 2);
    let mask = walk(&dir.path().join(&classes[0]).join("ground_truth"))
        .into_iter()
        .next()
        .unwrap();
    image::GrayImage::new(10, 12).save(&mask).unwrap();
    let e = load_all(dir.path()).unwrap_err();
    assert_eq!(path_of(&e), mask, "{e}");
    assert!(e.to_string().contains("10x12"), "{e}");

    // an unreadable image
    let dir = tempfile::tempdir().unwrap();
    let classes = synth(dir.path(), 1, 2);
    let img = walk(&dir.path().join(&classes[0]).join("test").join("good"))
        .into_iter()
        .next()
        .unwrap();
    std::fs::write(&img, b"not a png").unwrap();
    let e = load_all(dir.path()).unwrap_err();
    assert_eq!(path_of(&e), img, "{e}");

    // a class with no test images
    let dir = tempfile::tempdir().unwrap();
    let classes = synth(dir.path(), 1, 2);
    let test = dir.path().join(&classes[0]).join("test");
    for f in walk(&test) {
        std::fs::remove_file(f).unwrap();
    }
    let e = Dataset::mvtec(dir.path()).unwrap_err();
    assert_eq!(path_of(&e), test, "{e}");
    assert!(e.to_string().contains("empty class"), "{e}");
}

#[test]
fn check_files_names_the_first_bad_file_in_sample_order() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 1, 6);
    let ds = Dataset::mvtec(dir.path()).unwrap();
    let samples = select(&ds, &[], Split::Test).unwrap();
    let loader = Loader::new(samples, 2, 32, &Device::Cpu).unwrap();
    for s in loader.samples() {
        std::fs::write(&s.image, b"not a png").unwrap();
    }
    let first = &loader.samples()[0].image;
    for _ in 0..4 {
        let e = loader.check_files().unwrap_err();
        assert_eq!(&path_of(&e), first, "{e}");
    }
}

fn load_all(root: &Path) -> hipl::Result<()> {
    let ds = Dataset::mvtec(root)?;
    let loader = Loader::new(select(&ds, &[], Split::Test)?, 2, 32, &Device::Cpu)?;
    loader.check_files()?;
    let order = loader.in_order();
    for i in 0..loader.batches() {
        loader.batch(&order, i)?;
    }
    Ok(())
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn adam_follows_its_formula_and_restores_exactly() {
    let map = VarMap::new();
    let w = map
        .get(
            (2,),
            "w",
            candle_nn::Init::Const(1.0),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
    let params = AdamParams::default();
    let mut adam = Adam::new(&map, params).unwrap();
    let var = |m: &VarMap| m.all_vars().into_iter().next().unwrap();
    let loss = |w: &Tensor| (w.sqr().unwrap() * 3.0).unwrap().sum_all().unwrap();

    // step 1: m̂ = g, v̂ = g², so θ moves by lr · g / (|g| + eps) = lr per coordinate
    let grads = loss(var(&map).as_tensor()).backward().unwrap();
    adam.step(&grads).unwrap();
    let after: Vec<f32> = var(&map).as_tensor().to_vec1().unwrap();
    assert!(
        after.iter().all(|&v| (v - (1.0 - 1e-3)).abs() < 1e-6),
        "{after:?}"
    );
    drop(w);

    // a restored copy continues exactly like the original
    let state: std::collections::HashMap<String, Tensor> =
        adam.state("adam.").into_iter().collect();
    let map2 = VarMap::new();
    map2.get(
        (2,),
        "w",
        candle_nn::Init::Const(0.0),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    var(&map2).set(var(&map).as_tensor()).unwrap();
    let mut adam2 = Adam::new(&map2, params).unwrap();
    adam2
        .restore(&state, "adam.", adam.steps(), Path::new("x.safetensors"))
        .unwrap();
    for _ in 0..3 {
        adam.step(&loss(var(&map).as_tensor()).backward().unwrap())
            .unwrap();
        adam2
            .step(&loss(var(&map2).as_tensor()).backward().unwrap())
            .unwrap();
    }
    let a: Vec<f32> = var(&map).as_tensor().to_vec1().unwrap();
    let b: Vec<f32> = var(&map2).as_tensor().to_vec1().unwrap();
    assert_eq!(a, b);

    // a missing moment is named
    let e = adam2
        .restore(&Default::default(), "adam.", 1, Path::new("x.safetensors"))
        .unwrap_err();
    assert!(e.to_string().contains("adam.m.w") && e.to_string().contains("x.safetensors"));
}

#[test]
fn sgd_steps_against_the_gradient() {
    let x = Var::new(&[2f32, -1.0], &Device::Cpu).unwrap();
    let map = VarMap::new();
    map.data().lock().unwrap().insert("x".into(), x.clone());
    let mut sgd = Sgd::new(&map, 0.1).unwrap();
    let grads = x
        .as_tensor()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    sgd.step(&grads).unwrap();
    let v: Vec<f32> = x.as_tensor().to_vec1().unwrap();
    assert!(
        (v[0] - 1.6).abs() < 1e-6 && (v[1] + 0.8).abs() < 1e-6,
        "{v:?}"
    );
    assert!(Sgd::new(&map, 0.0).is_err());
}
