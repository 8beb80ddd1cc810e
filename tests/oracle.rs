//! The fused path against the literal dense path (`hipl::dense`), and every storage of the
//! incidence against every other. Tolerance: 1e-10 max abs in f64 (both paths sum the same
//! terms in different orders), 1e-4 relative in f32.

mod common;

use common::{all_configs, features, matrix, max_abs_diff, positive};
use hipl::*;

fn slice<D: ndarray::Dimension>(a: &ndarray::Array<f64, D>) -> &[f64] {
    a.as_slice().unwrap()
}

#[test]
fn fused_forward_and_backward_equal_dense_for_every_rule_mode_and_normalisation() {
    for (b, n, d, c, seed) in [
        (1, 2, 1, 1, 1),
        (2, 17, 5, 3, 2),
        (3, 40, 12, 7, 3),
        (1, 70, 9, 4, 4),
        (1, 260, 6, 3, 5),
    ] {
        let f = features(b, n, d, 0.4, seed);
        let theta = matrix(d, c, seed + 10);
        let w = positive(b, n, seed + 20);
        let dy = features(b, n, c, 0.0, seed + 30);
        for cfg in all_configs(n) {
            let (y, ctx) =
                hypergraph_conv_forward(f.view(), None, theta.view(), Some(w.view()), &cfg)
                    .unwrap();
            let (yd, dctx) =
                dense::forward(f.view(), None, theta.view(), Some(w.view()), &cfg).unwrap();
            assert!(
                max_abs_diff(slice(&y), slice(&yd)) < 1e-10,
                "Y {cfg:?} n={n}"
            );
            let yi = dense::conv(f.view(), None, theta.view(), Some(w.view()), &cfg).unwrap();
            assert!(
                max_abs_diff(slice(&yi), slice(&yd)) < 1e-12,
                "dense conv vs forward"
            );

            let g = hypergraph_conv_backward(
                &ctx,
                f.view(),
                None,
                theta.view(),
                Some(w.view()),
                dy.view(),
            )
            .unwrap();
            let gd = dense::backward(&dctx, false, theta.view(), dy.view()).unwrap();
            assert!(
                max_abs_diff(slice(&g.df), slice(&gd.df)) < 1e-10,
                "dF {cfg:?} n={n}"
            );
            assert!(
                max_abs_diff(slice(&g.dtheta), slice(&gd.dtheta)) < 1e-10,
                "dTheta {cfg:?}"
            );
            assert!(
                max_abs_diff(
                    slice(g.dweights.as_ref().unwrap()),
                    slice(gd.dweights.as_ref().unwrap())
                ) < 1e-10,
                "dW {cfg:?}"
            );
        }
    }
}

#[test]
fn every_storage_gives_the_same_convolution_and_gradients() {
    let (b, n, d, c) = (2, 275, 6, 5);
    for (shared, rule) in [
        (0.2, Rule::Threshold { top_k: None }),
        (3.0, Rule::Threshold { top_k: None }),
        (0.3, Rule::Knn { k: 9 }),
        (0.3, Rule::Threshold { top_k: Some(20) }),
        (0.3, Rule::EpsBall { eps: 2.0 }),
    ] {
        let f = features(b, n, d, shared, 7);
        let theta = matrix(d, c, 8);
        let w = positive(b, n, 9);
        let dy = features(b, n, c, 0.0, 10);
        let run = |repr| {
            let cfg = HypergraphConfig {
                rule,
                representation: repr,
                ..HypergraphConfig::default()
            };
            let (y, ctx) =
                hypergraph_conv_forward(f.view(), None, theta.view(), Some(w.view()), &cfg)
                    .unwrap();
            let g = hypergraph_conv_backward(
                &ctx,
                f.view(),
                None,
                theta.view(),
                Some(w.view()),
                dy.view(),
            )
            .unwrap();
            assert_eq!(
                ctx.hypergraph.image(0).incidence.kind(),
                match repr {
                    Representation::Bitmask => "bitmask",
                    Representation::Csr => "csr",
                    Representation::ComplementCsr => "complement-csr",
                    Representation::Dense => "dense",
                    Representation::Auto => ctx.hypergraph.image(0).incidence.kind(),
                }
            );
            (y, g)
        };
        let (y0, g0) = run(Representation::Dense);
        for repr in [
            Representation::Bitmask,
            Representation::Csr,
            Representation::ComplementCsr,
            Representation::Auto,
        ] {
            let (y, g) = run(repr);
            assert!(
                max_abs_diff(slice(&y), slice(&y0)) < 1e-10,
                "{rule:?} {repr:?}"
            );
            assert!(
                max_abs_diff(slice(&g.df), slice(&g0.df)) < 1e-10,
                "{rule:?} {repr:?}"
            );
            assert!(
                max_abs_diff(
                    slice(g.dweights.as_ref().unwrap()),
                    slice(g0.dweights.as_ref().unwrap())
                ) < 1e-10
            );
            assert!(max_abs_diff(slice(&g.dtheta), slice(&g0.dtheta)) < 1e-10);
        }
    }
}

/// Output widths above the column block of the streamed incidence products (128), with a
/// partial last block, and more vertices than one similarity tile (256): fused against
/// dense for every rule, mode and normalisation.
#[test]
fn wide_outputs_and_many_vertices_equal_dense() {
    let (b, n, d, c) = (2, 300, 6, 300);
    let f = features(b, n, d, 0.4, 41);
    let theta = matrix(d, c, 42);
    let w = positive(b, n, 43);
    let dy = features(b, n, c, 0.0, 44);
    for cfg in all_configs(n) {
        let (y, ctx) =
            hypergraph_conv_forward(f.view(), None, theta.view(), Some(w.view()), &cfg).unwrap();
        let (yd, dctx) =
            dense::forward(f.view(), None, theta.view(), Some(w.view()), &cfg).unwrap();
        assert!(max_abs_diff(slice(&y), slice(&yd)) < 1e-10, "Y {cfg:?}");
        let hg = build_hypergraph(f.view(), &cfg).unwrap();
        let y_only = conv(&hg, f.view(), theta.view(), Some(w.view())).unwrap();
        assert!(
            max_abs_diff(slice(&y_only), slice(&yd)) < 1e-10,
            "conv {cfg:?}"
        );
        let g = hypergraph_conv_backward(
            &ctx,
            f.view(),
            None,
            theta.view(),
            Some(w.view()),
            dy.view(),
        )
        .unwrap();
        let gd = dense::backward(&dctx, false, theta.view(), dy.view()).unwrap();
        assert!(
            max_abs_diff(slice(&g.df), slice(&gd.df)) < 1e-10,
            "dF {cfg:?}"
        );
        assert!(
            max_abs_diff(slice(&g.dtheta), slice(&gd.dtheta)) < 1e-10,
            "dTheta {cfg:?}"
        );
        assert!(
            max_abs_diff(
                slice(g.dweights.as_ref().unwrap()),
                slice(gd.dweights.as_ref().unwrap())
            ) < 1e-10,
            "dW {cfg:?}"
        );
    }
}

#[test]
fn anisotropic_features_are_stored_as_the_complement_by_default() {
    let f = features(1, 100, 8, 4.0, 3);
    let hg = build_hypergraph(f.view(), &HypergraphConfig::paper()).unwrap();
    let stats = hg.stats();
    assert!(stats.density > 0.9, "density {}", stats.density);
    assert_eq!(stats.representation, "complement-csr");
}

#[test]
fn f32_fused_path_agrees_with_f64_dense_path() {
    let (b, n, d, c) = (2, 50, 16, 8);
    let f = features(b, n, d, 0.5, 11);
    let theta = matrix(d, c, 12);
    for cfg in [
        HypergraphConfig::paper(),
        HypergraphConfig::knn(9),
        HypergraphConfig::top_k(16),
    ] {
        let yd = dense::conv(f.view(), None, theta.view(), None, &cfg).unwrap();
        let f32s = f.mapv(|v| v as f32);
        let hg = build_hypergraph(f32s.view(), &cfg).unwrap();
        let y = conv(&hg, f32s.view(), theta.mapv(|v| v as f32).view(), None).unwrap();
        let scale = yd.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let err = y
            .iter()
            .zip(yd.iter())
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(err <= 1e-4 * scale, "{cfg:?}: {err} vs scale {scale}");
    }
}

#[test]
fn incidence_gradient_of_the_convolution_matches_finite_differences() {
    // ∂L/∂H (including the degree terms) is what soft and straight-through modes push
    // into the structure; check it on a dense H treated as a free input.
    let (n, c) = (9, 3);
    let f = features(1, n, 4, 0.0, 5);
    let mut h = positive(n, n, 6);
    let x = features(1, n, 4, 0.0, 7);
    let theta = matrix(4, c, 8);
    let w = positive(1, n, 9);
    let r = features(1, n, c, 0.0, 10);
    let cfg = HypergraphConfig::default().with_representation(Representation::Dense);
    let graph = |h: &ndarray::Array2<f64>| {
        let hv = h.as_slice().unwrap().to_vec();
        let d_e = (0..n)
            .map(|e| (0..n).map(|i| hv[i * n + e]).sum())
            .collect();
        Hypergraph::from_images(
            cfg,
            n,
            vec![hypergraph::ImageGraph {
                incidence: Incidence::Dense { h: hv },
                d_e,
            }],
        )
        .unwrap()
    };
    let loss = |h: &ndarray::Array2<f64>| {
        (&conv(&graph(h), x.view(), theta.view(), Some(w.view())).unwrap() * &r).sum()
    };
    let hg = graph(&h);
    let (_, ctx) = conv_forward(&hg, x.view(), theta.view(), Some(w.view())).unwrap();
    let g = conv_backward(
        &hg,
        &ctx,
        x.view(),
        theta.view(),
        Some(w.view()),
        r.view(),
        true,
    )
    .unwrap();
    let dh = g.dh.unwrap();
    let _ = f;
    for i in 0..n {
        for e in 0..n {
            let eps = 1e-6;
            h[[i, e]] += eps;
            let lp = loss(&h);
            h[[i, e]] -= 2.0 * eps;
            let lm = loss(&h);
            h[[i, e]] += eps;
            let num = (lp - lm) / (2.0 * eps);
            assert!(
                (num - dh[[0, i, e]]).abs() < 1e-6 * (1.0 + num.abs()),
                "dH[{i},{e}]"
            );
        }
    }
}

/// With unit hyperedge weights (`None`) and hard incidence, the forward saves only the
/// scalings and the backward streams column blocks straight into `dX` and `dΘ`; it gives
/// the same gradients as the full backward with explicit unit weights, for every storage,
/// across several images and output widths beyond one block (256 columns), with and without
/// a separate `X`.
#[test]
fn lean_backward_without_weights_equals_the_full_backward() {
    let (b, n, d, dx) = (3, 37, 6, 5);
    let f = features(b, n, d, 0.4, 51);
    let x = features(b, n, dx, 0.0, 52);
    let ones = ndarray::Array2::<f64>::ones((b, n));
    for c in [3, 256, 300, 600] {
        let dy = features(b, n, c, 0.0, 53 + c as u64);
        for repr in [
            Representation::Bitmask,
            Representation::Csr,
            Representation::ComplementCsr,
            Representation::Dense,
        ] {
            for (rule, norm) in [
                (Rule::Threshold { top_k: None }, Normalization::Symmetric),
                (Rule::Knn { k: 5 }, Normalization::RandomWalk),
            ] {
                let cfg = HypergraphConfig {
                    rule,
                    norm,
                    tau: 0.1,
                    representation: repr,
                    ..HypergraphConfig::default()
                };
                for sep in [false, true] {
                    let (xv, th) = if sep {
                        (Some(x.view()), matrix(dx, c, 54))
                    } else {
                        (None, matrix(d, c, 54))
                    };
                    let grads = |w: Option<ndarray::ArrayView2<f64>>| {
                        let (y, ctx) =
                            hypergraph_conv_forward(f.view(), xv, th.view(), w, &cfg).unwrap();
                        let g =
                            hypergraph_conv_backward(&ctx, f.view(), xv, th.view(), w, dy.view())
                                .unwrap();
                        (y, g)
                    };
                    let (y0, g0) = grads(Some(ones.view()));
                    let (y, g) = grads(None);
                    let case = format!("c={c} {repr:?} {rule:?} separate x: {sep}");
                    assert!(g.dweights.is_none(), "{case}");
                    assert!(g0.dweights.is_some(), "{case}");
                    assert!(max_abs_diff(slice(&y), slice(&y0)) < 1e-10, "{case}");
                    assert!(max_abs_diff(slice(&g.df), slice(&g0.df)) < 1e-10, "{case}");
                    assert!(
                        max_abs_diff(slice(&g.dtheta), slice(&g0.dtheta)) < 1e-10,
                        "{case}"
                    );
                    if sep {
                        let (a, a0) = (g.dx.unwrap(), g0.dx.unwrap());
                        assert!(max_abs_diff(slice(&a), slice(&a0)) < 1e-10, "{case}");
                    }
                }
            }
        }
    }
}

/// A context saved without hyperedge weights holds nothing for their gradient: asking the
/// backward for it is an error naming `weights`, not a wrong gradient.
#[test]
fn backward_with_weights_after_a_forward_without_them_is_an_error() {
    let f = features(1, 8, 3, 0.4, 61);
    let theta = matrix(3, 2, 62);
    let w = positive(1, 8, 63);
    let dy = features(1, 8, 2, 0.0, 64);
    let cfg = HypergraphConfig::knn(3);
    let (_, ctx) = hypergraph_conv_forward(f.view(), None, theta.view(), None, &cfg).unwrap();
    let err = hypergraph_conv_backward(
        &ctx,
        f.view(),
        None,
        theta.view(),
        Some(w.view()),
        dy.view(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("weights"), "{err}");
}
