//! Checkpoints: `<stem>.safetensors` with the learnable tensors and the optimiser state,
//! and `<stem>.json` beside it with everything needed to rebuild and resume the run.
//!
//! Tensor names: `prompt.<var>` (the prompt learner's `VarMap`), `hsc.<var>` (the HSC's),
//! `adam.m.<var>` and `adam.v.<var>` (Adam's moments over the prompt learner). The JSON holds
//! the [`HiplConfig`], the run (seed, CLIP directory, dataset, classes, batch size,
//! optimiser settings) and the progress (epochs and steps done, mean loss per epoch).

use crate::error::{Error, Result};
use crate::model::hipl::HiplConfig;
use crate::train::optim::{Adam, AdamParams};
use crate::train::params::sorted_vars;
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The `format` field of every checkpoint JSON.
pub const FORMAT: &str = "hipl-checkpoint-v1";
/// Name prefix of the prompt learner's tensors.
pub const PROMPT: &str = "prompt.";
/// Name prefix of the HSC's tensors.
pub const HSC: &str = "hsc.";
/// Name prefix of Adam's moments.
pub const ADAM: &str = "adam.";

/// How a run was set up; fixed for its lifetime (a resumed run keeps it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub seed: u64,
    /// The CLIP directory the model was built on.
    pub clip: PathBuf,
    /// `mvtec` or `visa`.
    pub dataset: String,
    pub data: PathBuf,
    /// The training classes (empty: every class of the dataset).
    pub classes: Vec<String>,
    pub batch_size: usize,
    pub adam: AdamParams,
    pub sgd_lr: f64,
}

/// What the JSON beside the tensors holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format: String,
    /// The `hipl` version that wrote it.
    pub hipl_version: String,
    pub config: HiplConfig,
    pub run: RunInfo,
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps completed (Adam's `t`).
    pub step: u64,
    /// Mean training loss of each completed epoch.
    pub losses: Vec<f64>,
}

/// The two files of a checkpoint named `out`: an extension `.safetensors` or `.json` on
/// `out` is dropped first, so `run/ckpt`, `run/ckpt.safetensors` and `run/ckpt.json` all
/// name `run/ckpt.safetensors` + `run/ckpt.json`.
pub fn paths(out: &Path) -> (PathBuf, PathBuf) {
    let stem = match out.extension().and_then(|e| e.to_str()) {
        Some("safetensors" | "json") => out.with_extension(""),
        _ => out.to_path_buf(),
    };
    let with = |ext: &str| {
        let mut s = stem.clone().into_os_string();
        s.push(".");
        s.push(ext);
        PathBuf::from(s)
    };
    (with("safetensors"), with("json"))
}

/// Writes both files (each to a temporary name first, then renamed, so an interrupted
/// write leaves the previous checkpoint whole).
pub fn save(
    out: &Path,
    meta: &CheckpointMeta,
    prompt: &VarMap,
    hsc: &VarMap,
    adam: &Adam,
) -> Result<()> {
    let (weights, json) = paths(out);
    if let Some(dir) = weights.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (prefix, map) in [(PROMPT, prompt), (HSC, hsc)] {
        for (name, var) in sorted_vars(map) {
            tensors.insert(format!("{prefix}{name}"), var.as_tensor().clone());
        }
    }
    tensors.extend(adam.state(ADAM));

    let tmp = weights.with_extension("safetensors.tmp");
    candle_core::safetensors::save(&tensors, &tmp).map_err(|e| Error::BadFile {
        path: tmp.clone(),
        reason: format!("cannot write checkpoint tensors: {e}"),
    })?;
    std::fs::rename(&tmp, &weights).map_err(|e| Error::io(&weights, e))?;

    let text = serde_json::to_string_pretty(meta).map_err(|e| Error::BadFile {
        path: json.clone(),
        reason: format!("cannot serialise the checkpoint configuration: {e}"),
    })?;
    let tmp = json.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &json).map_err(|e| Error::io(&json, e))?;
    tracing::info!(path = %weights.display(), epoch = meta.epoch, step = meta.step, "saved checkpoint");
    Ok(())
}

/// A checkpoint read back: its JSON and every tensor.
#[derive(Debug)]
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub tensors: HashMap<String, Tensor>,
    pub weights_path: PathBuf,
    pub meta_path: PathBuf,
}

/// Reads both files of the checkpoint named `path` (see [`paths`]) onto `device`. Fails
/// naming the file that is missing, unreadable or not a hipl checkpoint.
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint> {
    let (weights_path, meta_path) = paths(path);
    let text = std::fs::read_to_string(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
    let meta: CheckpointMeta = serde_json::from_str(&text).map_err(|e| Error::BadFile {
        path: meta_path.clone(),
        reason: format!("not a hipl checkpoint configuration: {e}"),
    })?;
    if meta.format != FORMAT {
        return Err(Error::BadFile {
            path: meta_path,
            reason: format!("format `{}`, expected `{FORMAT}`", meta.format),
        });
    }
    std::fs::metadata(&weights_path).map_err(|e| Error::io(&weights_path, e))?;
    let tensors =
        candle_core::safetensors::load(&weights_path, device).map_err(|e| Error::BadFile {
            path: weights_path.clone(),
            reason: format!("not a readable safetensors file ({e}); is it truncated?"),
        })?;
    Ok(Checkpoint {
        meta,
        tensors,
        weights_path,
        meta_path,
    })
}

impl Checkpoint {
    /// Sets every variable of `map` from the tensor `<prefix><var>`. Fails naming the file
    /// and the tensor when one is missing or mis-shaped, or when the file holds a tensor
    /// under `prefix` that the model does not have (a checkpoint of another configuration).
    pub fn restore_vars(&self, prefix: &str, map: &VarMap) -> Result<()> {
        let vars = sorted_vars(map);
        for (name, var) in &vars {
            let key = format!("{prefix}{name}");
            let want = var.as_tensor();
            let t = self.tensors.get(&key).ok_or_else(|| Error::Checkpoint {
                key: key.clone(),
                expected: format!(
                    "a tensor of shape {:?} in {}",
                    want.dims(),
                    self.weights_path.display()
                ),
                got: "no such tensor".into(),
            })?;
            if t.dims() != want.dims() {
                return Err(Error::Checkpoint {
                    key,
                    expected: format!("shape {:?} in {}", want.dims(), self.weights_path.display()),
                    got: format!("shape {:?}", t.dims()),
                });
            }
            var.set(&t.to_dtype(want.dtype())?.to_device(want.device())?)?;
        }
        let mut extra: Vec<&String> = self
            .tensors
            .keys()
            .filter(|k| {
                k.strip_prefix(prefix)
                    .is_some_and(|n| !vars.iter().any(|(v, _)| v == n))
            })
            .collect();
        extra.sort();
        if let Some(key) = extra.first() {
            return Err(Error::Checkpoint {
                key: key.to_string(),
                expected: format!(
                    "only the model's own tensors under `{prefix}` in {} (is its JSON from \
                     another configuration?)",
                    self.weights_path.display()
                ),
                got: format!("{} tensor(s) the model does not have", extra.len()),
            });
        }
        Ok(())
    }

    /// Restores Adam's moments and step count.
    pub fn restore_adam(&self, adam: &mut Adam) -> Result<()> {
        adam.restore(&self.tensors, ADAM, self.meta.step, &self.weights_path)
    }
}
