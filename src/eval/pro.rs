//! Pixel-level metrics over all pixels of all images: pixel AUROC and AUPRO (the area
//! under the per-region-overlap curve up to a false-positive-rate limit), both from one
//! sort of the pixel scores.
//!
//! A ground-truth *region* is an 8-connected component of an image's binary mask. At a
//! threshold `t`, a region's overlap is the fraction of its pixels scoring `>= t`; PRO is
//! the mean overlap over all regions of all images, and the false-positive rate (FPR) is
//! the fraction of normal pixels (mask 0, in every image) scoring `>= t`.

use super::metrics::{auroc_from_counts, check_scores, counts, key, require_both, Ranking};
use crate::error::{Error, Result};
use image::{GrayImage, Luma};
use imageproc::region_labelling::{connected_components, Connectivity};
use ndarray::{ArrayView3, Axis};
use rayon::prelude::*;

/// How the PRO curve is turned into one number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProVariant {
    /// MVTec AD's definition: trapezoid area under PRO over FPR in `[0, limit]`, the point
    /// at exactly `limit` interpolated linearly, divided by `limit`.
    Mvtec,
    /// What several zero-shot repositories compute: the points with FPR `< limit` (no
    /// interpolated end point), FPR min–max rescaled to `[0, 1]`, trapezoid area.
    // LIMITATION: those repositories threshold at ~200 evenly spaced levels; this variant
    // uses every distinct score (and starts at FPR 0), so its values differ from theirs in
    // the third decimal or so. A `--thresholds N` option would reproduce them exactly.
    MinMaxRescaled,
}

impl ProVariant {
    /// Name used in JSON output and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ProVariant::Mvtec => "mvtec",
            ProVariant::MinMaxRescaled => "minmax-rescaled",
        }
    }
}

/// Options of AUPRO.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProOptions {
    /// Upper end of the integrated FPR range, in `(0, 1]`; 0.3 in MVTec AD.
    pub fpr_limit: f64,
    /// How the curve is integrated and normalised.
    pub variant: ProVariant,
}

impl ProOptions {
    /// Checks the FPR limit: in `(0, 1]`.
    pub fn validate(&self) -> Result<()> {
        if !(self.fpr_limit > 0.0 && self.fpr_limit <= 1.0) {
            return Err(Error::invalid(
                "fpr_limit",
                "a value in (0, 1]",
                self.fpr_limit,
            ));
        }
        Ok(())
    }
}

impl Default for ProOptions {
    fn default() -> Self {
        ProOptions {
            fpr_limit: 0.3,
            variant: ProVariant::Mvtec,
        }
    }
}

/// Pixel AUROC and AUPRO of one set of maps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PixelMetrics {
    pub auroc: f64,
    pub aupro: f64,
}

/// Pixel AUROC of anomaly `maps` `[n, H, W]` against binary `masks` `[n, H, W]`
/// (nonzero = anomalous), over all pixels of all images.
pub fn pixel_auroc<T: Copy + Into<f64> + Sync>(
    maps: ArrayView3<'_, T>,
    masks: ArrayView3<'_, u8>,
) -> Result<f64> {
    Ok(pixel_metrics(maps, masks, &ProOptions::default())?.auroc)
}

/// AUPRO of anomaly `maps` `[n, H, W]` against binary `masks` `[n, H, W]`.
pub fn aupro<T: Copy + Into<f64> + Sync>(
    maps: ArrayView3<'_, T>,
    masks: ArrayView3<'_, u8>,
    opts: &ProOptions,
) -> Result<f64> {
    Ok(pixel_metrics(maps, masks, opts)?.aupro)
}

// LIMITATION: holds one `(f64, u32)` pair per pixel (16 bytes) plus the region ids: about
// 0.7 GB for 150 images at 518 x 518. Sorting f32 keys, or per-image sorted runs merged
// lazily, would halve or bound that.
/// Pixel AUROC and AUPRO from one sort of all pixel scores: `O(P log P)` for `P` pixels.
///
/// The thresholds are every distinct pixel score, highest first; all pixels of equal
/// score enter together. Each step updates the false-positive count and the overlap of
/// the regions its pixels belong to, so no map is ever re-thresholded.
pub fn pixel_metrics<T: Copy + Into<f64> + Sync>(
    maps: ArrayView3<'_, T>,
    masks: ArrayView3<'_, u8>,
    opts: &ProOptions,
) -> Result<PixelMetrics> {
    opts.validate()?;
    if maps.dim() != masks.dim() {
        return Err(Error::shape(
            "masks",
            format!("{:?} (the shape of `maps`)", maps.shape()),
            masks.shape(),
        ));
    }
    let keys: Vec<f64> = maps.iter().map(|&s| key(s)).collect();
    check_scores("maps", &keys, maps.shape())?;

    let (region, sizes) = label_regions(masks);
    let normal = region.iter().filter(|&&r| r == 0).count() as u64;
    let anomalous = keys.len() as u64 - normal;
    require_both("masks", anomalous, normal)?;
    let ranking = Ranking::new(keys.into_iter().zip(region).collect());
    tracing::debug!(
        pixels = anomalous + normal,
        regions = sizes.len(),
        "pixel ranking sorted"
    );

    let auroc = auroc_from_counts(counts(&ranking), anomalous, normal);
    let aupro = integrate_pro(&ranking, &sizes, normal, opts)?;
    Ok(PixelMetrics { auroc, aupro })
}

/// Region id per pixel (0 = normal, `1..=R` = the 8-connected components of all masks,
/// numbered image after image) and the size of each region (index `id - 1`).
fn label_regions(masks: ArrayView3<'_, u8>) -> (Vec<u32>, Vec<u64>) {
    let (n, h, w) = masks.dim();
    let per_image: Vec<(Vec<u32>, u32)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mask = masks.index_axis(Axis(0), i);
            if mask.iter().all(|&m| m == 0) {
                return (vec![0; h * w], 0);
            }
            let binary = GrayImage::from_fn(w as u32, h as u32, |x, y| {
                Luma([if mask[[y as usize, x as usize]] > 0 {
                    255
                } else {
                    0
                }])
            });
            let labels = connected_components(&binary, Connectivity::Eight, Luma([0u8]));
            let ids: Vec<u32> = labels.pixels().map(|p| p[0]).collect();
            let count = ids.iter().copied().max().unwrap_or(0);
            (ids, count)
        })
        .collect();

    let mut region = Vec::with_capacity(masks.len());
    let mut sizes = Vec::new();
    for (ids, count) in per_image {
        let offset = sizes.len() as u32;
        sizes.resize(sizes.len() + count as usize, 0u64);
        for id in ids {
            if id == 0 {
                region.push(0);
            } else {
                let global = offset + id;
                sizes[global as usize - 1] += 1;
                region.push(global);
            }
        }
    }
    (region, sizes)
}

/// Sweeps the thresholds, highest first, tracking FPR and PRO, and integrates the curve
/// as `opts.variant` asks.
fn integrate_pro(ranking: &Ranking, sizes: &[u64], normal: u64, opts: &ProOptions) -> Result<f64> {
    let limit = opts.fpr_limit;
    let inv_size: Vec<f64> = sizes.iter().map(|&s| 1.0 / s as f64).collect();
    let n_regions = sizes.len() as f64;

    // The curve starts at (0, 0): above the highest score nothing is flagged.
    let (mut fp, mut overlap_sum) = (0u64, 0.0f64);
    let mut points = vec![(0.0f64, 0.0f64)];
    for step in ranking.steps() {
        for &(_, r) in step {
            if r == 0 {
                fp += 1;
            } else {
                overlap_sum += inv_size[r as usize - 1];
            }
        }
        let fpr = fp as f64 / normal as f64;
        // The running sum of `1 / |region|` can overshoot 1 by rounding once every
        // region is covered; clip as MVTec AD's evaluation does.
        let pro = (overlap_sum / n_regions).min(1.0);
        let past = match opts.variant {
            ProVariant::Mvtec => fpr > limit,
            ProVariant::MinMaxRescaled => fpr >= limit,
        };
        points.push((fpr, pro));
        if past {
            break;
        }
    }

    match opts.variant {
        ProVariant::Mvtec => Ok(trapezoid_to(&points, limit) / limit),
        ProVariant::MinMaxRescaled => {
            points.retain(|&(fpr, _)| fpr < limit);
            let max_fpr = points.iter().map(|p| p.0).fold(0.0, f64::max);
            if max_fpr == 0.0 {
                return Err(Error::invalid(
                    "maps",
                    format!("a threshold with 0 < FPR < {limit} (min-max rescaled AUPRO is undefined otherwise)"),
                    "none: the highest score already flags too many normal pixels",
                ));
            }
            Ok(trapezoid_to(&points, max_fpr) / max_fpr)
        }
    }
}

/// Trapezoid area under the polyline `points` (x non-decreasing) from x = 0 to `x_max`,
/// the point at `x_max` interpolated linearly between its neighbours.
fn trapezoid_to(points: &[(f64, f64)], x_max: f64) -> f64 {
    let mut area = 0.0;
    for pair in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        if x1 <= x_max {
            area += (x1 - x0) * (y0 + y1) / 2.0;
        } else {
            if x0 < x_max {
                let y = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0);
                area += (x_max - x0) * (y0 + y) / 2.0;
            }
            break;
        }
    }
    area
}
