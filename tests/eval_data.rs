//! Dataset layouts: `hipl synth` output read back by the MVTec AD loader, a VisA CSV over
//! the same files, and every kind of bad data as an error naming the file.

use hipl::eval::data::{load_image, load_mask, load_sample, Dataset, Split};
use hipl::eval::synth::{find_source, synthesize, SynthConfig, DEFECTS};
use hipl::Error;
use std::path::{Path, PathBuf};

fn synth(dir: &Path, classes: usize, seed: u64) -> Vec<String> {
    let source = find_source(None).expect("the CC0 images in ../shared/data/images");
    let cfg = SynthConfig {
        classes: Some(classes),
        size: 64,
        train: 3,
        test: 8,
        seed,
    };
    synthesize(&source, dir, &cfg).unwrap()
}

/// The path an error names.
fn path_of(e: &Error) -> PathBuf {
    match e {
        Error::Io { path, .. } | Error::Format { path, .. } => path.clone(),
        other => panic!("expected a file error, got {other}"),
    }
}

#[test]
fn mvtec_loader_reads_what_synth_writes() {
    let dir = tempfile::tempdir().unwrap();
    let classes = synth(dir.path(), 2, 1);
    let ds = Dataset::mvtec(dir.path()).unwrap();
    assert_eq!(ds.classes(), classes);

    for class in &classes {
        assert_eq!(ds.samples(class, Split::Train).unwrap().len(), 3);
        let test = ds.samples(class, Split::Test).unwrap();
        assert_eq!(test.len(), 8);
        assert_eq!(test.iter().filter(|s| s.anomalous).count(), 4);
        for s in test {
            assert_eq!(s.anomalous, s.mask.is_some(), "{s:?}");
            assert_eq!(s.anomalous, DEFECTS.contains(&s.defect.as_str()), "{s:?}");
            let loaded = load_sample(s, 48).unwrap();
            assert_eq!(loaded.image.dim(), (3, 48, 48));
            assert!(loaded.image.iter().all(|&v| (0.0..=1.0).contains(&v)));
            let marked = loaded.mask.iter().filter(|&&m| m == 1).count();
            assert!(loaded.mask.iter().all(|&m| m <= 1));
            if s.anomalous {
                assert!(
                    marked > 0 && marked < 48 * 48 / 2,
                    "{s:?}: {marked} mask pixels"
                );
            } else {
                assert_eq!(marked, 0);
            }
        }
    }
}

#[test]
fn synth_is_deterministic_in_its_seed() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    synth(a.path(), 1, 9);
    synth(b.path(), 1, 9);
    synth(c.path(), 1, 10);
    let file = |d: &Path| {
        let ds = Dataset::mvtec(d).unwrap();
        let s = ds
            .samples
            .iter()
            .find(|s| s.defect == "blotch")
            .unwrap()
            .clone();
        (
            std::fs::read(&s.image).unwrap(),
            std::fs::read(s.mask.unwrap()).unwrap(),
        )
    };
    assert_eq!(file(a.path()), file(b.path()));
    assert_ne!(file(a.path()), file(c.path()));
}

#[test]
fn synth_masks_cover_exactly_the_changed_pixels_of_a_scratch() {
    // A scratch paints every masked pixel near-white or near-black and nothing else, so
    // the masked pixels are grey and extreme.
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 1, 3);
    let ds = Dataset::mvtec(dir.path()).unwrap();
    let s = ds.samples.iter().find(|s| s.defect == "scratch").unwrap();
    let img = image::open(&s.image).unwrap().to_rgb8();
    let mask = image::open(s.mask.as_ref().unwrap()).unwrap().to_luma8();
    for (p, m) in img.pixels().zip(mask.pixels()) {
        if m[0] > 0 {
            assert!(
                p[0] == p[1] && p[1] == p[2] && (p[0] >= 235 || p[0] <= 20),
                "{p:?}"
            );
        }
    }
}

#[test]
fn visa_loader_reads_its_csv() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 1, 2);
    let mvtec = Dataset::mvtec(dir.path()).unwrap();
    let rel = |p: &Path| p.strip_prefix(dir.path()).unwrap().display().to_string();
    let mut csv = String::from("object,split,label,image,mask\n");
    for s in &mvtec.samples {
        let split = if s.split == Split::Train {
            "train"
        } else {
            "test"
        };
        let label = if s.anomalous { "anomaly" } else { "normal" };
        let mask = s.mask.as_deref().map(rel).unwrap_or_default();
        csv += &format!("{},{split},{label},{},{mask}\n", s.class, rel(&s.image));
    }
    std::fs::create_dir_all(dir.path().join("split_csv")).unwrap();
    std::fs::write(dir.path().join("split_csv/1cls.csv"), csv).unwrap();

    let visa = Dataset::visa(dir.path()).unwrap();
    assert_eq!(visa.classes(), mvtec.classes());
    assert_eq!(visa.samples.len(), mvtec.samples.len());
    for (v, m) in visa.samples.iter().zip(&mvtec.samples) {
        assert_eq!(
            (&v.image, v.anomalous, &v.mask, v.split),
            (&m.image, m.anomalous, &m.mask, m.split)
        );
    }
}

#[test]
fn a_missing_mask_names_the_mask_file() {
    let dir = tempfile::tempdir().unwrap();
    let class = &synth(dir.path(), 1, 4)[0];
    let mask = dir
        .path()
        .join(class)
        .join("ground_truth/scratch/000_mask.png");
    std::fs::remove_file(&mask).unwrap();
    let e = Dataset::mvtec(dir.path()).unwrap_err();
    assert_eq!(path_of(&e), mask, "{e}");
    assert!(e.to_string().contains("test/scratch/000.png"), "{e}");
}

#[test]
fn a_mask_of_another_size_names_the_mask_file() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 1, 5);
    let ds = Dataset::mvtec(dir.path()).unwrap();
    let s = ds.samples.iter().find(|s| s.anomalous).unwrap();
    let mask = s.mask.clone().unwrap();
    image::GrayImage::new(32, 64).save(&mask).unwrap();
    let e = load_sample(s, 32).unwrap_err();
    assert_eq!(path_of(&e), mask, "{e}");
    assert!(e.to_string().contains("32x64"), "{e}");
}

#[test]
fn an_empty_class_names_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 1, 6);
    let empty = dir.path().join("zzz_empty/test/good");
    std::fs::create_dir_all(&empty).unwrap();
    let e = Dataset::mvtec(dir.path()).unwrap_err();
    assert_eq!(path_of(&e), dir.path().join("zzz_empty/test"), "{e}");
    assert!(e.to_string().contains("empty class"), "{e}");

    let nothing = tempfile::tempdir().unwrap();
    let e = Dataset::mvtec(nothing.path()).unwrap_err();
    assert_eq!(path_of(&e), nothing.path(), "{e}");
}

#[test]
fn an_unreadable_image_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.png");
    std::fs::write(&bad, b"not a png at all").unwrap();
    let e = load_image(&bad, 16).unwrap_err();
    assert!(
        matches!(e, Error::Format { .. }) && path_of(&e) == bad,
        "{e}"
    );
    let e = load_mask(&bad, 16).unwrap_err();
    assert_eq!(path_of(&e), bad, "{e}");

    let missing = dir.path().join("missing.png");
    let e = load_image(&missing, 16).unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && path_of(&e) == missing,
        "{e}"
    );
    assert!(load_image(&bad, 0).is_err());
}

#[test]
fn visa_csv_problems_name_the_csv_or_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("split_csv/1cls.csv");
    let e = Dataset::visa(dir.path()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }) && path_of(&e) == csv, "{e}");

    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    std::fs::write(&csv, "object,split,label,image\ncandle,test,normal,a.png\n").unwrap();
    let e = Dataset::visa(dir.path()).unwrap_err();
    assert_eq!(path_of(&e), csv);
    assert!(e.to_string().contains("missing column `mask`"), "{e}");

    image::RgbImage::new(8, 8)
        .save(dir.path().join("a.png"))
        .unwrap();
    std::fs::write(
        &csv,
        "object,split,label,image,mask\ncandle,test,anomaly,a.png,\n",
    )
    .unwrap();
    let e = Dataset::visa(dir.path()).unwrap_err();
    assert_eq!(path_of(&e), dir.path().join("a.png"), "{e}");
    assert!(e.to_string().contains("no mask"), "{e}");

    std::fs::write(
        &csv,
        "object,split,label,image,mask\ncandle,test,broken,a.png,\n",
    )
    .unwrap();
    let e = Dataset::visa(dir.path()).unwrap_err();
    assert!(
        path_of(&e) == csv && e.to_string().contains("line 2"),
        "{e}"
    );

    std::fs::write(
        &csv,
        "object,split,label,image,mask\ncandle,test,normal,b.png,\n",
    )
    .unwrap();
    let e = Dataset::visa(dir.path()).unwrap_err();
    assert_eq!(path_of(&e), dir.path().join("b.png"), "{e}");
}

#[test]
fn synth_replaces_its_own_earlier_output_and_refuses_a_foreign_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ds");
    let source = find_source(None).unwrap();
    let cfg = |test| SynthConfig {
        classes: Some(1),
        size: 32,
        train: 2,
        test,
        seed: 0,
    };
    synthesize(&source, &out, &cfg(8)).unwrap();
    synthesize(&source, &out, &cfg(4)).unwrap();
    // Only the second run's images are there.
    let ds = Dataset::mvtec(&out).unwrap();
    let class = &ds.classes()[0];
    assert_eq!(ds.samples(class, Split::Test).unwrap().len(), 4);

    let foreign = dir.path().join("mine");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "keep me").unwrap();
    let e = synthesize(&source, &foreign, &cfg(4))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`out`") && e.contains("non-empty"), "{e}");
    assert!(foreign.join("notes.txt").is_file());
    let e = synthesize(
        &source,
        &out,
        &SynthConfig {
            size: 100_000,
            ..cfg(4)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("`size`") && e.contains("4096"), "{e}");
}
