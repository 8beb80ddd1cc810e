//! Gradients through candle's autograd (`loss.backward()`, `grads.get(&var)`) equal the
//! CPU path's direct backward and central finite differences of the candle forward, in
//! f64, for the incidence op, the convolution op, `HypergraphConv` and `Hsc`, in every
//! incidence mode.
//!
//! Finite differences check what is a derivative of the forward: `X`, `Θ`, the weights and
//! the layer parameters in every mode; the features in `Hard` mode (through `X = F`, the
//! structure being locally constant) and in `Soft` mode (also through the structure).
//! `StraightThrough` gradients of the features are by design not derivatives of the
//! forward; there the candle gradients are checked against the direct backward only. An
//! entry whose ±h perturbation would change the hard structure (a similarity on a
//! decision boundary) is skipped, and most entries must be checkable.
#![cfg(feature = "candle")]

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use hipl::candle::{hypergraph_conv, incidence, Hsc, HscConfig};
use hipl::*;
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CPU: Device = Device::Cpu;
const H: f64 = 1e-6;

fn values(len: usize, lo: f64, hi: f64, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

fn t(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor {
    let len = shape.iter().product();
    Tensor::from_vec(values(len, lo, hi, seed), shape, &CPU).unwrap()
}

fn flat(x: &Tensor) -> Vec<f64> {
    x.flatten_all().unwrap().to_vec1().unwrap()
}

fn view3<'a>(v: &'a [f64], x: &Tensor) -> ArrayView3<'a, f64> {
    ArrayView3::from_shape(x.dims3().unwrap(), v).unwrap()
}

fn view2<'a>(v: &'a [f64], x: &Tensor) -> ArrayView2<'a, f64> {
    ArrayView2::from_shape(x.dims2().unwrap(), v).unwrap()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

/// Candle's gradient equals the direct backward's (to rounding).
fn assert_same(name: &str, candle: Option<&Tensor>, direct: &[f64]) {
    let got = flat(candle.unwrap_or_else(|| panic!("no candle gradient for {name}")));
    assert_eq!(got.len(), direct.len(), "{name}");
    for (i, (a, b)) in got.iter().zip(direct).enumerate() {
        assert!(close(*a, *b, 1e-10), "{name}[{i}]: candle {a} direct {b}");
    }
}

/// Central differences of `loss` in every entry of `var`, against `grad`. Entries for which
/// `stable` says no are skipped; at least three quarters must be checked.
fn assert_fd(
    name: &str,
    var: &Var,
    grad: &Tensor,
    loss: &dyn Fn() -> f64,
    stable: &dyn Fn() -> bool,
) {
    let orig = flat(var.as_tensor());
    let grad = flat(grad);
    let mut checked = 0;
    for i in 0..orig.len() {
        let at = |delta: f64| {
            let mut v = orig.clone();
            v[i] += delta;
            var.set(&Tensor::from_vec(v, var.shape(), &CPU).unwrap())
                .unwrap();
            (loss(), stable())
        };
        let ((lp, sp), (lm, sm)) = (at(H), at(-H));
        if sp && sm {
            let num = (lp - lm) / (2.0 * H);
            assert!(
                close(grad[i], num, 1e-5),
                "{name}[{i}]: candle {} numeric {num}",
                grad[i]
            );
            checked += 1;
        }
    }
    var.set(&Tensor::from_vec(orig.clone(), var.shape(), &CPU).unwrap())
        .unwrap();
    assert!(
        4 * checked >= 3 * orig.len(),
        "{name}: only {checked}/{} entries stable",
        orig.len()
    );
}

fn always() -> bool {
    true
}

/// Whether the hard structure of `f` equals `base`.
fn same_structure(f: &Tensor, cfg: &HypergraphConfig, base: &[f64]) -> bool {
    flat(&incidence(f, &cfg.with_mode(IncidenceMode::Hard)).unwrap()) == base
}

fn configs() -> Vec<HypergraphConfig> {
    let mut out = Vec::new();
    for base in [
        HypergraphConfig::paper(),
        HypergraphConfig::top_k(4),
        HypergraphConfig::knn(3),
        HypergraphConfig::eps_ball(1.6),
    ] {
        for mode in [
            IncidenceMode::Hard,
            IncidenceMode::Soft,
            IncidenceMode::StraightThrough,
        ] {
            for norm in [Normalization::Symmetric, Normalization::RandomWalk] {
                out.push(HypergraphConfig {
                    alpha: 4.0,
                    ..base.with_mode(mode).with_norm(norm)
                });
            }
        }
    }
    out
}

/// `weighted`: whether the op gets hyperedge weights (without them the core takes the lean
/// backward under hard incidence and gives no weight gradient).
fn conv_case(cfg: &HypergraphConfig, separate_x: bool, weighted: bool, seed: u64) {
    let (b, n, d, c) = (2, 7, 4, 3);
    let dx = if separate_x { 3 } else { d };
    let fv = Var::from_tensor(&t(&[b, n, d], -1.0, 1.0, seed)).unwrap();
    let xv = Var::from_tensor(&t(&[b, n, dx], -1.0, 1.0, seed + 1)).unwrap();
    let thv = Var::from_tensor(&t(&[dx, c], -1.0, 1.0, seed + 2)).unwrap();
    let wv = Var::from_tensor(&t(&[b, n], 0.2, 2.0, seed + 3)).unwrap();
    let r = t(&[b, n, c], -1.0, 1.0, seed + 4);
    let x = separate_x.then_some(xv.as_tensor());
    let wt = weighted.then_some(wv.as_tensor());
    let forward = || hypergraph_conv(&fv, x, &thv, wt, cfg).unwrap();
    let loss = || {
        (forward() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };

    let grads = (forward() * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();

    let (f, xs, th, w, rs) = (flat(&fv), flat(&xv), flat(&thv), flat(&wv), flat(&r));
    let xview = separate_x.then(|| view3(&xs, &xv));
    let wview = weighted.then(|| view2(&w, &wv));
    let (_, ctx) =
        hypergraph_conv_forward(view3(&f, &fv), xview, view2(&th, &thv), wview, cfg).unwrap();
    let g = hypergraph_conv_backward(
        &ctx,
        view3(&f, &fv),
        xview,
        view2(&th, &thv),
        wview,
        view3(&rs, &r),
    )
    .unwrap();
    assert_same("features", grads.get(&fv), g.df.as_slice().unwrap());
    assert_same("theta", grads.get(&thv), g.dtheta.as_slice().unwrap());
    // Against the direct backward and against finite differences.
    let both = |name: &str, var: &Var, direct: &[f64]| {
        assert_same(name, grads.get(var), direct);
        assert_fd(name, var, grads.get(var).unwrap(), &loss, &always);
    };
    if weighted {
        both(
            "weights",
            &wv,
            g.dweights.as_ref().unwrap().as_slice().unwrap(),
        );
    } else {
        assert!(g.dweights.is_none() && grads.get(&wv).is_none());
    }
    if separate_x {
        both("x", &xv, g.dx.as_ref().unwrap().as_slice().unwrap());
    }
    assert_fd("theta", &thv, grads.get(&thv).unwrap(), &loss, &always);
    if cfg.mode != IncidenceMode::StraightThrough {
        let base = flat(&incidence(&fv, &cfg.with_mode(IncidenceMode::Hard)).unwrap());
        let stable = || same_structure(&fv, cfg, &base);
        assert_fd("features", &fv, grads.get(&fv).unwrap(), &loss, &stable);
    }
}

#[test]
fn conv_gradients_through_candle_match_the_direct_backward_and_finite_differences() {
    for (k, cfg) in configs().iter().enumerate() {
        conv_case(cfg, false, true, 100 + 10 * k as u64);
    }
}

#[test]
fn conv_gradients_without_weights_match_in_every_mode() {
    for (k, cfg) in configs().iter().enumerate() {
        conv_case(cfg, k % 2 == 0, false, 300 + 10 * k as u64);
    }
}

#[test]
fn conv_gradients_with_a_separate_x_match_in_every_mode() {
    for mode in [
        IncidenceMode::Hard,
        IncidenceMode::Soft,
        IncidenceMode::StraightThrough,
    ] {
        let cfg = HypergraphConfig {
            alpha: 4.0,
            ..HypergraphConfig::knn(3).with_mode(mode)
        };
        conv_case(&cfg, true, true, 7);
    }
}

#[test]
fn incidence_gradients_match_the_direct_backward_and_finite_differences() {
    for mode in [IncidenceMode::Soft, IncidenceMode::StraightThrough] {
        for base in [
            HypergraphConfig::paper(),
            HypergraphConfig::knn(3),
            HypergraphConfig::eps_ball(1.6),
        ] {
            let cfg = HypergraphConfig {
                alpha: 3.0,
                ..base.with_mode(mode)
            };
            let fv = Var::from_tensor(&t(&[2, 6, 3], -1.0, 1.0, 5)).unwrap();
            let r = t(&[2, 6, 6], -1.0, 1.0, 6);
            let loss = || {
                (incidence(&fv, &cfg).unwrap() * &r)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let grads = (incidence(&fv, &cfg).unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();

            let (f, rs) = (flat(&fv), flat(&r));
            let (hg, ctx) = incidence_forward(view3(&f, &fv), &cfg).unwrap();
            let df = incidence_backward(&hg, &ctx, view3(&f, &fv), view3(&rs, &r)).unwrap();
            assert_same("features", grads.get(&fv), df.as_slice().unwrap());
            if mode == IncidenceMode::Soft {
                let base = flat(&incidence(&fv, &cfg.with_mode(IncidenceMode::Hard)).unwrap());
                let stable = || same_structure(&fv, &cfg, &base);
                assert_fd("features", &fv, grads.get(&fv).unwrap(), &loss, &stable);
            }
        }
    }
    // Hard incidence passes no gradient to the features.
    let fv = Var::from_tensor(&t(&[1, 5, 3], -1.0, 1.0, 8)).unwrap();
    let grads = incidence(&fv, &HypergraphConfig::paper())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!(grads.get(&fv).is_none());
}

/// `weighted`: whether the layer has learnable hyperedge weights.
fn hsc_case(cfg: HypergraphConfig, weighted: bool, seed: u64) {
    let (b, n, d) = (2, 8, 4);
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &CPU);
    let config = HscConfig {
        hypergraph: cfg,
        activation: Activation::GeluTanh,
        d_out: 3,
        global_dim: 2,
        edge_weights: weighted.then_some(n),
    };
    let layer = Hsc::new(d, config, vb).unwrap();
    // Random (not all-ones) hyperedge weights, so their gradient is a general one.
    let wvar = weighted.then(|| vm.data().lock().unwrap()["weights"].clone());
    if let Some(wvar) = &wvar {
        wvar.set(&t(&[n], 0.3, 1.7, seed)).unwrap();
    }
    let fv = Var::from_tensor(&t(&[b, n, d], -1.0, 1.0, seed + 1)).unwrap();
    let (rp, rg) = (
        t(&[b, n, 3], -1.0, 1.0, seed + 2),
        t(&[b, 2], -1.0, 1.0, seed + 3),
    );
    let loss_t = || {
        let (p, g) = layer.forward_with_global(&fv).unwrap();
        ((p * &rp).unwrap().sum_all().unwrap() + (g * &rg).unwrap().sum_all().unwrap()).unwrap()
    };
    let loss = || loss_t().to_scalar::<f64>().unwrap();
    let grads = loss_t().backward().unwrap();

    let params = layer.to_params::<f64>().unwrap();
    let f = flat(&fv);
    let w = wvar
        .as_ref()
        .map(|wvar| Array2::from_shape_fn((b, n), |(_, j)| flat(wvar)[j]));
    let (rps, rgs) = (flat(&rp), flat(&rg));
    let wview = w.as_ref().map(|w| w.view());
    let (_, ctx) = hsc_forward(view3(&f, &fv), wview, &params, &cfg).unwrap();
    let g = hsc_backward(
        &ctx,
        view3(&f, &fv),
        wview,
        &params,
        Some(view3(&rps, &rp)),
        Some(view2(&rgs, &rg)),
    )
    .unwrap();
    let vars = vm.data().lock().unwrap().clone();
    let mut direct: Vec<(&str, Vec<f64>)> = vec![
        ("theta", g.dtheta.iter().copied().collect()),
        ("a.weight", g.da.iter().copied().collect()),
        ("a.bias", g.db.to_vec()),
        ("global.weight", g.dg_weight.iter().copied().collect()),
        ("global.bias", g.dg_bias.to_vec()),
    ];
    match &g.dweights {
        Some(dw) => direct.push(("weights", dw.sum_axis(Axis(0)).to_vec())),
        None => assert!(!weighted && !vars.contains_key("weights")),
    }
    for (name, want) in &direct {
        let var = &vars[*name];
        assert_same(name, grads.get(var), want);
        assert_fd(name, var, grads.get(var).unwrap(), &loss, &always);
    }
    assert_same("features", grads.get(&fv), g.df.as_slice().unwrap());
    if cfg.mode != IncidenceMode::StraightThrough {
        let base = flat(&incidence(&fv, &cfg.with_mode(IncidenceMode::Hard)).unwrap());
        let stable = || same_structure(&fv, &cfg, &base);
        assert_fd("features", &fv, grads.get(&fv).unwrap(), &loss, &stable);
    }
}

#[test]
fn hsc_module_gradients_match_the_direct_backward_and_finite_differences() {
    for (k, mode) in [
        IncidenceMode::Hard,
        IncidenceMode::Soft,
        IncidenceMode::StraightThrough,
    ]
    .into_iter()
    .enumerate()
    {
        for norm in [Normalization::Symmetric, Normalization::RandomWalk] {
            let cfg = HypergraphConfig {
                alpha: 4.0,
                ..HypergraphConfig::top_k(5).with_mode(mode).with_norm(norm)
            };
            hsc_case(cfg, true, 40 + k as u64);
            hsc_case(cfg, false, 60 + k as u64);
        }
    }
}

#[test]
fn hypergraph_conv_module_gradients_match_finite_differences() {
    use candle_core::Module;
    use hipl::candle::{HypergraphConv, HypergraphConvConfig};
    for mode in [
        IncidenceMode::Hard,
        IncidenceMode::Soft,
        IncidenceMode::StraightThrough,
    ] {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &CPU);
        let hypergraph = HypergraphConfig {
            alpha: 4.0,
            ..HypergraphConfig::paper().with_mode(mode)
        };
        let layer = HypergraphConv::new(
            4,
            3,
            HypergraphConvConfig {
                hypergraph,
                edge_weights: Some(6),
            },
            vb,
        )
        .unwrap();
        let fv = Var::from_tensor(&t(&[2, 6, 4], -1.0, 1.0, 9)).unwrap();
        let r = t(&[2, 6, 3], -1.0, 1.0, 10);
        let loss_t = || {
            (layer.forward(&fv).unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let loss = || loss_t().to_scalar::<f64>().unwrap();
        let grads = loss_t().backward().unwrap();

        let vars = vm.data().lock().unwrap().clone();
        for name in ["theta", "weights"] {
            assert_fd(
                name,
                &vars[name],
                grads.get(&vars[name]).unwrap(),
                &loss,
                &always,
            );
        }
        let (th, w, f, rs) = (
            flat(&vars["theta"]),
            flat(&vars["weights"]),
            flat(&fv),
            flat(&r),
        );
        let w = Array2::from_shape_fn((2, 6), |(_, j)| w[j]);
        let (_, ctx) = hypergraph_conv_forward(
            view3(&f, &fv),
            None,
            ArrayView2::from_shape((4, 3), &th).unwrap(),
            Some(w.view()),
            &hypergraph,
        )
        .unwrap();
        let g = hypergraph_conv_backward(
            &ctx,
            view3(&f, &fv),
            None,
            ArrayView2::from_shape((4, 3), &th).unwrap(),
            Some(w.view()),
            view3(&rs, &r),
        )
        .unwrap();
        let df: Array3<f64> = g.df;
        assert_same("features", grads.get(&fv), df.as_slice().unwrap());
        assert_same(
            "weights",
            grads.get(&vars["weights"]),
            &g.dweights.as_ref().unwrap().sum_axis(Axis(0)).to_vec(),
        );
    }
}
