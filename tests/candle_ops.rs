//! The candle ops and modules agree with the CPU path: forward values, dtypes (f32, f64,
//! bf16, f16), strided inputs (transposed, narrowed, broadcast), parameter names and
//! loading through a `VarBuilder`, and clear errors on bad input.
#![cfg(feature = "candle")]

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use hipl::candle::{
    hsc, hypergraph_conv, incidence, Hsc, HscConfig, HscTensors, HypergraphConv,
    HypergraphConvConfig,
};
use hipl::*;
use ndarray::{Array2, Array3};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

const CPU: Device = Device::Cpu;

fn values(len: usize, lo: f64, hi: f64, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

fn t(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor {
    let len = shape.iter().product();
    Tensor::from_vec(values(len, lo, hi, seed), shape, &CPU).unwrap()
}

fn a3(x: &Tensor) -> Array3<f64> {
    let (b, n, d) = x.dims3().unwrap();
    let v = x
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    Array3::from_shape_vec((b, n, d), v).unwrap()
}

fn a2(x: &Tensor) -> Array2<f64> {
    let (r, c) = x.dims2().unwrap();
    let v = x
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    Array2::from_shape_vec((r, c), v).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap()).unwrap();
    d.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn configs() -> Vec<HypergraphConfig> {
    let mut out = Vec::new();
    for base in [
        HypergraphConfig::paper(),
        HypergraphConfig::top_k(4),
        HypergraphConfig::knn(3),
        HypergraphConfig::eps_ball(2.0),
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

#[test]
fn conv_forward_equals_the_cpu_path_for_every_rule_mode_and_normalisation() {
    let (f, theta, w) = (
        t(&[2, 9, 5], -1.0, 1.0, 1),
        t(&[5, 3], -1.0, 1.0, 2),
        t(&[2, 9], 0.2, 2.0, 3),
    );
    for cfg in configs() {
        let y = hypergraph_conv(&f, None, &theta, Some(&w), &cfg).unwrap();
        let hg = build_hypergraph(a3(&f).view(), &cfg).unwrap();
        let want = conv(&hg, a3(&f).view(), a2(&theta).view(), Some(a2(&w).view())).unwrap();
        let got = a3(&y);
        let diff = (&got - &want)
            .mapv(f64::abs)
            .fold(0.0, |m: f64, v| m.max(*v));
        assert!(diff < 1e-12, "{cfg:?}: differs by {diff}");
    }
}

#[test]
fn separate_x_is_convolved_over_the_features_hypergraph() {
    let cfg = HypergraphConfig::knn(3);
    let (f, x, theta) = (
        t(&[2, 8, 4], -1.0, 1.0, 4),
        t(&[2, 8, 6], -1.0, 1.0, 5),
        t(&[6, 2], -1.0, 1.0, 6),
    );
    let y = hypergraph_conv(&f, Some(&x), &theta, None, &cfg).unwrap();
    let hg = build_hypergraph(a3(&f).view(), &cfg).unwrap();
    let want = conv(&hg, a3(&x).view(), a2(&theta).view(), None).unwrap();
    assert!((&a3(&y) - &want).iter().all(|d| d.abs() < 1e-12));
}

#[test]
fn incidence_equals_the_dense_incidence_of_the_cpu_path() {
    let f = t(&[2, 7, 3], -1.0, 1.0, 7);
    for cfg in configs() {
        let h = incidence(&f, &cfg).unwrap();
        assert_eq!(h.dims(), &[2, 7, 7]);
        let want = build_hypergraph(a3(&f).view(), &cfg).unwrap().to_dense();
        let got = h.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        assert_eq!(got, want, "{cfg:?}");
    }
}

#[test]
fn hsc_forward_equals_the_cpu_path() {
    let f = t(&[2, 10, 4], -1.0, 1.0, 8);
    let p = HscTensors {
        theta: t(&[4, 4], -1.0, 1.0, 9),
        a: t(&[3, 4], -1.0, 1.0, 10),
        b: t(&[3], -1.0, 1.0, 11),
        g_weight: t(&[5, 3], -1.0, 1.0, 12),
        g_bias: t(&[5], -1.0, 1.0, 13),
    };
    let w = t(&[2, 10], 0.2, 2.0, 14);
    let cfg = HypergraphConfig::top_k(5);
    let (patches, global) = hsc(&f, Some(&w), &p, Activation::GeluTanh, &cfg).unwrap();
    let params = HscParams {
        theta: a2(&p.theta),
        a: a2(&p.a),
        b: p.b.to_vec1::<f64>().unwrap().into(),
        g_weight: a2(&p.g_weight),
        g_bias: p.g_bias.to_vec1::<f64>().unwrap().into(),
        activation: Activation::GeluTanh,
    };
    let (want, _) = hsc_forward(a3(&f).view(), Some(a2(&w).view()), &params, &cfg).unwrap();
    assert!((&a3(&patches) - &want.patches)
        .iter()
        .all(|d| d.abs() < 1e-12));
    assert!((&a2(&global) - &want.global)
        .iter()
        .all(|d| d.abs() < 1e-12));
}

#[test]
fn f32_bf16_and_f16_follow_f64_within_their_precision() {
    let cfg = HypergraphConfig::knn(4);
    let (f, theta) = (t(&[2, 12, 6], -1.0, 1.0, 15), t(&[6, 4], -1.0, 1.0, 16));
    for (dtype, tol) in [(DType::F32, 1e-5), (DType::BF16, 1e-2), (DType::F16, 2e-3)] {
        let (fl, th) = (f.to_dtype(dtype).unwrap(), theta.to_dtype(dtype).unwrap());
        // The reference sees the same rounded inputs, so the kNN structure is the same.
        let (f64_in, th64) = (
            fl.to_dtype(DType::F64).unwrap(),
            th.to_dtype(DType::F64).unwrap(),
        );
        let reference = hypergraph_conv(&f64_in, None, &th64, None, &cfg).unwrap();
        let scale = reference
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();

        let fv = Var::from_tensor(&fl).unwrap();
        let y = hypergraph_conv(fv.as_tensor(), None, &th, None, &cfg).unwrap();
        assert_eq!(y.dtype(), dtype);
        let diff = max_diff(&y, &reference);
        assert!(
            diff <= tol * scale,
            "{dtype:?}: differs by {diff} (scale {scale})"
        );

        let grads = y.sum_all().unwrap().backward().unwrap();
        let g = grads
            .get(fv.as_tensor())
            .expect("a gradient for the features");
        assert_eq!((g.dtype(), g.dims()), (dtype, f.dims()));
        let g64 = Var::from_tensor(&f64_in).unwrap();
        let y64 = hypergraph_conv(g64.as_tensor(), None, &th64, None, &cfg).unwrap();
        let want = y64
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
            .get(g64.as_tensor())
            .unwrap()
            .clone();
        let gscale = want
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(
            max_diff(g, &want) <= 2.0 * tol * gscale,
            "{dtype:?} gradient"
        );
    }
}

#[test]
fn transposed_narrowed_and_broadcast_inputs_read_like_their_contiguous_copies() {
    let cfg = HypergraphConfig::paper().with_mode(IncidenceMode::Soft);
    let (b, n, d, c) = (2, 8, 5, 3);
    // Transposed features: stored [B, D, N], seen as [B, N, D].
    let stored = t(&[b, d, n], -1.0, 1.0, 17);
    let f_t = stored.transpose(1, 2).unwrap();
    assert!(!f_t.is_contiguous());
    // Narrowed theta: a window of a bigger matrix, with a start offset and a row stride.
    let big = t(&[d + 3, c + 4], -1.0, 1.0, 18);
    let theta_n = big.narrow(0, 2, d).unwrap().narrow(1, 1, c).unwrap();
    assert!(!theta_n.is_contiguous());
    // Broadcast weights: one row of weights for every image (stride 0 on the batch).
    let w_b = t(&[1, n], 0.5, 1.5, 19).broadcast_as((b, n)).unwrap();

    let y_strided = hypergraph_conv(&f_t, None, &theta_n, Some(&w_b), &cfg).unwrap();
    let (f_c, th_c, w_c) = (
        f_t.contiguous().unwrap(),
        theta_n.contiguous().unwrap(),
        w_b.contiguous().unwrap(),
    );
    let y = hypergraph_conv(&f_c, None, &th_c, Some(&w_c), &cfg).unwrap();
    assert_eq!(max_diff(&y_strided, &y), 0.0);

    // The same through the gradients: a strided variable's gradient has its shape and
    // equals the contiguous one's.
    let var = Var::from_tensor(&stored).unwrap();
    let y = hypergraph_conv(
        &var.as_tensor().transpose(1, 2).unwrap(),
        None,
        &th_c,
        None,
        &cfg,
    )
    .unwrap();
    let g_strided = y
        .sum_all()
        .unwrap()
        .backward()
        .unwrap()
        .get(var.as_tensor())
        .unwrap()
        .clone();
    let var_c = Var::from_tensor(&f_c).unwrap();
    let y = hypergraph_conv(var_c.as_tensor(), None, &th_c, None, &cfg).unwrap();
    let g = y
        .sum_all()
        .unwrap()
        .backward()
        .unwrap()
        .get(var_c.as_tensor())
        .unwrap()
        .clone();
    assert_eq!(g_strided.dims(), &[b, d, n]);
    assert!(max_diff(&g_strided.transpose(1, 2).unwrap(), &g) < 1e-12);

    // Narrowed features for HSC and incidence, too.
    let big_f = t(&[b + 1, n + 2, d + 1], -1.0, 1.0, 20);
    let f_n = big_f
        .narrow(0, 1, b)
        .unwrap()
        .narrow(1, 2, n)
        .unwrap()
        .narrow(2, 0, d)
        .unwrap();
    let h_n = incidence(&f_n, &cfg).unwrap();
    let h = incidence(&f_n.contiguous().unwrap(), &cfg).unwrap();
    assert_eq!(max_diff(&h_n, &h), 0.0);
}

#[test]
fn untracked_inputs_give_untracked_outputs_and_variables_tracked_ones() {
    let cfg = HypergraphConfig::knn(3);
    let (f, theta) = (t(&[1, 6, 3], -1.0, 1.0, 21), t(&[3, 2], -1.0, 1.0, 22));
    assert!(!hypergraph_conv(&f, None, &theta, None, &cfg)
        .unwrap()
        .track_op());
    let tv = Var::from_tensor(&theta).unwrap();
    assert!(hypergraph_conv(&f, None, tv.as_tensor(), None, &cfg)
        .unwrap()
        .track_op());
}

#[test]
fn modules_name_their_parameters_and_load_them_through_a_var_builder() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &CPU);
    let cfg = HypergraphConvConfig {
        hypergraph: HypergraphConfig::knn(3),
        edge_weights: Some(6),
    };
    let layer = HypergraphConv::new(4, 2, cfg, vb.pp("conv")).unwrap();
    let mut cfg = HscConfig::new(3, 5);
    cfg.edge_weights = Some(6);
    let hsc_layer = Hsc::new(4, cfg, vb.pp("hsc")).unwrap();
    let mut names: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
    names.sort();
    let want = [
        "conv.theta",
        "conv.weights",
        "hsc.a.bias",
        "hsc.a.weight",
        "hsc.global.bias",
        "hsc.global.weight",
        "hsc.theta",
        "hsc.weights",
    ];
    assert_eq!(names, want);
    let f = t(&[2, 6, 4], -1.0, 1.0, 23);
    assert_eq!(f.apply(&layer).unwrap().dims(), &[2, 6, 2]);
    let (p, g) = hsc_layer.forward_with_global(&f).unwrap();
    assert_eq!((p.dims(), g.dims()), (&[2, 6, 3][..], &[2, 5][..]));

    // Loading given tensors: the module computes the CPU path's HSC with them.
    let given: HashMap<String, Tensor> = [
        ("theta", t(&[4, 4], -1.0, 1.0, 24)),
        ("a.weight", t(&[3, 4], -1.0, 1.0, 25)),
        ("a.bias", t(&[3], -1.0, 1.0, 26)),
        ("global.weight", t(&[5, 3], -1.0, 1.0, 27)),
        ("global.bias", t(&[5], -1.0, 1.0, 28)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let loaded = Hsc::new(
        4,
        HscConfig::new(3, 5),
        VarBuilder::from_tensors(given.clone(), DType::F64, &CPU),
    )
    .unwrap();
    assert_eq!(max_diff(&loaded.tensors().a, &given["a.weight"]), 0.0);
    let params = loaded.to_params::<f64>().unwrap();
    let (want, _) = hsc_forward(a3(&f).view(), None, &params, &HypergraphConfig::paper()).unwrap();
    let (p, g) = loaded.forward_with_global(&f).unwrap();
    assert!((&a3(&p) - &want.patches).iter().all(|d| d.abs() < 1e-12));
    assert!((&a2(&g) - &want.global).iter().all(|d| d.abs() < 1e-12));
    assert_eq!(max_diff(&f.apply(&loaded).unwrap(), &p), 0.0);
}

fn err_text<T: std::fmt::Debug>(r: candle_core::Result<T>) -> String {
    r.expect_err("bad input must fail").to_string()
}

#[test]
fn bad_inputs_give_errors_naming_the_argument() {
    let cfg = HypergraphConfig::paper();
    let f = t(&[2, 6, 4], -1.0, 1.0, 29);
    let theta = t(&[4, 3], -1.0, 1.0, 30);
    let cases: Vec<(String, &[&str])> = vec![
        (
            err_text(hypergraph_conv(
                &f.to_dtype(DType::U32).unwrap(),
                None,
                &theta,
                None,
                &cfg,
            )),
            &["features", "dtype"],
        ),
        (
            err_text(hypergraph_conv(
                &f.to_dtype(DType::F32).unwrap(),
                None,
                &theta,
                None,
                &cfg,
            )),
            &["theta", "F32"],
        ),
        (
            err_text(hypergraph_conv(
                &f,
                None,
                &t(&[5, 3], -1.0, 1.0, 0),
                None,
                &cfg,
            )),
            &["theta", "[4, C >= 1]"],
        ),
        (
            err_text(hypergraph_conv(
                &f.flatten(0, 1).unwrap(),
                None,
                &theta,
                None,
                &cfg,
            )),
            &["features", "3 dimensions"],
        ),
        (
            err_text(hypergraph_conv(
                &f,
                Some(&t(&[2, 5, 4], -1.0, 1.0, 0)),
                &theta,
                None,
                &cfg,
            )),
            &["x", "[2, 6"],
        ),
        (
            err_text(hypergraph_conv(
                &f,
                None,
                &theta,
                Some(&t(&[2, 7], 0.5, 1.0, 0)),
                &cfg,
            )),
            &["weights", "[2, 6]"],
        ),
        (
            err_text(hypergraph_conv(
                &f,
                None,
                &theta,
                Some(&t(&[2, 6], -2.0, -1.0, 0)),
                &cfg,
            )),
            &["weights", ">= 0"],
        ),
        (
            err_text(hypergraph_conv(
                &(&f / 0.0).unwrap(),
                None,
                &theta,
                None,
                &cfg,
            )),
            &["features", "non-finite"],
        ),
        (
            err_text(incidence(&f, &HypergraphConfig::knn(7))),
            &["k", "N = 6"],
        ),
        (
            err_text(incidence(&f, &HypergraphConfig { alpha: -1.0, ..cfg })),
            &["alpha"],
        ),
    ];
    for (msg, words) in &cases {
        for w in *words {
            assert!(msg.contains(w), "`{msg}` should mention `{w}`");
        }
    }

    let p = HscTensors {
        theta: t(&[4, 4], -1.0, 1.0, 0),
        a: t(&[3, 5], -1.0, 1.0, 0),
        b: t(&[3], -1.0, 1.0, 0),
        g_weight: t(&[2, 3], -1.0, 1.0, 0),
        g_bias: t(&[2], -1.0, 1.0, 0),
    };
    let msg = err_text(hsc(&f, None, &p, Activation::Relu, &cfg));
    assert!(
        msg.contains("`a`") && msg.contains("[D_out >= 1, 4]"),
        "{msg}"
    );
    let p = HscTensors {
        a: t(&[3, 4], -1.0, 1.0, 0),
        g_bias: t(&[3], -1.0, 1.0, 0),
        ..p
    };
    let msg = err_text(hsc(&f, None, &p, Activation::Relu, &cfg));
    assert!(msg.contains("g_bias") && msg.contains("[2]"), "{msg}");

    let vm = VarMap::new();
    let cfg = HypergraphConvConfig {
        hypergraph: cfg,
        edge_weights: Some(8),
    };
    let layer =
        HypergraphConv::new(4, 3, cfg, VarBuilder::from_varmap(&vm, DType::F64, &CPU)).unwrap();
    let msg = err_text(layer.forward(&f));
    assert!(
        msg.contains("features") && msg.contains("[B, 8, D]"),
        "{msg}"
    );
}

#[test]
fn an_empty_batch_or_no_vertices_is_an_error_naming_the_features_with_or_without_a_separate_x() {
    let cfg = HypergraphConfig::paper();
    let theta = t(&[4, 3], -1.0, 1.0, 31);
    let vm = VarMap::new();
    let layer =
        HypergraphConv::new(4, 3, cfg, VarBuilder::from_varmap(&vm, DType::F64, &CPU)).unwrap();
    for (dims, expected) in [([0usize, 6, 4], "B >= 1"), ([2, 0, 4], "N >= 2")] {
        let empty = Tensor::zeros(&dims, DType::F64, &CPU).unwrap();
        let results = [
            err_text(hypergraph_conv(&empty, None, &theta, None, &cfg)),
            err_text(hypergraph_conv(&empty, Some(&empty), &theta, None, &cfg)),
            err_text(layer.forward(&empty)),
            err_text(layer.forward_x(&empty, &empty)),
        ];
        for msg in results {
            assert!(
                msg.contains("`features`") && msg.contains(expected),
                "{dims:?}: {msg}"
            );
        }
    }
}

#[test]
fn incidence_and_hsc_refuse_an_empty_batch_naming_the_features() {
    let cfg = HypergraphConfig::paper();
    let empty = Tensor::zeros((0, 6, 4), DType::F64, &CPU).unwrap();
    let p = HscTensors {
        theta: t(&[4, 4], -1.0, 1.0, 0),
        a: t(&[3, 4], -1.0, 1.0, 0),
        b: t(&[3], -1.0, 1.0, 0),
        g_weight: t(&[2, 3], -1.0, 1.0, 0),
        g_bias: t(&[2], -1.0, 1.0, 0),
    };
    let results = [
        err_text(incidence(&empty, &cfg)),
        err_text(hsc(&empty, None, &p, Activation::Relu, &cfg)),
        err_text(hipl::candle::hsc_composed(
            &empty,
            None,
            &p,
            Activation::Relu,
            &cfg,
        )),
    ];
    for msg in results {
        assert!(
            msg.contains("`features`") && msg.contains("B >= 1"),
            "{msg}"
        );
    }
}

#[test]
fn modules_with_a_zero_layer_size_name_it() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let e = err_text(Hsc::new(8, HscConfig::new(0, 4), vb.pp("h")));
    assert!(e.contains("d_out") && e.contains("at least 1"), "{e}");
    let e = err_text(Hsc::new(8, HscConfig::new(4, 0), vb.pp("h")));
    assert!(e.contains("global_dim"), "{e}");
    let e = err_text(HypergraphConv::new(
        0,
        4,
        HypergraphConfig::knn(2),
        vb.pp("c"),
    ));
    assert!(e.contains("in_dim"), "{e}");
}
