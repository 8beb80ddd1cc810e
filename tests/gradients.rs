//! Every backward against central finite differences, in f64, over random shapes
//! (B 1–3, N 2–64, D 1–32), every rule, incidence mode and normalisation.
//!
//! Hard structure is piecewise constant in the features, so a finite difference is only
//! meaningful when no similarity sits near a decision boundary. The tests therefore place
//! `tau` (and `eps`) in the middle of a wide gap of the observed similarities (distances),
//! and reject inputs whose kNN / top-k rankings have a near-tie; a perturbation of 1e-6
//! then cannot flip any membership.

mod common;

use common::{features, matrix, positive};
use hipl::*;
use ndarray::{Array2, Array3};
use proptest::prelude::*;

const H: f64 = 1e-6;

fn close(analytic: f64, numeric: f64) -> bool {
    (analytic - numeric).abs() <= 2e-5 * (1.0 + analytic.abs().max(numeric.abs()))
}

/// Cosine similarities (off-diagonal) of one image's rows.
fn cosines(f: &Array3<f64>, img: usize) -> Vec<Vec<f64>> {
    let n = f.dim().1;
    let rows: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let r: Vec<f64> = f.slice(ndarray::s![img, i, ..]).to_vec();
            let norm = r.iter().map(|x| x * x).sum::<f64>().sqrt();
            r.iter().map(|x| x / norm).collect()
        })
        .collect();
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| rows[i].iter().zip(&rows[j]).map(|(a, b)| a * b).sum())
                .collect()
        })
        .collect()
}

fn distances(f: &Array3<f64>, img: usize) -> Vec<Vec<f64>> {
    let n = f.dim().1;
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    let a = f.slice(ndarray::s![img, i, ..]);
                    let b = f.slice(ndarray::s![img, j, ..]);
                    a.iter()
                        .zip(b.iter())
                        .map(|(x, y)| (x - y) * (x - y))
                        .sum::<f64>()
                        .sqrt()
                })
                .collect()
        })
        .collect()
}

/// Midpoint of the widest gap among the off-diagonal values between their 20% and 80%
/// quantiles, if that gap is at least `min_gap`.
fn gap_midpoint(values: &mut [f64], min_gap: f64) -> Option<f64> {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let len = values.len();
    let (lo, hi) = (len / 5, (4 * len / 5).max(len / 5 + 1).min(len - 1));
    (lo..hi)
        .map(|i| (values[i + 1] - values[i], 0.5 * (values[i + 1] + values[i])))
        .filter(|(gap, _)| *gap >= min_gap)
        .max_by(|a, b| a.0.partial_cmp(&b.0).unwrap())
        .map(|(_, mid)| mid)
}

/// Whether every hyperedge's ranking has a clear gap after its `k − 1` best neighbours.
fn rankings_are_stable(sims: &[Vec<f64>], k: usize, tau: Option<f64>) -> bool {
    sims.iter().enumerate().all(|(e, row)| {
        let mut others: Vec<f64> = row
            .iter()
            .enumerate()
            .filter(|(j, s)| *j != e && tau.is_none_or(|t| **s > t))
            .map(|(_, s)| *s)
            .collect();
        others.sort_by(|a, b| b.partial_cmp(a).unwrap());
        k > others.len() || k < 2 || others[k - 2] - others[k - 1] > 1e-4
    })
}

/// Places the rule's boundary in a gap of the data; `None` if the input has none.
fn fit_config(f: &Array3<f64>, mut cfg: HypergraphConfig) -> Option<HypergraphConfig> {
    let (b, n, _) = f.dim();
    let off_diag = |m: &[Vec<f64>]| -> Vec<f64> {
        (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i][j])
            .collect()
    };
    let mut all = Vec::new();
    for img in 0..b {
        let m = match cfg.rule {
            Rule::EpsBall { .. } => distances(f, img),
            _ => cosines(f, img),
        };
        all.extend(off_diag(&m));
    }
    if n >= 3 || !matches!(cfg.rule, Rule::Knn { .. }) {
        let mid = if all.len() >= 2 {
            gap_midpoint(&mut all, 2e-4)?
        } else {
            all[0] - 0.5
        };
        match cfg.rule {
            Rule::EpsBall { .. } => cfg.rule = Rule::EpsBall { eps: mid.max(1e-3) },
            _ => cfg.tau = mid,
        }
    }
    for img in 0..b {
        let sims = cosines(f, img);
        let ok = match cfg.rule {
            Rule::Knn { k } => rankings_are_stable(&sims, k, None),
            Rule::Threshold { top_k: Some(k) } => rankings_are_stable(&sims, k, Some(cfg.tau)),
            _ => true,
        };
        if !ok {
            return None;
        }
    }
    Some(cfg)
}

fn config_strategy() -> impl Strategy<Value = (u8, IncidenceMode, Normalization)> {
    (
        0u8..4,
        prop_oneof![
            Just(IncidenceMode::Hard),
            Just(IncidenceMode::Soft),
            Just(IncidenceMode::StraightThrough)
        ],
        prop_oneof![
            Just(Normalization::Symmetric),
            Just(Normalization::RandomWalk)
        ],
    )
}

fn make_config(
    rule: u8,
    mode: IncidenceMode,
    norm: Normalization,
    n: usize,
    k: usize,
    alpha: f64,
) -> HypergraphConfig {
    let rule = match rule {
        0 => Rule::Threshold { top_k: None },
        1 => Rule::Threshold {
            top_k: Some(k.clamp(1, n)),
        },
        2 => Rule::Knn { k: k.clamp(1, n) },
        _ => Rule::EpsBall { eps: 1.0 },
    };
    HypergraphConfig {
        rule,
        mode,
        norm,
        alpha,
        ..HypergraphConfig::default()
    }
}

/// `L = Σ Y ⊙ R` for the whole chain.
fn loss(
    f: &Array3<f64>,
    theta: &Array2<f64>,
    w: &Array2<f64>,
    r: &Array3<f64>,
    cfg: &HypergraphConfig,
) -> f64 {
    let (y, _) =
        hypergraph_conv_forward(f.view(), None, theta.view(), Some(w.view()), cfg).unwrap();
    (&y * r).sum()
}

/// A few entry indices of a tensor of `len` elements, spread deterministically.
fn picks(len: usize, count: usize, salt: usize) -> Vec<usize> {
    (0..count.min(len))
        .map(|t| (t * 7919 + salt * 104729) % len)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    /// dF (through X = F, and through the structure in soft mode), dΘ and dw of the whole
    /// chain features → incidence → convolution match central differences. Straight-through
    /// gradients are not derivatives of the forward; their Θ and w parts are checked here
    /// (they equal the hard ones) and their structure part against the dense oracle in
    /// `oracle.rs`.
    #[test]
    fn chain_backward_matches_finite_differences(
        b in 1usize..=3, n in 2usize..=64, d in 1usize..=32, c in 1usize..=6,
        (rule, mode, norm) in config_strategy(), k in 1usize..=12, alpha in 1.0f64..12.0,
        seed in 0u64..1_000_000,
    ) {
        let f = features(b, n, d, 0.5, seed);
        let cfg = fit_config(&f, make_config(rule, mode, norm, n, k, alpha));
        prop_assume!(cfg.is_some());
        let cfg = cfg.unwrap();
        let theta = matrix(d, c, seed + 1);
        let w = positive(b, n, seed + 2);
        let r = features(b, n, c, 0.0, seed + 3);

        let (_, ctx) = hypergraph_conv_forward(f.view(), None, theta.view(), Some(w.view()), &cfg).unwrap();
        let g = hypergraph_conv_backward(&ctx, f.view(), None, theta.view(), Some(w.view()), r.view()).unwrap();

        let check_f = mode != IncidenceMode::StraightThrough;
        if check_f {
            for idx in picks(f.len(), 10, seed as usize) {
                let (mut fp, mut fm) = (f.clone(), f.clone());
                fp.as_slice_mut().unwrap()[idx] += H;
                fm.as_slice_mut().unwrap()[idx] -= H;
                let num = (loss(&fp, &theta, &w, &r, &cfg) - loss(&fm, &theta, &w, &r, &cfg)) / (2.0 * H);
                let ana = g.df.as_slice().unwrap()[idx];
                prop_assert!(close(ana, num), "dF[{idx}] {cfg:?}: analytic {ana} numeric {num}");
            }
        }
        for idx in picks(theta.len(), 6, seed as usize) {
            let (mut tp, mut tm) = (theta.clone(), theta.clone());
            tp.as_slice_mut().unwrap()[idx] += H;
            tm.as_slice_mut().unwrap()[idx] -= H;
            let num = (loss(&f, &tp, &w, &r, &cfg) - loss(&f, &tm, &w, &r, &cfg)) / (2.0 * H);
            let ana = g.dtheta.as_slice().unwrap()[idx];
            prop_assert!(close(ana, num), "dTheta[{idx}] {cfg:?}: analytic {ana} numeric {num}");
        }
        for idx in picks(w.len(), 6, seed as usize) {
            let (mut wp, mut wm) = (w.clone(), w.clone());
            wp.as_slice_mut().unwrap()[idx] += H;
            wm.as_slice_mut().unwrap()[idx] -= H;
            let num = (loss(&f, &theta, &wp, &r, &cfg) - loss(&f, &theta, &wm, &r, &cfg)) / (2.0 * H);
            let ana = g.dweights.as_ref().unwrap().as_slice().unwrap()[idx];
            prop_assert!(close(ana, num), "dW[{idx}] {cfg:?}: analytic {ana} numeric {num}");
        }
    }

    /// With a separate X, dX comes back on its own and dF only holds the structure part.
    #[test]
    fn separate_x_gradient_matches_finite_differences(
        n in 2usize..=40, d in 1usize..=16, dx in 1usize..=12, seed in 0u64..1_000_000,
        soft in any::<bool>(),
    ) {
        let f = features(2, n, d, 0.5, seed);
        let mode = if soft { IncidenceMode::Soft } else { IncidenceMode::Hard };
        let cfg = HypergraphConfig { mode, alpha: 3.0, ..HypergraphConfig::default() };
        let cfg = fit_config(&f, cfg);
        prop_assume!(cfg.is_some());
        let cfg = cfg.unwrap();
        let x = features(2, n, dx, 0.0, seed + 5);
        let theta = matrix(dx, 3, seed + 1);
        let r = features(2, n, 3, 0.0, seed + 3);
        let l = |f: &Array3<f64>, x: &Array3<f64>| {
            let (y, _) = hypergraph_conv_forward(f.view(), Some(x.view()), theta.view(), None, &cfg).unwrap();
            (&y * &r).sum()
        };
        let (_, ctx) = hypergraph_conv_forward(f.view(), Some(x.view()), theta.view(), None, &cfg).unwrap();
        let g = hypergraph_conv_backward(&ctx, f.view(), Some(x.view()), theta.view(), None, r.view()).unwrap();
        let gx = g.dx.expect("dX when X is given");
        for idx in picks(x.len(), 8, seed as usize) {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp.as_slice_mut().unwrap()[idx] += H;
            xm.as_slice_mut().unwrap()[idx] -= H;
            let num = (l(&f, &xp) - l(&f, &xm)) / (2.0 * H);
            prop_assert!(close(gx.as_slice().unwrap()[idx], num));
        }
        for idx in picks(f.len(), 8, seed as usize) {
            let (mut fp, mut fm) = (f.clone(), f.clone());
            fp.as_slice_mut().unwrap()[idx] += H;
            fm.as_slice_mut().unwrap()[idx] -= H;
            let num = (l(&fp, &x) - l(&fm, &x)) / (2.0 * H);
            prop_assert!(close(g.df.as_slice().unwrap()[idx], num), "dF[{idx}] {num}");
        }
    }
}

fn hsc_loss(
    f: &Array3<f64>,
    w: &Array2<f64>,
    p: &HscParams<f64>,
    cfg: &HypergraphConfig,
    rp: &Array3<f64>,
    rg: &Array2<f64>,
) -> f64 {
    let (out, _) = hsc_forward(f.view(), Some(w.view()), p, cfg).unwrap();
    (&out.patches * rp).sum() + (&out.global * rg).sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The HSC layer `F̃ = (F + act(Y)) Aᵀ + b`, `F^g = mean(F̃) Gᵀ + c`: every parameter's
    /// gradient against central differences.
    #[test]
    fn hsc_backward_matches_finite_differences(
        b in 1usize..=2, n in 2usize..=24, d in 1usize..=8, d_out in 1usize..=6, e in 1usize..=4,
        act in 0u8..3, soft in any::<bool>(), seed in 0u64..1_000_000,
    ) {
        let f = features(b, n, d, 0.5, seed);
        let mode = if soft { IncidenceMode::Soft } else { IncidenceMode::Hard };
        let cfg = fit_config(&f, HypergraphConfig { mode, alpha: 3.0, ..HypergraphConfig::default() });
        prop_assume!(cfg.is_some());
        let cfg = cfg.unwrap();
        let activation = [Activation::Identity, Activation::GeluTanh, Activation::LeakyRelu(0.1)][act as usize];
        let mut p = HscParams {
            theta: matrix(d, d, seed + 1),
            a: matrix(d_out, d, seed + 2),
            b: matrix(1, d_out, seed + 3).row(0).to_owned(),
            g_weight: matrix(e, d_out, seed + 4),
            g_bias: matrix(1, e, seed + 5).row(0).to_owned(),
            activation,
        };
        let w = positive(b, n, seed + 6);
        let rp = features(b, n, d_out, 0.0, seed + 7);
        let rg = matrix(b, e, seed + 8);
        let (_, ctx) = hsc_forward(f.view(), Some(w.view()), &p, &cfg).unwrap();
        // The leaky ReLU has a kink at 0: keep the convolution's outputs away from it.
        let (y, _) = hypergraph_conv_forward(f.view(), None, p.theta.view(), Some(w.view()), &cfg).unwrap();
        prop_assume!(act != 2 || y.iter().all(|v| v.abs() > 1e-4));
        let g = hsc_backward(&ctx, f.view(), Some(w.view()), &p, Some(rp.view()), Some(rg.view())).unwrap();

        let fd = |p: &HscParams<f64>, f: &Array3<f64>, w: &Array2<f64>| hsc_loss(f, w, p, &cfg, &rp, &rg);
        macro_rules! check {
            ($name:literal, $grad:expr, $tensor:expr) => {{
                let len = $tensor.len();
                for idx in picks(len, 5, seed as usize) {
                    let orig = $tensor.as_slice().unwrap()[idx];
                    $tensor.as_slice_mut().unwrap()[idx] = orig + H;
                    let lp = fd(&p, &f, &w);
                    $tensor.as_slice_mut().unwrap()[idx] = orig - H;
                    let lm = fd(&p, &f, &w);
                    $tensor.as_slice_mut().unwrap()[idx] = orig;
                    let num = (lp - lm) / (2.0 * H);
                    let ana = $grad.as_slice().unwrap()[idx];
                    prop_assert!(close(ana, num), "{}[{idx}]: analytic {ana} numeric {num}", $name);
                }
            }};
        }
        check!("theta", g.dtheta, p.theta);
        check!("a", g.da, p.a);
        check!("b", g.db, p.b);
        check!("g_weight", g.dg_weight, p.g_weight);
        check!("g_bias", g.dg_bias, p.g_bias);
        let (mut f, mut w) = (f.clone(), w.clone());
        let fd = |p: &HscParams<f64>, f: &Array3<f64>, w: &Array2<f64>| hsc_loss(f, w, p, &cfg, &rp, &rg);
        for idx in picks(f.len(), 6, seed as usize) {
            let orig = f.as_slice().unwrap()[idx];
            f.as_slice_mut().unwrap()[idx] = orig + H;
            let lp = fd(&p, &f, &w);
            f.as_slice_mut().unwrap()[idx] = orig - H;
            let lm = fd(&p, &f, &w);
            f.as_slice_mut().unwrap()[idx] = orig;
            let num = (lp - lm) / (2.0 * H);
            prop_assert!(close(g.df.as_slice().unwrap()[idx], num), "dF[{idx}] {num}");
        }
        for idx in picks(w.len(), 4, seed as usize) {
            let orig = w.as_slice().unwrap()[idx];
            w.as_slice_mut().unwrap()[idx] = orig + H;
            let lp = fd(&p, &f, &w);
            w.as_slice_mut().unwrap()[idx] = orig - H;
            let lm = fd(&p, &f, &w);
            w.as_slice_mut().unwrap()[idx] = orig;
            let num = (lp - lm) / (2.0 * H);
            prop_assert!(close(g.dweights.as_ref().unwrap().as_slice().unwrap()[idx], num), "dW[{idx}] {num}");
        }
    }

    /// Row normalisation on its own.
    #[test]
    fn row_normalisation_backward_matches_finite_differences(
        n in 1usize..=10, d in 1usize..=8, seed in 0u64..1_000_000,
    ) {
        let f = features(1, n, d, 0.0, seed);
        let r = features(1, n, d, 0.0, seed + 1);
        let (_, ctx) = row_normalize_forward(f.view(), 1e-12).unwrap();
        let g = row_normalize_backward(&ctx, r.view()).unwrap();
        let l = |f: &Array3<f64>| (&row_normalize_forward(f.view(), 1e-12).unwrap().0 * &r).sum();
        for idx in 0..f.len() {
            let (mut fp, mut fm) = (f.clone(), f.clone());
            fp.as_slice_mut().unwrap()[idx] += H;
            fm.as_slice_mut().unwrap()[idx] -= H;
            let num = (l(&fp) - l(&fm)) / (2.0 * H);
            prop_assert!(close(g.as_slice().unwrap()[idx], num));
        }
    }
}
