//! The candle ops' device forwards (what `cuda_fwd` runs on candle's CUDA buffers, feature
//! `candle-cuda`) against the ops' CPU forwards, on the host emulator (or a GPU with
//! `HIPL_TEST_DEVICE=cuda`): incidence in every mode, the convolution with and without a
//! separate `X`, f32 and bf16/f16 inputs (widened to f32 as `cuda_fwd` does with candle's
//! cast), and the input errors. HSC on CUDA tensors is composed from the convolution and
//! candle ops; `hsc_composed` is checked against the fused op on the CPU (values and
//! gradients). With `candle-cuda` and a GPU, the ops also run on candle CUDA tensors.
#![cfg(feature = "candle")]

mod cuda_common;

use candle_core::{DType, Device as CandleDevice, Tensor, Var};
use cuda_common::{cosine, device};
use hipl::candle::device::{hypergraph_conv_forward, incidence_forward, ConvInputs};
use hipl::candle::{hsc, hsc_composed, hypergraph_conv, incidence, HscTensors};
use hipl::cuda::ops::Shape;
use hipl::cuda::Device;
use hipl::{Activation, HypergraphConfig, IncidenceMode, Normalization, Rule};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CPU: CandleDevice = CandleDevice::Cpu;

fn uniform(len: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut g = StdRng::seed_from_u64(seed);
    (0..len).map(|_| g.random_range(lo..hi)).collect()
}

/// Every rule with a device kernel, in every incidence mode and both normalisations.
fn configs(n: usize) -> Vec<HypergraphConfig> {
    let mut out = Vec::new();
    for rule in [
        Rule::Threshold { top_k: None },
        Rule::Threshold { top_k: Some(n / 3) },
        Rule::Knn { k: n / 4 },
    ] {
        for mode in [
            IncidenceMode::Hard,
            IncidenceMode::Soft,
            IncidenceMode::StraightThrough,
        ] {
            for norm in [Normalization::Symmetric, Normalization::RandomWalk] {
                out.push(HypergraphConfig {
                    rule,
                    mode,
                    norm,
                    alpha: 4.0,
                    tau: 0.1,
                    ..HypergraphConfig::default()
                });
            }
        }
    }
    out
}

/// Whether every image's f64 cosines stay at least `margin` away from `tau` and from each
/// other within each column's top `k + 2` (where a selection cuts): there, the device and the
/// CPU, summing in different orders, must take the same hard decisions.
fn unambiguous(f: &[f32], (b, n, d): (usize, usize, usize), tau: f64, k: usize) -> bool {
    let margin = 1e-5;
    (0..b).all(|img| {
        let s = cosine(&f[img * n * d..(img + 1) * n * d], n, d, 1e-12);
        (0..n).all(|e| {
            let mut col: Vec<f64> = (0..n).filter(|&i| i != e).map(|i| s[i * n + e]).collect();
            col.sort_by(|a, b| b.partial_cmp(a).unwrap());
            col.iter().all(|&v| (v - tau).abs() >= margin)
                && col[..(k + 2).min(col.len())]
                    .windows(2)
                    .all(|w| w[0] - w[1] >= margin)
        })
    })
}

/// Features of `dims` with cosines spread around `tau = 0.1`, from the first seed whose
/// hard decisions are unambiguous (see [`unambiguous`]), rounded through `dtype`.
fn features(dims: (usize, usize, usize), dtype: DType) -> Vec<f32> {
    let (b, n, d) = dims;
    for seed in 0..200 {
        let dir = uniform(d, -1.0, 1.0, 1000 + seed);
        let noise = uniform(b * n * d, -1.0, 1.0, seed);
        let f: Vec<f32> = noise
            .iter()
            .enumerate()
            .map(|(i, &x)| 0.4 * dir[i % d] + x)
            .collect();
        let f = round(&f, dtype);
        if unambiguous(&f, dims, 0.1, n / 3) {
            return f;
        }
    }
    panic!("no unambiguous features for {dims:?}");
}

/// `v` rounded to `dtype` and widened back to f32 (exact for bf16/f16 → f32): the values a
/// candle tensor of that dtype holds, and what `cuda_fwd`'s cast gives the kernels.
fn round(v: &[f32], dtype: DType) -> Vec<f32> {
    Tensor::new(v, &CPU)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn tensor(v: &[f32], dims: &[usize], dtype: DType) -> Tensor {
    Tensor::from_slice(v, dims, &CPU)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// `got` (computed in f32, rounded to `dtype` as `cuda_fwd` rounds) against the CPU op's
/// result in `dtype`: within `tol` (relative, plus absolute `tol`) for f32, within one unit
/// in the last place of `dtype` for bf16/f16 (the two f32 results may round apart).
fn assert_matches(got: &[f32], want: &Tensor, dtype: DType, tol: f32, what: &str) {
    let got = round(got, dtype);
    let want = flat(want);
    assert_eq!(got.len(), want.len(), "{what}: length");
    let ulp = match dtype {
        DType::BF16 => 1.0 / 128.0,
        DType::F16 => 1.0 / 1024.0,
        _ => 0.0,
    };
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let err = (g - w).abs();
        assert!(
            err <= tol * (1.0 + w.abs()) + ulp * w.abs().max(1e-3),
            "{what}[{i}]: device {g}, CPU {w} (err {err:e})"
        );
    }
}

/// Two tensors of the same float dtype agree to `tol` (relative, plus absolute), compared in f64.
fn assert_close(got: &Tensor, want: &Tensor, tol: f64, what: &str) {
    let f64s = |t: &Tensor| -> Vec<f64> {
        t.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let (got, want) = (f64s(got), f64s(want));
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let err = (g - w).abs();
        assert!(
            err <= tol * (1.0 + w.abs()),
            "{what}[{i}]: composed {g}, fused {w} (err {err:e})"
        );
    }
}

const DTYPES: [DType; 3] = [DType::F32, DType::BF16, DType::F16];

#[test]
fn incidence_forward_matches_the_cpu_op() {
    let dev = device();
    for dims in [(2, 24, 6), (1, 70, 9)] {
        let (b, n, d) = dims;
        for dtype in DTYPES {
            let f = features(dims, dtype);
            let buf = dev.upload(&f).unwrap();
            for cfg in configs(n) {
                let want = incidence(&tensor(&f, &[b, n, d], dtype), &cfg).unwrap();
                let got =
                    incidence_forward(&dev, &buf, Shape::new(b, n, d).unwrap(), &cfg).unwrap();
                let got = dev.download(&got).unwrap();
                if cfg.mode != IncidenceMode::Soft {
                    // Hard decisions: bit for bit.
                    assert!(got.iter().all(|&v| v == 0.0 || v == 1.0));
                }
                assert_matches(&got, &want, dtype, 1e-5, &format!("{cfg:?} {dtype:?} H"));
            }
        }
    }
}

fn conv_on(
    dev: &Device,
    f: &[f32],
    x: Option<(&[f32], usize)>,
    theta: (&[f32], usize, usize),
    w: &[f32],
    dims: (usize, usize, usize),
    cfg: &HypergraphConfig,
) -> hipl::Result<Vec<f32>> {
    let fb = dev.upload(f)?;
    let xb = x.map(|(x, _)| dev.upload(x)).transpose()?;
    let tb = dev.upload(theta.0)?;
    let wb = dev.upload(w)?;
    let inputs = ConvInputs {
        features: &fb,
        x: xb.as_ref().map(|b| (b, x.unwrap().1)),
        theta: (&tb, theta.1, theta.2),
        weights: &wb,
    };
    let shape = Shape::new(dims.0, dims.1, dims.2)?;
    let y = hypergraph_conv_forward(dev, &inputs, shape, cfg)?;
    dev.download(&y)
}

#[test]
fn hypergraph_conv_forward_matches_the_cpu_op() {
    let dev = device();
    let (b, n, d, dx, c) = (2, 30, 7, 5, 4);
    for dtype in DTYPES {
        let f = features((b, n, d), dtype);
        let x = round(&uniform(b * n * dx, -1.0, 1.0, 3), dtype);
        let w = round(&uniform(b * n, 0.2, 2.0, 4), dtype);
        let ft = tensor(&f, &[b, n, d], dtype);
        let wt = tensor(&w, &[b, n], dtype);
        for cfg in configs(n) {
            // X = the features.
            let theta = round(&uniform(d * c, -1.0, 1.0, 5), dtype);
            let tt = tensor(&theta, &[d, c], dtype);
            let want = hypergraph_conv(&ft, None, &tt, Some(&wt), &cfg).unwrap();
            let got = conv_on(&dev, &f, None, (&theta, d, c), &w, (b, n, d), &cfg).unwrap();
            assert_matches(&got, &want, dtype, 2e-5, &format!("{cfg:?} {dtype:?} Y"));
            // A separate X, and unit weights.
            let theta = round(&uniform(dx * c, -1.0, 1.0, 6), dtype);
            let tt = tensor(&theta, &[dx, c], dtype);
            let xt = tensor(&x, &[b, n, dx], dtype);
            let want = hypergraph_conv(&ft, Some(&xt), &tt, None, &cfg).unwrap();
            let ones = vec![1.0; b * n];
            let got = conv_on(
                &dev,
                &f,
                Some((&x, dx)),
                (&theta, dx, c),
                &ones,
                (b, n, d),
                &cfg,
            )
            .unwrap();
            assert_matches(&got, &want, dtype, 2e-5, &format!("{cfg:?} {dtype:?} Y(X)"));
        }
    }
}

#[test]
fn device_forwards_reject_what_the_cpu_op_rejects() {
    let dev = device();
    let (b, n, d, c) = (1, 12, 4, 3);
    let f = features((b, n, d), DType::F32);
    let theta = uniform(d * c, -1.0, 1.0, 7);
    let w = vec![1.0; b * n];
    let cfg = HypergraphConfig::knn(3);
    let dims = (b, n, d);
    let err = |r: hipl::Result<Vec<f32>>| r.unwrap_err().to_string();

    let mut bad_theta = theta.clone();
    bad_theta[5] = f32::NAN;
    let e = err(conv_on(&dev, &f, None, (&bad_theta, d, c), &w, dims, &cfg));
    assert!(e.contains("theta") && e.contains("[1, 2]"), "{e}");

    let mut bad_w = w.clone();
    bad_w[7] = -0.5;
    let e = err(conv_on(&dev, &f, None, (&theta, d, c), &bad_w, dims, &cfg));
    assert!(
        e.contains("weights") && e.contains(">= 0") && e.contains("[0, 7]"),
        "{e}"
    );

    let mut bad_f = f.clone();
    bad_f[2 * d + 1] = f32::INFINITY;
    let e = err(conv_on(&dev, &bad_f, None, (&theta, d, c), &w, dims, &cfg));
    assert!(e.contains("features") && e.contains("vertex 2"), "{e}");

    let e = err(conv_on(&dev, &f, None, (&theta, d + 1, c), &w, dims, &cfg));
    assert!(e.contains("theta"), "{e}");

    let eps = HypergraphConfig::eps_ball(0.5);
    let e = err(conv_on(&dev, &f, None, (&theta, d, c), &w, dims, &eps));
    assert!(e.contains("rule") && e.contains("EpsBall"), "{e}");
    // The CPU op takes the ε-ball rule: the device's refusal is the documented gap.
    let ft = tensor(&f, &[b, n, d], DType::F32);
    let tt = tensor(&theta, &[d, c], DType::F32);
    assert!(hypergraph_conv(&ft, None, &tt, None, &eps).is_ok());

    let buf = dev.upload(&f).unwrap();
    let shape = Shape::new(b, n, d).unwrap();
    let e = incidence_forward(&dev, &buf, shape, &HypergraphConfig::knn(n + 5))
        .unwrap_err()
        .to_string();
    assert!(e.contains('k'), "{e}");
}

fn hsc_params(d: usize, d_out: usize, e: usize, dtype: DType) -> HscTensors {
    let p = |dims: &[usize], seed| {
        let len = dims.iter().product();
        Var::from_tensor(&tensor(&uniform(len, -0.5, 0.5, seed), dims, dtype))
            .unwrap()
            .as_tensor()
            .clone()
    };
    HscTensors {
        theta: p(&[d, d], 11),
        a: p(&[d_out, d], 12),
        b: p(&[d_out], 13),
        g_weight: p(&[e, d_out], 14),
        g_bias: p(&[e], 15),
    }
}

/// The HSC path of CUDA tensors (the convolution op, then candle ops) gives the fused op's
/// values and gradients; checked on the CPU, where both run.
#[test]
fn composed_hsc_matches_the_fused_op() {
    let (b, n, d, d_out, e) = (2, 16, 6, 5, 3);
    for dtype in [DType::F32, DType::F64] {
        let f =
            Var::from_tensor(&tensor(&features((b, n, d), DType::F32), &[b, n, d], dtype)).unwrap();
        let w = Var::from_tensor(&tensor(&uniform(b * n, 0.3, 1.5, 8), &[b, n], dtype)).unwrap();
        let params = hsc_params(d, d_out, e, dtype);
        for activation in [
            Activation::Identity,
            Activation::Relu,
            Activation::LeakyRelu(0.1),
            Activation::GeluTanh,
        ] {
            for mode in [IncidenceMode::Hard, IncidenceMode::Soft] {
                let cfg = HypergraphConfig::knn(4).with_mode(mode);
                let fused = hsc(
                    f.as_tensor(),
                    Some(w.as_tensor()),
                    &params,
                    activation,
                    &cfg,
                )
                .unwrap();
                let comp = hsc_composed(
                    f.as_tensor(),
                    Some(w.as_tensor()),
                    &params,
                    activation,
                    &cfg,
                )
                .unwrap();
                let tol = if dtype == DType::F32 { 2e-5 } else { 1e-10 };
                let what = format!("{activation:?} {mode:?} {dtype:?}");
                assert_close(&comp.0, &fused.0, tol, &format!("{what} F~"));
                assert_close(&comp.1, &fused.1, tol, &format!("{what} Fg"));
                // Gradients of an arbitrary scalar of both outputs.
                let loss = |(p, g): &(Tensor, Tensor)| {
                    let wp = Tensor::arange(0u32, (b * n * d_out) as u32, &CPU)
                        .unwrap()
                        .to_dtype(dtype)
                        .unwrap()
                        .reshape((b, n, d_out))
                        .unwrap()
                        .sin()
                        .unwrap();
                    ((p * wp).unwrap().sum_all().unwrap() + g.sqr().unwrap().sum_all().unwrap())
                        .unwrap()
                };
                let (gf, gc) = (
                    loss(&fused).backward().unwrap(),
                    loss(&comp).backward().unwrap(),
                );
                let named = [
                    ("features", f.as_tensor()),
                    ("weights", w.as_tensor()),
                    ("theta", &params.theta),
                    ("a", &params.a),
                    ("b", &params.b),
                    ("g_weight", &params.g_weight),
                    ("g_bias", &params.g_bias),
                ];
                for (name, t) in named {
                    let (x, y) = (gf.get(t).unwrap(), gc.get(t).unwrap());
                    // candle's GELU backward differs from the CPU path's at ~1e-9 in f64.
                    let gtol = if dtype == DType::F32 { 2e-4 } else { 1e-7 };
                    assert_close(y, x, gtol, &format!("{what} d{name}"));
                }
            }
        }
    }
}

/// With `candle-cuda` on a GPU (`HIPL_TEST_DEVICE=cuda`): the ops on candle CUDA tensors,
/// through `cuda_fwd`, against the same ops on the CPU.
#[cfg(feature = "candle-cuda")]
#[test]
fn candle_cuda_tensors_match_the_cpu_op() {
    if std::env::var("HIPL_TEST_DEVICE").as_deref() != Ok("cuda") {
        eprintln!("skipped: set HIPL_TEST_DEVICE=cuda on a GPU machine");
        return;
    }
    let gpu = CandleDevice::new_cuda(0).expect("HIPL_TEST_DEVICE=cuda but no CUDA device");
    let (b, n, d, dx, c) = (2, 40, 8, 5, 6);
    for dtype in DTYPES {
        let f = features((b, n, d), dtype);
        let ft = tensor(&f, &[b, n, d], dtype);
        let x = tensor(&uniform(b * n * dx, -1.0, 1.0, 3), &[b, n, dx], dtype);
        // Θ stored transposed: a strided (non-contiguous) input.
        let theta_t = tensor(&uniform(dx * c, -1.0, 1.0, 6), &[c, dx], dtype);
        let theta = theta_t.t().unwrap();
        let w = tensor(&uniform(b * n, 0.2, 2.0, 4), &[b, n], dtype);
        let on = |t: &Tensor| t.to_device(&gpu).unwrap();
        for cfg in configs(n) {
            let want = incidence(&ft, &cfg).unwrap();
            let got = incidence(&on(&ft), &cfg).unwrap();
            assert_eq!(got.dtype(), dtype);
            assert_matches(&flat(&got), &want, dtype, 1e-5, &format!("{cfg:?} H"));
            let want = hypergraph_conv(&ft, Some(&x), &theta, Some(&w), &cfg).unwrap();
            let theta_gpu = on(&theta_t).t().unwrap();
            let got =
                hypergraph_conv(&on(&ft), Some(&on(&x)), &theta_gpu, Some(&on(&w)), &cfg).unwrap();
            assert_matches(&flat(&got), &want, dtype, 2e-5, &format!("{cfg:?} Y"));
        }
        // HSC composed on the GPU against the fused op on the CPU.
        if dtype == DType::F32 {
            let params = hsc_params(d, 5, 3, dtype);
            let gp = HscTensors {
                theta: on(&params.theta),
                a: on(&params.a),
                b: on(&params.b),
                g_weight: on(&params.g_weight),
                g_bias: on(&params.g_bias),
            };
            let cfg = HypergraphConfig::knn(5);
            let want = hsc(&ft, Some(&w), &params, Activation::GeluTanh, &cfg).unwrap();
            let got = hsc(&on(&ft), Some(&on(&w)), &gp, Activation::GeluTanh, &cfg).unwrap();
            assert_matches(&flat(&got.0), &want.0, dtype, 1e-4, "HSC F~");
            assert_matches(&flat(&got.1), &want.1, dtype, 1e-4, "HSC Fg");
        }
    }
}
