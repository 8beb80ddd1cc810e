//! Hypergraphs and the hypergraph convolution on a [`Device`], with the CPU path's
//! configuration and argument shapes: switch the device, not the code.
//!
//! [`build_hypergraph`] mirrors `hipl::build_hypergraph` (the convolution is in `conv.rs`);
//! [`DeviceHypergraph::to_host`] gives the CPU's [`Hypergraph`] for inspection or comparison.

use ndarray::ArrayView3;

use super::ops::csr::{row_counts, to_csr, transpose, DeviceCsr};
use super::ops::incidence::{select_incidence, threshold_incidence, GemmUnits, Selection};
use super::ops::norm::normalize_rows;
use super::ops::soft::{mask_soft, mask_to_dense, sigmoid_incidence, SoftIncidence};
use super::ops::Shape;
use super::{Device, DeviceBuffer};
use crate::error::{Error, Result};
use crate::hypergraph::{
    Bitmask, Hypergraph, HypergraphConfig, ImageGraph, Incidence, IncidenceMode, Rule,
};

/// How a device hypergraph stores its incidence.
pub(super) enum Stored {
    /// Hard incidence: the bitmask (row = vertex), its transpose when H is not symmetric, CSR
    /// of the sparser of H/H̄ by vertex and (when not symmetric) by hyperedge, and d_e counts.
    Hard {
        mask: DeviceBuffer<u32>,
        mask_t: Option<DeviceBuffer<u32>>,
        by_vertex: DeviceCsr,
        by_edge: Option<DeviceCsr>,
        d_e: DeviceBuffer<u32>,
    },
    /// Soft incidence: dense I `[B, N, N]` with unit-weight degrees.
    Soft(SoftIncidence),
}

/// The hypergraphs of a batch, resident on a device.
pub struct DeviceHypergraph {
    pub(super) device: Device,
    pub(super) config: HypergraphConfig,
    pub(super) shape: Shape,
    pub(super) stored: Stored,
}

impl DeviceHypergraph {
    pub fn config(&self) -> &HypergraphConfig {
        &self.config
    }

    /// `[B, N, D]` of the features it was built from.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The dense incidence `[B, N, N]` (f32, row = vertex, column = hyperedge) without leaving
    /// the device: the 0/1 expansion of the bitmask (hard incidence, also the forward of
    /// `StraightThrough`) or the stored soft incidence.
    pub fn into_dense(self) -> Result<DeviceBuffer<f32>> {
        match self.stored {
            Stored::Hard { mask, .. } => mask_to_dense(&self.device, &mask, self.shape),
            Stored::Soft(s) => Ok(s.inc),
        }
    }

    /// Copies the incidence back as the CPU's [`Hypergraph`] (bitmask or dense storage).
    pub fn to_host(&self) -> Result<Hypergraph<f32>> {
        let (b, n) = (self.shape.b, self.shape.n);
        let dev = &self.device;
        let images = match &self.stored {
            Stored::Hard {
                mask, mask_t, d_e, ..
            } => {
                let words = u32_to_u64(&dev.download(mask)?);
                let words_t = mask_t
                    .as_ref()
                    .map(|m| dev.download(m).map(|w| u32_to_u64(&w)))
                    .transpose()?;
                let d_e = dev.download(d_e)?;
                let per = n * n.div_ceil(64);
                (0..b)
                    .map(|img| {
                        let bits = |w: &[u64]| {
                            Bitmask::from_words(n, n, w[img * per..(img + 1) * per].to_vec())
                                .expect("layout matches")
                        };
                        ImageGraph {
                            incidence: Incidence::Bitmask {
                                h: bits(&words),
                                ht: words_t.as_deref().map(bits),
                            },
                            d_e: d_e[img * n..(img + 1) * n]
                                .iter()
                                .map(|&c| c as f32)
                                .collect(),
                        }
                    })
                    .collect()
            }
            Stored::Soft(s) => {
                let inc = dev.download(&s.inc)?;
                let d_e = dev.download(&s.d_e)?;
                (0..b)
                    .map(|img| ImageGraph {
                        incidence: Incidence::Dense {
                            h: inc[img * n * n..(img + 1) * n * n].to_vec(),
                        },
                        d_e: d_e[img * n..(img + 1) * n].to_vec(),
                    })
                    .collect()
            }
        };
        Hypergraph::from_images(self.config, n, images)
    }
}

fn u32_to_u64(w: &[u32]) -> Vec<u64> {
    w.chunks(2)
        .map(|p| p[0] as u64 | (p[1] as u64) << 32)
        .collect()
}

/// Builds the hypergraphs of `features: [B, N, D]` on `dev` (see `hipl::build_hypergraph`).
pub fn build_hypergraph(
    dev: &Device,
    features: ArrayView3<f32>,
    cfg: &HypergraphConfig,
) -> Result<DeviceHypergraph> {
    let (b, n, d) = features.dim();
    crate::validate::check_features_shape("features", features.shape())?;
    let f = features.as_standard_layout();
    let buf = dev.upload(f.as_slice().expect("standard layout"))?;
    build_on_device(dev, &buf, Shape::new(b, n, d)?, cfg, GemmUnits::Simt)
}

/// Builds the hypergraphs from features already on the device (f32, bf16 or f16; tensor
/// cores need bf16/f16).
pub fn build_on_device<T: super::Float>(
    dev: &Device,
    features: &DeviceBuffer<T>,
    shape: Shape,
    cfg: &HypergraphConfig,
    units: GemmUnits,
) -> Result<DeviceHypergraph> {
    cfg.validate(shape.n)?;
    let normed = normalize_rows(dev, features, shape, cfg.norm_eps as f32)?;
    let norms = dev.download(&normed.norms)?;
    if let Some(pos) = norms.iter().position(|&x| (x as f64) <= cfg.norm_eps) {
        return Err(Error::invalid(
            "features",
            "rows with a non-zero norm (cosine similarity is undefined otherwise)",
            format!(
                "a zero-norm row at image {}, vertex {}",
                pos / shape.n,
                pos % shape.n
            ),
        ));
    }
    let (tau, alpha) = (cfg.tau as f32, cfg.alpha as f32);
    let selection = match cfg.rule {
        Rule::Threshold { top_k: None } => None,
        Rule::Threshold { top_k: Some(k) } => Some(Selection::TopK { k, tau }),
        Rule::Knn { k } => Some(Selection::Knn { k }),
        // LIMITATION: the ε-ball rule (Euclidean distance on raw features) has no kernel yet;
        // it would be the threshold kernel with a distance epilogue fed the raw row norms.
        Rule::EpsBall { .. } => {
            return Err(Error::invalid(
                "rule",
                "Threshold or Knn on CUDA",
                "EpsBall",
            ));
        }
    };
    let mask = match selection {
        Some(sel) => Some(select_incidence(dev, &normed.fhat, shape, sel)?),
        None => None,
    };

    let stored = if cfg.mode == IncidenceMode::Soft {
        let simt_units = if T::DTYPE == "f32" {
            GemmUnits::Simt
        } else {
            GemmUnits::TensorCores
        };
        let mut soft = sigmoid_incidence(dev, &normed.fhat, shape, alpha, tau, None, simt_units)?;
        if let Some(m) = &mask {
            mask_soft(dev, &mut soft, m, None, shape)?;
        }
        Stored::Soft(soft)
    } else {
        match mask {
            None => {
                let inc = threshold_incidence(dev, &normed.fhat, shape, tau, units)?;
                let by_vertex = to_csr(dev, &inc.mask, shape)?;
                Stored::Hard {
                    mask: inc.mask,
                    mask_t: None,
                    by_vertex,
                    by_edge: None,
                    d_e: inc.deg,
                }
            }
            Some(m) => {
                let mt = transpose(dev, &m, shape)?;
                let by_vertex = to_csr(dev, &m, shape)?;
                let by_edge = to_csr(dev, &mt, shape)?;
                let d_e = row_counts(dev, &mt, shape)?;
                Stored::Hard {
                    mask: m,
                    mask_t: Some(mt),
                    by_vertex,
                    by_edge: Some(by_edge),
                    d_e,
                }
            }
        }
    };
    tracing::debug!(device = %dev.name(), ?shape, "hypergraph built");
    Ok(DeviceHypergraph {
        device: dev.clone(),
        config: *cfg,
        shape,
        stored,
    })
}
