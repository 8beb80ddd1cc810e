//! Resizing the grid of position embeddings, as PyTorch's `F.interpolate` does it with
//! `align_corners=False` and no antialiasing.
//!
//! - [`PosInterpolation::Bicubic`] (the default) is what `transformers`' CLIP does with
//!   `interpolate_pos_encoding=True` (and timm / DINO): cubic convolution with `a = -0.75`,
//!   source coordinate `(i + 0.5) · in/out − 0.5`, taps clamped at the border.
//! - [`PosInterpolation::Bilinear`] is what AnomalyCLIP's modified OpenAI model does when it
//!   runs at 518 px: linear weights, source coordinate clamped at 0.
//!
//! Both are separable; computed in f64 and rounded to f32 once.

/// How position embeddings reach a patch grid other than the trained one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PosInterpolation {
    #[default]
    Bicubic,
    Bilinear,
}

/// Taps and weights along one axis: for each output index, `(input index, weight)` pairs.
fn axis_weights(n_in: usize, n_out: usize, how: PosInterpolation) -> Vec<Vec<(usize, f64)>> {
    let scale = n_in as f64 / n_out as f64;
    let last = n_in as isize - 1;
    let clamp = |i: isize| i.clamp(0, last) as usize;
    (0..n_out)
        .map(|o| match how {
            PosInterpolation::Bicubic => {
                const A: f64 = -0.75;
                let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
                let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
                let src = scale * (o as f64 + 0.5) - 0.5;
                let i0 = src.floor();
                let t = src - i0;
                let w = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
                (0..4)
                    .map(|k| (clamp(i0 as isize - 1 + k as isize), w[k]))
                    .collect()
            }
            PosInterpolation::Bilinear => {
                let src = (scale * (o as f64 + 0.5) - 0.5).max(0.0);
                let i0 = src.floor() as usize;
                let i1 = if (i0 as isize) < last { i0 + 1 } else { i0 };
                let t = src - i0 as f64;
                vec![(i0, 1.0 - t), (i1, t)]
            }
        })
        .collect()
}

/// Resizes a row-major grid `[h_in, w_in, d]` to `[h_out, w_out, d]`.
pub fn resize_grid(
    src: &[f32],
    (h_in, w_in): (usize, usize),
    d: usize,
    (h_out, w_out): (usize, usize),
    how: PosInterpolation,
) -> Vec<f32> {
    let wy = axis_weights(h_in, h_out, how);
    let wx = axis_weights(w_in, w_out, how);
    let mut out = vec![0f32; h_out * w_out * d];
    let mut acc = vec![0f64; d];
    for (oy, ty) in wy.iter().enumerate() {
        for (ox, tx) in wx.iter().enumerate() {
            acc.iter_mut().for_each(|a| *a = 0.0);
            for &(iy, cy) in ty {
                for &(ix, cx) in tx {
                    let w = cy * cx;
                    let row = &src[(iy * w_in + ix) * d..][..d];
                    acc.iter_mut()
                        .zip(row)
                        .for_each(|(a, &v)| *a += w * v as f64);
                }
            }
            let dst = &mut out[(oy * w_out + ox) * d..][..d];
            dst.iter_mut().zip(&acc).for_each(|(o, &a)| *o = a as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity_for_both_modes() {
        let src: Vec<f32> = (0..3 * 4 * 2).map(|v| v as f32 * 0.5 - 3.0).collect();
        for how in [PosInterpolation::Bicubic, PosInterpolation::Bilinear] {
            let out = resize_grid(&src, (3, 4), 2, (3, 4), how);
            for (a, b) in out.iter().zip(&src) {
                assert!((a - b).abs() < 1e-6, "{how:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn constant_grid_stays_constant() {
        let src = vec![2.5f32; 5 * 5];
        for how in [PosInterpolation::Bicubic, PosInterpolation::Bilinear] {
            let out = resize_grid(&src, (5, 5), 1, (8, 3), how);
            assert!(out.iter().all(|v| (v - 2.5).abs() < 1e-6), "{how:?}");
        }
    }
}
