//! Bitmask → CSR, bit transpose, degrees and sparse products on the device against the CPU
//! path (`hipl::hypergraph::Bitmask`, `hipl::cpu::spmm`), on the emulator by default.

mod cuda_common;

use cuda_common::{assert_close, device, rng};
use hipl::cpu::spmm::{apply, Side};
use hipl::cuda::ops::csr::{row_counts, to_csr, transpose, weighted_degree};
use hipl::cuda::ops::soft::sigmoid_backward;
use hipl::cuda::ops::spmm::{degree_scales_hard, spmm};
use hipl::cuda::ops::Shape;
use hipl::hypergraph::{Bitmask, Incidence};
use rand::Rng;

/// A random bitmask per image with the given density, in the kernels' u32 layout, and the
/// CPU's Bitmask of each image.
fn random_masks(seed: u64, b: usize, n: usize, density: f64) -> (Vec<u32>, Vec<Bitmask>) {
    let mut r = rng(seed);
    let mut cpu = Vec::new();
    for _ in 0..b {
        let mut m = Bitmask::zeros(n, n);
        for i in 0..n {
            for j in 0..n {
                if r.random_bool(density) {
                    m.set(i, j);
                }
            }
        }
        cpu.push(m);
    }
    let words: Vec<u32> = cpu
        .iter()
        .flat_map(|m| m.words().iter().flat_map(|&w| [w as u32, (w >> 32) as u32]))
        .collect();
    (words, cpu)
}

const SIZES: &[usize] = &[1, 2, 3, 33, 64, 100];
const DENSITIES: &[f64] = &[0.0, 0.05, 0.5, 0.95, 1.0];

#[test]
fn csr_of_the_sparser_side_matches_the_cpu() {
    let dev = device();
    for &n in SIZES {
        for &rho in DENSITIES {
            let b = 2;
            let (words, cpu) = random_masks(n as u64 * 7 + (rho * 100.0) as u64, b, n, rho);
            let shape = Shape::new(b, n, 1).unwrap();
            let mask = dev.upload(&words).unwrap();
            let csr = to_csr(&dev, &mask, shape).unwrap();
            let row_ptr = dev.download(&csr.row_ptr).unwrap();
            let col_idx = dev.download(&csr.col_idx).unwrap();
            let comp = dev.download(&csr.complement).unwrap();
            let counts = dev
                .download(&row_counts(&dev, &mask, shape).unwrap())
                .unwrap();
            for (img, m) in cpu.iter().enumerate() {
                let ones = m.count_ones();
                assert_eq!(
                    comp[img] == 1,
                    2 * ones > n * n,
                    "complement choice, n {n}, rho {rho}"
                );
                let want = m.to_csr(comp[img] == 1);
                let rp = &row_ptr[img * (n + 1)..(img + 1) * (n + 1)];
                assert_eq!(
                    rp.iter().map(|&x| x as usize).collect::<Vec<_>>(),
                    want.row_ptr(),
                    "row_ptr n {n}"
                );
                let nnz = rp[n] as usize;
                assert_eq!(
                    &col_idx[img * csr.cap..img * csr.cap + nnz],
                    want.col_idx(),
                    "col_idx n {n}"
                );
                for i in 0..n {
                    assert_eq!(counts[img * n + i] as usize, m.row_count(i));
                }
            }
        }
    }
}

#[test]
fn csr_and_spmm_at_n_1000() {
    let dev = device();
    let (b, n, d) = (1, 1000, 3);
    for &rho in &[0.02, 0.97] {
        let (words, cpu) = random_masks(1000 + (rho * 100.0) as u64, b, n, rho);
        let shape = Shape::new(b, n, d).unwrap();
        let csr = to_csr(&dev, &dev.upload(&words).unwrap(), shape).unwrap();
        let comp = dev.download(&csr.complement).unwrap()[0] == 1;
        let want = cpu[0].to_csr(comp);
        let row_ptr: Vec<usize> = dev
            .download(&csr.row_ptr)
            .unwrap()
            .iter()
            .map(|&x| x as usize)
            .collect();
        assert_eq!(row_ptr, want.row_ptr(), "row_ptr rho {rho}");
        assert_eq!(
            &dev.download(&csr.col_idx).unwrap()[..want.nnz()],
            want.col_idx(),
            "col_idx rho {rho}"
        );

        let mut r = rng(8);
        let x: Vec<f32> = (0..n * d).map(|_| r.random_range(-1.0..1.0)).collect();
        let got = dev
            .download(&spmm(&dev, &csr, &dev.upload(&x).unwrap(), d, None, None).unwrap())
            .unwrap();
        let inc = Incidence::<f64>::Bitmask {
            h: cpu[0].clone(),
            ht: None,
        };
        let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let mut out = vec![0.0; n * d];
        apply(&inc, n, Side::H, &xs, d, &vec![1.0; n], &mut out);
        assert_close(&got, &out, 1e-6 * n as f64, &format!("spmm rho {rho}"));
    }
}

#[test]
fn bit_transpose_matches_the_cpu() {
    let dev = device();
    for &n in &[1, 3, 31, 33, 65, 100] {
        let (words, cpu) = random_masks(n as u64, 2, n, 0.3);
        let shape = Shape::new(2, n, 1).unwrap();
        let t = dev
            .download(&transpose(&dev, &dev.upload(&words).unwrap(), shape).unwrap())
            .unwrap();
        let want: Vec<u32> = cpu
            .iter()
            .flat_map(|m| {
                m.transpose()
                    .words()
                    .iter()
                    .flat_map(|&w| [w as u32, (w >> 32) as u32])
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(t, want, "n = {n}");
    }
}

#[test]
fn weighted_vertex_degree_matches_the_cpu() {
    let dev = device();
    for &n in &[2, 33, 100] {
        let (words, cpu) = random_masks(n as u64 + 3, 2, n, 0.4);
        let shape = Shape::new(2, n, 1).unwrap();
        let w: Vec<f32> = (0..2 * n).map(|i| 0.25 + (i % 7) as f32 * 0.5).collect();
        let mask = dev.upload(&words).unwrap();
        let got = dev
            .download(&weighted_degree(&dev, &mask, Some(&dev.upload(&w).unwrap()), shape).unwrap())
            .unwrap();
        let unit = dev
            .download(&weighted_degree(&dev, &mask, None, shape).unwrap())
            .unwrap();
        let mut want = Vec::new();
        let mut want_unit = Vec::new();
        for (img, m) in cpu.iter().enumerate() {
            for i in 0..n {
                want.push(m.iter_row(i).map(|j| w[img * n + j] as f64).sum::<f64>());
                want_unit.push(m.row_count(i) as f64);
            }
        }
        assert_close(&got, &want, 1e-6, "d_v");
        assert_close(&unit, &want_unit, 0.0, "unit d_v");
    }
}

/// `diag(s_out) op(H) diag(s_in) x` on the device (CSR of the sparser side, with the
/// complement correction) against the CPU's product on the same bitmask.
#[test]
fn spmm_with_scaling_and_complement_matches_the_cpu() {
    let dev = device();
    for &(n, d) in &[(1, 1), (3, 3), (33, 5), (70, 130), (100, 3)] {
        for &rho in &[0.1, 0.5, 0.97] {
            let b = 2;
            let (words, cpu) = random_masks(n as u64 * 31 + (rho * 10.0) as u64, b, n, rho);
            let shape = Shape::new(b, n, d).unwrap();
            let mut r = rng(5);
            let x: Vec<f32> = (0..b * n * d).map(|_| r.random_range(-1.0..1.0)).collect();
            let s_in: Vec<f32> = (0..b * n).map(|_| r.random_range(0.1..2.0)).collect();
            let s_out: Vec<f32> = (0..b * n).map(|_| r.random_range(0.1..2.0)).collect();
            let mask = dev.upload(&words).unwrap();
            let csr = to_csr(&dev, &mask, shape).unwrap();
            let (xd, sid, sod) = (
                dev.upload(&x).unwrap(),
                dev.upload(&s_in).unwrap(),
                dev.upload(&s_out).unwrap(),
            );
            let got = dev
                .download(&spmm(&dev, &csr, &xd, d, Some(&sid), Some(&sod)).unwrap())
                .unwrap();
            let plain = dev
                .download(&spmm(&dev, &csr, &xd, d, None, None).unwrap())
                .unwrap();

            let mut want = Vec::new();
            let mut want_plain = Vec::new();
            for (img, m) in cpu.iter().enumerate() {
                let inc = Incidence::<f64>::Bitmask {
                    h: m.clone(),
                    ht: None,
                };
                let xs: Vec<f64> = (0..n * d)
                    .map(|e| x[img * n * d + e] as f64 * s_in[img * n + e / d] as f64)
                    .collect();
                let so: Vec<f64> = s_out[img * n..(img + 1) * n]
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                let mut out = vec![0.0; n * d];
                apply(&inc, n, Side::H, &xs, d, &so, &mut out);
                want.extend(out);
                let xp: Vec<f64> = x[img * n * d..(img + 1) * n * d]
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                let mut out = vec![0.0; n * d];
                apply(&inc, n, Side::H, &xp, d, &vec![1.0; n], &mut out);
                want_plain.extend(out);
            }
            // The complement form subtracts from a column sum: error scales with N.
            let tol = 1e-6 * (n as f64).max(1.0);
            assert_close(
                &got,
                &want,
                tol,
                &format!("scaled spmm n {n} d {d} rho {rho}"),
            );
            assert_close(
                &plain,
                &want_plain,
                tol,
                &format!("spmm n {n} d {d} rho {rho}"),
            );
        }
    }
}

#[test]
fn zero_degrees_scale_to_zero_not_nan() {
    let dev = device();
    let d_v = dev.upload(&[0.0f32, 4.0, 0.25]).unwrap();
    let d_e = dev.upload(&[2u32, 0, 1]).unwrap();
    let w = dev.upload(&[3.0f32, 5.0, 0.5]).unwrap();
    let s = degree_scales_hard(&dev, &d_v, &d_e, Some(&w), 3).unwrap();
    assert_eq!(dev.download(&s.v_inv_sqrt).unwrap(), vec![0.0, 0.5, 2.0]);
    assert_eq!(dev.download(&s.v_inv).unwrap(), vec![0.0, 0.25, 4.0]);
    assert_eq!(dev.download(&s.e_scale).unwrap(), vec![1.5, 0.0, 0.5]);
}

#[test]
fn sigmoid_backward_is_alpha_i_one_minus_i() {
    let dev = device();
    let inc: Vec<f32> = (0..1000).map(|i| (i as f32 + 0.5) / 1000.0).collect();
    let d_inc: Vec<f32> = (0..1000).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
    let alpha = 7.5f32;
    let got = dev
        .download(
            &sigmoid_backward(
                &dev,
                &dev.upload(&inc).unwrap(),
                &dev.upload(&d_inc).unwrap(),
                alpha,
            )
            .unwrap(),
        )
        .unwrap();
    let want: Vec<f64> = inc
        .iter()
        .zip(&d_inc)
        .map(|(&i, &g)| g as f64 * alpha as f64 * i as f64 * (1.0 - i as f64))
        .collect();
    assert_close(&got, &want, 1e-6, "dS");
}
