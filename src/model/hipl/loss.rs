//! HiPL's training losses (AnomalyCLIP's): focal (`gamma = 2`) plus dice on every layer's
//! two-channel map, focal on the image logits.
use candle_core::{DType, Tensor, D};

use super::maps::HiplOutput;
use crate::{Error, Result};

/// Focal exponent `gamma`.
const GAMMA: f64 = 2.0;
/// Added inside the focal loss's logarithm so a probability of 0 stays finite.
const FOCAL_EPS: f64 = 1e-6;
/// Added to the dice ratio's numerator and denominator (AnomalyCLIP's `smooth = 1`).
const DICE_SMOOTH: f64 = 1.0;

/// The parts of the loss, each a scalar tensor.
#[derive(Debug, Clone)]
pub struct LossParts {
    /// `focal + dice + image`.
    pub total: Tensor,
    /// Focal loss of the maps, summed over the map layers.
    pub focal: Tensor,
    /// Dice loss of the maps (abnormal channel against the mask plus normal channel
    /// against its complement), summed over the map layers.
    pub dice: Tensor,
    /// Focal loss of the image logits.
    pub image: Tensor,
}

/// Checks that every value of `t` is 0 or 1 (and finite).
fn check_binary(arg: &str, t: &Tensor) -> Result<()> {
    let t = t.to_dtype(DType::F32)?.flatten_all()?;
    let n = t.dim(0)?;
    let ok = (t.eq(0f32)?.to_dtype(DType::F64)? + t.eq(1f32)?.to_dtype(DType::F64)?)?;
    if ok.sum_all()?.to_scalar::<f64>()? != n as f64 {
        let v = t.to_vec1::<f32>()?;
        let (i, x) = v
            .iter()
            .enumerate()
            .find(|(_, &x)| x != 0.0 && x != 1.0)
            .map(|(i, &x)| (i, x))
            .unwrap_or((0, f32::NAN));
        return Err(Error::invalid(
            arg,
            "values in {0, 1}",
            format!("{x} at flat index {i}"),
        ));
    }
    Ok(())
}

/// Focal loss (`gamma = 2`) of two-channel probabilities `probs: [B, 2, H, W]` against a
/// binary `mask: [B, H, W]`: the mean over pixels of `−(1 − p_t)^2 ln(p_t + 1e-6)`, where
/// `p_t` is the probability of the pixel's true class (abnormal where the mask is 1).
pub fn focal_loss(probs: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let p_abn = probs.narrow(1, 1, 1)?.squeeze(1)?;
    let p_norm = probs.narrow(1, 0, 1)?.squeeze(1)?;
    let p_t = ((&p_abn * mask)? + (&p_norm * (1.0 - mask)?)?)?;
    focal_mean(&p_t, &(p_t.clone() + FOCAL_EPS)?.log()?)
}

/// `mean(−(1 − p_t)^gamma · log_p_t)`.
fn focal_mean(p_t: &Tensor, log_p_t: &Tensor) -> Result<Tensor> {
    let weight = (1.0 - p_t)?.powf(GAMMA)?;
    Ok((weight * log_p_t)?.mean_all()?.neg()?)
}

/// Binary dice loss per image, averaged over the batch: `1 − (2 Σ p m + 1) / (Σ p + Σ m +
/// 1)` for `p, m: [B, H, W]`.
fn binary_dice(p: &Tensor, m: &Tensor) -> Result<Tensor> {
    let inter = (p * m)?.flatten_from(1)?.sum(1)?;
    let union = (p.flatten_from(1)?.sum(1)? + m.flatten_from(1)?.sum(1)?)?;
    let ratio = ((inter * 2.0)? + DICE_SMOOTH)?.div(&(union + DICE_SMOOTH)?)?;
    Ok((1.0 - ratio)?.mean_all()?)
}

/// Dice loss of `probs: [B, 2, H, W]` against `mask: [B, H, W]`, on both channels as
/// AnomalyCLIP does: abnormal against the mask plus normal against `1 − mask`.
pub fn dice_loss(probs: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let p_abn = probs.narrow(1, 1, 1)?.squeeze(1)?;
    let p_norm = probs.narrow(1, 0, 1)?.squeeze(1)?;
    Ok((binary_dice(&p_abn, mask)? + binary_dice(&p_norm, &(1.0 - mask)?)?)?)
}

/// Focal loss (`gamma = 2`) of image logits `[B, 2]` (normal, abnormal) against labels
/// `[B]` in {0, 1}: the mean of `−(1 − p_t)^2 log p_t` with `p = softmax(logits)`.
pub fn image_focal_loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let lp_norm = logp.narrow(1, 0, 1)?.squeeze(1)?;
    let lp_abn = logp.narrow(1, 1, 1)?.squeeze(1)?;
    let log_p_t = ((lp_abn * labels)? + (lp_norm * (1.0 - labels)?)?)?;
    focal_mean(&log_p_t.exp()?, &log_p_t)
}

/// HiPL's loss. `masks: [B, S, S]` in {0, 1} (1 = anomalous pixel) at the maps' size;
/// `labels: [B]` in {0, 1} (1 = anomalous image). Returns the focal and dice losses summed
/// over the map layers, the image focal loss and their sum.
pub fn hipl_loss(out: &HiplOutput, masks: &Tensor, labels: &Tensor) -> Result<LossParts> {
    let first = out
        .layer_maps
        .first()
        .ok_or_else(|| Error::invalid("out.layer_maps", "at least one map", "none"))?;
    let (b, c, h, w) = first.dims4()?;
    if c != 2 {
        return Err(Error::shape("out.layer_maps", "[B, 2, S, S]", first.dims()));
    }
    if masks.dims() != [b, h, w] {
        return Err(Error::shape(
            "masks",
            format!("[{b}, {h}, {w}] (batch and map size)"),
            masks.dims(),
        ));
    }
    if labels.dims() != [b] {
        return Err(Error::shape(
            "labels",
            format!("[{b}] (one per image)"),
            labels.dims(),
        ));
    }
    if out.image_logits.dims() != [b, 2] {
        return Err(Error::shape(
            "out.image_logits",
            format!("[{b}, 2]"),
            out.image_logits.dims(),
        ));
    }
    check_binary("masks", masks)?;
    check_binary("labels", labels)?;

    let dtype = first.dtype();
    let masks = masks.to_dtype(dtype)?.to_device(first.device())?;
    let labels = labels.to_dtype(out.image_logits.dtype())?;
    let labels = labels.to_device(out.image_logits.device())?;
    let mut focal = Tensor::zeros((), dtype, first.device())?;
    let mut dice = focal.clone();
    for (i, m) in out.layer_maps.iter().enumerate() {
        if m.dims() != first.dims() {
            return Err(Error::shape(
                &format!("out.layer_maps[{i}]"),
                format!("{:?} (as layer_maps[0])", first.dims()),
                m.dims(),
            ));
        }
        focal = (focal + focal_loss(m, &masks)?)?;
        dice = (dice + dice_loss(m, &masks)?)?;
    }
    let image = image_focal_loss(&out.image_logits, &labels)?.to_dtype(dtype)?;
    let total = ((&focal + &dice)? + &image)?;
    Ok(LossParts {
        total,
        focal,
        dice,
        image,
    })
}
