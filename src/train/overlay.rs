//! Anomaly-map overlays: three panels side by side — the image, the image under the map in
//! a blue-to-red colour scale, and the ground-truth mask's outline on the image.

use crate::error::{Error, Result};
use crate::eval::data::load_image;
use image::{Rgb, RgbImage};
use ndarray::ArrayView2;
use std::path::Path;

/// A blue → cyan → yellow → red scale ("jet" without its dark ends) for `t` in `[0, 1]`.
fn colour(t: f32) -> [f32; 3] {
    let t = t.clamp(0.0, 1.0);
    let ramp = |x: f32| x.clamp(0.0, 1.0);
    [
        ramp(1.5 - (4.0 * t - 3.0).abs()),
        ramp(1.5 - (4.0 * t - 2.0).abs()),
        ramp(1.5 - (4.0 * t - 1.0).abs()),
    ]
}

/// Writes the overlay of `map` (`[S, S]`, coloured over `range`) and `mask` (`[S, S]`) on
/// the image at `image_path` to `out` (PNG).
pub fn write_overlay(
    image_path: &Path,
    map: ArrayView2<f32>,
    mask: ArrayView2<u8>,
    range: (f32, f32),
    out: &Path,
) -> Result<()> {
    let (h, w) = map.dim();
    if mask.dim() != (h, w) || h != w {
        return Err(Error::shape(
            "mask",
            format!("[{h}, {w}] like the square map"),
            mask.dim(),
        ));
    }
    let img = load_image(image_path, h as u32)?;
    let span = (range.1 - range.0).max(f32::EPSILON);
    let mut canvas = RgbImage::new(3 * w as u32, h as u32);
    for y in 0..h {
        for x in 0..w {
            let px = [img[(0, y, x)], img[(1, y, x)], img[(2, y, x)]];
            let heat = colour((map[(y, x)] - range.0) / span);
            let edge = mask[(y, x)] > 0
                && [(0, -1), (0, 1), (-1, 0), (1, 0)].iter().any(|&(dy, dx)| {
                    let (yy, xx) = (y as i64 + dy, x as i64 + dx);
                    yy < 0
                        || xx < 0
                        || yy >= h as i64
                        || xx >= w as i64
                        || mask[(yy as usize, xx as usize)] == 0
                });
            let to8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            let (xo, yo) = (x as u32, y as u32);
            canvas.put_pixel(xo, yo, Rgb(px.map(to8)));
            let blend = [0, 1, 2].map(|c| to8(0.45 * px[c] + 0.55 * heat[c]));
            canvas.put_pixel(w as u32 + xo, yo, Rgb(blend));
            let outline = if edge { [1.0, 0.1, 0.1] } else { px };
            canvas.put_pixel(2 * w as u32 + xo, yo, Rgb(outline.map(to8)));
        }
    }
    canvas.save(out).map_err(|e| Error::Format {
        path: out.to_path_buf(),
        msg: format!("cannot write the overlay PNG: {e}"),
    })
}
