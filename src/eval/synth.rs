//! A synthetic anomaly detection dataset in the MVTec AD layout, made from real images:
//! one class per source image, normal images as random crops, flips and colour jitter of
//! it, and defective test images with exact binary masks of three kinds:
//!
//! - `patch`: a rectangle pasted from another source image (or, with one source, from a
//!   colour-inverted view of the same one);
//! - `scratch`: a thin bright or dark polyline;
//! - `blotch`: a soft-edged disc of a distant colour (the mask is the disc's whole
//!   support, soft edge included).

use crate::error::{Error, Result};
use image::imageops::{self, FilterType};
use image::{GrayImage, Luma, Rgb, RgbImage};
use imageproc::drawing::draw_line_segment_mut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

/// What [`synthesize`] makes.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    /// Number of classes (the first source images by name); `None` = one per source.
    pub classes: Option<usize>,
    /// Side of the square images in pixels.
    pub size: u32,
    /// Normal training images per class.
    pub train: usize,
    /// Test images per class: half (rounded down) defective, the rest normal.
    pub test: usize,
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            classes: None,
            size: 256,
            train: 8,
            test: 12,
            seed: 0,
        }
    }
}

/// The defect kinds, also the names of the `test/<defect>` directories.
pub const DEFECTS: [&str; 3] = ["patch", "scratch", "blotch"];

/// Finds the directory of source images: `explicit` when given, else `$HIPL_DATA/images`
/// or `$HIPL_DATA`, else `data/images` or `../shared/data/images` beside the crate's
/// root or the current directory. Fails listing every place it looked.
pub fn find_source(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return if has_images(dir) {
            Ok(dir.to_path_buf())
        } else {
            Err(Error::invalid(
                "source",
                "a directory of .png/.jpg images",
                dir.display(),
            ))
        };
    }
    let mut candidates = Vec::new();
    if let Some(data) = std::env::var_os("HIPL_DATA") {
        let data = PathBuf::from(data);
        candidates.push(data.join("images"));
        candidates.push(data);
    }
    let mut roots = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR"))];
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    for root in roots {
        candidates.push(root.join("data").join("images"));
        candidates.push(root.join("..").join("shared").join("data").join("images"));
    }
    candidates
        .into_iter()
        .find(|c| has_images(c))
        .ok_or_else(|| {
            Error::invalid(
            "source",
            "a directory of images (--source, $HIPL_DATA, data/images or ../shared/data/images)",
            "none found",
        )
        })
}

fn has_images(dir: &Path) -> bool {
    source_images(dir).is_ok_and(|v| !v.is_empty())
}

/// The `.png`/`.jpg`/`.jpeg` files directly in `dir`, sorted by name.
pub fn source_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            p.is_file() && matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Largest image side [`synthesize`] writes (a 4096² RGB image is 48 MiB in memory).
pub const MAX_SIZE: u32 = 4096;

/// The file that marks a directory as written by [`synthesize`].
pub const MARKER: &str = ".hipl-synth";

/// Makes `out` an empty directory: creates it, or empties one that an earlier
/// [`synthesize`] wrote (it holds [`MARKER`]), so that no stale class or image survives; a
/// non-empty directory without the marker is refused, never emptied.
fn prepare_out(out: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::io(out, e);
    if out.exists() {
        if !out.is_dir() {
            return Err(Error::invalid(
                "out",
                "a directory (new, empty, or written by hipl synth)",
                format!("{} is a file", out.display()),
            ));
        }
        let non_empty = std::fs::read_dir(out).map_err(io)?.next().is_some();
        if non_empty {
            if !out.join(MARKER).is_file() {
                return Err(Error::invalid(
                    "out",
                    "a new or empty directory, or one hipl synth wrote (it holds .hipl-synth); remove it or choose another",
                    format!("{}, a non-empty directory", out.display()),
                ));
            }
            std::fs::remove_dir_all(out).map_err(io)?;
        }
    }
    std::fs::create_dir_all(out).map_err(io)?;
    std::fs::write(
        out.join(MARKER),
        "written by hipl synth; rewritten on the next run\n",
    )
    .map_err(io)
}

/// Writes the dataset under `out` and returns its class names.
pub fn synthesize(source: &Path, out: &Path, cfg: &SynthConfig) -> Result<Vec<String>> {
    if !(32..=MAX_SIZE).contains(&cfg.size) {
        return Err(Error::invalid(
            "size",
            format!("32..={MAX_SIZE} pixels"),
            cfg.size,
        ));
    }
    if cfg.test < 2 {
        return Err(Error::invalid(
            "test",
            "at least 2 (one normal, one defective)",
            cfg.test,
        ));
    }
    let paths = source_images(source)?;
    let wanted = cfg.classes.unwrap_or(paths.len());
    if wanted == 0 || wanted > paths.len() {
        return Err(Error::invalid(
            "classes",
            format!("1 to {} (the images in {})", paths.len(), source.display()),
            wanted,
        ));
    }
    let sources: Vec<RgbImage> = paths
        .iter()
        .map(|p| super::data::open_rgb(p))
        .collect::<Result<_>>()?;
    prepare_out(out)?;

    let mut names = Vec::with_capacity(wanted);
    for (c, path) in paths.iter().take(wanted).enumerate() {
        let class = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mut rng =
            StdRng::seed_from_u64(cfg.seed.wrapping_mul(1_000_003).wrapping_add(c as u64));
        let donor = (c + 1) % sources.len();
        write_class(
            &out.join(&class),
            &sources[c],
            &sources[donor],
            donor == c,
            cfg,
            &mut rng,
        )?;
        tracing::info!(
            class,
            train = cfg.train,
            test = cfg.test,
            "synthesised class"
        );
        names.push(class);
    }
    Ok(names)
}

fn write_class(
    dir: &Path,
    source: &RgbImage,
    donor: &RgbImage,
    invert_donor: bool,
    cfg: &SynthConfig,
    rng: &mut StdRng,
) -> Result<()> {
    let size = cfg.size;
    for i in 0..cfg.train {
        save(
            &dir.join("train/good").join(format!("{i:03}.png")),
            &variant(source, size, rng),
        )?;
    }
    let defective = cfg.test / 2;
    for i in 0..cfg.test - defective {
        save(
            &dir.join("test/good").join(format!("{i:03}.png")),
            &variant(source, size, rng),
        )?;
    }
    for i in 0..defective {
        let kind = DEFECTS[i % DEFECTS.len()];
        let index = i / DEFECTS.len();
        let mut img = variant(source, size, rng);
        let mask = match kind {
            "patch" => {
                let mut other = variant(donor, size, rng);
                if invert_donor {
                    imageops::invert(&mut other);
                }
                paste_patch(&mut img, &other, rng)
            }
            "scratch" => scratch(&mut img, rng),
            _ => blotch(&mut img, rng),
        };
        save(
            &dir.join("test").join(kind).join(format!("{index:03}.png")),
            &img,
        )?;
        let mask_path = dir
            .join("ground_truth")
            .join(kind)
            .join(format!("{index:03}_mask.png"));
        save(&mask_path, &mask)?;
    }
    Ok(())
}

fn save<P, C>(path: &Path, img: &image::ImageBuffer<P, C>) -> Result<()>
where
    P: image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
    C: std::ops::Deref<Target = [P::Subpixel]>,
{
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|source| Error::Io {
        path: parent.to_path_buf(),
        source,
    })?;
    img.save(path).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        msg: format!("cannot write image: {e}"),
    })
}

/// A normal view of `source`: a random square crop of 60–100 % of its shorter side,
/// random flips, per-channel gain and offset jitter, resized to `size`.
fn variant(source: &RgbImage, size: u32, rng: &mut StdRng) -> RgbImage {
    let short = source.width().min(source.height());
    let side = ((short as f32) * rng.random_range(0.6..=1.0)).max(1.0) as u32;
    let x = rng.random_range(0..=source.width() - side);
    let y = rng.random_range(0..=source.height() - side);
    let mut img = imageops::crop_imm(source, x, y, side, side).to_image();
    if rng.random_bool(0.5) {
        imageops::flip_horizontal_in_place(&mut img);
    }
    if rng.random_bool(0.5) {
        imageops::flip_vertical_in_place(&mut img);
    }
    let mut img = imageops::resize(&img, size, size, FilterType::Triangle);
    let gain: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.9..1.1));
    let offset: f32 = rng.random_range(-12.0..12.0);
    for p in img.pixels_mut() {
        for c in 0..3 {
            p[c] = (p[c] as f32 * gain[c] + offset).round().clamp(0.0, 255.0) as u8;
        }
    }
    img
}

/// Pastes a random rectangle of `other` (same place) into `img`; returns its mask.
fn paste_patch(img: &mut RgbImage, other: &RgbImage, rng: &mut StdRng) -> GrayImage {
    let size = img.width();
    let w = rng.random_range(size / 8..=size / 4);
    let h = rng.random_range(size / 8..=size / 4);
    let x0 = rng.random_range(0..=size - w);
    let y0 = rng.random_range(0..=size - h);
    let mut mask = GrayImage::new(size, size);
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            img.put_pixel(x, y, *other.get_pixel(x, y));
            mask.put_pixel(x, y, Luma([255]));
        }
    }
    mask
}

/// Draws a bright or dark polyline of 2–4 segments, 1–3 px thick; returns its mask.
fn scratch(img: &mut RgbImage, rng: &mut StdRng) -> GrayImage {
    let size = img.width();
    let s = size as f32;
    let mut mask = GrayImage::new(size, size);
    let radius = rng.random_range(0..=1i32);
    let mut p = (
        rng.random_range(0.2 * s..0.8 * s),
        rng.random_range(0.2 * s..0.8 * s),
    );
    for _ in 0..rng.random_range(2..=4) {
        let angle = rng.random_range(0.0..std::f32::consts::TAU);
        let len = rng.random_range(0.08 * s..0.25 * s);
        let q = (
            (p.0 + len * angle.cos()).clamp(0.0, s - 1.0),
            (p.1 + len * angle.sin()).clamp(0.0, s - 1.0),
        );
        for dy in -radius..=radius {
            for dx in -radius..=radius {
                let (ox, oy) = (dx as f32, dy as f32);
                draw_line_segment_mut(
                    &mut mask,
                    (p.0 + ox, p.1 + oy),
                    (q.0 + ox, q.1 + oy),
                    Luma([255]),
                );
            }
        }
        p = q;
    }
    let bright = rng.random_bool(0.5);
    for (x, y, m) in mask.enumerate_pixels() {
        if m[0] > 0 {
            let v: u8 = if bright {
                rng.random_range(235..=255)
            } else {
                rng.random_range(0..=20)
            };
            img.put_pixel(x, y, Rgb([v, v, v]));
        }
    }
    mask
}

/// Blends a soft-edged disc of a colour far from the local mean; returns its support.
fn blotch(img: &mut RgbImage, rng: &mut StdRng) -> GrayImage {
    let size = img.width();
    let s = size as f32;
    let r = rng.random_range(s / 16.0..s / 7.0);
    let (cx, cy) = (rng.random_range(r..s - r), rng.random_range(r..s - r));
    let dist = |x: u32, y: u32| ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();

    let mut mean = [0.0f32; 3];
    let mut count = 0.0f32;
    for (x, y, p) in img.enumerate_pixels() {
        if dist(x, y) < r {
            for c in 0..3 {
                mean[c] += p[c] as f32;
            }
            count += 1.0;
        }
    }
    // The colour opposite the disc's mean on every channel, so the blotch always shows.
    let colour: [f32; 3] = std::array::from_fn(|c| {
        let m = mean[c] / count.max(1.0);
        if m < 128.0 {
            rng.random_range(190.0..255.0)
        } else {
            rng.random_range(0.0..65.0)
        }
    });

    let mut mask = GrayImage::new(size, size);
    for y in 0..size {
        for x in 0..size {
            let d = dist(x, y);
            if d >= r {
                continue;
            }
            let t = ((r - d) / (0.4 * r)).min(1.0);
            let alpha = t * t * (3.0 - 2.0 * t);
            let p = img.get_pixel_mut(x, y);
            for c in 0..3 {
                p[c] = (p[c] as f32 * (1.0 - alpha) + colour[c] * alpha).round() as u8;
            }
            mask.put_pixel(x, y, Luma([255]));
        }
    }
    mask
}
