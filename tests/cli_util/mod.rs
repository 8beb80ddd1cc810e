//! Helpers of the CLI tests: running the binary, writing and reading `.npy` inputs.
#![allow(dead_code)]

use hipl::Real;
use ndarray::{Array, Array2, Array3, ArrayD, Dimension};
use ndarray_npy::{read_npy, write_npy, ReadableElement, WritableElement};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn hipl<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hipl"))
        .args(args)
        .output()
        .expect("the hipl binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "hipl failed: {}\n{}",
        stderr(o),
        stdout(o)
    );
}

/// Writes `a` as `name` in `dir` and returns the path as a string.
pub fn put<T: WritableElement, D: Dimension>(dir: &Path, name: &str, a: &Array<T, D>) -> String {
    let p = dir.join(name);
    write_npy(&p, a).unwrap();
    p.to_str().unwrap().to_string()
}

pub fn get<T: ReadableElement, D: Dimension>(path: impl AsRef<Path>) -> Array<T, D> {
    read_npy(path.as_ref()).unwrap()
}

pub fn random<T: Real>(shape: &[usize], lo: f64, hi: f64, seed: u64) -> ArrayD<T> {
    let mut rng = StdRng::seed_from_u64(seed);
    ArrayD::from_shape_fn(shape, |_| T::of(rng.random_range(lo..hi)))
}

pub fn r3<T: Real>(b: usize, n: usize, d: usize, seed: u64) -> Array3<T> {
    random(&[b, n, d], -1.0, 1.0, seed)
        .into_dimensionality()
        .unwrap()
}

pub fn r2<T: Real>(r: usize, c: usize, lo: f64, hi: f64, seed: u64) -> Array2<T> {
    random(&[r, c], lo, hi, seed).into_dimensionality().unwrap()
}

pub fn max_diff<T: Real, D: Dimension>(a: &Array<T, D>, b: &Array<T, D>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x.to64() - y.to64()).abs())
        .fold(0.0, f64::max)
}

pub fn carried_image() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/images/chelsea.png")
}

/// Expects exit status 1, one `error:` line naming `needle`, and no panic.
pub fn assert_fails<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S], needle: &str) {
    let o = hipl(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "args {args:?}: stderr {err}");
    assert!(err.starts_with("error: "), "args {args:?}: stderr {err}");
    assert!(
        err.contains(needle),
        "args {args:?}: {needle:?} not in {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
}
