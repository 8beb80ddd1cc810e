//! `hipl eval` on saved outputs and `hipl synth`, through the library functions and the
//! binary.

use hipl::cli::eval::{run_eval, Args, AuproArg, Format};
use hipl::Error;
use ndarray::{Array1, Array3};
use ndarray_npy::write_npy;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/metrics")
        .join(name)
}

fn expected(file: &str, name: &str) -> Value {
    let all: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(file)).unwrap()).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap()
        .clone()
}

fn args(scores: &Path, labels: &Path, pixels: Option<(&Path, &Path)>) -> Args {
    Args {
        scores: scores.into(),
        labels: labels.into(),
        maps: pixels.map(|p| p.0.into()),
        masks: pixels.map(|p| p.1.into()),
        class: "all".into(),
        fpr_limit: 0.3,
        aupro: AuproArg::Mvtec,
        format: Format::Json,
    }
}

/// Image scores and labels that go with the `random` pixel fixture (6 images).
fn image_files(dir: &Path) -> (PathBuf, PathBuf) {
    let (s, l) = (dir.join("s.npy"), dir.join("l.npy"));
    write_npy(&s, &Array1::from(vec![0.9f32, 0.8, 0.7, 0.1, 0.6, 0.75])).unwrap();
    write_npy(&l, &Array1::from(vec![1i64, 1, 1, 0, 1, 0])).unwrap();
    (s, l)
}

#[test]
fn eval_reads_npy_files_of_several_dtypes() {
    let want = expected("image.json", "ties");
    let scores = fixture("image_ties_scores.npy");
    let m = run_eval(&args(&scores, &fixture("image_ties_labels.npy"), None)).unwrap();
    assert!((m.mean.image_auroc - want["auroc"].as_f64().unwrap()).abs() < 1e-9);
    assert!((m.mean.image_ap - want["ap"].as_f64().unwrap()).abs() < 1e-9);
    assert_eq!(m.mean.pixel_auroc, None);

    // The same labels as bool and as f32.
    let labels: Array1<u8> = ndarray_npy::read_npy(fixture("image_ties_labels.npy")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (i, path) in [dir.path().join("b.npy"), dir.path().join("f.npy")]
        .iter()
        .enumerate()
    {
        if i == 0 {
            write_npy(path, &labels.mapv(|v| v == 1)).unwrap();
        } else {
            write_npy(path, &labels.mapv(|v| v as f32)).unwrap();
        }
        let again = run_eval(&args(&scores, path, None)).unwrap();
        assert_eq!(again.mean.image_auroc, m.mean.image_auroc);
    }
}

#[test]
fn eval_of_maps_matches_the_pixel_fixture_and_binarises_255_masks() {
    let dir = tempfile::tempdir().unwrap();
    let (s, l) = image_files(dir.path());
    let want = expected("pixel.json", "random");
    let maps = fixture("pixel_random_maps.npy");
    let m = run_eval(&args(
        &s,
        &l,
        Some((&maps, &fixture("pixel_random_masks.npy"))),
    ))
    .unwrap();
    assert!((m.mean.aupro.unwrap() - want["aupro"].as_f64().unwrap()).abs() < 1e-9);
    assert!((m.mean.pixel_auroc.unwrap() - want["pixel_auroc"].as_f64().unwrap()).abs() < 1e-9);

    let masks: Array3<u8> = ndarray_npy::read_npy(fixture("pixel_random_masks.npy")).unwrap();
    let m255 = dir.path().join("m255.npy");
    write_npy(&m255, &masks.mapv(|v| v * 255)).unwrap();
    let again = run_eval(&args(&s, &l, Some((&maps, &m255)))).unwrap();
    assert_eq!(again.mean.aupro, m.mean.aupro);
}

fn arg_of(e: &Error) -> &str {
    match e {
        Error::InvalidArgument { arg, .. }
        | Error::Shape { arg, .. }
        | Error::NonFinite { arg, .. } => arg,
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn eval_bad_files_are_errors_naming_the_argument_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let (s, l) = image_files(dir.path());

    let two = dir.path().join("two.npy");
    write_npy(&two, &Array1::from(vec![0u8, 2, 1, 0, 1, 0])).unwrap();
    let e = run_eval(&args(&s, &two, None)).unwrap_err();
    assert!(
        arg_of(&e) == "labels" && e.to_string().contains("2 at [1]"),
        "{e}"
    );

    let short = dir.path().join("short.npy");
    write_npy(&short, &Array1::from(vec![0u8, 1])).unwrap();
    let e = run_eval(&args(&s, &short, None)).unwrap_err();
    assert_eq!(arg_of(&e), "all: labels", "{e}");

    let nan = dir.path().join("nan.npy");
    write_npy(
        &nan,
        &Array1::from(vec![0.1f64, f64::NAN, 0.3, 0.2, 0.5, 0.4]),
    )
    .unwrap();
    let e = run_eval(&args(&nan, &l, None)).unwrap_err();
    assert_eq!(arg_of(&e), "all: scores", "{e}");

    let e = run_eval(&args(&dir.path().join("absent.npy"), &l, None)).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    let text = dir.path().join("text.npy");
    std::fs::write(&text, "hello").unwrap();
    let e = run_eval(&args(&text, &l, None)).unwrap_err();
    assert!(
        matches!(&e, Error::Format { path, .. } if path == &text),
        "{e}"
    );

    let maps = fixture("pixel_random_maps.npy");
    let masks: Array3<u8> = ndarray_npy::read_npy(fixture("pixel_random_masks.npy")).unwrap();
    let float_masks = dir.path().join("fm.npy");
    write_npy(&float_masks, &masks.mapv(|v| v as f32 * 0.5)).unwrap();
    let ok = run_eval(&args(&s, &l, Some((&maps, &float_masks)))).unwrap();
    let want = expected("pixel.json", "random")["aupro"].as_f64().unwrap();
    assert!(
        (ok.mean.aupro.unwrap() - want).abs() < 1e-9,
        "float masks > 0 are anomalous"
    );
    let negative = dir.path().join("neg.npy");
    write_npy(&negative, &masks.mapv(|v| -(v as f32))).unwrap();
    let e = run_eval(&args(&s, &l, Some((&maps, &negative)))).unwrap_err();
    assert_eq!(arg_of(&e), "masks", "{e}");
    let e = run_eval(&args(
        &s,
        &l,
        Some((&maps, &fixture("pixel_mask255_masks.npy"))),
    ))
    .unwrap_err();
    assert_eq!(arg_of(&e), "all: masks", "{e}");
    let e = run_eval(&args(&s, &l, Some((&s, &l)))).unwrap_err();
    assert_eq!(arg_of(&e), "maps", "{e}");
}

#[test]
fn the_binary_prints_json_and_synthesises() {
    let exe = env!("CARGO_BIN_EXE_hipl");
    let dir = tempfile::tempdir().unwrap();
    let (s, l) = image_files(dir.path());
    let out = Command::new(exe)
        .args(["eval", "--scores"])
        .arg(&s)
        .arg("--labels")
        .arg(&l)
        .arg("--maps")
        .arg(fixture("pixel_random_maps.npy"))
        .arg("--masks")
        .arg(fixture("pixel_random_masks.npy"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = expected("pixel.json", "random")["aupro"].as_f64().unwrap();
    assert!(
        (j["mean"]["aupro"].as_f64().unwrap() - want).abs() < 1e-9,
        "{j}"
    );

    let bad = Command::new(exe)
        .args(["eval", "--scores", "/nonexistent.npy", "--labels"])
        .arg(&l)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent.npy"));

    let data = dir.path().join("synth");
    let out = Command::new(exe)
        .args([
            "synth",
            "--classes",
            "1",
            "--size",
            "40",
            "--train",
            "1",
            "--test",
            "2",
            "--out",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ds = hipl::eval::data::Dataset::mvtec(&data).unwrap();
    assert_eq!(ds.samples.len(), 3);
}
