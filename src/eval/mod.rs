//! Evaluation of zero-shot anomaly detection (ZSAD): the metrics the papers report
//! (image AUROC and AP, pixel AUROC, AUPRO, per class and averaged over classes), the
//! MVTec AD and VisA dataset layouts, and a synthetic MVTec-layout dataset maker.
//!
//! ```
//! use hipl::eval::{auroc, average_precision};
//!
//! let scores = [0.1, 0.4, 0.35, 0.8];
//! let labels = [false, false, true, true];
//! assert_eq!(auroc(&scores, &labels).unwrap(), 0.75);
//! assert!((average_precision(&scores, &labels).unwrap() - 0.8333333333).abs() < 1e-9);
//! ```

pub mod data;
pub mod metrics;
pub mod pro;
pub mod report;
pub mod synth;

pub use metrics::{auroc, average_precision};
pub use pro::{aupro, pixel_auroc, pixel_metrics, PixelMetrics, ProOptions, ProVariant};
pub use report::{evaluate, evaluate_class, ClassMetrics, ClassOutputs, Metrics};
