//! Anomaly maps and scores from a HiPL forward (AnomalyCLIP's recipe): per map layer, the
//! softmax over (normal, abnormal) of the patch tokens' cosine to the two text embeddings,
//! bilinearly upsampled to the image; at test time the layers' abnormal probabilities
//! summed and Gaussian-smoothed.
use candle_core::{DType, Device, Tensor, D};

use crate::{Error, Result};

/// What [`super::Hipl::forward`] returns.
#[derive(Debug, Clone)]
pub struct HiplOutput {
    /// One per map layer: `[B, 2, S, S]` softmax probabilities (normal, abnormal) per
    /// pixel, upsampled from the patch grid, not smoothed.
    pub layer_maps: Vec<Tensor>,
    /// `[B, 2]`: the projected class token's cosine to the image's (normal, abnormal) text
    /// embeddings, divided by the temperature.
    pub image_logits: Tensor,
    /// `[B, 2, K]`: the MoEPLer gate per image and template (normal, abnormal).
    pub gate: Tensor,
    /// `[B, 2, projection_dim]`: the image's normal and abnormal text embeddings,
    /// L2-normalised.
    pub text_embeds: Tensor,
}

impl HiplOutput {
    /// `[B, S, S]` anomaly map for evaluation: the abnormal probabilities of every map
    /// layer summed, then Gaussian-smoothed with `sigma` px (`0`: no smoothing).
    /// AnomalyCLIP sums `(p_abnormal + 1 − p_normal) / 2` per layer, which is the same
    /// number since the two probabilities of a pixel sum to one.
    pub fn anomaly_map(&self, sigma: f64) -> Result<Tensor> {
        let first = self
            .layer_maps
            .first()
            .ok_or_else(|| Error::invalid("layer_maps", "at least one map", "none"))?;
        let mut sum = first.narrow(1, 1, 1)?.squeeze(1)?;
        for m in &self.layer_maps[1..] {
            sum = (sum + m.narrow(1, 1, 1)?.squeeze(1)?)?;
        }
        gaussian_smooth(&sum, sigma)
    }

    /// `[B]` image anomaly score: the abnormal probability of the class token,
    /// `softmax(image_logits)[:, 1]` (AnomalyCLIP's score; not combined with the map).
    pub fn image_scores(&self) -> Result<Tensor> {
        let p = candle_nn::ops::softmax(&self.image_logits, D::Minus1)?;
        Ok(p.narrow(1, 1, 1)?.squeeze(1)?)
    }
}

/// The largest smoothing `sigma` taken, in pixels: a radius-256 kernel, already wider than
/// the 518 px maps of the paper's setting. The cap keeps a checkpoint's configuration from
/// asking for a kernel (and reflected padding) that exhausts memory.
pub const MAX_SIGMA: f64 = 64.0;

/// Checks a smoothing `sigma`: finite and in `0..=MAX_SIGMA`.
pub(crate) fn check_sigma(sigma: f64) -> Result<()> {
    if !(sigma.is_finite() && (0.0..=MAX_SIGMA).contains(&sigma)) {
        return Err(Error::invalid(
            "sigma",
            format!("a finite number in 0..={MAX_SIGMA} (pixels)"),
            sigma,
        ));
    }
    Ok(())
}

/// The 1-D Gaussian of `sigma` truncated at radius `floor(4 sigma + 0.5)` (SciPy's
/// `gaussian_filter` with `truncate = 4`), normalised to sum 1. A radius of 0 (`sigma < 1/8`,
/// `sigma = 0` included) gives `[1.0]`, no smoothing. `sigma` must be in `0..=MAX_SIGMA`.
pub fn gaussian_kernel(sigma: f64) -> Result<Vec<f32>> {
    check_sigma(sigma)?;
    let r = (4.0 * sigma + 0.5).floor() as i64;
    if r == 0 {
        return Ok(vec![1.0]);
    }
    let w: Vec<f64> = (-r..=r)
        .map(|k| (-((k * k) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = w.iter().sum();
    Ok(w.iter().map(|v| (v / s) as f32).collect())
}

/// Index `i` of a padded axis mapped into `0..n` by SciPy's `reflect` mode
/// (`d c b a | a b c d | d c b a`), for any offset.
fn reflect(i: i64, n: i64) -> u32 {
    let m = i.rem_euclid(2 * n);
    (if m >= n { 2 * n - 1 - m } else { m }) as u32
}

/// Convolves axis 1 of `x: [B, H, W]` with `kernel` (odd length `2r + 1`), reflecting at the
/// borders, and returns the result transposed, `[B, W, H]`.
fn smooth_axis1(x: &Tensor, kernel: &Tensor, r: usize) -> Result<Tensor> {
    let (b, h, w) = x.dims3()?;
    let idx: Vec<u32> = (-(r as i64)..(h + r) as i64)
        .map(|i| reflect(i, h as i64))
        .collect();
    let idx = Tensor::from_vec(idx, h + 2 * r, x.device())?;
    let padded = x.index_select(&idx, 1)?; // [B, H + 2r, W]
    let rows = padded
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * w, 1, h + 2 * r))?;
    Ok(rows.conv1d(kernel, 0, 1, 1, 1)?.reshape((b, w, h))?)
}

/// Gaussian smoothing of `maps: [B, H, W]` with `sigma` px, as two 1-D convolutions of
/// radius `4 sigma` with reflected borders (SciPy's `gaussian_filter` defaults, which
/// AnomalyCLIP applies to its test maps); `sigma = 0` returns the maps unchanged, and
/// `sigma` above [`MAX_SIGMA`] is an error. Computes in f32 on the maps' device and returns
/// f32.
pub fn gaussian_smooth(maps: &Tensor, sigma: f64) -> Result<Tensor> {
    check_sigma(sigma)?;
    let dims = maps.dims();
    if dims.len() != 3 || dims.contains(&0) {
        return Err(Error::shape("maps", "[B, H, W] with no empty side", dims));
    }
    let maps = maps.to_dtype(DType::F32)?;
    let kernel = gaussian_kernel(sigma)?;
    if kernel.len() == 1 {
        return Ok(maps);
    }
    let r = kernel.len() / 2;
    let k = Tensor::from_vec(kernel, (1, 1, 2 * r + 1), maps.device())?;
    let once = smooth_axis1(&maps, &k, r)?; // [B, W, H], smoothed along H
    smooth_axis1(&once, &k, r) // [B, H, W], smoothed along W too
}

/// `[out, n]` matrix of 1-D bilinear interpolation from `n` to `out` samples with
/// PyTorch's `align_corners = False` (half-pixel centres, clamped at the edges).
fn bilinear_matrix(n: usize, out: usize, device: &Device) -> Result<Tensor> {
    let mut m = vec![0f32; out * n];
    let scale = n as f64 / out as f64;
    for i in 0..out {
        let src = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(n - 1);
        let i1 = (i0 + 1).min(n - 1);
        let l1 = (src - i0 as f64) as f32;
        m[i * n + i0] += 1.0 - l1;
        m[i * n + i1] += l1;
    }
    Ok(Tensor::from_vec(m, (out, n), device)?)
}

/// Bilinear upsampling of `x: [B, C, h, w]` to `[B, C, out_h, out_w]` as PyTorch's
/// `interpolate(mode="bilinear", align_corners=False)`, written as two matrix products so
/// it has a backward pass (candle's `upsample_bilinear2d` has none).
pub fn upsample_bilinear(x: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let ry = bilinear_matrix(h, out_h, x.device())?.to_dtype(x.dtype())?;
    let rx = bilinear_matrix(w, out_w, x.device())?.to_dtype(x.dtype())?;
    let x = x.reshape((b * c, h, w))?;
    let y = ry.broadcast_matmul(&x)?.broadcast_matmul(&rx.t()?)?;
    Ok(y.reshape((b, c, out_h, out_w))?)
}
