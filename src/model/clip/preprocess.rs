//! CLIP's image preprocessing: shortest side resized to the model size (bicubic), centre
//! crop, OpenAI mean and standard deviation.
//!
//! The resize reproduces Pillow's `Image.resize(..., BICUBIC)`, which OpenAI's pipeline
//! (torchvision on PIL images) uses: cubic convolution with `a = -0.5` whose support widens
//! with the downscaling factor (antialiasing), 8-bit fixed-point weights with 22 fraction
//! bits, a horizontal pass rounded to 8 bits, then a vertical pass. The crop offset is
//! `round((size - crop) / 2)` with ties to even, as torchvision computes it.
//!
//! Images are decoded with the `image` crate and converted to 8-bit RGB first: grey is
//! replicated, alpha is dropped (as `transformers`' `CLIPImageProcessor` does).
// LIMITATION: OpenAI's pipeline resizes RGBA images in premultiplied alpha before dropping
// alpha, so partially transparent pixels differ from ours; 16-bit images are reduced to 8
// bits before resizing. Lifting either needs those two Pillow paths reimplemented.
use std::path::Path;

use candle_core::{Device, Tensor};
use image::RgbImage;

use crate::{Error, Result};

/// OpenAI CLIP's per-channel mean.
pub const MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP's per-channel standard deviation.
#[allow(clippy::excessive_precision)] // the published values, rounded to f32 by the compiler
pub const STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// For each output index: the first input index and the fixed-point weights.
fn coefficients(n_in: usize, n_out: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = n_in as f64 / n_out as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ss = 1.0 / filterscale;
    (0..n_out)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as isize).max(0) as usize;
            let xmax = ((center + support + 0.5) as isize).min(n_in as isize) as usize;
            let w: Vec<f64> = (xmin..xmax)
                .map(|x| bicubic((x as f64 - center + 0.5) * ss))
                .collect();
            let total: f64 = w.iter().sum();
            let fixed = w
                .iter()
                .map(|&k| {
                    let k = if total != 0.0 { k / total } else { k };
                    let v = k * (1u32 << PRECISION_BITS) as f64;
                    (if v < 0.0 { v - 0.5 } else { v + 0.5 }) as i32
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes along one axis of an interleaved RGB buffer: `horizontal` resamples columns.
fn pass(src: &[u8], (w, h): (usize, usize), n_out: usize, horizontal: bool) -> Vec<u8> {
    let coeffs = coefficients(if horizontal { w } else { h }, n_out);
    let (ow, oh) = if horizontal { (n_out, h) } else { (w, n_out) };
    let mut out = vec![0u8; ow * oh * 3];
    for y in 0..oh {
        for x in 0..ow {
            let (start, k) = &coeffs[if horizontal { x } else { y }];
            for c in 0..3 {
                let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                for (j, &kj) in k.iter().enumerate() {
                    let (sx, sy) = if horizontal {
                        (start + j, y)
                    } else {
                        (x, start + j)
                    };
                    acc += src[(sy * w + sx) * 3 + c] as i64 * kj as i64;
                }
                out[(y * ow + x) * 3 + c] = clip8(acc);
            }
        }
    }
    out
}

/// Pillow's bicubic resize of an RGB image.
pub fn resize_bicubic(img: &RgbImage, new_w: usize, new_h: usize) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut buf = img.as_raw().clone();
    let mut cur_w = w;
    if new_w != w {
        buf = pass(&buf, (w, h), new_w, true);
        cur_w = new_w;
    }
    if new_h != h {
        buf = pass(&buf, (cur_w, h), new_h, false);
    }
    RgbImage::from_raw(new_w as u32, new_h as u32, buf).expect("buffer sized for the image")
}

/// Python's `round` (ties to even) of `v / 2` for a non-negative integer `v`.
fn half_round_even(v: usize) -> usize {
    let (q, r) = (v / 2, v % 2);
    if r == 0 || q % 2 == 0 {
        q
    } else {
        q + 1
    }
}

/// Resize of the shortest side to `size`, centre crop to `size × size`, normalisation:
/// `[3, size, size]` f32.
pub fn preprocess_rgb(img: &RgbImage, size: usize) -> Result<Vec<f32>> {
    if size == 0 {
        return Err(Error::invalid(
            "image_size",
            "a positive number of pixels",
            0,
        ));
    }
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(Error::invalid(
            "image",
            "a non-empty image",
            format!("{w}x{h}"),
        ));
    }
    let (short, long) = (w.min(h), w.max(h));
    let new_long = (size as f64 * long as f64 / short as f64) as usize;
    let (nw, nh) = if w <= h {
        (size, new_long)
    } else {
        (new_long, size)
    };
    let resized = if (nw, nh) == (w, h) {
        img.clone()
    } else {
        resize_bicubic(img, nw, nh)
    };
    let top = half_round_even(nh - size);
    let left = half_round_even(nw - size);

    let mut out = vec![0f32; 3 * size * size];
    for y in 0..size {
        for x in 0..size {
            let px = resized.get_pixel((left + x) as u32, (top + y) as u32);
            for c in 0..3 {
                let v = px.0[c] as f32 / 255.0;
                out[(c * size + y) * size + x] = (v - MEAN[c]) / STD[c];
            }
        }
    }
    Ok(out)
}

/// Decodes an image file to 8-bit RGB; an unreadable or corrupt file is an error.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let reader = image::ImageReader::open(path).map_err(|e| Error::io(path, e))?;
    let reader = reader
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let img = reader.decode().map_err(|e| Error::Image {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(img.to_rgb8())
}

/// Loads and preprocesses image files into one `[n, 3, size, size]` f32 tensor.
pub fn load_images<P: AsRef<Path>>(paths: &[P], size: usize, device: &Device) -> Result<Tensor> {
    if paths.is_empty() {
        return Err(Error::invalid(
            "images",
            "at least one image",
            "an empty list",
        ));
    }
    let mut data = Vec::with_capacity(paths.len() * 3 * size * size);
    for p in paths {
        data.extend(preprocess_rgb(&load_rgb(p.as_ref())?, size)?);
    }
    Ok(Tensor::from_vec(
        data,
        (paths.len(), 3, size, size),
        device,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_offset_rounds_half_to_even() {
        assert_eq!(
            (0..7).map(half_round_even).collect::<Vec<_>>(),
            [0, 0, 1, 2, 2, 2, 3]
        );
    }

    #[test]
    fn resize_keeps_a_flat_image_flat() {
        let img = RgbImage::from_pixel(13, 7, image::Rgb([10, 128, 250]));
        let out = resize_bicubic(&img, 5, 19);
        assert!(out.pixels().all(|p| p.0 == [10, 128, 250]));
    }
}
