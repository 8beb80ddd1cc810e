//! The `hipl` binary on bad input: every failure exits with status 1 and one
//! `error: ...` line naming the file or the argument, never a panic.

mod cli_util;

use cli_util::*;
use ndarray::{Array2, Array3};
use tempfile::TempDir;

/// A folder with good features `f.npy` `[1, 6, 3]` and `theta` `t.npy` `[3, 3]`.
struct Fixture {
    dir: TempDir,
    f: String,
    t: String,
}

impl Fixture {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let f = put(dir.path(), "f.npy", &r3::<f32>(1, 6, 3, 1));
        let t = put(dir.path(), "t.npy", &Array2::<f32>::eye(3));
        Fixture { dir, f, t }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    /// `hipl conv --features features --theta theta --out y.npy extra...` must fail
    /// naming `needle`.
    fn conv_fails(&self, features: &str, theta: &str, extra: &[&str], needle: &str) {
        let y = self.path("y.npy");
        let mut args = vec![
            "conv",
            "--features",
            features,
            "--theta",
            theta,
            "--out",
            &y,
        ];
        args.extend_from_slice(extra);
        assert_fails(&args, needle);
    }
}

#[test]
fn conv_refuses_missing_corrupt_and_mistyped_files() {
    let fx = Fixture::new();
    let (f, t) = (fx.f.as_str(), fx.t.as_str());
    let missing = fx.path("missing.npy");
    fx.conv_fails(&missing, t, &[], "missing.npy");
    fx.conv_fails(f, &missing, &[], "given to `--theta`");

    let corrupt = fx.path("corrupt.npy");
    std::fs::write(&corrupt, b"this is not an npy file at all").unwrap();
    fx.conv_fails(&corrupt, t, &[], "corrupt.npy");
    let truncated = fx.path("truncated.npy");
    let full = std::fs::read(f).unwrap();
    std::fs::write(&truncated, &full[..full.len() - 8]).unwrap();
    fx.conv_fails(&truncated, t, &[], "truncated.npy");

    let ints = put(fx.dir.path(), "ints.npy", &Array3::<i64>::zeros((1, 6, 3)));
    fx.conv_fails(&ints, t, &[], "`--features` holds dtype '<i8'");
    let t64 = put(fx.dir.path(), "t64.npy", &Array2::<f64>::eye(3));
    fx.conv_fails(f, &t64, &[], "all inputs must share one dtype");
    let flat = put(fx.dir.path(), "flat.npy", &Array2::<f32>::ones((6, 3)));
    fx.conv_fails(&flat, t, &[], "must have 3 dimensions");
}

#[test]
fn conv_refuses_shapes_that_disagree_and_non_finite_values() {
    let fx = Fixture::new();
    let (f, t) = (fx.f.as_str(), fx.t.as_str());
    let d = fx.dir.path();
    let t_bad = put(d, "t_bad.npy", &Array2::<f32>::eye(4));
    fx.conv_fails(f, &t_bad, &[], "`theta`");
    let x_bad = put(d, "x_bad.npy", &r3::<f32>(1, 5, 3, 2));
    fx.conv_fails(f, t, &["--x", &x_bad], "`x`");
    let w_bad = put(d, "w_bad.npy", &Array2::<f32>::ones((1, 5)));
    fx.conv_fails(f, t, &["--weights", &w_bad], "`weights`");
    let w_neg = put(d, "w_neg.npy", &Array2::<f32>::from_elem((1, 6), -1.0));
    fx.conv_fails(f, t, &["--weights", &w_neg], "hyperedge weights >= 0");
    let g_bad = put(d, "g_bad.npy", &r3::<f32>(1, 6, 2, 3));
    let grads = fx.path("grads");
    fx.conv_fails(
        f,
        t,
        &["--grad-output", &g_bad, "--grads-out", &grads],
        "`--grad-output`",
    );
    assert!(
        !std::path::Path::new(&fx.path("y.npy")).exists(),
        "a bad --grad-output must fail before Y is written"
    );

    let mut nan = r3::<f32>(1, 6, 3, 4);
    nan[[0, 2, 1]] = f32::NAN;
    let nan = put(d, "nan.npy", &nan);
    fx.conv_fails(&nan, t, &[], "non-finite value in `features` at [0, 2, 1]");
    let mut inf = Array2::<f32>::eye(3);
    inf[[1, 1]] = f32::INFINITY;
    let inf = put(d, "inf.npy", &inf);
    fx.conv_fails(f, &inf, &[], "non-finite value in `theta`");

    let empty = put(d, "empty.npy", &Array3::<f32>::zeros((0, 6, 3)));
    fx.conv_fails(&empty, t, &[], "non-empty batch");
    let single = put(d, "single.npy", &r3::<f32>(1, 1, 3, 5));
    fx.conv_fails(&single, t, &[], "N >= 2");
    let zero_rows = put(d, "zero.npy", &Array3::<f32>::zeros((1, 6, 3)));
    fx.conv_fails(&zero_rows, t, &[], "zero-norm row");
}

#[test]
fn conv_refuses_bad_rule_flags() {
    let fx = Fixture::new();
    let (f, t) = (fx.f.as_str(), fx.t.as_str());
    fx.conv_fails(f, t, &["--alpha", "0"], "`alpha`");
    fx.conv_fails(f, t, &["--alpha", "-2"], "`alpha`");
    fx.conv_fails(f, t, &["--rule", "knn", "--k", "7"], "1 <= k <= N = 6");
    fx.conv_fails(f, t, &["--rule", "knn"], "`--k`");
    fx.conv_fails(f, t, &["--rule", "eps"], "`--eps`");
    fx.conv_fails(f, t, &["--k", "3"], "`--k`");
    fx.conv_fails(f, t, &["--top-k", "9"], "`top_k`");
    // Usage errors, found by clap, exit 1 too.
    fx.conv_fails(f, t, &["--mode", "x"], "--mode");
    assert_fails(&["conv", "--features", f, "--out", "y.npy"], "--theta");
}

#[test]
fn hypergraph_and_demo_refuse_bad_inputs() {
    let fx = Fixture::new();
    let missing = fx.path("missing.npy");
    assert_fails(&["hypergraph", "--features", &missing], "missing.npy");
    let ints = put(fx.dir.path(), "ints.npy", &Array3::<i64>::zeros((1, 6, 3)));
    assert_fails(
        &["hypergraph", "--features", &ints],
        "`--features` holds dtype",
    );
    let bad_out = fx.path("no/such/dir/h.npy");
    let args = [
        "hypergraph",
        "--features",
        &fx.f,
        "--incidence-out",
        &bad_out,
    ];
    assert_fails(&args, "h.npy");
    assert_fails(&args, "given to `--incidence-out`");
    assert_fails(
        &[
            "hypergraph",
            "--features",
            &fx.f,
            "--mode",
            "soft",
            "--repr",
            "csr",
        ],
        "`representation`",
    );

    let out = fx.path("demo");
    assert_fails(&["demo", &missing, "--out", &out], "missing.npy");
    assert_fails(&["demo", &fx.f, "--out", &out], "f.npy");
    let img = carried_image();
    let img = img.to_str().unwrap();
    assert_fails(&["demo", img, "--patch", "0", "--out", &out], "--patch");
    assert_fails(&["demo", img, "--size", "20", "--out", &out], "--size");
    assert_fails(
        &["demo", img, "--size", "56", "--k", "500", "--out", &out],
        "`k`",
    );
}
