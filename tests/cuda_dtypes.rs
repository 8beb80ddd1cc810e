//! The bf16 and f16 entry points of every kernel that has them, against f64 references on the
//! same rounded inputs (the f32 entries are covered op by op in the other kernel tests).

mod cuda_common;

use cuda_common::{assert_close, bit, device, features, rng};
use half::{bf16, f16};
use hipl::cuda::ops::csr::to_csr;
use hipl::cuda::ops::incidence::{select_incidence, threshold_incidence, GemmUnits, Selection};
use hipl::cuda::ops::norm::{normalize_rows, normalize_rows_backward};
use hipl::cuda::ops::soft::sigmoid_incidence;
use hipl::cuda::ops::spmm::spmm;
use hipl::cuda::ops::Shape;
use hipl::cuda::{Device, Float};
use rand::Rng;

trait Half: Float {
    fn from(x: f32) -> Self;
    fn to(self) -> f32;
}
impl Half for bf16 {
    fn from(x: f32) -> Self {
        bf16::from_f32(x)
    }
    fn to(self) -> f32 {
        self.to_f32()
    }
}
impl Half for f16 {
    fn from(x: f32) -> Self {
        f16::from_f32(x)
    }
    fn to(self) -> f32 {
        self.to_f32()
    }
}

/// Rounds f32 features to `T`, returning both the `T` values and their exact f32 values.
fn round<T: Half>(f: &[f32]) -> (Vec<T>, Vec<f32>) {
    let t: Vec<T> = f.iter().map(|&x| T::from(x)).collect();
    let back = t.iter().map(|&x| x.to()).collect();
    (t, back)
}

/// f̂ as the device stores it (rounded to T), read back as f32.
fn device_fhat<T: Half>(
    dev: &Device,
    f: &[T],
    shape: Shape,
) -> (Vec<f32>, hipl::cuda::DeviceBuffer<T>) {
    let n = normalize_rows(dev, &dev.upload(f).unwrap(), shape, 1e-12).unwrap();
    (
        dev.download(&n.fhat)
            .unwrap()
            .iter()
            .map(|&x| x.to())
            .collect(),
        n.fhat,
    )
}

fn normalize_backward_for<T: Half>(tol: f64) {
    let dev = device();
    let (b, n, d) = (1, 5, 33);
    let shape = Shape::new(b, n, d).unwrap();
    let (ft, f32s) = round::<T>(&features(&mut rng(1), b, n, d, 0.0));
    let g = features(&mut rng(2), b, n, d, 0.0);
    let saved = normalize_rows(&dev, &dev.upload(&ft).unwrap(), shape, 1e-12).unwrap();
    let df = normalize_rows_backward(&dev, &saved, &dev.upload(&g).unwrap(), shape, 1e-12).unwrap();
    let mut want = Vec::new();
    for (r, gr) in f32s.chunks(d).zip(g.chunks(d)) {
        let norm = r.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        let hat: Vec<f64> = r.iter().map(|&x| x as f64 / norm).collect();
        let dot: f64 = hat.iter().zip(gr).map(|(h, &y)| h * y as f64).sum();
        want.extend(
            hat.iter()
                .zip(gr)
                .map(|(h, &y)| (y as f64 - h * dot) / norm),
        );
    }
    assert_close(&dev.download(&df).unwrap(), &want, tol, T::DTYPE);
}

#[test]
fn normalize_backward_half_types() {
    normalize_backward_for::<bf16>(2e-2);
    normalize_backward_for::<f16>(3e-3);
}

fn threshold_simt_for<T: Half>() {
    let dev = device();
    let (n, d, tau) = (70, 9, 0.1);
    let shape = Shape::new(1, n, d).unwrap();
    let (ft, _) = round::<T>(&features(&mut rng(3), 1, n, d, 0.5));
    let (hat, fhat) = device_fhat(&dev, &ft, shape);
    let mask = dev
        .download(
            &threshold_incidence(&dev, &fhat, shape, tau, GemmUnits::Simt)
                .unwrap()
                .mask,
        )
        .unwrap();
    // Reference on the device's own rounded f̂: only the f32 summation order differs.
    let s_plain: Vec<f64> = (0..n * n)
        .map(|e| {
            (0..d)
                .map(|k| hat[e / n * d + k] as f64 * hat[e % n * d + k] as f64)
                .sum()
        })
        .collect();
    for i in 0..n {
        for j in 0..n {
            if i != j && (s_plain[i * n + j] - tau as f64).abs() > 1e-5 {
                assert_eq!(
                    bit(&mask, 0, n, i, j),
                    s_plain[i * n + j] > tau as f64,
                    "{} ({i}, {j})",
                    T::DTYPE
                );
            }
        }
    }
}

#[test]
fn threshold_incidence_simt_half_types() {
    threshold_simt_for::<bf16>();
    threshold_simt_for::<f16>();
}

fn knn_for<T: Half>() {
    let dev = device();
    let (n, d, k) = (65, 6, 4);
    let shape = Shape::new(1, n, d).unwrap();
    let (ft, _) = round::<T>(&features(&mut rng(4), 1, n, d, 0.2));
    let (hat, fhat) = device_fhat(&dev, &ft, shape);
    let mask = dev
        .download(&select_incidence(&dev, &fhat, shape, Selection::Knn { k }).unwrap())
        .unwrap();
    let s: Vec<f64> = (0..n * n)
        .map(|e| {
            (0..d)
                .map(|q| hat[e / n * d + q] as f64 * hat[e % n * d + q] as f64)
                .sum()
        })
        .collect();
    let mut checked = 0;
    for j in 0..n {
        let mut others: Vec<usize> = (0..n).filter(|&i| i != j).collect();
        others.sort_by(|&a, &b| {
            s[j * n + b]
                .partial_cmp(&s[j * n + a])
                .unwrap()
                .then(a.cmp(&b))
        });
        if s[j * n + others[k - 2]] - s[j * n + others[k - 1]] <= 1e-5 {
            continue; // ambiguous cut
        }
        let mut want: Vec<usize> = others[..k - 1].to_vec();
        want.push(j);
        want.sort_unstable();
        let got: Vec<usize> = (0..n).filter(|&i| bit(&mask, 0, n, i, j)).collect();
        assert_eq!(got, want, "{} hyperedge {j}", T::DTYPE);
        checked += 1;
    }
    assert!(checked > n / 2);
}

#[test]
fn knn_selection_half_types() {
    knn_for::<bf16>();
    knn_for::<f16>();
}

fn sigmoid_wmma_for<T: Half>() {
    let dev = device();
    let (b, n, d, alpha, tau) = (2, 70, 40, 4.0f32, 0.1f32);
    let shape = Shape::new(b, n, d).unwrap();
    let (ft, _) = round::<T>(&features(&mut rng(5), b, n, d, 0.5));
    let (hat, fhat) = device_fhat(&dev, &ft, shape);
    let w: Vec<f32> = (0..b * n).map(|i| 0.5 + (i % 3) as f32).collect();
    let soft = sigmoid_incidence(
        &dev,
        &fhat,
        shape,
        alpha,
        tau,
        Some(&dev.upload(&w).unwrap()),
        GemmUnits::TensorCores,
    )
    .unwrap();
    let mut inc = Vec::new();
    let mut d_v = Vec::new();
    let mut d_e = Vec::new();
    for img in 0..b {
        let h = &hat[img * n * d..(img + 1) * n * d];
        let s: Vec<f64> = (0..n * n)
            .map(|e| {
                (0..d)
                    .map(|q| h[e / n * d + q] as f64 * h[e % n * d + q] as f64)
                    .sum()
            })
            .collect();
        let i_of = |e: usize| 1.0 / (1.0 + (-(alpha as f64) * (s[e] - tau as f64)).exp());
        inc.extend((0..n * n).map(i_of));
        for i in 0..n {
            d_v.push(
                (0..n)
                    .map(|e| i_of(i * n + e) * w[img * n + e] as f64)
                    .sum(),
            );
            d_e.push((0..n).map(|r| i_of(r * n + i)).sum());
        }
    }
    assert_close(&dev.download(&soft.inc).unwrap(), &inc, 1e-5, "I");
    assert_close(&dev.download(&soft.d_v).unwrap(), &d_v, 1e-5, "d_v");
    assert_close(&dev.download(&soft.d_e).unwrap(), &d_e, 1e-5, "d_e");
}

#[test]
fn soft_incidence_tensor_cores_half_types() {
    sigmoid_wmma_for::<bf16>();
    sigmoid_wmma_for::<f16>();
}

fn spmm_for<T: Half>(tol: f64) {
    let dev = device();
    let (b, n, d) = (2, 40, 7);
    let shape = Shape::new(b, n, d).unwrap();
    let mut r = rng(6);
    let words = shape.words();
    let mut mask = vec![0u32; shape.mask_len()];
    for row in 0..b * n {
        for j in 0..n {
            if r.random_bool(0.8) {
                mask[row * words + j / 32] |= 1 << (j % 32);
            }
        }
    }
    let (xt, x32) = round::<T>(
        &(0..b * n * d)
            .map(|_| r.random_range(-1.0f32..1.0))
            .collect::<Vec<_>>(),
    );
    let csr = to_csr(&dev, &dev.upload(&mask).unwrap(), shape).unwrap();
    let got = dev
        .download(&spmm(&dev, &csr, &dev.upload(&xt).unwrap(), d, None, None).unwrap())
        .unwrap();
    let mut want = Vec::new();
    for img in 0..b {
        for i in 0..n {
            for c in 0..d {
                want.push(
                    (0..n)
                        .filter(|&j| bit(&mask, img, n, i, j))
                        .map(|j| x32[(img * n + j) * d + c] as f64)
                        .sum(),
                );
            }
        }
    }
    assert_close(&got, &want, tol, T::DTYPE);
}

#[test]
fn spmm_half_types() {
    spmm_for::<bf16>(1e-5);
    spmm_for::<f16>(1e-5);
}
