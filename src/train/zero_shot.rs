//! Zero-shot testing: a trained model's anomaly maps and image scores on the test split of
//! classes it never saw, their metrics, map overlays and (optionally) the raw maps.

use crate::error::{Error, Result};
use crate::eval::data::{Dataset, Split};
use crate::eval::{evaluate, ClassOutputs, Metrics, ProOptions};
use crate::model::hipl::Hipl;
use crate::train::batch::{select, Loader};
use crate::train::overlay::write_overlay;
use candle_core::Device;
use ndarray::{Array1, Array3};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What [`test`] writes besides the metrics.
#[derive(Clone, Debug)]
pub struct TestOptions {
    pub batch_size: usize,
    /// Overlay PNGs per class (anomalous images first, then normal ones).
    pub overlays: usize,
    /// Also write `maps/<class>_{maps,masks,scores,labels}.npy`.
    pub save_maps: bool,
    pub pro: ProOptions,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            batch_size: 8,
            overlays: 4,
            save_maps: false,
            pro: ProOptions::default(),
        }
    }
}

/// One class's raw outputs.
pub struct ClassRun {
    pub class: String,
    /// `[n, S, S]`, smoothed anomaly maps.
    pub maps: Array3<f32>,
    pub masks: Array3<u8>,
    pub scores: Vec<f64>,
    pub labels: Vec<bool>,
    pub paths: Vec<PathBuf>,
}

/// Runs `model` over the test split of one class.
pub fn run_class(
    model: &Hipl,
    dataset: &Dataset,
    class: &str,
    batch_size: usize,
    device: &Device,
) -> Result<ClassRun> {
    let samples = select(dataset, &[class.to_string()], Split::Test)?;
    let s = model.config().image_size;
    let sigma = model.config().sigma;
    let loader = Loader::new(samples, batch_size, s, device)?;
    let order = loader.in_order();
    let n = loader.samples().len();
    let (mut maps, mut masks) = (Vec::with_capacity(n * s * s), Vec::with_capacity(n * s * s));
    let (mut scores, mut labels, mut paths) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..loader.batches() {
        let batch = loader.batch(&order, i)?;
        let out = model.forward(&batch.pixels)?;
        let map = out
            .anomaly_map(sigma)?
            .detach()
            .flatten_all()?
            .to_vec1::<f32>()?;
        let score = out.image_scores()?.detach().to_vec1::<f32>()?;
        if let Some(i) = map.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                arg: format!("anomaly map of {}", batch.paths[i / (s * s)].display()),
                index: format!("pixel {}", i % (s * s)),
                value: map[i] as f64,
            });
        }
        maps.extend(map);
        masks.extend(
            batch
                .masks
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .map(|&m| m as u8),
        );
        scores.extend(score.iter().map(|&v| v as f64));
        labels.extend(batch.labels.to_vec1::<f32>()?.iter().map(|&l| l > 0.5));
        paths.extend(batch.paths);
    }
    let shape = (n, s, s);
    Ok(ClassRun {
        class: class.to_string(),
        maps: Array3::from_shape_vec(shape, maps)
            .map_err(|e| Error::shape("maps", "[n, S, S]", e))?,
        masks: Array3::from_shape_vec(shape, masks)
            .map_err(|e| Error::shape("masks", "[n, S, S]", e))?,
        scores,
        labels,
        paths,
    })
}

/// Tests `model` on each of `classes` (all of the dataset's when empty), writing overlays
/// under `out/overlays/<class>/` and, when asked, the raw arrays under `out/maps/`.
pub fn test(
    model: &Hipl,
    dataset: &Dataset,
    classes: &[String],
    out: &Path,
    opts: &TestOptions,
    device: &Device,
) -> Result<Metrics> {
    let classes = if classes.is_empty() {
        dataset.classes()
    } else {
        classes.to_vec()
    };
    let mut outputs = Vec::with_capacity(classes.len());
    for class in &classes {
        let start = Instant::now();
        let run = run_class(model, dataset, class, opts.batch_size, device)?;
        write_overlays(&run, out, opts.overlays)?;
        if opts.save_maps {
            save_arrays(&run, &out.join("maps"))?;
        }
        tracing::info!(
            class,
            images = run.scores.len(),
            seconds = start.elapsed().as_secs_f64(),
            "tested class"
        );
        outputs.push(ClassOutputs {
            class: run.class,
            scores: run.scores,
            labels: run.labels,
            pixels: Some((run.maps, run.masks)),
        });
    }
    evaluate(&outputs, &opts.pro)
}

fn write_overlays(run: &ClassRun, out: &Path, count: usize) -> Result<()> {
    if count == 0 {
        return Ok(());
    }
    let dir = out.join("overlays").join(&run.class);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    // one colour scale per class, so overlays of a class compare
    let lo = run.maps.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = run.maps.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for i in overlay_choice(&run.labels, count) {
        let stem = run.paths[i]
            .file_stem()
            .map_or_else(|| format!("{i}"), |s| s.to_string_lossy().into_owned());
        let defect = run.paths[i]
            .parent()
            .and_then(|p| p.file_name())
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let file = dir.join(format!("{defect}_{stem}.png"));
        write_overlay(
            &run.paths[i],
            run.maps.index_axis(ndarray::Axis(0), i),
            run.masks.index_axis(ndarray::Axis(0), i),
            (lo, hi),
            &file,
        )?;
    }
    Ok(())
}

/// Up to `count` images: anomalous ones spread evenly over the list (so over the defect
/// kinds, which are listed together), and one normal image when there is room.
fn overlay_choice(labels: &[bool], count: usize) -> Vec<usize> {
    let anomalous: Vec<usize> = (0..labels.len()).filter(|&i| labels[i]).collect();
    let normal: Vec<usize> = (0..labels.len()).filter(|&i| !labels[i]).collect();
    let room = if normal.is_empty() || count < 2 {
        count
    } else {
        count - 1
    };
    let k = room.min(anomalous.len());
    let mut out: Vec<usize> = (0..k).map(|j| anomalous[j * anomalous.len() / k]).collect();
    out.extend(normal.iter().take(count - out.len()));
    out
}

fn save_arrays(run: &ClassRun, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let npy_err = |path: &Path, e: ndarray_npy::WriteNpyError| Error::BadFile {
        path: path.to_path_buf(),
        reason: format!("cannot write .npy: {e}"),
    };
    let p = dir.join(format!("{}_maps.npy", run.class));
    ndarray_npy::write_npy(&p, &run.maps).map_err(|e| npy_err(&p, e))?;
    let p = dir.join(format!("{}_masks.npy", run.class));
    ndarray_npy::write_npy(&p, &run.masks).map_err(|e| npy_err(&p, e))?;
    let p = dir.join(format!("{}_scores.npy", run.class));
    ndarray_npy::write_npy(&p, &Array1::from(run.scores.clone())).map_err(|e| npy_err(&p, e))?;
    let p = dir.join(format!("{}_labels.npy", run.class));
    let labels: Array1<u8> = run.labels.iter().map(|&l| l as u8).collect();
    ndarray_npy::write_npy(&p, &labels).map_err(|e| npy_err(&p, e))?;
    Ok(())
}
