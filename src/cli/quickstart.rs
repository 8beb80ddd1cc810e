//! `hipl quickstart`: the whole pipeline on a fresh machine with no downloads — synthesise
//! an MVTec-layout dataset from the bundled images, write a tiny CLIP with random weights,
//! train HiPL on some classes, test it zero-shot on the held-out ones, print the metrics.

use crate::cli::emit;
use crate::cli::eval::AuproArg;
use crate::cli::test::{run_test, TestArgs};
use crate::cli::train::{run_train, DatasetArg, DeviceArg, TrainArgs};
use crate::error::{Error, Result};
use crate::eval::synth::{find_source, synthesize, SynthConfig};
use crate::eval::Metrics;
use crate::train::{tiny_clip, TinyClipSpec};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `hipl quickstart`.
#[derive(Clone, Debug, clap::Args)]
pub struct QuickstartArgs {
    /// Output directory: data/, clip-random/, hipl.{safetensors,json}, test/.
    #[arg(long, default_value = "runs/quickstart")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Test images per synthetic class (half of them defective).
    #[arg(long, default_value_t = 24)]
    pub images: usize,
    /// Image side in pixels (the tiny CLIP has 16-pixel patches).
    #[arg(long, default_value_t = 128)]
    pub image_size: usize,
    /// Learning rate of both optimisers.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory of source images (default: data/images, $HIPL_DATA or ../shared/data/images).
    #[arg(long)]
    pub source: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// What the quickstart did.
#[derive(Clone, Debug)]
pub struct QuickstartSummary {
    pub train_classes: Vec<String>,
    pub test_classes: Vec<String>,
    /// Mean training loss per epoch.
    pub losses: Vec<f64>,
    pub metrics: Metrics,
    pub seconds: f64,
}

/// Most patches a side in the quickstart (1024 px): its CPU run stays within minutes.
const MAX_QUICKSTART_GRID: usize = 64;

const RANDOM_NOTE: &str = "NOTE: this run uses a tiny CLIP with RANDOM weights, written by hipl \
(no download). The metrics below only show that the pipeline runs end to end; they say \
nothing about how well HiPL detects anomalies. See README, \"Running with real weights\".";

/// Runs the pipeline under `--out`, reporting each phase.
pub fn run_quickstart(args: &QuickstartArgs, out: &mut dyn Write) -> Result<QuickstartSummary> {
    let start = Instant::now();
    emit(out, RANDOM_NOTE)?;
    let patch = TinyClipSpec::default().patch_size;
    let grid = args.image_size / patch;
    if !args.image_size.is_multiple_of(patch) || !(2..=MAX_QUICKSTART_GRID).contains(&grid) {
        return Err(Error::invalid(
            "--image-size",
            format!(
                "a multiple of the tiny CLIP's {patch}-px patches from {} to {}",
                2 * patch,
                MAX_QUICKSTART_GRID * patch
            ),
            args.image_size,
        ));
    }
    if args.images < 2 {
        return Err(Error::invalid(
            "--images",
            "at least 2 (one normal, one defective)",
            args.images,
        ));
    }
    let size = u32::try_from(args.image_size).expect("at most 1024");

    let data = args.out.join("data");
    let source = find_source(args.source.as_deref())?;
    let classes = synthesize(
        &source,
        &data,
        &SynthConfig {
            classes: None,
            size,
            train: 2,
            test: args.images,
            seed: args.seed,
        },
    )?;
    if classes.len() < 2 {
        return Err(Error::invalid(
            "--source",
            "at least 2 source images (one class to train on, one to test on)",
            format!("{} in {}", classes.len(), source.display()),
        ));
    }
    let held_out = classes.len() / 2;
    let (train_classes, test_classes) = classes.split_at(classes.len() - held_out);
    emit(
        out,
        format_args!(
            "[1/4] synthesised {} classes at {size} px into {} (from {})",
            classes.len(),
            data.display(),
            source.display()
        ),
    )?;

    let clip = args.out.join("clip-random");
    let spec = TinyClipSpec {
        image_size: args.image_size,
        ..TinyClipSpec::default()
    };
    tiny_clip::write(&clip, &spec, args.seed)?;
    emit(
        out,
        format_args!(
            "[2/4] wrote a tiny CLIP with RANDOM weights to {} (ViT width {}, {} blocks, \
             {}-px patches; text width {}, {} blocks)",
            clip.display(),
            spec.vision_width,
            spec.vision_layers,
            spec.patch_size,
            spec.text_width,
            spec.text_layers
        ),
    )?;

    emit(
        out,
        format_args!("[3/4] training on {}", train_classes.join(", ")),
    )?;
    let ckpt = args.out.join("hipl");
    let train = run_train(
        &TrainArgs {
            clip: Some(clip.clone()),
            data: Some(data.clone()),
            dataset: DatasetArg::Mvtec,
            out: ckpt.clone(),
            classes: train_classes.to_vec(),
            epochs: args.epochs,
            batch_size: args.batch_size,
            image_size: args.image_size,
            layers: Vec::new(),
            prompt_len: 12,
            lr: args.lr,
            seed: args.seed,
            resume: None,
            quiet: args.quiet,
            device: DeviceArg::Cpu,
        },
        out,
    )?;

    emit(
        out,
        format_args!(
            "[4/4] testing zero-shot on the held-out {}",
            test_classes.join(", ")
        ),
    )?;
    // An earlier quickstart's results (metrics.json, overlays) are replaced, not mixed in.
    let test_dir = args.out.join("test");
    if test_dir.join("metrics.json").is_file() {
        std::fs::remove_dir_all(&test_dir).map_err(|e| Error::io(&test_dir, e))?;
    }
    let metrics = run_test(
        &TestArgs {
            prompts: ckpt,
            clip: None,
            data,
            dataset: DatasetArg::Mvtec,
            out: test_dir,
            classes: test_classes.to_vec(),
            batch_size: args.batch_size,
            overlays: 4,
            save_maps: false,
            fpr_limit: 0.3,
            aupro: AuproArg::Mvtec,
            device: DeviceArg::Cpu,
        },
        out,
    )?;
    let seconds = start.elapsed().as_secs_f64();
    emit(
        out,
        format_args!("total time {seconds:.1} s (random CLIP weights: see the note above)"),
    )?;
    Ok(QuickstartSummary {
        train_classes: train_classes.to_vec(),
        test_classes: test_classes.to_vec(),
        losses: train.epochs.iter().map(|e| e.loss).collect(),
        metrics,
        seconds,
    })
}
