//! Structural properties of the built hypergraphs.

mod common;

use common::features;
use hipl::*;
use proptest::prelude::*;

fn dense_h(hg: &Hypergraph<f64>, img: usize) -> Vec<f64> {
    hg.image(img).incidence.to_dense(hg.n_vertices())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn threshold_and_eps_rules_are_symmetric_and_contain_their_centres(
        n in 2usize..=300, d in 1usize..=12, shared in 0.0f64..3.0, seed in 0u64..10_000,
    ) {
        let f = features(2, n, d, shared, seed);
        for cfg in [HypergraphConfig::paper(), HypergraphConfig::eps_ball(1.5)] {
            let hg = build_hypergraph(f.view(), &cfg).unwrap();
            for img in 0..2 {
                let h = dense_h(&hg, img);
                for i in 0..n {
                    prop_assert_eq!(h[i * n + i], 1.0);
                    for j in 0..n {
                        prop_assert_eq!(h[i * n + j], h[j * n + i]);
                    }
                }
            }
        }
    }

    #[test]
    fn knn_hyperedges_hold_exactly_k_members_and_top_k_at_most_k(
        n in 2usize..=300, d in 1usize..=12, k in 1usize..=20, seed in 0u64..10_000,
    ) {
        let k = k.min(n);
        let f = features(1, n, d, 0.7, seed);
        let knn = build_hypergraph(f.view(), &HypergraphConfig::knn(k)).unwrap();
        let capped = build_hypergraph(f.view(), &HypergraphConfig::top_k(k)).unwrap();
        let plain = build_hypergraph(f.view(), &HypergraphConfig::paper()).unwrap();
        let (hk, hc, hp) = (dense_h(&knn, 0), dense_h(&capped, 0), dense_h(&plain, 0));
        for e in 0..n {
            let col = |h: &[f64]| (0..n).map(|i| h[i * n + e]).sum::<f64>() as usize;
            prop_assert_eq!(col(&hk), k);
            prop_assert_eq!(hk[e * n + e], 1.0);
            prop_assert_eq!(hc[e * n + e], 1.0);
            prop_assert_eq!(col(&hc), col(&hp).min(k));
            for i in 0..n {
                // The cap only removes members of the uncapped hyperedge.
                prop_assert!(hc[i * n + e] <= hp[i * n + e]);
            }
            prop_assert_eq!(knn.image(0).d_e[e] as usize, k);
        }
    }
}

#[test]
fn knn_keeps_the_most_similar_and_breaks_ties_by_lower_index() {
    // Vertices 1, 2 and 3 are identical, so they tie in similarity to vertex 0.
    let f = ndarray::Array3::from_shape_vec(
        (1, 5, 2),
        vec![1.0, 0.0, 0.8, 0.6, 0.8, 0.6, 0.8, 0.6, -1.0, 0.1],
    )
    .unwrap();
    let hg = build_hypergraph(f.view(), &HypergraphConfig::knn(3)).unwrap();
    let h = dense_h(&hg, 0);
    let members: Vec<usize> = (0..5).filter(|&i| h[i * 5] == 1.0).collect();
    assert_eq!(members, vec![0, 1, 2]);
}

#[test]
fn soft_incidence_is_the_sigmoid_of_the_shifted_cosine() {
    let f = features(1, 6, 3, 0.0, 2);
    let cfg = HypergraphConfig {
        mode: IncidenceMode::Soft,
        alpha: 7.0,
        tau: 0.1,
        ..Default::default()
    };
    let hg = build_hypergraph(f.view(), &cfg).unwrap();
    let h = dense_h(&hg, 0);
    let row = |i: usize| {
        let r = f.slice(ndarray::s![0, i, ..]).to_vec();
        let norm = r.iter().map(|x| x * x).sum::<f64>().sqrt();
        r.into_iter().map(move |x| x / norm).collect::<Vec<_>>()
    };
    for i in 0..6 {
        for j in 0..6 {
            let s: f64 = row(i).iter().zip(row(j)).map(|(a, b)| a * b).sum();
            let want = 1.0 / (1.0 + (-7.0 * (s - 0.1)).exp());
            assert!((h[i * 6 + j] - want).abs() < 1e-12);
        }
    }
}

#[test]
fn zero_weights_give_zero_rows_or_an_error_by_policy() {
    let f = features(1, 4, 3, 0.0, 1);
    let x = features(1, 4, 3, 0.0, 2);
    let theta = ndarray::Array2::<f64>::eye(3);
    let w = ndarray::Array2::<f64>::zeros((1, 4));
    let cfg = HypergraphConfig::knn(2);
    let hg = build_hypergraph(f.view(), &cfg).unwrap();
    let y = conv(&hg, x.view(), theta.view(), Some(w.view())).unwrap();
    assert!(y.iter().all(|v| *v == 0.0));
    let strict = HypergraphConfig {
        zero_degree: ZeroDegree::Error,
        ..cfg
    };
    let hg = build_hypergraph(f.view(), &strict).unwrap();
    let err = conv(&hg, x.view(), theta.view(), Some(w.view())).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ZeroDegree {
                kind: "vertex",
                image: 0,
                ..
            }
        ),
        "{err}"
    );
}
