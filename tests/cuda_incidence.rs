//! Normalisation and fused similarity → incidence kernels against plain references, on the
//! emulator (or a GPU with HIPL_TEST_DEVICE=cuda). Awkward sizes on purpose: N = 1, 2, 3, 33,
//! 65, 1000; D = 1, 3; N not a multiple of the 64-wide tile.

mod cuda_common;

use cuda_common::{assert_close, assert_padding_clear, bit, cosine, device, features, rng};
use half::{bf16, f16};
use hipl::cuda::ops::incidence::{select_incidence, threshold_incidence, GemmUnits, Selection};
use hipl::cuda::ops::norm::{normalize_rows, normalize_rows_backward};
use hipl::cuda::ops::Shape;
use hipl::cuda::{Device, Float};
use hipl::Error;

const EPS: f32 = 1e-12;

fn reference_normalize(f: &[f32], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut hat = Vec::new();
    let mut norms = Vec::new();
    for r in f.chunks(d) {
        let norm = r.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        norms.push(norm);
        hat.extend(r.iter().map(|&x| x as f64 / norm.max(EPS as f64)));
    }
    (hat, norms)
}

#[test]
fn normalize_rows_matches_reference_on_awkward_shapes() {
    let dev = device();
    for &(b, n, d) in &[(1, 1, 1), (2, 3, 3), (1, 33, 5), (2, 7, 70)] {
        let mut f = features(&mut rng(1), b, n, d, 0.5);
        f[0..d].iter_mut().for_each(|x| *x = 0.0); // a zero row: f̂ = 0, norm 0
        let shape = Shape::new(b, n, d).unwrap();
        let out = normalize_rows(&dev, &dev.upload(&f).unwrap(), shape, EPS).unwrap();
        let (hat, norms) = reference_normalize(&f, d);
        assert_close(&dev.download(&out.fhat).unwrap(), &hat, 1e-6, "fhat");
        assert_close(&dev.download(&out.norms).unwrap(), &norms, 1e-6, "norms");
    }
}

#[test]
fn normalize_rows_half_types_round_once() {
    let dev = device();
    let (b, n, d) = (1, 5, 40);
    let f = features(&mut rng(2), b, n, d, 0.0);
    let shape = Shape::new(b, n, d).unwrap();
    let fb: Vec<bf16> = f.iter().map(|&x| bf16::from_f32(x)).collect();
    let fh: Vec<f16> = f.iter().map(|&x| f16::from_f32(x)).collect();
    let hb = dev
        .download(
            &normalize_rows(&dev, &dev.upload(&fb).unwrap(), shape, EPS)
                .unwrap()
                .fhat,
        )
        .unwrap();
    let hh = dev
        .download(
            &normalize_rows(&dev, &dev.upload(&fh).unwrap(), shape, EPS)
                .unwrap()
                .fhat,
        )
        .unwrap();
    let (rb, _) = reference_normalize(&fb.iter().map(|x| x.to_f32()).collect::<Vec<_>>(), d);
    let (rh, _) = reference_normalize(&fh.iter().map(|x| x.to_f32()).collect::<Vec<_>>(), d);
    assert_close(
        &hb.iter().map(|x| x.to_f32()).collect::<Vec<_>>(),
        &rb,
        8e-3,
        "bf16 fhat",
    );
    assert_close(
        &hh.iter().map(|x| x.to_f32()).collect::<Vec<_>>(),
        &rh,
        1e-3,
        "f16 fhat",
    );
}

#[test]
fn non_finite_feature_is_an_error_naming_the_row() {
    let dev = device();
    let mut f = vec![1.0f32; 2 * 3 * 4];
    f[(3 + 2) * 4 + 1] = f32::NAN; // image 1, vertex 2
    let err = normalize_rows(
        &dev,
        &dev.upload(&f).unwrap(),
        Shape::new(2, 3, 4).unwrap(),
        EPS,
    )
    .err()
    .expect("NaN must be rejected");
    match err {
        Error::NonFinite { arg, index, .. } => {
            assert_eq!(arg, "features");
            assert_eq!(index, "image 1, vertex 2");
        }
        e => panic!("wrong error {e}"),
    }
}

#[test]
fn normalize_backward_matches_the_cpu() {
    let dev = device();
    let (b, n, d) = (1, 4, 9);
    let mut f = features(&mut rng(3), b, n, d, 0.0);
    f[0..d].iter_mut().for_each(|x| *x = 0.0); // zero row: df = df̂ / eps branch
    let g = features(&mut rng(4), b, n, d, 0.0);
    let shape = Shape::new(b, n, d).unwrap();
    let eps = 1e-3f32;
    let saved = normalize_rows(&dev, &dev.upload(&f).unwrap(), shape, eps).unwrap();
    let df = normalize_rows_backward(&dev, &saved, &dev.upload(&g).unwrap(), shape, eps).unwrap();
    // The CPU path's backward on the CPU path's forward (it accumulates into its output).
    let mut hat = vec![0.0f32; f.len()];
    let mut norms = vec![0.0f32; b * n];
    hipl::cpu::normalize::row_normalize(&f, d, eps, &mut hat, &mut norms);
    let mut cpu_df = vec![0.0f32; f.len()];
    hipl::cpu::normalize::row_normalize_backward(&hat, &norms, d, eps, &g, &mut cpu_df);
    let want: Vec<f64> = cpu_df.iter().map(|&v| v as f64).collect();
    assert_close(&dev.download(&df).unwrap(), &want, 1e-5, "df");
}

/// Runs normalisation + threshold incidence and checks every bit whose cosine is farther
/// than `margin` from tau, the diagonal, the padding and the degree counts.
fn check_threshold<T: Float>(
    dev: &Device,
    f: &[T],
    f32s: &[f32],
    shape: Shape,
    tau: f32,
    units: GemmUnits,
    margin: f64,
) {
    let (b, n, d) = (shape.b, shape.n, shape.d);
    let norm = normalize_rows(dev, &dev.upload(f).unwrap(), shape, EPS).unwrap();
    let inc = threshold_incidence(dev, &norm.fhat, shape, tau, units).unwrap();
    let mask = dev.download(&inc.mask).unwrap();
    let deg = dev.download(&inc.deg).unwrap();
    assert_padding_clear(&mask, b, n);
    let mut checked = 0;
    for img in 0..b {
        let s = cosine(&f32s[img * n * d..(img + 1) * n * d], n, d, EPS as f64);
        for i in 0..n {
            let row_count = (0..n).filter(|&j| bit(&mask, img, n, i, j)).count();
            assert_eq!(
                deg[img * n + i] as usize,
                row_count,
                "degree of vertex {i}, image {img}"
            );
            for j in 0..n {
                let got = bit(&mask, img, n, i, j);
                assert_eq!(
                    got,
                    bit(&mask, img, n, j, i),
                    "H not symmetric at ({i}, {j})"
                );
                if i == j {
                    assert!(got, "centre ({i}, {i}) missing");
                } else if (s[i * n + j] - tau as f64).abs() > margin {
                    assert_eq!(
                        got,
                        s[i * n + j] > tau as f64,
                        "bit ({i}, {j}) image {img}, S = {}",
                        s[i * n + j]
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(
        n < 2 || checked > 0,
        "no bit was far enough from tau to check"
    );
}

#[test]
fn threshold_incidence_simt_matches_reference_on_awkward_sizes() {
    let dev = device();
    for &(b, n, d, tau) in &[
        (1, 1, 3, -1e-4),
        (1, 2, 1, -1e-4),
        (2, 3, 3, 0.2),
        (1, 33, 3, 0.1),
        (2, 65, 5, 0.3),
        (1, 130, 17, 0.0),
    ] {
        let f = features(&mut rng(n as u64), b, n, d, 0.7);
        check_threshold(
            &dev,
            &f,
            &f,
            Shape::new(b, n, d).unwrap(),
            tau,
            GemmUnits::Simt,
            1e-5,
        );
    }
}

#[test]
fn threshold_incidence_simt_large_n() {
    let dev = device();
    let (b, n, d) = (1, 1000, 3);
    let f = features(&mut rng(7), b, n, d, 0.3);
    check_threshold(
        &dev,
        &f,
        &f,
        Shape::new(b, n, d).unwrap(),
        0.25,
        GemmUnits::Simt,
        1e-5,
    );
}

#[test]
fn threshold_incidence_half_types_simt_and_tensor_cores() {
    let dev = device();
    for &(n, d) in &[(3, 3), (70, 40)] {
        let f = features(&mut rng(11), 1, n, d, 0.5);
        let shape = Shape::new(1, n, d).unwrap();
        // The bf16/f16 pipeline rounds f̂ once more; compare away from tau by that much.
        let fb: Vec<bf16> = f.iter().map(|&x| bf16::from_f32(x)).collect();
        let fb32: Vec<f32> = fb.iter().map(|x| x.to_f32()).collect();
        check_threshold(&dev, &fb, &fb32, shape, 0.1, GemmUnits::Simt, 2e-2);
        check_threshold(&dev, &fb, &fb32, shape, 0.1, GemmUnits::TensorCores, 2e-2);
        let fh: Vec<f16> = f.iter().map(|&x| f16::from_f32(x)).collect();
        let fh32: Vec<f32> = fh.iter().map(|x| x.to_f32()).collect();
        check_threshold(&dev, &fh, &fh32, shape, 0.1, GemmUnits::TensorCores, 3e-3);
    }
}

#[test]
fn tensor_cores_reject_f32_features() {
    let dev = device();
    let shape = Shape::new(1, 4, 4).unwrap();
    let fhat = dev.upload(&[0.5f32; 16]).unwrap();
    assert!(matches!(
        threshold_incidence(&dev, &fhat, shape, 0.0, GemmUnits::TensorCores),
        Err(Error::InvalidArgument { .. })
    ));
}

/// Reference selection for hyperedge j: centre, then the k − 1 best others (ties to the lower
/// index), among those above tau when `tau` is given. None when the choice is numerically
/// ambiguous (a cosine within `margin` of the cut or of tau).
fn reference_selection(
    s: &[f64],
    n: usize,
    j: usize,
    k: usize,
    tau: Option<f64>,
    margin: f64,
) -> Option<Vec<usize>> {
    let mut others: Vec<usize> = (0..n).filter(|&i| i != j).collect();
    if let Some(t) = tau {
        if others.iter().any(|&i| (s[j * n + i] - t).abs() <= margin) {
            return None;
        }
        others.retain(|&i| s[j * n + i] > t);
    }
    others.sort_by(|&a, &b| {
        s[j * n + b]
            .partial_cmp(&s[j * n + a])
            .unwrap()
            .then(a.cmp(&b))
    });
    let keep = (k - 1).min(others.len());
    if keep < others.len()
        && keep > 0
        && s[j * n + others[keep - 1]] - s[j * n + others[keep]] <= margin
    {
        return None;
    }
    let mut sel: Vec<usize> = others[..keep].to_vec();
    sel.push(j);
    sel.sort_unstable();
    Some(sel)
}

fn check_selection(dev: &Device, f: &[f32], shape: Shape, rule: Selection) {
    let (b, n, d) = (shape.b, shape.n, shape.d);
    let norm = normalize_rows(dev, &dev.upload(f).unwrap(), shape, EPS).unwrap();
    let mask = dev
        .download(&select_incidence(dev, &norm.fhat, shape, rule).unwrap())
        .unwrap();
    assert_padding_clear(&mask, b, n);
    let (k, tau) = match rule {
        Selection::TopK { k, tau } => (k, Some(tau as f64)),
        Selection::Knn { k } => (k, None),
    };
    let mut checked = 0;
    for img in 0..b {
        let s = cosine(&f[img * n * d..(img + 1) * n * d], n, d, EPS as f64);
        for j in 0..n {
            let got: Vec<usize> = (0..n).filter(|&i| bit(&mask, img, n, i, j)).collect();
            assert!(got.contains(&j), "centre {j} missing");
            if let Some(want) = reference_selection(&s, n, j, k, tau, 1e-5) {
                assert_eq!(got, want, "hyperedge {j} of image {img}");
                checked += 1;
            }
        }
    }
    assert!(
        checked * 2 >= b * n,
        "too few unambiguous hyperedges ({checked})"
    );
}

#[test]
fn knn_selection_matches_reference() {
    let dev = device();
    for &(b, n, d, k) in &[
        (1, 1, 3, 1),
        (1, 2, 1, 2),
        (2, 3, 3, 2),
        (1, 33, 3, 5),
        (1, 130, 8, 9),
    ] {
        let f = features(&mut rng(20 + n as u64), b, n, d, 0.2);
        check_selection(&dev, &f, Shape::new(b, n, d).unwrap(), Selection::Knn { k });
    }
}

#[test]
fn top_k_cap_matches_reference() {
    let dev = device();
    for &(b, n, d, k, tau) in &[
        (1, 3, 3, 3, 0.0),
        (2, 33, 4, 4, 0.3),
        (1, 100, 6, 64, 0.2),
        (1, 70, 5, 1, 0.0),
    ] {
        let f = features(&mut rng(40 + n as u64), b, n, d, 0.5);
        check_selection(
            &dev,
            &f,
            Shape::new(b, n, d).unwrap(),
            Selection::TopK { k, tau },
        );
    }
}

#[test]
fn selection_ties_go_to_the_lower_index() {
    let dev = device();
    // Vertices 1, 2 and 3 are identical, so hyperedge 0 sees them at exactly equal cosine.
    let (n, d) = (5, 3);
    let f = vec![
        1.0, 0.2, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, -1.0, 0.5, 0.0f32,
    ];
    let shape = Shape::new(1, n, d).unwrap();
    let norm = normalize_rows(&dev, &dev.upload(&f).unwrap(), shape, EPS).unwrap();
    let mask = dev
        .download(&select_incidence(&dev, &norm.fhat, shape, Selection::Knn { k: 3 }).unwrap())
        .unwrap();
    let members: Vec<usize> = (0..n).filter(|&i| bit(&mask, 0, n, i, 0)).collect();
    assert_eq!(members, vec![0, 1, 2]);
}

#[test]
fn selection_rejects_k_out_of_range() {
    let dev = device();
    let shape = Shape::new(1, 80, 2).unwrap();
    let fhat = dev.upload(&vec![0.5f32; 160]).unwrap();
    for k in [0, 81, 65] {
        let r = select_incidence(&dev, &fhat, shape, Selection::Knn { k });
        assert!(matches!(r, Err(Error::InvalidArgument { .. })), "k = {k}");
    }
}
