//! The training loop: focal + dice on the anomaly maps and focal on the image logits
//! ([`hipl_loss`]), Adam on the prompt learner and SGD on the HSC, one checkpoint per
//! epoch, exact resume.

use crate::error::{Error, Result};
use crate::model::clip::{ClipModel, ClipTokenizer};
use crate::model::hipl::{hipl_loss, Hipl, HiplConfig};
use crate::train::batch::{Batch, Loader};
use crate::train::checkpoint::{self, Checkpoint, CheckpointMeta, RunInfo, FORMAT, HSC, PROMPT};
use crate::train::optim::{Adam, Sgd};
use crate::train::params::seeded_var_builder;
use candle_core::{DType, Device};
use candle_nn::VarMap;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

/// A HiPL model with its learnable variables in two maps: the prompt learner's (trained
/// with Adam) and the HSC's (trained with SGD).
pub struct Parts {
    pub model: Hipl,
    pub prompt: VarMap,
    pub hsc: VarMap,
}

/// Loads the CLIP in `clip_dir` (f32) and builds a HiPL model on it, its variables drawn
/// from `seed`. `train` makes the towers differentiable (slower, needed for gradients).
pub fn build_model(
    clip_dir: &Path,
    config: HiplConfig,
    seed: u64,
    device: &Device,
    train: bool,
) -> Result<Parts> {
    let mut clip = ClipModel::load(clip_dir, DType::F32, device)?;
    clip.set_differentiable(train);
    let tokenizer = ClipTokenizer::locate(None)?;
    let (prompt, hsc) = (VarMap::new(), VarMap::new());
    // two generators, so adding a prompt-learner variable does not shift the HSC's values
    let prompt_vb = seeded_var_builder(&prompt, seed, DType::F32, device);
    let hsc_vb = seeded_var_builder(&hsc, seed.wrapping_add(1), DType::F32, device);
    let model = Hipl::new(clip, &tokenizer, config, prompt_vb, hsc_vb)?;
    Ok(Parts { model, prompt, hsc })
}

/// Loads a checkpoint's model for testing (fast, non-differentiable towers): the CLIP named
/// by `clip_dir` (or the checkpoint's own when `None`), the checkpoint's configuration and
/// every learned tensor.
pub fn load_model(
    ckpt: &Path,
    clip_dir: Option<&Path>,
    device: &Device,
) -> Result<(Hipl, Checkpoint)> {
    let ck = checkpoint::load(ckpt, device)?;
    let clip = clip_dir.unwrap_or(&ck.meta.run.clip);
    let parts = build_model(
        clip,
        ck.meta.config.clone(),
        ck.meta.run.seed,
        device,
        false,
    )?;
    ck.restore_vars(PROMPT, &parts.prompt)?;
    ck.restore_vars(HSC, &parts.hsc)?;
    Ok((parts.model, ck))
}

/// The losses of one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLoss {
    pub total: f64,
    pub focal: f64,
    pub dice: f64,
    pub image: f64,
}

/// One epoch's summary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    /// 1-based.
    pub epoch: usize,
    pub steps: usize,
    /// Mean total loss over the epoch's steps.
    pub loss: f64,
    pub seconds: f64,
}

/// A training run: the model, its two optimisers and its progress.
pub struct Trainer {
    pub parts: Parts,
    adam: Adam,
    sgd: Sgd,
    pub meta: CheckpointMeta,
}

impl Trainer {
    /// A fresh run on the CLIP in `run.clip`.
    pub fn new(config: HiplConfig, run: RunInfo, device: &Device) -> Result<Self> {
        let parts = build_model(&run.clip, config.clone(), run.seed, device, true)?;
        let adam = Adam::new(&parts.prompt, run.adam)?;
        let sgd = Sgd::new(&parts.hsc, run.sgd_lr)?;
        let meta = CheckpointMeta {
            format: FORMAT.into(),
            hipl_version: env!("CARGO_PKG_VERSION").into(),
            config,
            run,
            epoch: 0,
            step: 0,
            losses: Vec::new(),
        };
        Ok(Trainer {
            parts,
            adam,
            sgd,
            meta,
        })
    }

    /// Continues the run saved in `ckpt`: same configuration, variables, optimiser state,
    /// seed and data order. `clip_dir` overrides the CLIP directory the checkpoint names
    /// (the same model moved elsewhere).
    pub fn resume(ckpt: &Path, clip_dir: Option<&Path>, device: &Device) -> Result<Self> {
        let ck = checkpoint::load(ckpt, device)?;
        let mut meta = ck.meta.clone();
        if let Some(dir) = clip_dir {
            meta.run.clip = dir.to_path_buf();
        }
        let parts = build_model(
            &meta.run.clip,
            meta.config.clone(),
            meta.run.seed,
            device,
            true,
        )?;
        ck.restore_vars(PROMPT, &parts.prompt)?;
        ck.restore_vars(HSC, &parts.hsc)?;
        let mut adam = Adam::new(&parts.prompt, meta.run.adam)?;
        ck.restore_adam(&mut adam)?;
        let sgd = Sgd::new(&parts.hsc, meta.run.sgd_lr)?;
        tracing::info!(
            checkpoint = %ck.weights_path.display(),
            epoch = meta.epoch,
            step = meta.step,
            "resuming training"
        );
        Ok(Trainer {
            parts,
            adam,
            sgd,
            meta,
        })
    }

    /// One optimiser step on `batch`. Fails naming the step when the loss is not finite
    /// (the variables are left as they were).
    pub fn step(&mut self, batch: &Batch) -> Result<StepLoss> {
        let out = self.parts.model.forward(&batch.pixels)?;
        let parts = hipl_loss(&out, &batch.masks, &batch.labels)?;
        let scalar = |t: &candle_core::Tensor| -> Result<f64> {
            Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
        };
        let loss = StepLoss {
            total: scalar(&parts.total)?,
            focal: scalar(&parts.focal)?,
            dice: scalar(&parts.dice)?,
            image: scalar(&parts.image)?,
        };
        if !loss.total.is_finite() {
            return Err(Error::NonFinite {
                arg: "training loss".into(),
                index: format!(
                    "epoch {}, step {} (batch of {})",
                    self.meta.epoch + 1,
                    self.meta.step + 1,
                    batch
                        .paths
                        .first()
                        .map_or(String::new(), |p| p.display().to_string())
                ),
                value: loss.total,
            });
        }
        let grads = parts.total.backward()?;
        self.adam.step(&grads)?;
        self.sgd.step(&grads)?;
        self.meta.step += 1;
        Ok(loss)
    }

    /// One pass over `loader` in the epoch's seeded order, showing `bar`'s running loss.
    pub fn epoch(&mut self, loader: &Loader, bar: &ProgressBar) -> Result<EpochStats> {
        let start = Instant::now();
        let epoch = self.meta.epoch + 1;
        let order = loader.shuffled(self.meta.run.seed, epoch);
        let batches = loader.batches();
        bar.reset();
        bar.set_length(batches as u64);
        bar.set_prefix(format!("epoch {epoch}"));
        let mut sum = 0.0;
        for i in 0..batches {
            let batch = loader.batch(&order, i)?;
            let loss = self.step(&batch)?;
            sum += loss.total;
            bar.set_message(format!("loss {:.4}", sum / (i + 1) as f64));
            tracing::debug!(
                epoch,
                step = self.meta.step,
                loss = loss.total,
                focal = loss.focal,
                dice = loss.dice,
                image = loss.image,
                "training step"
            );
            bar.inc(1);
        }
        let stats = EpochStats {
            epoch,
            steps: batches,
            loss: sum / batches as f64,
            seconds: start.elapsed().as_secs_f64(),
        };
        self.meta.epoch = epoch;
        self.meta.losses.push(stats.loss);
        tracing::info!(
            epoch,
            steps = batches,
            loss = stats.loss,
            seconds = stats.seconds,
            "trained one epoch"
        );
        Ok(stats)
    }

    // LIMITATION: checkpoints are written at epoch ends only, so an interrupted epoch is
    // trained again on resume; saving the position inside the epoch's order every N steps
    // would lift it.
    /// Trains until `epochs` epochs are done in total (a resumed run continues from its
    /// count), saving a checkpoint to `out` after each epoch when given. `on_epoch` sees
    /// each epoch's summary (with the progress bar cleared).
    pub fn fit(
        &mut self,
        loader: &Loader,
        epochs: usize,
        out: Option<&Path>,
        show_progress: bool,
        mut on_epoch: impl FnMut(&EpochStats) -> Result<()>,
    ) -> Result<Vec<EpochStats>> {
        let bar = progress_bar(show_progress);
        let mut all = Vec::new();
        while self.meta.epoch < epochs {
            let stats = self.epoch(loader, &bar)?;
            if let Some(out) = out {
                self.save(out)?;
            }
            bar.suspend(|| on_epoch(&stats))?;
            all.push(stats);
        }
        bar.finish_and_clear();
        Ok(all)
    }

    /// Writes the checkpoint files (see [`checkpoint::paths`]).
    pub fn save(&self, out: &Path) -> Result<()> {
        checkpoint::save(
            out,
            &self.meta,
            &self.parts.prompt,
            &self.parts.hsc,
            &self.adam,
        )
    }

    pub fn adam(&self) -> &Adam {
        &self.adam
    }
}

/// A progress bar on standard error with the running loss; hidden unless `show` and both
/// standard output and standard error are terminals.
pub fn progress_bar(show: bool) -> ProgressBar {
    let bar = ProgressBar::new(0);
    let visible = show && std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    bar.set_draw_target(if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    if let Ok(style) =
        ProgressStyle::with_template("{prefix} {bar:20} {pos}/{len} {msg} {elapsed}<{eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
