//! Batches of images, masks and labels for training and testing, from the samples of a
//! [`Dataset`].
//!
//! Zero-shot protocol: a model is trained on the annotated *test* split of some classes
//! (anomalous images come with masks there) and tested on classes — usually of another
//! dataset — it never saw, as AnomalyCLIP trains on MVTec AD's test set and tests on VisA.
//! [`select`] picks the samples; [`Loader`] turns them into [`Batch`]es.

use crate::error::{Error, Result};
use crate::eval::data::{load_sample, Dataset, Sample, Split};
use crate::model::clip::preprocess::{MEAN, STD};
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use std::path::PathBuf;

/// One batch, every tensor on the loader's device.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[B, 3, S, S]`, normalised with CLIP's mean and standard deviation.
    pub pixels: Tensor,
    /// `[B, S, S]`, 1.0 = anomalous pixel, 0.0 = normal.
    pub masks: Tensor,
    /// `[B]`, 1.0 = anomalous image.
    pub labels: Tensor,
    /// The image files, in batch order.
    pub paths: Vec<PathBuf>,
    /// The classes of the images, in batch order.
    pub classes: Vec<String>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// The samples of `split` of the given classes (all classes when `classes` is empty), in
/// the dataset's order. Fails naming an unknown class (and listing the known ones) and
/// naming the directory of a class with no images in that split.
pub fn select(dataset: &Dataset, classes: &[String], split: Split) -> Result<Vec<Sample>> {
    let known = dataset.classes();
    let wanted: Vec<String> = if classes.is_empty() {
        known.clone()
    } else {
        classes.to_vec()
    };
    let mut out = Vec::new();
    for class in &wanted {
        if !known.contains(class) {
            return Err(Error::invalid(
                "classes",
                format!(
                    "classes of the dataset at {} ({})",
                    dataset.root.display(),
                    known.join(", ")
                ),
                class,
            ));
        }
        out.extend(dataset.samples(class, split)?.into_iter().cloned());
    }
    Ok(out)
}

/// Loads samples in batches of `batch_size` at `image_size` pixels.
#[derive(Debug, Clone)]
pub struct Loader {
    samples: Vec<Sample>,
    batch_size: usize,
    image_size: u32,
    device: Device,
}

impl Loader {
    pub fn new(
        samples: Vec<Sample>,
        batch_size: usize,
        image_size: usize,
        device: &Device,
    ) -> Result<Self> {
        if samples.is_empty() {
            return Err(Error::invalid("samples", "at least one image", "none"));
        }
        if batch_size == 0 {
            return Err(Error::invalid("batch_size", "a positive integer", 0));
        }
        let image_size = u32::try_from(image_size)
            .ok()
            .filter(|&s| s > 0)
            .ok_or_else(|| Error::invalid("image_size", "a positive side in pixels", image_size))?;
        Ok(Loader {
            samples,
            batch_size,
            image_size,
            device: device.clone(),
        })
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Batches per pass over the samples (the last one may be smaller).
    pub fn batches(&self) -> usize {
        self.samples.len().div_ceil(self.batch_size)
    }

    /// The sample order of one training epoch: a shuffle seeded by `(seed, epoch)`, so a
    /// resumed run sees the same order as an uninterrupted one.
    pub fn shuffled(&self, seed: u64, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.samples.len()).collect();
        let mut rng =
            StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        order.shuffle(&mut rng);
        order
    }

    /// The samples in their own order (for testing).
    pub fn in_order(&self) -> Vec<usize> {
        (0..self.samples.len()).collect()
    }

    /// Loads batch `index` of `order` (indices into the samples). Images are read in
    /// parallel; a failure names the file.
    pub fn batch(&self, order: &[usize], index: usize) -> Result<Batch> {
        let start = index * self.batch_size;
        if start >= order.len() {
            return Err(Error::invalid(
                "index",
                format!("a batch below {}", order.len().div_ceil(self.batch_size)),
                index,
            ));
        }
        let chosen: Vec<&Sample> = order[start..(start + self.batch_size).min(order.len())]
            .iter()
            .map(|&i| {
                self.samples.get(i).ok_or_else(|| {
                    Error::invalid("order", format!("indices below {}", self.samples.len()), i)
                })
            })
            .collect::<Result<_>>()?;

        let size = self.image_size;
        let loaded = chosen
            .par_iter()
            .map(|s| load_sample(s, size))
            .collect::<Result<Vec<_>>>()?;

        let s = size as usize;
        let b = chosen.len();
        let mut pixels = Vec::with_capacity(b * 3 * s * s);
        let mut masks = Vec::with_capacity(b * s * s);
        for l in &loaded {
            for (c, plane) in l.image.outer_iter().enumerate() {
                pixels.extend(plane.iter().map(|&v| (v - MEAN[c]) / STD[c]));
            }
            masks.extend(l.mask.iter().map(|&m| m as f32));
        }
        let labels: Vec<f32> = chosen.iter().map(|s| s.anomalous as u8 as f32).collect();
        Ok(Batch {
            pixels: Tensor::from_vec(pixels, (b, 3, s, s), &self.device)?,
            masks: Tensor::from_vec(masks, (b, s, s), &self.device)?,
            labels: Tensor::from_vec(labels, b, &self.device)?,
            paths: chosen.iter().map(|s| s.image.clone()).collect(),
            classes: chosen.iter().map(|s| s.class.clone()).collect(),
        })
    }

    /// Reads every image and mask once, so bad data fails before training starts rather
    /// than epochs into it. Fails naming the first bad file in sample order (the files are
    /// read in parallel; the error is the same on every run).
    pub fn check_files(&self) -> Result<()> {
        let first_bad = self
            .samples
            .par_iter()
            .find_map_first(|s| load_sample(s, 8).err());
        first_bad.map_or(Ok(()), Err)
    }
}
