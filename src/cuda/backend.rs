//! Choosing where the hypergraph ops run once, then making the same calls on either: the CPU
//! path or a CUDA device.

use ndarray::{Array3, ArrayView2, ArrayView3};

use super::{Device, DeviceHypergraph};
use crate::error::{Error, Result};
use crate::hypergraph::{Hypergraph, HypergraphConfig};

/// Where [`Backend::build_hypergraph`] and [`Backend::conv`] run.
#[derive(Clone, Debug)]
pub enum Backend {
    Cpu,
    Cuda(Device),
}

/// A hypergraph built by a [`Backend`], resident where it was built.
pub enum Graph {
    Cpu(Hypergraph<f32>),
    Cuda(DeviceHypergraph),
}

impl Backend {
    /// The first CUDA GPU when this build has feature `cuda` and a device answers; else the
    /// CPU, with one log line saying why. Never panics.
    pub fn detect() -> Backend {
        match Device::cuda_if_available() {
            Some(d) => Backend::Cuda(d),
            None => Backend::Cpu,
        }
    }

    /// See `hipl::build_hypergraph`.
    pub fn build_hypergraph(
        &self,
        features: ArrayView3<f32>,
        cfg: &HypergraphConfig,
    ) -> Result<Graph> {
        match self {
            Backend::Cpu => Ok(Graph::Cpu(crate::build_hypergraph(features, cfg)?)),
            Backend::Cuda(dev) => Ok(Graph::Cuda(super::build_hypergraph(dev, features, cfg)?)),
        }
    }

    /// See `hipl::conv`.
    pub fn conv(
        &self,
        graph: &Graph,
        x: ArrayView3<f32>,
        theta: ArrayView2<f32>,
        weights: Option<ArrayView2<f32>>,
    ) -> Result<Array3<f32>> {
        match (self, graph) {
            (Backend::Cpu, Graph::Cpu(hg)) => crate::conv(hg, x, theta, weights),
            (Backend::Cuda(_), Graph::Cuda(hg)) => super::conv(hg, x, theta, weights),
            _ => Err(Error::invalid(
                "graph",
                "a graph built by this backend",
                "one from another backend",
            )),
        }
    }
}
