//! Metrics against scikit-learn and a per-threshold AUPRO reference (fixtures written by
//! tools/make_metric_fixtures.py), the sort-based AUPRO against a brute-force Rust
//! reference, and bad input.

use hipl::eval::{
    aupro, auroc, average_precision, evaluate, pixel_auroc, pixel_metrics, ClassOutputs,
    ProOptions, ProVariant,
};
use hipl::Error;
use ndarray::{Array1, Array3, ArrayD};
use ndarray_npy::read_npy;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::path::PathBuf;

/// The fixtures are computed in f64 by scikit-learn and by a plain per-threshold loop that
/// treats ties exactly as the sort-based sweep does, so agreement is to rounding; the
/// brief's bound for scikit-learn is 1e-6, this is far tighter.
const TOL: f64 = 1e-9;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/metrics")
        .join(name)
}

fn json(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Reads a float `.npy` of f64 or f32 as f64.
fn read_float(name: &str) -> ArrayD<f64> {
    let path = fixture(name);
    read_npy::<_, ArrayD<f64>>(&path)
        .or_else(|_| read_npy::<_, ArrayD<f32>>(&path).map(|a| a.mapv(f64::from)))
        .unwrap()
}

fn read_labels(name: &str) -> Vec<bool> {
    let a: Array1<u8> = read_npy(fixture(name)).unwrap();
    a.iter().map(|&v| v != 0).collect()
}

fn read_masks(name: &str) -> Array3<u8> {
    read_npy(fixture(name)).unwrap()
}

fn expected(entry: &Value, key: &str) -> f64 {
    entry[key].as_f64().unwrap()
}

#[test]
fn image_auroc_and_ap_equal_scikit_learn() {
    for entry in json("image.json") {
        let name = entry["name"].as_str().unwrap();
        let scores = read_float(&format!("image_{name}_scores.npy"));
        let scores = scores.as_slice().unwrap();
        let labels = read_labels(&format!("image_{name}_labels.npy"));

        let got = auroc(scores, &labels).unwrap();
        assert!(
            (got - expected(&entry, "auroc")).abs() < TOL,
            "{name}: auroc {got} vs {entry}"
        );
        let got = average_precision(scores, &labels).unwrap();
        assert!(
            (got - expected(&entry, "ap")).abs() < TOL,
            "{name}: ap {got} vs {entry}"
        );
    }
}

#[test]
fn image_metrics_on_f32_scores_equal_the_f64_widening() {
    let scores = read_float("image_float32_scores.npy");
    let labels = read_labels("image_float32_labels.npy");
    let narrow: Vec<f32> = scores.iter().map(|&v| v as f32).collect();
    let wide = scores.as_slice().unwrap();
    assert_eq!(
        auroc(&narrow, &labels).unwrap(),
        auroc(wide, &labels).unwrap()
    );
    assert_eq!(
        average_precision(&narrow, &labels).unwrap(),
        average_precision(wide, &labels).unwrap()
    );
}

#[test]
fn pixel_auroc_and_aupro_equal_the_references() {
    for entry in json("pixel.json") {
        let name = entry["name"].as_str().unwrap();
        let maps = read_float(&format!("pixel_{name}_maps.npy"));
        let maps = maps.into_dimensionality::<ndarray::Ix3>().unwrap();
        let masks = read_masks(&format!("pixel_{name}_masks.npy"));

        let px = pixel_metrics(maps.view(), masks.view(), &ProOptions::default()).unwrap();
        assert!(
            (px.auroc - expected(&entry, "pixel_auroc")).abs() < TOL,
            "{name}: {px:?}"
        );
        assert!(
            (px.aupro - expected(&entry, "aupro")).abs() < TOL,
            "{name}: {px:?} vs {entry}"
        );

        let minmax = ProOptions {
            variant: ProVariant::MinMaxRescaled,
            ..ProOptions::default()
        };
        let got = aupro(maps.view(), masks.view(), &minmax).unwrap();
        assert!(
            (got - expected(&entry, "aupro_minmax")).abs() < TOL,
            "{name}: minmax {got}"
        );
    }
}

/// Plain per-threshold AUPRO: 8-connected regions by flood fill, every distinct score a
/// threshold, each map re-thresholded at each one; MVTec integration to `limit`.
fn aupro_brute_force(maps: &Array3<f64>, masks: &Array3<u8>, limit: f64) -> f64 {
    let (n, h, w) = maps.dim();
    let mut regions: Vec<Vec<(usize, usize, usize)>> = Vec::new();
    let mut seen = Array3::<bool>::from_elem((n, h, w), false);
    for i in 0..n {
        for y in 0..h {
            for x in 0..w {
                if masks[[i, y, x]] == 0 || seen[[i, y, x]] {
                    continue;
                }
                let (mut stack, mut region) = (vec![(y, x)], Vec::new());
                seen[[i, y, x]] = true;
                while let Some((cy, cx)) = stack.pop() {
                    region.push((i, cy, cx));
                    for ny in cy.saturating_sub(1)..=(cy + 1).min(h - 1) {
                        for nx in cx.saturating_sub(1)..=(cx + 1).min(w - 1) {
                            if masks[[i, ny, nx]] != 0 && !seen[[i, ny, nx]] {
                                seen[[i, ny, nx]] = true;
                                stack.push((ny, nx));
                            }
                        }
                    }
                }
                regions.push(region);
            }
        }
    }
    let normal = masks.iter().filter(|&&m| m == 0).count() as f64;
    let mut thresholds: Vec<f64> = maps.iter().copied().collect();
    thresholds.sort_by(|a, b| b.total_cmp(a));
    thresholds.dedup();

    let mut points = vec![(0.0, 0.0)];
    for t in thresholds {
        let fp = maps
            .iter()
            .zip(masks.iter())
            .filter(|(&s, &m)| m == 0 && s >= t)
            .count();
        let pro = regions
            .iter()
            .map(|r| r.iter().filter(|&&p| maps[p] >= t).count() as f64 / r.len() as f64)
            .sum::<f64>()
            / regions.len() as f64;
        points.push((fp as f64 / normal, pro));
    }
    let mut area = 0.0;
    for pair in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        if x1 <= limit {
            area += (x1 - x0) * (y0 + y1) / 2.0;
        } else {
            if x0 < limit {
                let y = y0 + (y1 - y0) * (limit - x0) / (x1 - x0);
                area += (limit - x0) * (y0 + y) / 2.0;
            }
            break;
        }
    }
    area / limit
}

fn random_case(seed: u64, levels: Option<f64>) -> (Array3<f64>, Array3<u8>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (n, h, w) = (3, 14, 11);
    let masks = Array3::from_shape_fn((n, h, w), |(i, y, x)| {
        let blob = (y as f64 - 5.0).powi(2) + (x as f64 - 4.0 - i as f64).powi(2) < 6.0;
        (i != 1 && (blob || rng.random_bool(0.04))) as u8
    });
    let maps = Array3::from_shape_fn((n, h, w), |p| {
        let v: f64 = rng.random_range(0.0..1.0) + 0.6 * masks[p] as f64;
        levels.map_or(v, |l| (v * l).round() / l)
    });
    (maps, masks)
}

#[test]
fn sort_based_aupro_equals_per_threshold_reference_on_random_maps() {
    for seed in 0..24 {
        let levels = [None, Some(4.0), Some(10.0), Some(50.0)][seed as usize % 4];
        let (maps, masks) = random_case(seed, levels);
        for limit in [0.3, 0.05, 1.0] {
            let opts = ProOptions {
                fpr_limit: limit,
                variant: ProVariant::Mvtec,
            };
            let fast = aupro(maps.view(), masks.view(), &opts).unwrap();
            let slow = aupro_brute_force(&maps, &masks, limit);
            assert!(
                (fast - slow).abs() < 1e-12,
                "seed {seed} limit {limit}: {fast} vs {slow}"
            );
        }
    }
}

#[test]
fn aupro_over_the_whole_fpr_range_is_one_for_a_perfect_map() {
    let (_, masks) = random_case(3, None);
    let maps = masks.mapv(|m| m as f32);
    let opts = ProOptions {
        fpr_limit: 1.0,
        variant: ProVariant::Mvtec,
    };
    assert_eq!(aupro(maps.view(), masks.view(), &opts).unwrap(), 1.0);
    assert_eq!(pixel_auroc(maps.view(), masks.view()).unwrap(), 1.0);
}

#[test]
fn auroc_is_invariant_to_monotone_maps_and_flips_under_negation() {
    let mut rng = StdRng::seed_from_u64(7);
    let scores: Vec<f64> = (0..300)
        .map(|_| (rng.random_range(0.0..1.0f64) * 8.0).round())
        .collect();
    let labels: Vec<bool> = (0..300).map(|_| rng.random_bool(0.4)).collect();
    let a = auroc(&scores, &labels).unwrap();
    let cubed: Vec<f64> = scores.iter().map(|s| s.powi(3) + 2.0).collect();
    let negated: Vec<f64> = scores.iter().map(|s| -s).collect();
    assert!((auroc(&cubed, &labels).unwrap() - a).abs() < 1e-15);
    assert!((auroc(&negated, &labels).unwrap() - (1.0 - a)).abs() < 1e-15);
}

#[test]
fn a_tie_between_a_normal_and_an_anomalous_score_counts_one_half() {
    assert_eq!(auroc(&[0.5, 0.5], &[false, true]).unwrap(), 0.5);
    assert_eq!(auroc(&[0.0, -0.0], &[false, true]).unwrap(), 0.5);
    assert_eq!(average_precision(&[0.5, 0.5], &[false, true]).unwrap(), 0.5);
}

fn arg_of(e: &Error) -> String {
    match e {
        Error::InvalidArgument { arg, .. }
        | Error::Shape { arg, .. }
        | Error::NonFinite { arg, .. } => arg.clone(),
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn bad_image_inputs_are_errors_naming_the_argument() {
    let empty: [f64; 0] = [];
    let e = auroc(&empty, &[]).unwrap_err();
    assert_eq!(arg_of(&e), "scores", "{e}");

    let e = auroc(&[0.1, 0.2, 0.3], &[true, false]).unwrap_err();
    assert!(
        matches!(e, Error::Shape { .. }) && arg_of(&e) == "labels",
        "{e}"
    );

    let e = auroc(&[0.1, 0.2], &[true, true]).unwrap_err();
    assert_eq!(arg_of(&e), "labels");
    assert!(e.to_string().contains("both classes"), "{e}");
    let e = average_precision(&[0.1, 0.2], &[false, false]).unwrap_err();
    assert_eq!(arg_of(&e), "labels", "{e}");
    assert_eq!(average_precision(&[0.1, 0.2], &[true, true]).unwrap(), 1.0);

    let e = auroc(&[0.1, f64::NAN, 0.3], &[true, false, true]).unwrap_err();
    assert!(
        matches!(e, Error::NonFinite { .. }) && arg_of(&e) == "scores",
        "{e}"
    );
    assert!(e.to_string().contains("[1]"), "{e}");
    let e = average_precision(&[f32::INFINITY, 0.0], &[true, false]).unwrap_err();
    assert_eq!(arg_of(&e), "scores", "{e}");
}

#[test]
fn bad_pixel_inputs_are_errors_naming_the_argument() {
    let (maps, masks) = random_case(1, None);
    let opts = ProOptions::default();

    let short = maps.slice(ndarray::s![..2, .., ..]);
    let e = aupro(short, masks.view(), &opts).unwrap_err();
    assert!(
        matches!(e, Error::Shape { .. }) && arg_of(&e) == "masks",
        "{e}"
    );

    let mut nan = maps.clone();
    nan[[2, 3, 4]] = f64::NAN;
    let e = aupro(nan.view(), masks.view(), &opts).unwrap_err();
    assert_eq!(arg_of(&e), "maps");
    assert!(e.to_string().contains("[2, 3, 4]"), "{e}");

    let none = Array3::<u8>::zeros(maps.dim());
    let e = pixel_auroc(maps.view(), none.view()).unwrap_err();
    assert_eq!(arg_of(&e), "masks", "{e}");
    let all = Array3::<u8>::ones(maps.dim());
    let e = aupro(maps.view(), all.view(), &opts).unwrap_err();
    assert_eq!(arg_of(&e), "masks", "{e}");

    for limit in [0.0, -0.1, 1.5, f64::NAN] {
        let bad = ProOptions {
            fpr_limit: limit,
            ..opts
        };
        let e = aupro(maps.view(), masks.view(), &bad).unwrap_err();
        assert_eq!(arg_of(&e), "fpr_limit", "{e}");
    }

    let empty = Array3::<f64>::zeros((0, 4, 4));
    let e = aupro(empty.view(), Array3::<u8>::zeros((0, 4, 4)).view(), &opts).unwrap_err();
    assert_eq!(arg_of(&e), "maps", "{e}");
}

#[test]
fn metrics_average_over_classes_and_serialise_to_json() {
    let (maps_a, masks_a) = random_case(5, Some(10.0));
    let (maps_b, masks_b) = random_case(6, None);
    let class = |name: &str, maps: &Array3<f64>, masks: &Array3<u8>, shift: f64| ClassOutputs {
        class: name.to_string(),
        scores: (0..3)
            .map(|i| maps.index_axis(ndarray::Axis(0), i).sum() + shift * i as f64)
            .collect(),
        labels: vec![true, false, true],
        pixels: Some((maps.clone(), masks.clone())),
    };
    let outputs = [
        class("alpha", &maps_a, &masks_a, 0.0),
        class("beta", &maps_b, &masks_b, -100.0),
    ];
    let m = evaluate(&outputs, &ProOptions::default()).unwrap();

    assert_eq!(m.classes.len(), 2);
    let mean_aupro = (m.classes[0].aupro.unwrap() + m.classes[1].aupro.unwrap()) / 2.0;
    assert_eq!(m.mean.aupro, Some(mean_aupro));
    let mean_auroc = (m.classes[0].image_auroc + m.classes[1].image_auroc) / 2.0;
    assert_eq!(m.mean.image_auroc, mean_auroc);
    let direct = aupro(maps_b.view(), masks_b.view(), &ProOptions::default()).unwrap();
    assert_eq!(m.classes[1].aupro, Some(direct));

    let j = m.to_json();
    assert_eq!(j["classes"][1]["class"], "beta");
    assert_eq!(j["mean"]["aupro"].as_f64(), Some(mean_aupro));
    assert_eq!(j["aupro"]["variant"], "mvtec");
    let table = m.table();
    assert!(
        table.contains("alpha") && table.contains("beta") && table.contains("mean"),
        "{table}"
    );

    let mut bad = outputs.clone();
    bad[1].labels = vec![true, true, true];
    let e = evaluate(&bad, &ProOptions::default()).unwrap_err();
    assert_eq!(arg_of(&e), "beta: labels", "{e}");
}
