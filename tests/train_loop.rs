//! Training on a tiny synthetic set with a tiny random CLIP: the loss falls, checkpoints
//! round-trip bit-exactly, and a resumed run continues exactly like an uninterrupted one.

use candle_core::{Device, Tensor};
use hipl::eval::data::{Dataset, Split};
use hipl::eval::synth::{find_source, synthesize, SynthConfig};
use hipl::model::clip::ClipConfig;
use hipl::model::hipl::HiplConfig;
use hipl::train::checkpoint::{self, RunInfo};
use hipl::train::{select, sorted_vars, tiny_clip, AdamParams, Loader, TinyClipSpec, Trainer};
use std::path::{Path, PathBuf};

const SIZE: usize = 64;

struct Fixture {
    _dir: tempfile::TempDir,
    clip: PathBuf,
    data: PathBuf,
    classes: Vec<String>,
}

fn fixture(test_images: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip");
    let spec = TinyClipSpec {
        image_size: SIZE,
        vision_layers: 2,
        text_layers: 2,
        vision_width: 32,
        text_width: 32,
        vision_heads: 2,
        text_heads: 2,
        projection_dim: 32,
        ..TinyClipSpec::default()
    };
    tiny_clip::write(&clip, &spec, 0).unwrap();
    let data = dir.path().join("data");
    let cfg = SynthConfig {
        classes: Some(1),
        size: SIZE as u32,
        train: 1,
        test: test_images,
        seed: 0,
    };
    let classes = synthesize(&find_source(None).unwrap(), &data, &cfg).unwrap();
    Fixture {
        _dir: dir,
        clip,
        data,
        classes,
    }
}

fn config(clip: &Path) -> HiplConfig {
    let cc = ClipConfig::from_file(&clip.join("config.json")).unwrap();
    let mut cfg = HiplConfig::for_clip(&cc, SIZE);
    cfg.prompt_len = 4;
    cfg
}

fn run(f: &Fixture, batch_size: usize, lr: f64) -> RunInfo {
    RunInfo {
        seed: 7,
        clip: f.clip.clone(),
        dataset: "mvtec".into(),
        data: f.data.clone(),
        classes: f.classes.clone(),
        batch_size,
        adam: AdamParams {
            lr,
            ..AdamParams::default()
        },
        sgd_lr: lr,
    }
}

fn loader(f: &Fixture, batch_size: usize) -> Loader {
    let ds = Dataset::mvtec(&f.data).unwrap();
    let samples = select(&ds, &f.classes, Split::Test).unwrap();
    Loader::new(samples, batch_size, SIZE, &Device::Cpu).unwrap()
}

fn values(t: &Trainer) -> Vec<(String, Vec<f32>)> {
    [&t.parts.prompt, &t.parts.hsc]
        .iter()
        .flat_map(|m| sorted_vars(m))
        .map(|(n, v)| {
            let x: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            (n, x)
        })
        .collect()
}

#[test]
fn training_loss_falls_on_a_tiny_synthetic_set() {
    let f = fixture(8);
    let loader = loader(&f, 4);
    let mut t = Trainer::new(config(&f.clip), run(&f, 4, 1e-2), &Device::Cpu).unwrap();
    let start = std::time::Instant::now();
    let stats = t.fit(&loader, 8, None, false, |_| Ok(())).unwrap();
    eprintln!(
        "losses {:?} in {:.1}s",
        stats.iter().map(|s| s.loss).collect::<Vec<_>>(),
        start.elapsed().as_secs_f64()
    );
    assert_eq!(stats.len(), 8);
    assert_eq!(t.meta.step, 16);
    let first = stats[0].loss;
    let last = stats[stats.len() - 1].loss;
    assert!(stats.iter().all(|s| s.loss.is_finite()));
    assert!(
        last < 0.9 * first,
        "loss should fall by over 10%: first epoch {first}, last {last}"
    );
}

#[test]
fn checkpoints_round_trip_every_tensor_bit_exactly() {
    let f = fixture(4);
    let loader = loader(&f, 2);
    let mut t = Trainer::new(config(&f.clip), run(&f, 2, 1e-2), &Device::Cpu).unwrap();
    t.fit(&loader, 1, None, false, |_| Ok(())).unwrap();
    let out = f.data.parent().unwrap().join("ckpt/run1");
    t.save(&out).unwrap();
    let (weights, json) = checkpoint::paths(&out);
    assert!(weights.is_file() && json.is_file());

    let ck = checkpoint::load(&weights, &Device::Cpu).unwrap();
    assert_eq!(ck.meta, t.meta);
    assert_eq!(ck.meta.config, config(&f.clip));
    assert_eq!((ck.meta.epoch, ck.meta.step), (1, 2));
    let mut expected = 0;
    for (prefix, map) in [("prompt.", &t.parts.prompt), ("hsc.", &t.parts.hsc)] {
        for (name, var) in sorted_vars(map) {
            let a: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let b: Vec<f32> = ck.tensors[&format!("{prefix}{name}")]
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{prefix}{name}"
            );
            expected += 1;
        }
    }
    for (name, m) in t.adam().state("adam.") {
        let a: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = ck.tensors[&name].flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a, b, "{name}");
        expected += 1;
    }
    assert_eq!(ck.tensors.len(), expected, "no other tensors in the file");

    // a model loaded from it for testing holds the same values
    let (_, ck2) = hipl::train::load_model(&out, None, &Device::Cpu).unwrap();
    assert_eq!(ck2.meta, t.meta);
}

#[test]
fn resumed_training_equals_uninterrupted_training() {
    let f = fixture(4);
    let loader = loader(&f, 4); // one step per epoch

    let mut whole = Trainer::new(config(&f.clip), run(&f, 4, 1e-2), &Device::Cpu).unwrap();
    whole.fit(&loader, 2, None, false, |_| Ok(())).unwrap();

    let out = f.data.parent().unwrap().join("ckpt/half");
    let mut first = Trainer::new(config(&f.clip), run(&f, 4, 1e-2), &Device::Cpu).unwrap();
    first
        .fit(&loader, 1, Some(&out), false, |_| Ok(()))
        .unwrap();
    drop(first);
    let mut resumed = Trainer::resume(&out, None, &Device::Cpu).unwrap();
    assert_eq!((resumed.meta.epoch, resumed.meta.step), (1, 1));
    resumed.fit(&loader, 2, None, false, |_| Ok(())).unwrap();

    assert_eq!(resumed.meta.step, whole.meta.step);
    assert_eq!(resumed.meta.losses, whole.meta.losses);
    let (a, b) = (values(&whole), values(&resumed));
    assert_eq!(a.len(), b.len());
    for ((na, va), (nb, vb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert_eq!(va, vb, "{na} differs after resuming");
    }
    // and training moved them: the comparison is not of untouched initial values
    let fresh = Trainer::new(config(&f.clip), run(&f, 4, 1e-2), &Device::Cpu).unwrap();
    assert_ne!(values(&fresh), a);
}

#[test]
fn bad_checkpoints_fail_naming_the_file_and_tensor() {
    let f = fixture(4);
    let t = Trainer::new(config(&f.clip), run(&f, 2, 1e-2), &Device::Cpu).unwrap();
    let out = f.data.parent().unwrap().join("bad");
    t.save(&out).unwrap();
    let (weights, json) = checkpoint::paths(&out);

    // a tensor missing, another mis-shaped
    let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let victim = tensors
        .keys()
        .find(|k| k.starts_with("hsc."))
        .unwrap()
        .clone();
    tensors.remove(&victim);
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let e = Trainer::resume(&out, None, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(&victim) && e.contains("bad.safetensors"), "{e}");

    let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let victim = tensors
        .keys()
        .find(|k| k.starts_with("prompt."))
        .unwrap()
        .clone();
    tensors.insert(
        victim.clone(),
        Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let e = Trainer::resume(&out, None, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(&victim) && e.contains("[3]"), "{e}");

    // a truncated tensor file, a broken JSON, a missing JSON
    std::fs::write(&weights, b"\x08\x00\x00").unwrap();
    let e = checkpoint::load(&out, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.safetensors"), "{e}");
    std::fs::write(&json, b"{\"format\": 1}").unwrap();
    let e = checkpoint::load(&out, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.json"), "{e}");
    std::fs::remove_file(&json).unwrap();
    let e = checkpoint::load(&out, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.json"), "{e}");
}
