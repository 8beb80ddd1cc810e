//! The `hipl` binary: outputs agree with the library, and files have the promised shapes
//! and dtypes.

mod cli_util;

use cli_util::*;
use hipl::{
    build_hypergraph, hypergraph_conv_backward, hypergraph_conv_forward, HypergraphConfig,
    IncidenceMode, Normalization, Real,
};
use ndarray::{Array2, Array3};
use ndarray_npy::{ReadableElement, WritableElement};
use std::path::Path;
use std::process::Command;
use tempfile::TempDir;

/// Runs `hipl conv` with and without every optional input and checks Y and the gradients
/// against the library's forward and backward on the same inputs and config.
fn conv_matches_library<T: Real + ReadableElement + WritableElement>(tol: f64) {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let (b, n, dim, dx, c) = (2, 7, 5, 4, 3);
    let f = r3::<T>(b, n, dim, 1);
    let x = r3::<T>(b, n, dx, 2);
    let theta_x = r2::<T>(dx, c, -1.0, 1.0, 3);
    let theta_f = r2::<T>(dim, c, -1.0, 1.0, 4);
    let w = r2::<T>(b, n, 0.5, 2.0, 5);
    let dy = r3::<T>(b, n, c, 6);
    let (fp, xp, tp_x, tp_f, wp, gp) = (
        put(d, "f.npy", &f),
        put(d, "x.npy", &x),
        put(d, "tx.npy", &theta_x),
        put(d, "tf.npy", &theta_f),
        put(d, "w.npy", &w),
        put(d, "g.npy", &dy),
    );

    let cases: Vec<(Vec<&str>, HypergraphConfig)> = vec![
        (vec![], HypergraphConfig::paper()),
        (
            vec![
                "--rule", "knn", "--k", "3", "--mode", "ste", "--alpha", "4", "--norm", "rw",
            ],
            HypergraphConfig {
                alpha: 4.0,
                ..HypergraphConfig::knn(3)
                    .with_mode(IncidenceMode::StraightThrough)
                    .with_norm(Normalization::RandomWalk)
            },
        ),
        (
            vec![
                "--top-k",
                "4",
                "--mode",
                "soft",
                "--alpha",
                "3",
                "--tau=-0.1",
            ],
            HypergraphConfig {
                alpha: 3.0,
                tau: -0.1,
                ..HypergraphConfig::top_k(4).with_mode(IncidenceMode::Soft)
            },
        ),
    ];
    for (i, (flags, cfg)) in cases.into_iter().enumerate() {
        for with_x in [false, true] {
            let out = d.join(format!("y{i}{with_x}.npy"));
            let grads = d.join(format!("g{i}{with_x}"));
            let mut args = vec!["conv", "--features", &fp, "--out", out.to_str().unwrap()];
            args.extend(["--grad-output", &gp, "--grads-out", grads.to_str().unwrap()]);
            if with_x {
                args.extend(["--x", &xp, "--theta", &tp_x, "--weights", &wp]);
            } else {
                args.extend(["--theta", &tp_f]);
            }
            args.extend(flags.iter().copied());
            let o = hipl(&args);
            assert_ok(&o);

            let (xv, theta, wv) = if with_x {
                (Some(x.view()), theta_x.view(), Some(w.view()))
            } else {
                (None, theta_f.view(), None)
            };
            let (y, ctx) = hypergraph_conv_forward(f.view(), xv, theta, wv, &cfg).unwrap();
            let g = hypergraph_conv_backward(&ctx, f.view(), xv, theta, wv, dy.view()).unwrap();
            let case = format!("case {i} {flags:?}, with x: {with_x}");
            assert!(max_diff(&get::<T, _>(&out), &y) <= tol, "Y differs: {case}");
            assert!(
                max_diff(&get::<T, _>(grads.join("dF.npy")), &g.df) <= tol,
                "dF: {case}"
            );
            assert!(
                max_diff(&get::<T, _>(grads.join("dTheta.npy")), &g.dtheta) <= tol,
                "{case}"
            );
            assert_eq!(grads.join("dX.npy").exists(), with_x, "{case}");
            assert_eq!(grads.join("dW.npy").exists(), with_x, "{case}");
            if with_x {
                let dxf: Array3<T> = get(grads.join("dX.npy"));
                assert_eq!(dxf.dim(), (b, n, dx));
                assert!(max_diff(&dxf, g.dx.as_ref().unwrap()) <= tol, "dX: {case}");
                let dwf: Array2<T> = get(grads.join("dW.npy"));
                assert_eq!(dwf.dim(), (b, n));
                assert!(
                    max_diff(&dwf, g.dweights.as_ref().unwrap()) <= tol,
                    "dW: {case}"
                );
            }
            let structural = cfg.mode != IncidenceMode::Hard;
            if with_x && structural {
                // F reaches the loss only through the structure here: its gradient is real.
                assert!(g.df.iter().any(|v| v.to64() != 0.0), "dF all zero: {case}");
            }
        }
    }
}

#[test]
fn conv_f32_outputs_and_gradients_equal_the_library() {
    conv_matches_library::<f32>(1e-5);
}

#[test]
fn conv_f64_outputs_and_gradients_equal_the_library() {
    conv_matches_library::<f64>(1e-12);
}

fn descr(path: impl AsRef<Path>) -> String {
    let bytes = std::fs::read(path).unwrap();
    let header = String::from_utf8_lossy(&bytes[10..]).to_string();
    header.split('\'').nth(3).unwrap().to_string()
}

#[test]
fn conv_outputs_keep_the_input_dtype() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    for (name, want) in [("f32", "<f4"), ("f64", "<f8")] {
        let (fp, tp, gp) = if name == "f32" {
            (
                put(d, "f32.npy", &r3::<f32>(1, 5, 3, 1)),
                put(d, "t32.npy", &Array2::<f32>::eye(3)),
                put(d, "g32.npy", &r3::<f32>(1, 5, 3, 2)),
            )
        } else {
            (
                put(d, "f64.npy", &r3::<f64>(1, 5, 3, 1)),
                put(d, "t64.npy", &Array2::<f64>::eye(3)),
                put(d, "g64.npy", &r3::<f64>(1, 5, 3, 2)),
            )
        };
        let y = d.join(format!("y{name}.npy"));
        let gd = d.join(format!("grads{name}"));
        let o = hipl(&[
            "conv",
            "--features",
            &fp,
            "--theta",
            &tp,
            "--out",
            y.to_str().unwrap(),
            "--grad-output",
            &gp,
            "--grads-out",
            gd.to_str().unwrap(),
        ]);
        assert_ok(&o);
        assert_eq!(descr(&y), want);
        assert_eq!(descr(gd.join("dF.npy")), want);
        assert_eq!(descr(gd.join("dTheta.npy")), want);
    }
}

#[test]
fn hypergraph_prints_json_stats_and_writes_u8_incidence() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let f = r3::<f32>(2, 9, 4, 7);
    let fp = put(d, "f.npy", &f);
    let hp = d.join("h.npy");
    let o = hipl(&[
        "hypergraph",
        "--features",
        &fp,
        "--rule",
        "knn",
        "--k",
        "3",
        "--incidence-out",
        hp.to_str().unwrap(),
    ]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    for key in [
        "B",
        "N",
        "D",
        "dtype",
        "rule",
        "build_ms",
        "density",
        "vertex_degree",
        "hyperedge_degree",
        "representation",
    ] {
        assert!(v.get(key).is_some(), "missing key {key} in {v}");
    }
    assert_eq!(
        (v["B"].as_u64(), v["N"].as_u64(), v["D"].as_u64()),
        (Some(2), Some(9), Some(4))
    );
    assert_eq!(v["rule"]["name"], "knn");
    assert_eq!(v["rule"]["k"], 3);
    assert_eq!(
        (v["rule"]["mode"].as_str(), v["rule"]["norm"].as_str()),
        (Some("hard"), Some("sym"))
    );
    assert!(v["build_ms"].as_f64().unwrap() >= 0.0);
    // kNN: every hyperedge has exactly k members.
    for stat in ["min", "mean", "max"] {
        assert_eq!(v["hyperedge_degree"][stat].as_f64(), Some(3.0), "{v}");
    }
    assert!((v["density"].as_f64().unwrap() - 3.0 / 9.0).abs() < 1e-12);

    let h: Array3<u8> = get(&hp);
    assert_eq!(h.dim(), (2, 9, 9));
    let expected = build_hypergraph(f.view(), &HypergraphConfig::knn(3))
        .unwrap()
        .to_dense();
    let expected: Vec<u8> = expected.iter().map(|&x| u8::from(x != 0.0)).collect();
    assert_eq!(h.as_slice().unwrap(), &expected[..]);
    for bi in 0..2 {
        for j in 0..9 {
            assert_eq!(
                h[[bi, j, j]],
                1,
                "centre {j} of image {bi} not in its hyperedge"
            );
        }
    }
}

#[test]
fn hypergraph_soft_mode_writes_soft_values() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let f = r3::<f64>(1, 6, 3, 8);
    let fp = put(d, "f.npy", &f);
    let hp = d.join("h.npy");
    let o = hipl(&[
        "hypergraph",
        "--features",
        &fp,
        "--mode",
        "soft",
        "--alpha",
        "2",
        "--incidence-out",
        hp.to_str().unwrap(),
    ]);
    assert_ok(&o);
    let h: Array3<f64> = get(&hp);
    let cfg = HypergraphConfig {
        alpha: 2.0,
        ..HypergraphConfig::paper()
    }
    .with_mode(IncidenceMode::Soft);
    let expected = build_hypergraph(f.view(), &cfg).unwrap().to_dense();
    let expected = Array3::from_shape_vec((1, 6, 6), expected).unwrap();
    assert!(max_diff(&h, &expected) <= 1e-12);
    assert!(h.iter().any(|&x| x > 0.0 && x < 1.0));
}

#[test]
fn demo_runs_on_the_carried_image_and_writes_pngs() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("demo");
    let img = carried_image();
    let o = hipl(&[
        "demo",
        img.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--size",
        "112",
    ]);
    assert_ok(&o);
    let text = stdout(&o);
    for needle in [
        "paper rule",
        "kNN (k = 9)",
        "density",
        "convolution",
        "most connected",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    for name in ["paper.png", "knn.png"] {
        let p = out.join(name);
        assert!(text.contains(p.to_str().unwrap()), "{name} not printed");
        let png = image::open(&p).expect("a readable PNG").to_rgb8();
        // Several tiles side by side, each the 8×5-patch image scaled up.
        assert!(png.width() > png.height() && png.height() >= 5 * 14);
    }
}

#[test]
fn demo_without_an_image_uses_the_default() {
    let dir = TempDir::new().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_hipl"))
        .args(["demo", "--out", "pngs", "--size", "56", "--k", "3"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_ok(&o);
    assert!(stdout(&o).contains("chelsea.png"));
    assert!(dir.path().join("pngs/knn.png").metadata().unwrap().len() > 0);
}
