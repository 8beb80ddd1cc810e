//! Per-class and mean metrics of a ZSAD method's outputs, as JSON and as a table.

use super::metrics::{auroc, average_precision};
use super::pro::{pixel_metrics, ProOptions};
use crate::error::{Error, Result};
use ndarray::Array3;
use serde_json::{json, Value};
use std::fmt::Write;

/// One class's outputs: image scores and labels, and optionally pixel maps and masks.
#[derive(Clone, Debug)]
pub struct ClassOutputs<M = f32> {
    /// Class name (`"bottle"`, ...).
    pub class: String,
    /// Image anomaly scores, higher = more anomalous.
    pub scores: Vec<f64>,
    /// Image labels, `true` = anomalous.
    pub labels: Vec<bool>,
    /// Anomaly maps `[n, H, W]` and ground-truth masks `[n, H, W]` (nonzero = anomalous).
    pub pixels: Option<(Array3<M>, Array3<u8>)>,
}

/// The metrics of one class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassMetrics {
    pub class: String,
    /// Number of test images.
    pub images: usize,
    pub image_auroc: f64,
    pub image_ap: f64,
    /// `None` when no maps were given.
    pub pixel_auroc: Option<f64>,
    /// `None` when no maps were given.
    pub aupro: Option<f64>,
}

/// Per-class metrics and their unweighted mean over classes (the averaging the papers
/// use); pixel means only when every class has maps.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    pub classes: Vec<ClassMetrics>,
    pub mean: ClassMetrics,
    /// How AUPRO was computed.
    pub pro: ProOptions,
}

/// Evaluates each class, then averages over classes.
pub fn evaluate<M: Copy + Into<f64> + Sync>(
    outputs: &[ClassOutputs<M>],
    pro: &ProOptions,
) -> Result<Metrics> {
    if outputs.is_empty() {
        return Err(Error::invalid("outputs", "at least one class", "none"));
    }
    let mut classes = Vec::with_capacity(outputs.len());
    for out in outputs {
        classes.push(evaluate_class(out, pro).map_err(|e| in_class(&out.class, e))?);
    }

    let n = classes.len() as f64;
    let mean_of = |f: &dyn Fn(&ClassMetrics) -> Option<f64>| -> Option<f64> {
        let values: Option<Vec<f64>> = classes.iter().map(f).collect();
        values.map(|v| v.iter().sum::<f64>() / n)
    };
    let mean = ClassMetrics {
        class: "mean".into(),
        images: classes.iter().map(|c| c.images).sum(),
        image_auroc: classes.iter().map(|c| c.image_auroc).sum::<f64>() / n,
        image_ap: classes.iter().map(|c| c.image_ap).sum::<f64>() / n,
        pixel_auroc: mean_of(&|c| c.pixel_auroc),
        aupro: mean_of(&|c| c.aupro),
    };
    Ok(Metrics {
        classes,
        mean,
        pro: *pro,
    })
}

/// Metrics of one class.
pub fn evaluate_class<M: Copy + Into<f64> + Sync>(
    out: &ClassOutputs<M>,
    pro: &ProOptions,
) -> Result<ClassMetrics> {
    let image_auroc = auroc(&out.scores, &out.labels)?;
    let image_ap = average_precision(&out.scores, &out.labels)?;
    let (pixel_auroc, aupro) = match &out.pixels {
        Some((maps, masks)) => {
            if maps.dim().0 != out.scores.len() {
                return Err(Error::shape(
                    "maps",
                    format!("[{}, H, W] (one map per score)", out.scores.len()),
                    maps.shape(),
                ));
            }
            let px = pixel_metrics(maps.view(), masks.view(), pro)?;
            (Some(px.auroc), Some(px.aupro))
        }
        None => (None, None),
    };
    Ok(ClassMetrics {
        class: out.class.clone(),
        images: out.scores.len(),
        image_auroc,
        image_ap,
        pixel_auroc,
        aupro,
    })
}

/// Prefixes the argument named in `e` with the class, so a failure says where it was.
fn in_class(class: &str, e: Error) -> Error {
    match e {
        Error::InvalidArgument { arg, expected, got } => Error::InvalidArgument {
            arg: format!("{class}: {arg}"),
            expected,
            got,
        },
        Error::Shape { arg, expected, got } => Error::Shape {
            arg: format!("{class}: {arg}"),
            expected,
            got,
        },
        Error::NonFinite { arg, index, value } => Error::NonFinite {
            arg: format!("{class}: {arg}"),
            index,
            value,
        },
        other => other,
    }
}

fn class_json(c: &ClassMetrics) -> Value {
    json!({
        "class": c.class,
        "images": c.images,
        "image_auroc": c.image_auroc,
        "image_ap": c.image_ap,
        "pixel_auroc": c.pixel_auroc,
        "aupro": c.aupro,
    })
}

impl Metrics {
    /// The metrics as JSON: `{"classes": [...], "mean": {...}, "aupro": {...}}`, values
    /// as fractions in `[0, 1]`, `null` for pixel metrics without maps.
    pub fn to_json(&self) -> Value {
        json!({
            "classes": self.classes.iter().map(class_json).collect::<Vec<_>>(),
            "mean": class_json(&self.mean),
            "aupro": { "variant": self.pro.variant.name(), "fpr_limit": self.pro.fpr_limit },
        })
    }

    /// A fixed-width table in percent, one row per class and a final mean row.
    pub fn table(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}", 100.0 * v));
        let width = self
            .classes
            .iter()
            .map(|c| c.class.len())
            .max()
            .unwrap_or(0)
            .max(5);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<width$}  {:>6}  {:>9}  {:>9}  {:>9}  {:>9}",
            "class", "images", "img AUROC", "img AP", "px AUROC", "AUPRO"
        );
        for c in self.classes.iter().chain(std::iter::once(&self.mean)) {
            let _ = writeln!(
                s,
                "{:<width$}  {:>6}  {:>9}  {:>9}  {:>9}  {:>9}",
                c.class,
                c.images,
                pct(Some(c.image_auroc)),
                pct(Some(c.image_ap)),
                pct(c.pixel_auroc),
                pct(c.aupro)
            );
        }
        s
    }
}
