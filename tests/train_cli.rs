//! `hipl train` → `hipl test` → `--resume` through the CLI's run functions, on a tiny
//! synthetic set with a tiny random CLIP; and the CLI's errors for bad devices and files.

use hipl::cli::eval::{run_eval, Args as EvalArgs, AuproArg, Format};
use hipl::cli::quickstart::{run_quickstart, QuickstartArgs};
use hipl::cli::test::{run_test, TestArgs};
use hipl::cli::train::{run_train, DatasetArg, DeviceArg, TrainArgs};
use hipl::eval::synth::{find_source, synthesize, SynthConfig};
use hipl::train::{tiny_clip, TinyClipSpec};
use std::path::{Path, PathBuf};

const SIZE: usize = 64;

fn setup(dir: &Path) -> (PathBuf, PathBuf, Vec<String>) {
    let clip = dir.join("clip");
    let spec = TinyClipSpec {
        image_size: SIZE,
        vision_width: 32,
        text_width: 32,
        vision_layers: 2,
        text_layers: 2,
        vision_heads: 2,
        text_heads: 2,
        projection_dim: 32,
        ..TinyClipSpec::default()
    };
    tiny_clip::write(&clip, &spec, 1).unwrap();
    let data = dir.join("data");
    let cfg = SynthConfig {
        classes: Some(2),
        size: SIZE as u32,
        train: 1,
        test: 6,
        seed: 2,
    };
    let classes = synthesize(&find_source(None).unwrap(), &data, &cfg).unwrap();
    (clip, data, classes)
}

fn train_args(clip: &Path, data: &Path, class: &str, out: &Path, epochs: usize) -> TrainArgs {
    TrainArgs {
        clip: Some(clip.to_path_buf()),
        data: Some(data.to_path_buf()),
        dataset: DatasetArg::Mvtec,
        out: out.to_path_buf(),
        classes: vec![class.to_string()],
        epochs,
        batch_size: 3,
        image_size: SIZE,
        layers: vec![1, 2],
        prompt_len: 4,
        lr: 1e-3,
        seed: 3,
        resume: None,
        quiet: true,
        device: DeviceArg::Cpu,
    }
}

#[test]
fn train_then_test_then_resume_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (clip, data, classes) = setup(dir.path());
    let ckpt = dir.path().join("runs/ckpt");

    let mut report = Vec::new();
    let summary = run_train(
        &train_args(&clip, &data, &classes[0], &ckpt, 1),
        &mut report,
    )
    .unwrap();
    let report = String::from_utf8(report).unwrap();
    assert_eq!(summary.epochs.len(), 1);
    assert_eq!(summary.epochs[0].steps, 2); // 6 images, 3 per batch
    assert!(report.contains("epoch   1  loss"), "{report}");
    assert!(summary.checkpoint.ends_with("ckpt.safetensors"));
    assert!(dir.path().join("runs/ckpt.json").is_file());

    // zero-shot on the other class
    let test_out = dir.path().join("test");
    let mut table = Vec::new();
    let args = TestArgs {
        prompts: summary.checkpoint.clone(),
        clip: None,
        data: data.clone(),
        dataset: DatasetArg::Mvtec,
        out: test_out.clone(),
        classes: vec![classes[1].clone()],
        batch_size: 4,
        overlays: 2,
        save_maps: true,
        fpr_limit: 0.3,
        aupro: AuproArg::Mvtec,
        device: DeviceArg::Cpu,
    };
    let metrics = run_test(&args, &mut table).unwrap();
    let table = String::from_utf8(table).unwrap();
    assert_eq!(metrics.classes.len(), 1);
    assert_eq!(metrics.classes[0].images, 6);
    assert!(metrics.mean.pixel_auroc.is_some() && metrics.mean.aupro.is_some());
    assert!(
        table.contains("img AUROC") && table.contains(&classes[1]),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(test_out.join("metrics.json")).unwrap())
            .unwrap();
    assert_eq!(json["metrics"]["classes"][0]["class"], classes[1].as_str());
    assert_eq!(json["trained_on"]["classes"][0], classes[0].as_str());
    let overlays: Vec<_> = std::fs::read_dir(test_out.join("overlays").join(&classes[1]))
        .unwrap()
        .collect();
    assert_eq!(overlays.len(), 2);
    let maps: ndarray::Array3<f32> =
        ndarray_npy::read_npy(test_out.join(format!("maps/{}_maps.npy", classes[1]))).unwrap();
    assert_eq!(maps.dim(), (6, SIZE, SIZE));

    // resume to two epochs: the checkpoint's settings, one more epoch
    let mut resume = train_args(&clip, &data, &classes[0], &ckpt, 2);
    resume.resume = Some(ckpt.clone());
    resume.clip = None;
    resume.data = None;
    let mut report = Vec::new();
    let summary = run_train(&resume, &mut report).unwrap();
    assert_eq!(summary.epochs.len(), 1);
    assert_eq!(summary.epochs[0].epoch, 2);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("runs/ckpt.json")).unwrap())
            .unwrap();
    assert_eq!(meta["epoch"], 2);
    assert_eq!(meta["step"], 4);
}

#[test]
fn cli_errors_name_the_device_and_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let (clip, data, classes) = setup(dir.path());
    let ckpt = dir.path().join("ckpt");

    // a build with candle's CUDA support takes `--device cuda`
    #[cfg(not(feature = "candle-cuda"))]
    {
        let mut args = train_args(&clip, &data, &classes[0], &ckpt, 1);
        args.device = DeviceArg::Cuda;
        let e = run_train(&args, &mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("--device") && e.contains("CUDA"), "{e}");
    }

    let mut args = train_args(&clip, &data, "nope", &ckpt, 1);
    args.classes = vec!["nope".into()];
    let e = run_train(&args, &mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains("nope") && e.contains(&classes[0]), "{e}");

    let mut args = train_args(&clip, &data, &classes[0], &ckpt, 1);
    args.classes = vec![classes[0].clone(), classes[0].clone()];
    let e = run_train(&args, &mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains("--classes") && e.contains("twice"), "{e}");

    let args = train_args(&clip, &data, &classes[0], &ckpt, 0);
    let e = run_train(&args, &mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains("--epochs") && e.contains("at least 1"), "{e}");

    // a checkpoint path under a regular file fails before any training
    let file = dir.path().join("afile");
    std::fs::write(&file, b"x").unwrap();
    let args = train_args(&clip, &data, &classes[0], &file.join("ck"), 1);
    let e = run_train(&args, &mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains("--out") && e.contains("afile"), "{e}");

    let args = train_args(&dir.path().join("no-clip"), &data, &classes[0], &ckpt, 1);
    let e = run_train(&args, &mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains("no-clip") && e.contains("config.json"), "{e}");

    // an image the training set holds is unreadable: named before training starts
    let bad = data.join(&classes[0]).join("test/good/000.png");
    std::fs::write(&bad, b"garbage").unwrap();
    let args = train_args(&clip, &data, &classes[0], &ckpt, 1);
    let e = run_train(&args, &mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains("000.png"), "{e}");
    assert!(!ckpt.with_extension("safetensors").exists());

    let args = TestArgs {
        prompts: dir.path().join("missing"),
        clip: None,
        data,
        dataset: DatasetArg::Mvtec,
        out: dir.path().join("t"),
        classes: vec![],
        batch_size: 2,
        overlays: 0,
        save_maps: false,
        fpr_limit: 0.3,
        aupro: AuproArg::Mvtec,
        device: DeviceArg::Cpu,
    };
    let e = run_test(&args, &mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains("missing.json"), "{e}");
}

#[test]
fn test_computes_aupro_with_the_variant_and_fpr_limit_it_is_given_as_eval_does() {
    let dir = tempfile::tempdir().unwrap();
    let (clip, data, classes) = setup(dir.path());
    let ckpt = dir.path().join("ckpt");
    let summary = run_train(
        &train_args(&clip, &data, &classes[0], &ckpt, 1),
        &mut Vec::new(),
    )
    .unwrap();
    let test_args = |fpr_limit: f64| TestArgs {
        prompts: summary.checkpoint.clone(),
        clip: None,
        data: data.clone(),
        dataset: DatasetArg::Mvtec,
        out: dir.path().join("test"),
        classes: vec![classes[1].clone()],
        batch_size: 6,
        overlays: 0,
        save_maps: true,
        fpr_limit,
        aupro: AuproArg::MinmaxRescaled,
        device: DeviceArg::Cpu,
    };

    let e = run_test(&test_args(1.5), &mut Vec::new()).unwrap_err();
    let e = e.to_string();
    assert!(e.contains("`fpr_limit`") && e.contains("(0, 1]"), "{e}");

    let args = test_args(0.1);
    let metrics = run_test(&args, &mut Vec::new()).unwrap();
    assert_eq!(metrics.pro, AuproArg::MinmaxRescaled.options(0.1));
    let text = std::fs::read_to_string(args.out.join("metrics.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["metrics"]["aupro"]["variant"], "minmax-rescaled");
    assert_eq!(json["metrics"]["aupro"]["fpr_limit"], 0.1);

    // `hipl eval` on the saved maps with the same flags gives the same AUPRO
    let saved = |what: &str| args.out.join(format!("maps/{}_{what}.npy", classes[1]));
    let eval = run_eval(&EvalArgs {
        scores: saved("scores"),
        labels: saved("labels"),
        maps: Some(saved("maps")),
        masks: Some(saved("masks")),
        class: classes[1].clone(),
        fpr_limit: 0.1,
        aupro: AuproArg::MinmaxRescaled,
        format: Format::Json,
    })
    .unwrap();
    assert!(metrics.mean.aupro.is_some());
    assert_eq!(eval.mean.aupro, metrics.mean.aupro);
}

#[test]
fn quickstart_runs_end_to_end_and_says_the_weights_are_random() {
    let dir = tempfile::tempdir().unwrap();
    let args = QuickstartArgs {
        out: dir.path().join("qs"),
        epochs: 2,
        batch_size: 4,
        images: 4,
        image_size: SIZE,
        lr: 1e-3,
        seed: 0,
        source: None,
        quiet: true,
    };
    let mut report = Vec::new();
    let summary = run_quickstart(&args, &mut report).unwrap();
    let report = String::from_utf8(report).unwrap();
    assert!(report.contains("RANDOM weights"), "{report}");
    assert!(
        report.contains("AUPRO") && report.contains("mean"),
        "{report}"
    );
    assert_eq!(summary.losses.len(), 2);
    assert!(!summary.train_classes.is_empty() && !summary.test_classes.is_empty());
    assert!(summary
        .test_classes
        .iter()
        .all(|c| !summary.train_classes.contains(c)));
    assert!(dir.path().join("qs/test/metrics.json").is_file());
}
