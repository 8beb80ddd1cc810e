//! `hipl demo`: the whole pipeline on a real image. The image is cut into patches, each
//! patch's raw pixels become a vertex's features, hypergraphs are built with the paper's
//! rule and with kNN, one convolution runs on each, and PNGs show a few hyperedges.

use super::emit;
use crate::autograd::{build_hypergraph, conv};
use crate::error::{Error, Result};
use crate::hypergraph::{Hypergraph, HypergraphConfig, HypergraphStats};
use clap::Args;
use image::imageops::FilterType;
use image::{ImageReader, Rgb, RgbImage};
use imageproc::drawing::draw_hollow_rect_mut;
use imageproc::rect::Rect;
use ndarray::{Array2, Array3, Axis};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The image the project carries, and where it is looked for when none is given.
const DEFAULT_IMAGE: &str = "data/images/chelsea.png";

/// More patches than this make the `N × N` structures of a demo needlessly slow.
const MAX_PATCHES: usize = 16_384;

/// One colour per highlighted hyperedge.
const COLOURS: [[u8; 3]; 4] = [[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48]];

/// Arguments of `hipl demo`.
#[derive(Clone, Debug, Args)]
pub struct DemoArgs {
    /// PNG or JPEG image [default: data/images/chelsea.png, then ../shared/data/images/]
    pub image: Option<PathBuf>,
    /// Folder for the PNGs.
    #[arg(long, default_value = "hipl-demo")]
    pub out: PathBuf,
    /// Patch side in pixels (ViT-L/14's is 14).
    #[arg(long, default_value_t = 14)]
    pub patch: u32,
    /// Longer side of the resized image in pixels, rounded to a multiple of --patch; the
    /// shorter side keeps the aspect ratio.
    #[arg(long, default_value_t = 224)]
    pub size: u32,
    /// Neighbours per hyperedge of the kNN hypergraph.
    #[arg(long, default_value_t = 9)]
    pub k: usize,
}

/// The image cut into a grid of patches, and its features.
struct Patches {
    image: RgbImage,
    patch: u32,
    cols: usize,
    rows: usize,
    /// `[1, N, patch² · 3]`: each patch's RGB values in `[0, 1]` minus the mean patch.
    features: Array3<f32>,
}

/// Runs `hipl demo`.
pub fn run(args: &DemoArgs, out: &mut dyn Write) -> Result<()> {
    let path = match &args.image {
        Some(p) => p.clone(),
        None => default_image()?,
    };
    let patches = load_patches(&path, args.patch, args.size)?;
    let (_, n, d) = patches.features.dim();
    let (w0, h0) = image::image_dimensions(&path).unwrap_or((0, 0));
    emit(
        out,
        format_args!(
            "image {} ({w0}×{h0}) resized to {}×{}: {}×{} = {n} patches of {p}×{p} px, D = {d}",
            path.display(),
            patches.image.width(),
            patches.image.height(),
            patches.cols,
            patches.rows,
            p = args.patch,
        ),
    )?;
    emit(
        out,
        "features: each patch's RGB values in [0, 1] minus the image's mean patch",
    )?;

    let paper_cfg = HypergraphConfig::paper();
    let knn_cfg = HypergraphConfig::knn(args.k);
    let (paper, paper_ms) = timed(|| build_hypergraph(patches.features.view(), &paper_cfg))?;
    let (knn, knn_ms) = timed(|| build_hypergraph(patches.features.view(), &knn_cfg))?;
    let paper_title = format!("paper rule (cosine > tau = {})", paper_cfg.tau);
    let knn_title = format!("kNN (k = {})", args.k);
    report(out, &paper_title, paper_ms, &paper.stats())?;
    report(out, &knn_title, knn_ms, &knn.stats())?;

    // Θ = identity keeps the output in feature space: Y is each patch smoothed over its
    // hyperedges, the layer HSC adds back to the features.
    let theta = Array2::<f32>::eye(d);
    let (y_paper, conv_paper_ms) =
        timed(|| conv(&paper, patches.features.view(), theta.view(), None))?;
    let (_, conv_knn_ms) = timed(|| conv(&knn, patches.features.view(), theta.view(), None))?;
    emit(
        out,
        format_args!(
            "convolution Y = Dv^-1/2 H W De^-1 Hᵀ Dv^-1/2 X Θ with Θ = I, {:?} → {:?}: \
             paper rule {conv_paper_ms:.2} ms, kNN {conv_knn_ms:.2} ms",
            patches.features.shape(),
            y_paper.shape(),
        ),
    )?;

    let centres = choose_centres(&paper, &patches);
    emit(
        out,
        "highlighted hyperedges (centre patch (row, col): hyperedge degree paper / kNN):",
    )?;
    for (c, why) in &centres {
        emit(
            out,
            format_args!(
                "  {why:<16} ({}, {}): {} / {}",
                c / patches.cols,
                c % patches.cols,
                paper.image(0).d_e[*c],
                knn.image(0).d_e[*c],
            ),
        )?;
    }

    std::fs::create_dir_all(&args.out).map_err(|source| Error::Io {
        path: args.out.clone(),
        source,
    })?;
    let centres: Vec<usize> = centres.into_iter().map(|(c, _)| c).collect();
    for (name, hg) in [("paper.png", &paper), ("knn.png", &knn)] {
        let file = args.out.join(name);
        save_png(&file, &panel(&patches, hg, &centres))?;
        emit(out, format_args!("wrote {}", file.display()))?;
    }
    Ok(())
}

/// Runs `f` and returns its result with the time it took in milliseconds.
fn timed<R>(f: impl FnOnce() -> Result<R>) -> Result<(R, f64)> {
    let t0 = Instant::now();
    let r = f()?;
    Ok((r, t0.elapsed().as_secs_f64() * 1e3))
}

/// The carried image, else the shared data folder beside the repository.
fn default_image() -> Result<PathBuf> {
    let name = Path::new(DEFAULT_IMAGE).file_name().expect("a file name");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        PathBuf::from(DEFAULT_IMAGE),
        manifest.join(DEFAULT_IMAGE),
        Path::new("../shared/data/images").join(name),
        manifest.join("../shared/data/images").join(name),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            Error::invalid(
                "IMAGE",
                format!(
                    "an image path (no default image found at {})",
                    candidates[0].display()
                ),
                "none",
            )
        })
}

fn image_err(path: &Path, e: image::ImageError) -> Error {
    match e {
        image::ImageError::IoError(source) => Error::Io {
            path: path.into(),
            source,
        },
        other => Error::Format {
            path: path.into(),
            msg: other.to_string(),
        },
    }
}

/// Loads `path`, resizes it to a whole number of `patch`-pixel patches with its longer
/// side near `size`, and cuts it into patch features.
fn load_patches(path: &Path, patch: u32, size: u32) -> Result<Patches> {
    if patch == 0 {
        return Err(Error::invalid("--patch", "a patch side >= 1 pixel", patch));
    }
    if size < 2 * patch {
        return Err(Error::invalid(
            "--size",
            format!(">= 2 × --patch = {}", 2 * patch),
            size,
        ));
    }
    let img = ImageReader::open(path)
        .map_err(|source| Error::Io {
            path: path.into(),
            source,
        })?
        .with_guessed_format()
        .map_err(|source| Error::Io {
            path: path.into(),
            source,
        })?
        .decode()
        .map_err(|e| image_err(path, e))?;
    let (w, h) = (img.width().max(1) as f64, img.height().max(1) as f64);
    let long_cells = (size as f64 / patch as f64).round().max(2.0);
    let short_cells = (long_cells * w.min(h) / w.max(h)).round().max(1.0);
    let (cols, rows) = if w >= h {
        (long_cells, short_cells)
    } else {
        (short_cells, long_cells)
    };
    let (cols, rows) = (cols as usize, rows as usize);
    if cols * rows > MAX_PATCHES {
        return Err(Error::invalid(
            "--size",
            format!("at most {MAX_PATCHES} patches (raise --patch or lower --size)"),
            format!("{size} giving {cols}×{rows} patches"),
        ));
    }
    let image = img
        .resize_exact(
            cols as u32 * patch,
            rows as u32 * patch,
            FilterType::Triangle,
        )
        .to_rgb8();

    let p = patch as usize;
    let d = p * p * 3;
    let mut features = Array3::<f32>::zeros((1, cols * rows, d));
    for (v, mut row) in features
        .index_axis_mut(Axis(0), 0)
        .outer_iter_mut()
        .enumerate()
    {
        let (x0, y0) = ((v % cols) * p, (v / cols) * p);
        for dy in 0..p {
            for dx in 0..p {
                let px = image.get_pixel((x0 + dx) as u32, (y0 + dy) as u32);
                for ch in 0..3 {
                    row[(dy * p + dx) * 3 + ch] = px[ch] as f32 / 255.0;
                }
            }
        }
    }
    // LIMITATION: a uniform image leaves only float rounding noise after centring, so its
    // hypergraphs are built from noise (density 1); a patch exactly equal to the mean patch
    // is refused with a zero-norm error. Detecting flat images and saying so would lift it.
    // Raw pixels are all non-negative, so every pair of patches has a cosine >= 0 > tau and
    // the paper's rule would join everything. Centring on the mean patch makes the cosine
    // ask whether two patches depart from the image's average look in the same direction,
    // which splits them into meaningful groups (the role CLIP's learnt embedding plays).
    let mean = features
        .index_axis(Axis(0), 0)
        .mean_axis(Axis(0))
        .expect("N >= 2");
    features
        .index_axis_mut(Axis(0), 0)
        .rows_mut()
        .into_iter()
        .for_each(|mut r| r -= &mean);
    Ok(Patches {
        image,
        patch,
        cols,
        rows,
        features,
    })
}

fn report(out: &mut dyn Write, title: &str, ms: f64, s: &HypergraphStats) -> Result<()> {
    emit(out, format_args!("{title}: built in {ms:.2} ms"))?;
    emit(
        out,
        format_args!("  density {:.3}, stored as {}", s.density, s.representation),
    )?;
    for (name, d) in [
        ("hyperedge", &s.hyperedge_degree),
        ("vertex", &s.vertex_degree),
    ] {
        emit(
            out,
            format_args!(
                "  {name} degree min {} / mean {:.1} / max {}",
                d.min, d.mean, d.max
            ),
        )?;
    }
    Ok(())
}

/// Up to four centre patches: the most and the least connected under `hg`, the one of
/// median degree and the image's central patch (duplicates dropped).
fn choose_centres(hg: &Hypergraph<f32>, patches: &Patches) -> Vec<(usize, &'static str)> {
    let d_e = &hg.image(0).d_e;
    let mut order: Vec<usize> = (0..d_e.len()).collect();
    order.sort_by(|&a, &b| d_e[a].total_cmp(&d_e[b]).then(a.cmp(&b)));
    let picks = [
        (order[order.len() - 1], "most connected"),
        (order[0], "least connected"),
        (order[order.len() / 2], "median degree"),
        (
            (patches.rows / 2) * patches.cols + patches.cols / 2,
            "image centre",
        ),
    ];
    let mut out: Vec<(usize, &'static str)> = Vec::new();
    for (c, why) in picks {
        if !out.iter().any(|(o, _)| *o == c) {
            out.push((c, why));
        }
    }
    out
}

/// One tile per centre, side by side: the hyperedge's members tinted in the centre's
/// colour, the other patches darkened, the centre outlined.
fn panel(patches: &Patches, hg: &Hypergraph<f32>, centres: &[usize]) -> RgbImage {
    let (iw, ih) = patches.image.dimensions();
    let scale = (448 / iw.max(ih)).max(1);
    let base = image::imageops::resize(&patches.image, iw * scale, ih * scale, FilterType::Nearest);
    let (tw, th) = base.dimensions();
    let gap = 6;
    let count = centres.len() as u32;
    let mut canvas = RgbImage::from_pixel(count * tw + (count - 1) * gap, th, Rgb([255; 3]));
    let cell = patches.patch * scale;
    let n = hg.n_vertices();
    let inc = &hg.image(0).incidence;

    for (t, &c) in centres.iter().enumerate() {
        let colour = COLOURS[t % COLOURS.len()];
        let mut tile = base.clone();
        for v in 0..n {
            let member = inc.value(v, c, n) != 0.0;
            let (x0, y0) = (
                (v % patches.cols) as u32 * cell,
                (v / patches.cols) as u32 * cell,
            );
            for y in y0..y0 + cell {
                for x in x0..x0 + cell {
                    let px = tile.get_pixel_mut(x, y);
                    for ch in 0..3 {
                        let v = px[ch] as f32;
                        px[ch] = if member {
                            (0.5 * v + 0.5 * colour[ch] as f32) as u8
                        } else {
                            (0.35 * v) as u8
                        };
                    }
                }
            }
        }
        let (cx, cy) = (
            (c % patches.cols) as u32 * cell,
            (c / patches.cols) as u32 * cell,
        );
        for inset in 0..3 {
            let side = cell.saturating_sub(2 * inset).max(1);
            let rect = Rect::at((cx + inset) as i32, (cy + inset) as i32).of_size(side, side);
            let ink = if inset == 1 {
                Rgb([255; 3])
            } else {
                Rgb(colour)
            };
            draw_hollow_rect_mut(&mut tile, rect, ink);
        }
        image::imageops::replace(&mut canvas, &tile, (t as u32 * (tw + gap)) as i64, 0);
    }
    canvas
}

fn save_png(path: &Path, img: &RgbImage) -> Result<()> {
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| image_err(path, e))
}
