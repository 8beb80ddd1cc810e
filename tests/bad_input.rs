//! Bad input gets a clear `Error` naming the argument: never a panic, never a NaN.

mod common;

use common::{features, matrix};
use hipl::*;
use ndarray::{Array2, Array3};

fn message<T: std::fmt::Debug>(r: Result<T>) -> String {
    r.expect_err("should be rejected").to_string()
}

#[test]
fn non_finite_features_name_the_argument_and_the_index() {
    let mut f = features(2, 5, 3, 0.0, 1);
    f[[1, 2, 0]] = f64::NAN;
    let m = message(build_hypergraph(f.view(), &HypergraphConfig::paper()));
    assert!(m.contains("features") && m.contains("[1, 2, 0]"), "{m}");
    f[[1, 2, 0]] = f64::INFINITY;
    assert!(message(build_hypergraph(f.view(), &HypergraphConfig::knn(2))).contains("features"));
}

#[test]
fn zero_norm_rows_are_rejected_by_the_cosine_rules() {
    let mut f = features(1, 4, 3, 0.0, 1);
    f.slice_mut(ndarray::s![0, 3, ..]).fill(0.0);
    let m = message(build_hypergraph(f.view(), &HypergraphConfig::paper()));
    assert!(
        m.contains("features") && m.contains("vertex 3") && m.contains("norm_eps"),
        "{m}"
    );
    // The ε-ball uses raw distances, where a zero row is an ordinary point.
    assert!(build_hypergraph(f.view(), &HypergraphConfig::eps_ball(1.0)).is_ok());
}

#[test]
fn shapes_without_two_vertices_or_a_channel_or_an_image_are_rejected() {
    for (shape, needle) in [
        ((0, 4, 3), "B >= 1"),
        ((1, 1, 3), "N >= 2"),
        ((1, 4, 0), "D >= 1"),
    ] {
        let f = Array3::<f64>::ones(shape);
        let m = message(build_hypergraph(f.view(), &HypergraphConfig::paper()));
        assert!(m.contains("features") && m.contains(needle), "{m}");
    }
}

#[test]
fn out_of_range_scalars_are_rejected() {
    let f = features(1, 5, 3, 0.0, 1);
    let cases = [
        (
            HypergraphConfig {
                alpha: 0.0,
                ..Default::default()
            },
            "alpha",
        ),
        (
            HypergraphConfig {
                alpha: -2.0,
                ..Default::default()
            },
            "alpha",
        ),
        (
            HypergraphConfig {
                tau: f64::NAN,
                ..Default::default()
            },
            "tau",
        ),
        (HypergraphConfig::knn(6), "`k`"),
        (HypergraphConfig::knn(0), "`k`"),
        (HypergraphConfig::top_k(9), "top_k"),
        (HypergraphConfig::eps_ball(-1.0), "eps"),
    ];
    for (cfg, needle) in cases {
        let m = message(build_hypergraph(f.view(), &cfg));
        assert!(m.contains(needle), "{needle}: {m}");
    }
}

#[test]
fn mismatched_convolution_inputs_name_the_argument() {
    let f = features(2, 5, 3, 0.0, 1);
    let hg = build_hypergraph(f.view(), &HypergraphConfig::paper()).unwrap();
    let theta = matrix(3, 2, 2);
    assert!(message(conv(&hg, f.view(), matrix(4, 2, 2).view(), None)).contains("theta"));
    assert!(message(conv(
        &hg,
        features(2, 6, 3, 0.0, 1).view(),
        theta.view(),
        None
    ))
    .contains("`x`"));
    assert!(message(conv(
        &hg,
        features(1, 5, 3, 0.0, 1).view(),
        theta.view(),
        None
    ))
    .contains("`x`"));
    let w = Array2::<f64>::ones((2, 4));
    assert!(message(conv(&hg, f.view(), theta.view(), Some(w.view()))).contains("weights"));
    let w = Array2::from_elem((2, 5), -1.0);
    assert!(message(conv(&hg, f.view(), theta.view(), Some(w.view()))).contains("weights"));
    let mut bad_theta = theta.clone();
    bad_theta[[0, 0]] = f64::NAN;
    assert!(message(conv(&hg, f.view(), bad_theta.view(), None)).contains("theta"));
    let (_, ctx) = conv_forward(&hg, f.view(), theta.view(), None).unwrap();
    let dy = Array3::<f64>::ones((2, 5, 3));
    let m = message(conv_backward(
        &hg,
        &ctx,
        f.view(),
        theta.view(),
        None,
        dy.view(),
        false,
    ));
    assert!(m.contains("dy"), "{m}");
}

#[test]
fn hsc_parameters_of_the_wrong_shape_are_rejected() {
    let f = features(1, 5, 3, 0.0, 1);
    let params = HscParams {
        theta: matrix(3, 3, 1),
        a: matrix(4, 3, 2),
        b: ndarray::Array1::zeros(4),
        g_weight: matrix(2, 5, 3),
        g_bias: ndarray::Array1::zeros(2),
        activation: Activation::Relu,
    };
    let m = message(hsc_forward(
        f.view(),
        None,
        &params,
        &HypergraphConfig::paper(),
    ));
    assert!(m.contains("g_weight"), "{m}");
}

#[test]
fn features_whose_squared_norm_overflows_are_rejected_not_misread() {
    // 1e20² overflows f32: without the check every cosine would read as 0 > tau.
    let mut f = ndarray::Array3::<f32>::from_elem((1, 4, 3), 1.0);
    f[[0, 2, 1]] = 1e20;
    for cfg in [HypergraphConfig::paper(), HypergraphConfig::eps_ball(1.0)] {
        let m = build_hypergraph(f.view(), &cfg).unwrap_err().to_string();
        assert!(m.contains("features") && m.contains("vertex 2"), "{m}");
    }
}

#[test]
fn an_overflowing_convolution_is_an_error_not_a_silent_infinity() {
    let f = features(2, 5, 3, 0.0, 1).mapv(|v| v as f32);
    let hg = build_hypergraph(f.view(), &HypergraphConfig::knn(2)).unwrap();
    let huge = Array2::<f32>::eye(3) * 3e38;
    let m = message(conv(&hg, f.view(), huge.view(), None));
    assert!(
        m.contains("x/theta/weights") && m.contains("overflow"),
        "{m}"
    );
    let theta = Array2::<f32>::eye(3);
    let (_, ctx) = conv_forward(&hg, f.view(), theta.view(), None).unwrap();
    let dy = Array3::<f32>::from_elem((2, 5, 3), 3e38);
    let m = message(conv_backward(
        &hg,
        &ctx,
        f.view(),
        huge.view(),
        None,
        dy.view(),
        false,
    ));
    assert!(m.contains("dy/x/theta") && m.contains("overflow"), "{m}");
}

#[test]
fn hypergraph_parts_sized_for_another_n_are_refused() {
    let f = features(1, 5, 3, 0.0, 1);
    let hg = build_hypergraph(f.view(), &HypergraphConfig::knn(2)).unwrap();
    let images = hg.images().to_vec();
    let m = message(Hypergraph::from_images(*hg.config(), 10, images.clone()));
    assert!(m.contains("images[0]") && m.contains("[10, 10]"), "{m}");
    let mut short = images.clone();
    short[0].d_e.pop();
    let m = message(Hypergraph::from_images(*hg.config(), 5, short));
    assert!(m.contains("images[0].d_e"), "{m}");
    assert!(Hypergraph::from_images(*hg.config(), 5, images).is_ok());
}

#[test]
fn a_backward_over_another_batch_names_the_hypergraph() {
    let f = features(2, 5, 3, 0.0, 1);
    let one = features(1, 5, 3, 0.0, 1);
    let cfg = HypergraphConfig::knn(2);
    let (hg2, hg1) = (
        build_hypergraph(f.view(), &cfg).unwrap(),
        build_hypergraph(one.view(), &cfg).unwrap(),
    );
    let theta = matrix(3, 3, 2);
    let (_, ctx) = conv_forward(&hg2, f.view(), theta.view(), None).unwrap();
    let dy = Array3::<f64>::ones((1, 5, 3));
    let m = message(conv_backward(
        &hg1,
        &ctx,
        one.view(),
        theta.view(),
        None,
        dy.view(),
        false,
    ));
    assert!(m.contains("hypergraph") && m.contains("2 images"), "{m}");
}
