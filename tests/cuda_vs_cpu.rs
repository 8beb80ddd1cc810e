//! The device path (emulator by default, a GPU with HIPL_TEST_DEVICE=cuda) against the hipl
//! CPU path, op by op and end to end, for every rule the device supports, every incidence
//! mode and both normalisations.

mod cuda_common;

use cuda_common::{assert_close, cosine, device, features, rng};
use hipl::cpu::normalize::row_normalize;
use hipl::cuda::ops::norm::normalize_rows;
use hipl::cuda::ops::Shape;
use hipl::cuda::{
    build_hypergraph as build_on, conv as conv_on, conv_backward as conv_backward_on,
};
use hipl::{
    build_hypergraph, conv, conv_backward, conv_forward, HypergraphConfig, IncidenceMode,
    Normalization, Rule,
};
use ndarray::{Array2, Array3};
use rand::Rng;

fn array(b: usize, n: usize, d: usize, v: Vec<f32>) -> Array3<f32> {
    Array3::from_shape_vec((b, n, d), v).unwrap()
}

fn random2(r: usize, c: usize, seed: u64, lo: f32, hi: f32) -> Array2<f32> {
    let mut g = rng(seed);
    Array2::from_shape_fn((r, c), |_| g.random_range(lo..hi))
}

fn flat(a: &Array3<f32>) -> Vec<f64> {
    a.iter().map(|&v| v as f64).collect()
}

#[test]
fn normalisation_matches_the_cpu() {
    let dev = device();
    for &(b, n, d) in &[(1, 1, 1), (2, 3, 3), (1, 33, 1), (2, 65, 70)] {
        let f = features(&mut rng(9), b, n, d, 0.3);
        let got = normalize_rows(
            &dev,
            &dev.upload(&f).unwrap(),
            Shape::new(b, n, d).unwrap(),
            1e-12,
        )
        .unwrap();
        let mut hat = vec![0.0f32; f.len()];
        let mut norms = vec![0.0f32; b * n];
        row_normalize(&f, d, 1e-12, &mut hat, &mut norms);
        let want: Vec<f64> = hat.iter().map(|&v| v as f64).collect();
        assert_close(&dev.download(&got.fhat).unwrap(), &want, 2e-7, "fhat");
    }
}

fn configs(n: usize) -> Vec<HypergraphConfig> {
    let mut out = Vec::new();
    let (top_k, k) = ((n / 2).clamp(1, 9), (n / 3).clamp(1, 5));
    for rule in [
        Rule::Threshold { top_k: None },
        Rule::Threshold { top_k: Some(top_k) },
        Rule::Knn { k },
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
                    tau: 0.15,
                    ..HypergraphConfig::default()
                });
            }
        }
    }
    out
}

/// Structure: device and CPU incidence agree on every pair whose cosine is clear of tau (and,
/// for selection rules, on every hyperedge whose cut is unambiguous) — bit for bit for hard
/// incidence, to float tolerance for soft.
fn compare_structure(cfg: &HypergraphConfig, f: &Array3<f32>) {
    let dev = device();
    let (b, n, d) = f.dim();
    let got = build_on(&dev, f.view(), cfg).unwrap().to_host().unwrap();
    let want = build_hypergraph(f.view(), cfg).unwrap();
    let (hg, hw) = (got.to_dense(), want.to_dense());
    let flat_f = f.as_slice().unwrap();
    for img in 0..b {
        let s = cosine(&flat_f[img * n * d..(img + 1) * n * d], n, d, 1e-12);
        for e in 0..n {
            let mut col: Vec<f64> = (0..n).filter(|&i| i != e).map(|i| s[i * n + e]).collect();
            col.sort_by(|a, b| b.partial_cmp(a).unwrap());
            let near_tau = (0..n).any(|i| i != e && (s[i * n + e] - cfg.tau).abs() < 1e-5);
            let near_cut = col.windows(2).any(|w| w[0] - w[1] < 1e-5);
            let selective = !matches!(cfg.rule, Rule::Threshold { top_k: None });
            for i in 0..n {
                let at = img * n * n + i * n + e;
                let clear = (s[i * n + e] - cfg.tau).abs() >= 1e-5;
                if cfg.mode == IncidenceMode::Soft {
                    if !selective || !(near_tau || near_cut) {
                        assert!(
                            (hg[at] - hw[at]).abs() < 1e-5,
                            "{cfg:?}: I[{img},{i},{e}] {} vs {}",
                            hg[at],
                            hw[at]
                        );
                    }
                } else if (!selective && clear) || (selective && !near_tau && !near_cut) {
                    assert_eq!(
                        hg[at],
                        hw[at],
                        "{cfg:?}: H[{img},{i},{e}], S = {}",
                        s[i * n + e]
                    );
                }
            }
        }
        for e in 0..n {
            let (gd, wd) = (got.image(img).d_e[e], want.image(img).d_e[e]);
            if cfg.mode == IncidenceMode::Soft {
                assert!(
                    (gd - wd).abs() < 1e-4 * (1.0 + wd.abs()),
                    "{cfg:?}: d_e[{e}] {gd} vs {wd}"
                );
            }
        }
    }
}

#[test]
fn hypergraph_structure_matches_the_cpu_for_every_rule_and_mode() {
    for &(b, n, d) in &[(1, 2, 1), (2, 3, 3), (1, 33, 3), (2, 65, 5), (1, 130, 17)] {
        let f = array(b, n, d, features(&mut rng(n as u64 + 100), b, n, d, 0.6));
        for cfg in configs(n) {
            compare_structure(&cfg, &f);
        }
    }
}

#[test]
fn paper_rule_structure_matches_the_cpu_at_n_1000() {
    let (b, n, d) = (1, 1000, 3);
    let f = array(b, n, d, features(&mut rng(77), b, n, d, 0.4));
    compare_structure(
        &HypergraphConfig {
            tau: 0.2,
            ..HypergraphConfig::paper()
        },
        &f,
    );
}

/// Convolution: the device's output against the CPU's on the same structure (the device
/// hypergraph copied to the host), so only the products and scalings are compared.
#[test]
fn convolution_matches_the_cpu_on_the_same_structure() {
    let dev = device();
    for &(b, n, d, c) in &[
        (1, 2, 1, 1),
        (2, 3, 3, 2),
        (1, 33, 3, 4),
        (2, 65, 5, 3),
        (1, 100, 40, 7),
    ] {
        let f = array(b, n, d, features(&mut rng(n as u64 + 300), b, n, d, 0.6));
        let theta = random2(d, c, 1, -1.0, 1.0);
        let w = random2(b, n, 2, 0.2, 2.0);
        for cfg in configs(n) {
            let hg = build_on(&dev, f.view(), &cfg).unwrap();
            let host = hg.to_host().unwrap();
            for weights in [None, Some(w.view())] {
                let got = conv_on(&hg, f.view(), theta.view(), weights).unwrap();
                let want = conv(&host, f.view(), theta.view(), weights).unwrap();
                assert_close(
                    &got.iter().copied().collect::<Vec<_>>(),
                    &flat(&want),
                    2e-5,
                    &format!("{cfg:?} Y"),
                );
            }
            let dy = array(b, n, c, features(&mut rng(5), b, n, c, 0.0));
            let g =
                conv_backward_on(&hg, f.view(), theta.view(), Some(w.view()), dy.view()).unwrap();
            let (_, ctx) = conv_forward(&host, f.view(), theta.view(), Some(w.view())).unwrap();
            let cg = conv_backward(
                &host,
                &ctx,
                f.view(),
                theta.view(),
                Some(w.view()),
                dy.view(),
                false,
            )
            .unwrap();
            assert_close(
                &g.dx.iter().copied().collect::<Vec<_>>(),
                &flat(&cg.dx),
                2e-5,
                &format!("{cfg:?} dX"),
            );
            let dt: Vec<f64> = cg.dtheta.iter().map(|&v| v as f64).collect();
            assert_close(
                &g.dtheta.iter().copied().collect::<Vec<_>>(),
                &dt,
                1e-4,
                &format!("{cfg:?} dTheta"),
            );
        }
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let dev = device();
    let cfg = HypergraphConfig::paper();
    let mut f = array(1, 4, 3, features(&mut rng(1), 1, 4, 3, 0.0));
    assert!(
        build_on(&dev, f.slice(ndarray::s![.., ..1, ..]), &cfg).is_err(),
        "N < 2"
    );
    f[[0, 2, 1]] = f32::INFINITY;
    assert!(matches!(
        build_on(&dev, f.view(), &cfg),
        Err(hipl::Error::NonFinite { .. })
    ));
    f[[0, 2, 1]] = 0.0;
    f.slice_mut(ndarray::s![0, 1, ..]).fill(0.0);
    assert!(
        matches!(
            build_on(&dev, f.view(), &cfg),
            Err(hipl::Error::InvalidArgument { .. })
        ),
        "zero row"
    );
    let ok = array(1, 4, 3, features(&mut rng(2), 1, 4, 3, 0.0));
    assert!(
        build_on(&dev, ok.view(), &HypergraphConfig::knn(5)).is_err(),
        "k > N"
    );
    assert!(
        build_on(&dev, ok.view(), &HypergraphConfig { alpha: 0.0, ..cfg }).is_err(),
        "alpha <= 0"
    );
    assert!(
        build_on(&dev, ok.view(), &HypergraphConfig::eps_ball(1.0)).is_err(),
        "eps-ball unsupported"
    );
    let hg = build_on(&dev, ok.view(), &cfg).unwrap();
    let theta = Array2::<f32>::zeros((2, 2));
    assert!(
        matches!(
            conv_on(&hg, ok.view(), theta.view(), None),
            Err(hipl::Error::Shape { .. })
        ),
        "theta rows"
    );
}

#[test]
fn backend_switch_changes_the_device_not_the_code() {
    let f = array(2, 33, 4, features(&mut rng(12), 2, 33, 4, 0.6));
    let theta = random2(4, 3, 13, -1.0, 1.0);
    let cfg = HypergraphConfig::knn(5);
    let mut outs = Vec::new();
    for backend in [
        hipl::cuda::Backend::Cpu,
        hipl::cuda::Backend::Cuda(device()),
    ] {
        let g = backend.build_hypergraph(f.view(), &cfg).unwrap();
        outs.push(backend.conv(&g, f.view(), theta.view(), None).unwrap());
    }
    assert_close(
        &outs[1].iter().copied().collect::<Vec<_>>(),
        &flat(&outs[0]),
        2e-5,
        "Y",
    );
    // Without feature `cuda` (or without a GPU) detection falls back to the CPU.
    if !cfg!(feature = "cuda-kernels") {
        assert!(matches!(
            hipl::cuda::Backend::detect(),
            hipl::cuda::Backend::Cpu
        ));
    }
}
