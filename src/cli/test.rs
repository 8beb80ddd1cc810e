//! `hipl test`: zero-shot testing of a trained checkpoint on a dataset's test split —
//! metrics per class (`metrics.json` and a table), anomaly-map overlays, optionally the maps.

use crate::cli::emit;
use crate::cli::eval::AuproArg;
use crate::cli::train::{DatasetArg, DeviceArg};
use crate::error::{Error, Result};
use crate::eval::Metrics;
use crate::train::{load_model, test, TestOptions};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `hipl test`.
#[derive(Clone, Debug, clap::Args)]
pub struct TestArgs {
    /// Checkpoint written by `hipl train` (<CKPT>.safetensors with <CKPT>.json beside it).
    #[arg(long)]
    pub prompts: PathBuf,
    /// CLIP directory (default: the one the checkpoint was trained on).
    #[arg(long)]
    pub clip: Option<PathBuf>,
    /// Dataset root.
    #[arg(long)]
    pub data: PathBuf,
    /// Layout of --data.
    #[arg(long, value_enum, default_value_t = DatasetArg::Mvtec)]
    pub dataset: DatasetArg,
    /// Output directory: metrics.json, overlays/<class>/*.png, maps/ with --save-maps.
    #[arg(long)]
    pub out: PathBuf,
    /// Classes to test, comma-separated (default: every class).
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Overlay PNGs per class (anomalous images first).
    #[arg(long, default_value_t = 4)]
    pub overlays: usize,
    /// Also write each class's maps, masks, scores and labels as .npy under maps/.
    #[arg(long)]
    pub save_maps: bool,
    /// Upper end of the FPR range AUPRO integrates over, in (0, 1].
    #[arg(long, default_value_t = 0.3)]
    pub fpr_limit: f64,
    /// How AUPRO is integrated and normalised (as `hipl eval --aupro`).
    #[arg(long, value_enum, default_value_t = AuproArg::Mvtec)]
    pub aupro: AuproArg,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
}

/// Tests the checkpoint, writes `metrics.json` (the metrics with the AUPRO variant and FPR
/// limit they were computed with) and the overlays, and prints the table.
pub fn run_test(args: &TestArgs, out: &mut dyn Write) -> Result<Metrics> {
    let start = Instant::now();
    // Checked before the model loads: a bad limit fails at once, not after the test run.
    let pro = args.aupro.options(args.fpr_limit);
    pro.validate()?;
    let device = args.device.device()?;
    let (model, ck) = load_model(&args.prompts, args.clip.as_deref(), &device)?;
    let dataset = args.dataset.open(&args.data)?;
    let opts = TestOptions {
        batch_size: args.batch_size,
        overlays: args.overlays,
        save_maps: args.save_maps,
        pro,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let metrics = test(&model, &dataset, &args.classes, &args.out, &opts, &device)?;

    let report = json!({
        "metrics": metrics.to_json(),
        "checkpoint": ck.weights_path,
        "trained_on": { "dataset": ck.meta.run.dataset, "data": ck.meta.run.data,
                        "classes": ck.meta.run.classes, "epochs": ck.meta.epoch },
        "tested_on": { "dataset": args.dataset.name(), "data": args.data },
        "clip": args.clip.as_ref().unwrap_or(&ck.meta.run.clip),
        "image_size": ck.meta.config.image_size,
        "seconds": start.elapsed().as_secs_f64(),
    });
    write_json(&args.out.join("metrics.json"), &report)?;
    emit(out, metrics.table().trim_end())?;
    emit(
        out,
        format_args!(
            "metrics: {}  overlays: {}",
            args.out.join("metrics.json").display(),
            args.out.join("overlays").display()
        ),
    )?;
    Ok(metrics)
}

pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}
