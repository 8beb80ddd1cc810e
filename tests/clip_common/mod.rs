//! Helpers shared by the CLIP tests: fixture paths, .npy reading, comparisons.
#![allow(dead_code)]
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use hipl::model::clip::ClipModel;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip")
}

pub fn tiny_dir() -> PathBuf {
    fixtures().join("tiny")
}

pub fn tiny(dtype: DType) -> ClipModel {
    ClipModel::load(&tiny_dir(), dtype, &Device::Cpu).expect("tiny fixture model loads")
}

/// A fixture array as a candle tensor (f32, on the CPU).
pub fn npy(name: &str) -> Tensor {
    let arr: ndarray::ArrayD<f32> =
        ndarray_npy::read_npy(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let shape = arr.shape().to_vec();
    let data: Vec<f32> = arr.iter().copied().collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// Largest absolute difference; the shapes must agree.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let a = a.to_dtype(DType::F32).unwrap();
    let b = b.to_dtype(DType::F32).unwrap();
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Asserts agreement within `tol` and returns the difference, printing it for the report.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f32) -> f32 {
    let d = max_abs_diff(got, want);
    eprintln!("parity {what}: max abs diff {d:.3e}");
    assert!(d <= tol, "{what}: max abs diff {d} > {tol}");
    d
}

pub fn json(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}
