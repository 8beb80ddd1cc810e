//! `hipl eval`: metrics of any method's saved outputs (`.npy` scores, labels, maps, masks).

use crate::error::{Error, Result};
use crate::eval::{evaluate, ClassOutputs, Metrics, ProOptions, ProVariant};
use ndarray::{ArrayD, Ix1, Ix3};
use ndarray_npy::read_npy;
use std::path::{Path, PathBuf};

/// How AUPRO is integrated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuproArg {
    /// MVTec AD: area up to the FPR limit (interpolated end point) divided by the limit.
    Mvtec,
    /// Points below the FPR limit, FPR min–max rescaled to [0, 1].
    MinmaxRescaled,
}

impl AuproArg {
    /// The AUPRO options of this variant over FPR in `[0, fpr_limit]` (not yet checked).
    pub fn options(self, fpr_limit: f64) -> ProOptions {
        let variant = match self {
            AuproArg::Mvtec => ProVariant::Mvtec,
            AuproArg::MinmaxRescaled => ProVariant::MinMaxRescaled,
        };
        ProOptions { fpr_limit, variant }
    }
}

/// What `hipl eval` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Table,
}

/// Arguments of `hipl eval`.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Image anomaly scores `[n]` (f32 or f64), higher = more anomalous.
    #[arg(long)]
    pub scores: PathBuf,
    /// Image labels `[n]`, 0 = normal and 1 = anomalous (bool, u8, i32, i64, f32 or f64).
    #[arg(long)]
    pub labels: PathBuf,
    /// Anomaly maps `[n, H, W]` (f32 or f64).
    #[arg(long, requires = "masks")]
    pub maps: Option<PathBuf>,
    /// Ground-truth masks `[n, H, W]`: 0 = normal, any positive value = anomalous (masks are
    /// binarised with `> 0`, so 0/1 and MVTec's 0/255 both work).
    #[arg(long, requires = "maps")]
    pub masks: Option<PathBuf>,
    /// Class name for the output.
    #[arg(long, default_value = "all")]
    pub class: String,
    /// Upper end of the FPR range AUPRO integrates over.
    #[arg(long, default_value_t = 0.3)]
    pub fpr_limit: f64,
    /// How AUPRO is integrated and normalised.
    #[arg(long, value_enum, default_value_t = AuproArg::Mvtec)]
    pub aupro: AuproArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
}

// LIMITATION: one class per call (named by --class); per-class evaluation of several
// classes goes through `hipl::eval::evaluate`. Every file is widened to f64 in memory.
/// Reads the files named in `args` and computes their metrics.
pub fn run_eval(args: &Args) -> Result<Metrics> {
    let scores = read_numeric("scores", &args.scores)?;
    let scores = into_dim::<Ix1>("scores", &args.scores, scores, "[n]")?.to_vec();
    let labels = read_numeric("labels", &args.labels)?;
    let labels = into_dim::<Ix1>("labels", &args.labels, labels, "[n]")?;
    let labels = labels
        .iter()
        .enumerate()
        .map(|(i, &v)| match v {
            0.0 => Ok(false),
            1.0 => Ok(true),
            _ => Err(Error::invalid(
                "labels",
                format!("0 or 1 in {}", args.labels.display()),
                format!("{v} at [{i}]"),
            )),
        })
        .collect::<Result<Vec<bool>>>()?;

    let pixels = match (&args.maps, &args.masks) {
        (Some(maps_path), Some(masks_path)) => {
            let maps = read_numeric("maps", maps_path)?;
            let maps = into_dim::<Ix3>("maps", maps_path, maps, "[n, H, W]")?;
            let masks = read_numeric("masks", masks_path)?;
            let masks = into_dim::<Ix3>("masks", masks_path, masks, "[n, H, W]")?;
            if let Some((i, v)) = masks
                .iter()
                .enumerate()
                .find(|(_, v)| v.is_nan() || **v < 0.0)
            {
                return Err(Error::invalid(
                    "masks",
                    format!("0 (normal) or a positive value in {}", masks_path.display()),
                    format!("{v} at flat index {i}"),
                ));
            }
            Some((maps, masks.mapv(|v| (v > 0.0) as u8)))
        }
        (None, None) => None,
        _ => {
            return Err(Error::invalid(
                "maps",
                "--maps and --masks together",
                "only one of them",
            ))
        }
    };

    let pro = args.aupro.options(args.fpr_limit);
    let outputs = [ClassOutputs {
        class: args.class.clone(),
        scores,
        labels,
        pixels,
    }];
    evaluate(&outputs, &pro)
}

/// Reads a `.npy` of any of bool, u8, i32, i64, f32, f64 as `f64`.
fn read_numeric(arg: &str, path: &Path) -> Result<ArrayD<f64>> {
    std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let first_err = match read_npy::<_, ArrayD<f64>>(path) {
        Ok(a) => return Ok(a),
        Err(e) => e,
    };
    if let Ok(a) = read_npy::<_, ArrayD<f32>>(path) {
        return Ok(a.mapv(f64::from));
    }
    if let Ok(a) = read_npy::<_, ArrayD<u8>>(path) {
        return Ok(a.mapv(f64::from));
    }
    if let Ok(a) = read_npy::<_, ArrayD<i64>>(path) {
        return Ok(a.mapv(|v| v as f64));
    }
    if let Ok(a) = read_npy::<_, ArrayD<i32>>(path) {
        return Ok(a.mapv(f64::from));
    }
    if let Ok(a) = read_npy::<_, ArrayD<bool>>(path) {
        return Ok(a.mapv(|v| v as u8 as f64));
    }
    Err(Error::Format {
        path: path.to_path_buf(),
        msg: format!(
            "`{arg}`: expected a C-order .npy of bool, u8, i32, i64, f32 or f64 ({first_err})"
        ),
    })
}

fn into_dim<D: ndarray::Dimension>(
    arg: &str,
    path: &Path,
    a: ArrayD<f64>,
    expected: &str,
) -> Result<ndarray::Array<f64, D>> {
    let shape = a.shape().to_vec();
    a.into_dimensionality::<D>()
        .map_err(|_| Error::shape(arg, format!("{expected} in {}", path.display()), shape))
}
