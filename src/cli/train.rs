//! `hipl train`: learns HiPL's prompts (MoEPLer, Adam) and hypergraph (HSC, SGD) on the
//! annotated test split of a dataset's classes, with a frozen CLIP, saving a checkpoint
//! after every epoch. Also the flags `hipl test` and `hipl quickstart` share.

use crate::cli::emit;
use crate::error::{Error, Result};
use crate::eval::data::{Dataset, Split};
use crate::model::clip::ClipConfig;
use crate::model::hipl::HiplConfig;
use crate::train::checkpoint::{self, RunInfo};
use crate::train::{select, AdamParams, EpochStats, Loader, Trainer};
use candle_core::Device;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
}

impl DeviceArg {
    /// The candle device. `cuda` is an error unless candle itself was built with CUDA
    /// support (this crate's `candle-cuda` feature) and a GPU is present.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceArg::Cpu => Ok(Device::Cpu),
            // LIMITATION: on CUDA (feature `candle-cuda`) only the hypergraph ops' forwards
            // run on hipl's kernels; their backward goes through the host, and this path has
            // never run on a GPU here (no GPU was lent), only on the kernels' host emulator.
            DeviceArg::Cuda if candle_core::utils::cuda_is_available() => Ok(Device::new_cuda(0)?),
            DeviceArg::Cuda => Err(Error::invalid(
                "--device",
                "cpu (this build's candle has no CUDA support: build with \
                 `--features candle-cuda` on a machine with nvcc, or train on the CPU)",
                "cuda",
            )),
        }
    }
}

/// `--dataset`: the layout of `--data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DatasetArg {
    /// `<root>/<class>/{train,test,ground_truth}/...` (also what `hipl synth` writes).
    Mvtec,
    /// `<root>/split_csv/1cls.csv`.
    Visa,
}

impl DatasetArg {
    pub fn name(self) -> &'static str {
        match self {
            DatasetArg::Mvtec => "mvtec",
            DatasetArg::Visa => "visa",
        }
    }

    pub fn open(self, root: &Path) -> Result<Dataset> {
        match self {
            DatasetArg::Mvtec => Dataset::mvtec(root),
            DatasetArg::Visa => Dataset::visa(root),
        }
    }

    fn parse(name: &str, file: &Path) -> Result<Self> {
        match name {
            "mvtec" => Ok(DatasetArg::Mvtec),
            "visa" => Ok(DatasetArg::Visa),
            other => Err(Error::BadFile {
                path: file.to_path_buf(),
                reason: format!("dataset `{other}`, expected mvtec or visa"),
            }),
        }
    }
}

/// Arguments of `hipl train`.
#[derive(Clone, Debug, clap::Args)]
pub struct TrainArgs {
    /// Hugging Face CLIP directory (config.json + model.safetensors), e.g. a download of
    /// openai/clip-vit-large-patch14-336. Taken from the checkpoint with --resume.
    #[arg(long, required_unless_present = "resume")]
    pub clip: Option<PathBuf>,
    /// Dataset root. Taken from the checkpoint with --resume.
    #[arg(long, required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    /// Layout of --data.
    #[arg(long, value_enum, default_value_t = DatasetArg::Mvtec)]
    pub dataset: DatasetArg,
    /// Checkpoint to write: <OUT>.safetensors and <OUT>.json (rewritten after each epoch).
    #[arg(long)]
    pub out: PathBuf,
    /// Training classes, comma-separated (default: every class of the dataset).
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// Total epochs (a resumed run trains until this many are done).
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Input side in pixels (AnomalyCLIP: 518, a 37 x 37 grid on ViT-L/14).
    #[arg(long, default_value_t = 518)]
    pub image_size: usize,
    /// Vision blocks (1-based, comma-separated) whose patch tokens give anomaly maps
    /// (default: each quarter of the tower, 6,12,18,24 on ViT-L/14).
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<usize>,
    /// Learnable word embeddings per prompt (the paper's L).
    #[arg(long, default_value_t = 12)]
    pub prompt_len: usize,
    /// Learning rate of both optimisers (Adam on the prompt learner, SGD on the HSC).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Seed of the initial prompts and HSC weights and of the data order.
    #[arg(long, default_value_t = 111)]
    pub seed: u64,
    /// Continue the run saved in this checkpoint (its configuration, optimiser state, seed,
    /// classes and batch size; --clip and --data override where they moved).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
}

/// What a training run did.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    pub epochs: Vec<EpochStats>,
    pub checkpoint: PathBuf,
    pub seconds: f64,
}

/// Trains and writes the checkpoint named by `--out`, reporting one line per epoch.
pub fn run_train(args: &TrainArgs, out: &mut dyn Write) -> Result<TrainSummary> {
    let start = Instant::now();
    if args.epochs == 0 {
        return Err(Error::invalid("--epochs", "at least 1", 0));
    }
    // The checkpoint's folder is made before any work, so a bad --out fails at once.
    if let Some(dir) = checkpoint::paths(&args.out).0.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::invalid(
                    "--out",
                    "a checkpoint path whose folder exists or can be created",
                    format!("{} ({e})", dir.display()),
                )
            })?;
        }
    }
    let device = args.device.device()?;
    let mut trainer = match &args.resume {
        Some(ckpt) => {
            let mut t = Trainer::resume(ckpt, args.clip.as_deref(), &device)?;
            if let Some(data) = &args.data {
                t.meta.run.data = data.clone();
            }
            if t.meta.epoch >= args.epochs {
                return Err(Error::invalid(
                    "--epochs",
                    format!(
                        "more than the {} epochs {} has trained",
                        t.meta.epoch,
                        ckpt.display()
                    ),
                    args.epochs,
                ));
            }
            emit(
                out,
                format_args!(
                    "resuming {} after epoch {}: the model, classes, batch size, image size, \
                     learning rates and seed are the checkpoint's (--classes, --batch-size, \
                     --image-size, --layers, --prompt-len, --lr and --seed are not used)",
                    ckpt.display(),
                    t.meta.epoch
                ),
            )?;
            t
        }
        None => {
            let (clip, data) = match (&args.clip, &args.data) {
                (Some(c), Some(d)) => (c, d),
                _ => {
                    return Err(Error::invalid(
                        "--clip/--data",
                        "both without --resume",
                        "none",
                    ))
                }
            };
            if let Some(dup) = args
                .classes
                .iter()
                .enumerate()
                .find_map(|(i, c)| args.classes[..i].contains(c).then_some(c))
            {
                return Err(Error::invalid(
                    "--classes",
                    "each class once",
                    format!("{dup} twice"),
                ));
            }
            let clip_config = ClipConfig::from_file(&clip.join("config.json"))?;
            let mut config = HiplConfig::for_clip(&clip_config, args.image_size);
            if !args.layers.is_empty() {
                config.map_layers = args.layers.clone();
            }
            config.prompt_len = args.prompt_len;
            let run = RunInfo {
                seed: args.seed,
                clip: clip.clone(),
                dataset: args.dataset.name().into(),
                data: data.clone(),
                classes: args.classes.clone(),
                batch_size: args.batch_size,
                adam: AdamParams {
                    lr: args.lr,
                    ..AdamParams::default()
                },
                sgd_lr: args.lr,
            };
            Trainer::new(config, run, &device)?
        }
    };

    let run = trainer.meta.run.clone();
    let json = checkpoint::paths(args.resume.as_deref().unwrap_or(&args.out)).1;
    let dataset = DatasetArg::parse(&run.dataset, &json)?.open(&run.data)?;
    let samples = select(&dataset, &run.classes, Split::Test)?;
    let loader = Loader::new(
        samples,
        run.batch_size,
        trainer.meta.config.image_size,
        &device,
    )?;
    loader.check_files()?;
    let classes = if run.classes.is_empty() {
        dataset.classes()
    } else {
        run.classes.clone()
    };
    emit(
        out,
        format_args!(
            "training on {} images of {} ({}), {} per batch, epochs {}..={}",
            loader.samples().len(),
            classes.join(", "),
            run.data.display(),
            run.batch_size,
            trainer.meta.epoch + 1,
            args.epochs
        ),
    )?;
    let epochs = trainer.fit(&loader, args.epochs, Some(&args.out), !args.quiet, |s| {
        emit(
            out,
            format_args!(
                "epoch {:>3}  loss {:.4}  ({} steps, {:.1} s)",
                s.epoch, s.loss, s.steps, s.seconds
            ),
        )
    })?;
    let checkpoint = checkpoint::paths(&args.out).0;
    emit(out, format_args!("checkpoint: {}", checkpoint.display()))?;
    Ok(TrainSummary {
        epochs,
        checkpoint,
        seconds: start.elapsed().as_secs_f64(),
    })
}
