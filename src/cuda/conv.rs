//! The hypergraph convolution on a device, with the CPU path's argument shapes: [`conv`]
//! mirrors `hipl::conv` (`x: [B, N, Dx]`, `theta: [Dx, C]`, `weights: [B, N]`), and
//! [`conv_device`] / [`conv_backward_device`] work on device buffers.
//!
//! Right to left, never forming the N × N operator: `P = XΘ` (cuBLAS), then the sparse
//! vertex → hyperedge and hyperedge → vertex products with the degree scalings fused (hard
//! incidence), or dense products with I (soft incidence).

use ndarray::{Array2, Array3, ArrayView2, ArrayView3};

use super::hypergraph::{DeviceHypergraph, Stored};
use super::ops::csr::weighted_degree;
use super::ops::spmm::{degree_scales_hard, degree_scales_soft, scale_rows, spmm, Scales};
use super::{Device, DeviceBuffer, GemmSpec};
use crate::error::{Error, Result};
use crate::hypergraph::{Normalization, ZeroDegree};

/// The scalings of the convolution: (applied to P before Hᵀ, W De⁻¹, applied to H E).
struct ConvScales {
    scales: Scales,
    norm: Normalization,
}

impl ConvScales {
    fn pre(&self) -> Option<&DeviceBuffer<f32>> {
        (self.norm == Normalization::Symmetric).then_some(&self.scales.v_inv_sqrt)
    }

    fn post(&self) -> &DeviceBuffer<f32> {
        match self.norm {
            Normalization::Symmetric => &self.scales.v_inv_sqrt,
            Normalization::RandomWalk => &self.scales.v_inv,
        }
    }
}

fn conv_scales(hg: &DeviceHypergraph, w: Option<&DeviceBuffer<f32>>) -> Result<ConvScales> {
    let dev = &hg.device;
    let count = hg.shape.b * hg.shape.n;
    let scales = match &hg.stored {
        Stored::Hard { mask, d_e, .. } => {
            let d_v = weighted_degree(dev, mask, w, hg.shape)?;
            if hg.config.zero_degree == ZeroDegree::Error {
                let d_e: Vec<f32> = dev.download(d_e)?.iter().map(|&c| c as f32).collect();
                check_zero_degree(hg, &dev.download(&d_v)?, &d_e)?;
            }
            degree_scales_hard(dev, &d_v, d_e, w, count)?
        }
        Stored::Soft(s) => {
            // The stored d_v has unit weights; with weights recompute it from I.
            let d_v = match w {
                None => None,
                Some(_) => Some(super::ops::soft::dense_degrees(dev, &s.inc, w, hg.shape)?.0),
            };
            let d_v = d_v.as_ref().unwrap_or(&s.d_v);
            if hg.config.zero_degree == ZeroDegree::Error {
                check_zero_degree(hg, &dev.download(d_v)?, &dev.download(&s.d_e)?)?;
            }
            degree_scales_soft(dev, d_v, &s.d_e, w, count)?
        }
    };
    Ok(ConvScales {
        scales,
        norm: hg.config.norm,
    })
}

fn check_zero_degree(hg: &DeviceHypergraph, d_v: &[f32], d_e: &[f32]) -> Result<()> {
    let n = hg.shape.n;
    for (kind, deg) in [("vertex", d_v), ("hyperedge", d_e)] {
        if let Some(pos) = deg.iter().position(|&x| x == 0.0) {
            return Err(Error::ZeroDegree {
                kind,
                image: pos / n,
                index: pos % n,
            });
        }
    }
    Ok(())
}

/// `out = diag(s_out) op(H) diag(s_in) m` for one orientation, on any storage.
fn apply(
    hg: &DeviceHypergraph,
    transpose_h: bool,
    m: &DeviceBuffer<f32>,
    c: usize,
    s_in: Option<&DeviceBuffer<f32>>,
    s_out: Option<&DeviceBuffer<f32>>,
) -> Result<DeviceBuffer<f32>> {
    let dev = &hg.device;
    let (b, n) = (hg.shape.b, hg.shape.n);
    match &hg.stored {
        Stored::Hard {
            by_vertex, by_edge, ..
        } => {
            let csr = if transpose_h {
                by_edge.as_ref().unwrap_or(by_vertex)
            } else {
                by_vertex
            };
            spmm(dev, csr, m, c, s_in, s_out)
        }
        Stored::Soft(s) => {
            let scaled;
            let src = match s_in {
                Some(si) => {
                    scaled = scale_rows(dev, m, si, b * n, c)?;
                    &scaled
                }
                None => m,
            };
            let mut out = dev.zeros::<f32>(b * n * c)?;
            let spec = GemmSpec {
                batch: b,
                m: n,
                n: c,
                k: n,
                trans_a: transpose_h,
                trans_b: false,
            };
            dev.gemm_f32(&spec, &s.inc, src, &mut out)?;
            match s_out {
                Some(so) => scale_rows(dev, &out, so, b * n, c),
                None => Ok(out),
            }
        }
    }
}

fn check_conv_args(
    hg: &DeviceHypergraph,
    x: &ArrayView3<f32>,
    theta: &ArrayView2<f32>,
    weights: Option<&ArrayView2<f32>>,
) -> Result<()> {
    let (b, n) = (hg.shape.b, hg.shape.n);
    let (xb, xn, dx) = x.dim();
    if (xb, xn) != (b, n) || dx == 0 {
        return Err(Error::shape("x", format!("[{b}, {n}, D >= 1]"), x.shape()));
    }
    if theta.nrows() != dx || theta.ncols() == 0 {
        return Err(Error::shape(
            "theta",
            format!("[{dx}, C >= 1] (rows = x's D)"),
            theta.shape(),
        ));
    }
    let finite =
        |arg: &str, a: &[f32], shape: &[usize]| crate::validate::check_finite(arg, a, shape);
    finite(
        "x",
        x.as_standard_layout().as_slice().expect("standard"),
        x.shape(),
    )?;
    finite(
        "theta",
        theta.as_standard_layout().as_slice().expect("standard"),
        theta.shape(),
    )?;
    if let Some(w) = weights {
        if w.dim() != (b, n) {
            return Err(Error::shape("weights", format!("[{b}, {n}]"), w.shape()));
        }
        finite(
            "weights",
            w.as_standard_layout().as_slice().expect("standard"),
            w.shape(),
        )?;
        if let Some(v) = w.iter().find(|&&v| v < 0.0) {
            return Err(Error::invalid("weights", "hyperedge weights >= 0", v));
        }
    }
    Ok(())
}

fn upload_2d(dev: &Device, a: &ArrayView2<f32>) -> Result<DeviceBuffer<f32>> {
    dev.upload(a.as_standard_layout().as_slice().expect("standard layout"))
}

fn check_device_len(arg: &str, buf: &DeviceBuffer<f32>, want: usize) -> Result<()> {
    super::ops::check_len(arg, buf, want)
}

/// Forward convolution on device buffers: `x: [B, N, dx]`, `theta: [dx, c]`, `w: [B, N]`
/// (None: ones) → `Y: [B, N, c]`, all f32. Values are not checked for NaN here.
pub fn conv_device(
    hg: &DeviceHypergraph,
    x: &DeviceBuffer<f32>,
    dx: usize,
    theta: &DeviceBuffer<f32>,
    c: usize,
    w: Option<&DeviceBuffer<f32>>,
) -> Result<DeviceBuffer<f32>> {
    let dev = &hg.device;
    let (b, n) = (hg.shape.b, hg.shape.n);
    check_device_len("x", x, b * n * dx)?;
    check_device_len("theta", theta, dx * c)?;
    if let Some(w) = w {
        check_device_len("weights", w, b * n)?;
    }
    let mut p = dev.zeros::<f32>(b * n * c)?;
    let spec = GemmSpec {
        batch: 1,
        m: b * n,
        n: c,
        k: dx,
        trans_a: false,
        trans_b: false,
    };
    dev.gemm_f32(&spec, x, theta, &mut p)?;
    let sc = conv_scales(hg, w)?;
    let e = apply(hg, true, &p, c, sc.pre(), Some(&sc.scales.e_scale))?;
    apply(hg, false, &e, c, None, Some(sc.post()))
}

/// Backward of [`conv_device`] for `(dX, dΘ)` given `dy: [B, N, c]`.
pub fn conv_backward_device(
    hg: &DeviceHypergraph,
    x: &DeviceBuffer<f32>,
    dx: usize,
    theta: &DeviceBuffer<f32>,
    c: usize,
    w: Option<&DeviceBuffer<f32>>,
    dy: &DeviceBuffer<f32>,
) -> Result<(DeviceBuffer<f32>, DeviceBuffer<f32>)> {
    let dev = &hg.device;
    let (b, n) = (hg.shape.b, hg.shape.n);
    check_device_len("x", x, b * n * dx)?;
    check_device_len("theta", theta, dx * c)?;
    check_device_len("dy", dy, b * n * c)?;
    if let Some(w) = w {
        check_device_len("weights", w, b * n)?;
    }
    let sc = conv_scales(hg, w)?;
    let de = apply(hg, true, dy, c, Some(sc.post()), Some(&sc.scales.e_scale))?;
    let dp = apply(hg, false, &de, c, None, sc.pre())?;
    let mut gx = dev.zeros::<f32>(b * n * dx)?;
    let spec = GemmSpec {
        batch: 1,
        m: b * n,
        n: dx,
        k: c,
        trans_a: false,
        trans_b: true,
    };
    dev.gemm_f32(&spec, &dp, theta, &mut gx)?;
    let mut gt = dev.zeros::<f32>(dx * c)?;
    let spec = GemmSpec {
        batch: 1,
        m: dx,
        n: c,
        k: b * n,
        trans_a: true,
        trans_b: false,
    };
    dev.gemm_f32(&spec, x, &dp, &mut gt)?;
    Ok((gx, gt))
}

/// Forward convolution on the device (see `hipl::conv`): `x: [B, N, Dx]`, `theta: [Dx, C]`,
/// `weights: [B, N]` (default ones) → `Y: [B, N, C]`.
pub fn conv(
    hg: &DeviceHypergraph,
    x: ArrayView3<f32>,
    theta: ArrayView2<f32>,
    weights: Option<ArrayView2<f32>>,
) -> Result<Array3<f32>> {
    check_conv_args(hg, &x, &theta, weights.as_ref())?;
    let dev = &hg.device;
    let (b, n, dx, c) = (hg.shape.b, hg.shape.n, x.dim().2, theta.ncols());
    let xs = dev.upload(x.as_standard_layout().as_slice().expect("standard layout"))?;
    let th = upload_2d(dev, &theta)?;
    let w = weights.as_ref().map(|w| upload_2d(dev, w)).transpose()?;
    let y = conv_device(hg, &xs, dx, &th, c, w.as_ref())?;
    Ok(Array3::from_shape_vec((b, n, c), dev.download(&y)?).expect("length b*n*c"))
}

/// Gradients of [`conv`] with respect to `x` and `theta` for a fixed structure and weights.
pub struct DeviceConvGrads {
    pub dx: Array3<f32>,
    pub dtheta: Array2<f32>,
}

/// Backward of [`conv`] for `dx` and `dtheta`: `dP = diag(s_v) H W De⁻¹ Hᵀ diag(a_v) dY`,
/// `dX = dP Θᵀ`, `dΘ = Σ_b X_bᵀ dP_b`.
// LIMITATION: the device backward gives dX and dΘ only; dweights and dH (Soft /
// StraightThrough) still come from the CPU path (`hipl::conv_backward`).
pub fn conv_backward(
    hg: &DeviceHypergraph,
    x: ArrayView3<f32>,
    theta: ArrayView2<f32>,
    weights: Option<ArrayView2<f32>>,
    dy: ArrayView3<f32>,
) -> Result<DeviceConvGrads> {
    check_conv_args(hg, &x, &theta, weights.as_ref())?;
    let dev = &hg.device;
    let (b, n, dx, c) = (hg.shape.b, hg.shape.n, x.dim().2, theta.ncols());
    if dy.dim() != (b, n, c) {
        return Err(Error::shape("dy", format!("[{b}, {n}, {c}]"), dy.shape()));
    }
    let xs = dev.upload(x.as_standard_layout().as_slice().expect("standard layout"))?;
    let th = upload_2d(dev, &theta)?;
    let gy = dev.upload(dy.as_standard_layout().as_slice().expect("standard layout"))?;
    let w = weights.as_ref().map(|w| upload_2d(dev, w)).transpose()?;
    let (gx, gt) = conv_backward_device(hg, &xs, dx, &th, c, w.as_ref(), &gy)?;
    Ok(DeviceConvGrads {
        dx: Array3::from_shape_vec((b, n, dx), dev.download(&gx)?).expect("length"),
        dtheta: Array2::from_shape_vec((dx, c), dev.download(&gt)?).expect("length"),
    })
}
