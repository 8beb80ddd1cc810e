//! Reading checkpoint tensors with their shapes checked before candle sees them.
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::SafeTensors;

use crate::{Error, Result};

/// The tensors of one `model.safetensors`, converted on demand to `dtype` on `device`.
pub struct Weights<'a> {
    st: SafeTensors<'a>,
    path: PathBuf,
    dtype: DType,
    device: Device,
}

fn fmt_shape(s: &[usize]) -> String {
    format!("{s:?}")
}

impl<'a> Weights<'a> {
    /// Parses the safetensors header; a truncated or corrupt file is an error here.
    pub fn parse(bytes: &'a [u8], path: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            reason: format!("not a readable safetensors file ({e}); is it truncated?"),
        })?;
        if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Err(Error::invalid(
                "dtype",
                "f32, f16 or bf16",
                format!("{dtype:?}"),
            ));
        }
        Ok(Weights {
            st,
            path: path.to_path_buf(),
            dtype,
            device: device.clone(),
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether the file holds `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.st
            .names()
            .iter()
            .any(|n| n.as_bytes() == key.as_bytes())
    }

    /// The tensor `key`, which must have exactly `shape`.
    pub fn get(&self, key: &str, shape: &[usize]) -> Result<Tensor> {
        let view = self.st.tensor(key).map_err(|_| Error::Checkpoint {
            key: key.to_string(),
            expected: format!(
                "a tensor of shape {} in {}",
                fmt_shape(shape),
                self.path.display()
            ),
            got: "no such tensor".into(),
        })?;
        if view.shape() != shape {
            return Err(Error::Checkpoint {
                key: key.to_string(),
                expected: format!("shape {}", fmt_shape(shape)),
                got: format!("shape {}", fmt_shape(view.shape())),
            });
        }
        let stored = match view.dtype() {
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            other => {
                return Err(Error::Checkpoint {
                    key: key.to_string(),
                    expected: "dtype F32, F16 or BF16".into(),
                    got: format!("dtype {other:?}"),
                })
            }
        };
        let t = Tensor::from_raw_buffer(view.data(), stored, shape, &Device::Cpu)?;
        // widen through f32 so f16 <-> bf16 conversions round once
        let t = if stored != self.dtype && stored != DType::F32 && self.dtype != DType::F32 {
            t.to_dtype(DType::F32)?.to_dtype(self.dtype)?
        } else {
            t.to_dtype(self.dtype)?
        };
        Ok(t.to_device(&self.device)?)
    }
}

/// A linear map `y = x Wᵀ + b` with `W: [out, in]`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn load(w: &Weights, prefix: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Self> {
        let weight = w.get(&format!("{prefix}.weight"), &[d_out, d_in])?;
        let bias = if bias {
            Some(w.get(&format!("{prefix}.bias"), &[d_out])?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    /// Applies the map to the last dimension of `x` (any leading dimensions).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let d_in = dims[dims.len() - 1];
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let y = x.reshape((rows, d_in))?.matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = self.weight.dim(0)?;
        Ok(y.reshape(out)?)
    }
}

/// Layer normalisation over the last dimension.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
    /// Use candle operations that have a backward pass instead of the fused kernel.
    pub differentiable: bool,
}

impl LayerNorm {
    pub fn load(w: &Weights, prefix: &str, d: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: w.get(&format!("{prefix}.weight"), &[d])?,
            bias: w.get(&format!("{prefix}.bias"), &[d])?,
            eps,
            differentiable: false,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.differentiable {
            let eps = self.eps as f32;
            return Ok(candle_nn::ops::layer_norm_slow(
                x,
                &self.weight,
                &self.bias,
                eps,
            )?);
        }
        let x = x.contiguous()?;
        Ok(candle_nn::ops::layer_norm(
            &x,
            &self.weight,
            &self.bias,
            self.eps as f32,
        )?)
    }
}
