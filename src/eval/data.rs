//! Anomaly detection datasets on disk: the MVTec AD and VisA layouts, listed per class,
//! and images and masks loaded as arrays.
//!
//! MVTec AD layout (also what [`crate::eval::synth`] writes):
//! `<root>/<class>/train/good/*.png`, `<root>/<class>/test/<defect>/*.png` (`good` =
//! normal), `<root>/<class>/ground_truth/<defect>/<stem>_mask.png`.
//!
//! VisA layout: `<root>/split_csv/1cls.csv` with columns `object,split,label,image,mask`
//! (`label` is `normal` or `anomaly`; paths relative to `<root>`; `mask` empty for normal
//! images).

use crate::error::{Error, Result};
use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage, ImageError, Luma};
use ndarray::{Array2, Array3};
use std::path::{Path, PathBuf};

/// Which part of a class's images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// One image of a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub image: PathBuf,
    /// `true` for a defective image.
    pub anomalous: bool,
    /// Ground-truth mask; always present for anomalous test images, absent for normal ones.
    pub mask: Option<PathBuf>,
    pub class: String,
    /// Defect type (`good` for normal images; `anomaly` in VisA, which has no types).
    pub defect: String,
    pub split: Split,
}

/// The samples of a dataset, in a stable order (class, split, defect, file name).
#[derive(Clone, Debug)]
pub struct Dataset {
    pub root: PathBuf,
    pub samples: Vec<Sample>,
}

const IMAGE_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn format_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Sub-directories of `dir`, sorted by name.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Image files directly in `dir`, sorted by name.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if path.is_file() && ext.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str())) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

impl Dataset {
    /// Lists an MVTec AD layout: every sub-directory of `root` with a `test` directory is
    /// a class. Fails naming the file on a missing mask of an anomalous test image, and
    /// naming the directory on a class without test images.
    pub fn mvtec(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let mut samples = Vec::new();
        for class_dir in subdirs(root)? {
            let test_dir = class_dir.join("test");
            if !test_dir.is_dir() {
                continue;
            }
            let class = file_name(&class_dir);
            for split in [Split::Train, Split::Test] {
                let split_dir = class_dir.join(split.name());
                if !split_dir.is_dir() {
                    continue;
                }
                for defect_dir in subdirs(&split_dir)? {
                    let defect = file_name(&defect_dir);
                    let anomalous = defect != "good";
                    for image in image_files(&defect_dir)? {
                        let mask = if anomalous {
                            let stem = image.file_stem().unwrap_or_default().to_string_lossy();
                            let mask = class_dir
                                .join("ground_truth")
                                .join(&defect)
                                .join(format!("{stem}_mask.png"));
                            if !mask.is_file() {
                                return Err(format_err(
                                    &mask,
                                    format!(
                                        "missing ground-truth mask of anomalous image {}",
                                        image.display()
                                    ),
                                ));
                            }
                            Some(mask)
                        } else {
                            None
                        };
                        samples.push(Sample {
                            image,
                            anomalous,
                            mask,
                            class: class.clone(),
                            defect: defect.clone(),
                            split,
                        });
                    }
                }
            }
            if !samples
                .iter()
                .any(|s| s.class == class && s.split == Split::Test)
            {
                return Err(format_err(&test_dir, "empty class: no test images"));
            }
        }
        if samples.is_empty() {
            return Err(format_err(
                root,
                "no MVTec AD classes (directories with a `test` sub-directory)",
            ));
        }
        tracing::info!(root = %root.display(), samples = samples.len(), "listed MVTec AD layout");
        Ok(Dataset {
            root: root.to_path_buf(),
            samples,
        })
    }

    /// Lists a VisA layout from `<root>/split_csv/1cls.csv`. Fails naming the CSV on a
    /// missing file or column or a bad row, and naming the file on a missing image or mask.
    pub fn visa(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let csv_path = root.join("split_csv").join("1cls.csv");
        let text = std::fs::read_to_string(&csv_path).map_err(io_err(&csv_path))?;
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());

        let header = lines
            .next()
            .map(|(_, l)| split_csv_line(l))
            .unwrap_or_default();
        let column = |name: &str| {
            header.iter().position(|h| h.trim() == name).ok_or_else(|| {
                format_err(
                    &csv_path,
                    format!(
                        "missing column `{name}`: expected object,split,label,image,mask, got {}",
                        header.join(",")
                    ),
                )
            })
        };
        let cols = [
            column("object")?,
            column("split")?,
            column("label")?,
            column("image")?,
            column("mask")?,
        ];

        let mut samples = Vec::new();
        for (i, line) in lines {
            let fields = split_csv_line(line);
            let at = |c: usize| fields.get(c).map_or("", |f| f.trim());
            let bad = |msg: String| format_err(&csv_path, format!("line {}: {msg}", i + 1));
            if fields.len() < header.len() {
                return Err(bad(format!(
                    "{} fields, header has {}",
                    fields.len(),
                    header.len()
                )));
            }
            let [object, split, label, image, mask] = cols.map(at);
            let split = match split {
                "train" => Split::Train,
                "test" => Split::Test,
                other => return Err(bad(format!("split `{other}`, expected train or test"))),
            };
            let anomalous = match label {
                "normal" => false,
                "anomaly" => true,
                other => return Err(bad(format!("label `{other}`, expected normal or anomaly"))),
            };
            let image = root.join(image);
            if !image.is_file() {
                return Err(format_err(
                    &image,
                    format!("image listed on line {} of 1cls.csv not found", i + 1),
                ));
            }
            let mask = match (anomalous, mask) {
                (true, "") => {
                    return Err(format_err(
                        &image,
                        format!(
                            "anomalous image has no mask on line {} of {}",
                            i + 1,
                            csv_path.display()
                        ),
                    ))
                }
                (_, "") => None,
                (_, m) => {
                    let m = root.join(m);
                    if !m.is_file() {
                        return Err(format_err(
                            &m,
                            format!("mask of {} not found", image.display()),
                        ));
                    }
                    Some(m)
                }
            };
            samples.push(Sample {
                image,
                anomalous,
                mask: if anomalous { mask } else { None },
                class: object.to_string(),
                defect: if anomalous { "anomaly" } else { "good" }.to_string(),
                split,
            });
        }
        if samples.is_empty() {
            return Err(format_err(&csv_path, "no rows after the header"));
        }
        tracing::info!(root = %root.display(), samples = samples.len(), "listed VisA layout");
        Ok(Dataset {
            root: root.to_path_buf(),
            samples,
        })
    }

    /// Class names in order of first appearance.
    pub fn classes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.samples {
            if out.last() != Some(&s.class) && !out.contains(&s.class) {
                out.push(s.class.clone());
            }
        }
        out
    }

    /// The samples of one class and split; fails naming the class when there are none.
    pub fn samples(&self, class: &str, split: Split) -> Result<Vec<&Sample>> {
        let out: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.class == class && s.split == split)
            .collect();
        if out.is_empty() {
            return Err(format_err(
                &self.root.join(class),
                format!("empty class: no {} images of class `{class}`", split.name()),
            ));
        }
        Ok(out)
    }
}

// LIMITATION: a minimal CSV reader (quoted fields, no line breaks inside quotes); VisA's
// files need no more. The `csv` crate would lift it.
/// Splits one CSV line on commas, honouring double-quoted fields (`""` inside quotes is
/// one quote).
fn split_csv_line(line: &str) -> Vec<String> {
    let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Opens an image, mapping a missing file to [`Error::Io`] and anything unreadable to
/// [`Error::Format`], both naming the file.
fn open(path: &Path) -> Result<DynamicImage> {
    image::open(path).map_err(|e| match e {
        ImageError::IoError(source) => Error::Io {
            path: path.to_path_buf(),
            source,
        },
        other => format_err(path, format!("unreadable image: {other}")),
    })
}

/// Opens an image as 8-bit RGB, naming the file on failure.
pub(crate) fn open_rgb(path: &Path) -> Result<image::RgbImage> {
    Ok(open(path)?.to_rgb8())
}

// LIMITATION: square output sizes only, resized without keeping the aspect ratio (as
// AnomalyCLIP-style pipelines do); a centre-crop option would follow CLIP's own transform.
/// Loads an image as RGB `[3, size, size]` in `[0, 1]`, resized with a bicubic
/// (Catmull–Rom) filter. Grey images are replicated to three channels.
pub fn load_image(path: impl AsRef<Path>, size: u32) -> Result<Array3<f32>> {
    check_size(size)?;
    Ok(image_array(&open(path.as_ref())?, size))
}

/// Loads a mask binarised (any channel `> 0` is anomalous) as `[size, size]` of 0/1,
/// resized with nearest neighbour.
pub fn load_mask(path: impl AsRef<Path>, size: u32) -> Result<Array2<u8>> {
    check_size(size)?;
    Ok(mask_array(&open(path.as_ref())?, size))
}

fn image_array(img: &DynamicImage, size: u32) -> Array3<f32> {
    let resized = imageops::resize(&img.to_rgb8(), size, size, FilterType::CatmullRom);
    let s = size as usize;
    Array3::from_shape_fn((3, s, s), |(c, y, x)| {
        resized.get_pixel(x as u32, y as u32)[c] as f32 / 255.0
    })
}

fn mask_array(img: &DynamicImage, size: u32) -> Array2<u8> {
    let rgb = img.to_rgb8();
    let binary = GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        Luma([if rgb.get_pixel(x, y).0.iter().any(|&v| v > 0) {
            255
        } else {
            0
        }])
    });
    let resized = imageops::resize(&binary, size, size, FilterType::Nearest);
    let s = size as usize;
    Array2::from_shape_fn((s, s), |(y, x)| {
        (resized.get_pixel(x as u32, y as u32)[0] > 0) as u8
    })
}

fn check_size(size: u32) -> Result<()> {
    if size == 0 {
        return Err(Error::invalid("size", "a positive image side in pixels", 0));
    }
    Ok(())
}

/// An image with its mask, both at the same square size.
#[derive(Clone, Debug)]
pub struct LoadedSample {
    /// RGB `[3, size, size]` in `[0, 1]`.
    pub image: Array3<f32>,
    /// `[size, size]`, 1 = anomalous; all zeros for a normal image.
    pub mask: Array2<u8>,
}

/// Loads a sample's image and mask at `size`; fails naming the mask when its size
/// differs from the image's.
pub fn load_sample(sample: &Sample, size: u32) -> Result<LoadedSample> {
    check_size(size)?;
    let img = open(&sample.image)?;
    let mask = match &sample.mask {
        Some(path) => {
            let m = open(path)?;
            if (m.width(), m.height()) != (img.width(), img.height()) {
                return Err(format_err(
                    path,
                    format!(
                        "mask is {}x{} but its image {} is {}x{}",
                        m.width(),
                        m.height(),
                        sample.image.display(),
                        img.width(),
                        img.height()
                    ),
                ));
            }
            mask_array(&m, size)
        }
        None => Array2::zeros((size as usize, size as usize)),
    };
    Ok(LoadedSample {
        image: image_array(&img, size),
        mask,
    })
}
