#!/usr/bin/env python3
"""Writes the metric fixtures under tests/fixtures/metrics/ (inputs as .npy, expected values
in image.json and pixel.json).

Image AUROC and AP come from scikit-learn (roc_auc_score, average_precision_score). Pixel
AUROC comes from scikit-learn on the flattened maps. AUPRO comes from a deliberately plain
per-threshold reference written here: regions are the 8-connected components of each mask
(scipy.ndimage.label), every distinct map value is a threshold, and the curve is integrated
by the trapezoid rule up to FPR 0.3 (the end point interpolated) and divided by 0.3, as
MVTec AD defines it; the min-max rescaled variant keeps the points with FPR < 0.3 and
rescales FPR to [0, 1].

Usage: pip install scikit-learn numpy scipy; python tools/make_metric_fixtures.py
"""

import json
from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "metrics"
FPR_LIMIT = 0.3


def image_fixtures(rng):
    """(name, scores, labels) triples."""
    out = []
    labels = rng.random(200) < 0.3
    out.append(("random", rng.normal(size=200) + 0.8 * labels, labels))

    labels = rng.random(300) < 0.5
    scores = np.round(rng.normal(size=300) + 0.5 * labels, 0)
    out.append(("ties", scores, labels))

    labels = rng.random(150) < 0.4
    scores = (rng.random(150) + 0.3 * labels).astype(np.float32)
    out.append(("float32", scores, labels))

    labels = np.zeros(50, dtype=bool)
    labels[17] = True
    out.append(("one_positive", rng.random(50), labels))

    labels = rng.random(40) < 0.5
    labels[:2] = [True, False]
    out.append(("all_tied", np.full(40, 0.25), labels))

    labels = np.arange(30) >= 20
    out.append(("separated", np.arange(30, dtype=np.float64), labels))
    out.append(("reversed", -np.arange(30, dtype=np.float64), labels))
    out.append(("two_samples", np.array([0.2, 0.7]), np.array([False, True])))
    return out


def blob_masks(rng, n, h, w, anomalous):
    """Binary masks of a few smoothed-noise blobs in the anomalous images."""
    masks = np.zeros((n, h, w), dtype=np.uint8)
    for i in range(n):
        if not anomalous[i]:
            continue
        noise = ndimage.gaussian_filter(rng.normal(size=(h, w)), 2.0)
        masks[i] = noise > np.quantile(noise, 0.85)
    return masks


def pixel_fixtures(rng):
    """(name, maps, masks) triples."""
    out = []
    n, h, w = 6, 24, 24
    anomalous = np.array([True, True, True, False, True, False])
    masks = blob_masks(rng, n, h, w, anomalous)
    maps = rng.normal(size=(n, h, w)) + 1.2 * masks
    out.append(("random", maps, masks))
    out.append(("ties", np.round(maps * 4) / 4, masks))
    out.append(("float32", (maps + rng.normal(size=maps.shape) * 0.5).astype(np.float32), masks))

    n, h, w = 5, 20, 16
    anomalous = np.array([True, False, True, True, False])
    masks = blob_masks(rng, n, h, w, anomalous) * 255
    out.append(("mask255", ndimage.gaussian_filter(rng.random((n, h, w)), 1.0) + 0.3 * (masks > 0), masks))

    # One image, 10 anomalous pixels in two regions, 90 normal pixels of which exactly 27
    # score above everything else: FPR reaches 0.3 exactly at one threshold.
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[0, :5] = 1
    mask[9, 5:] = 1
    scores = np.zeros((10, 10))
    normal_idx = np.flatnonzero(mask.ravel() == 0)
    scores.ravel()[normal_idx[:27]] = 0.5 + 0.01 * np.arange(27) % 0.2
    scores.ravel()[np.flatnonzero(mask.ravel())] = [0.9, 0.6, 0.55, 0.3, 0.1, 0.62, 0.58, 0.4, 0.0, 0.7]
    out.append(("exact_limit", scores[None], mask[None]))
    return out


def trapezoid(x, y):
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def pro_curve(maps, masks):
    """FPR and PRO at every distinct threshold, highest first, starting at (0, 0)."""
    regions = []
    for i in range(maps.shape[0]):
        labelled, count = ndimage.label(masks[i] > 0, structure=np.ones((3, 3)))
        for r in range(1, count + 1):
            regions.append(maps[i][labelled == r])
    normal_scores = maps[masks == 0]
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        fprs.append(np.sum(normal_scores >= t) / normal_scores.size)
        pros.append(np.mean([np.sum(r >= t) / r.size for r in regions]))
    return np.array(fprs), np.array(pros), len(regions)


def aupro_mvtec(fprs, pros, limit):
    keep = fprs <= limit
    area = trapezoid(fprs[keep], pros[keep])
    if limit not in fprs:
        i = np.searchsorted(fprs, limit)
        y = pros[i - 1] + (pros[i] - pros[i - 1]) * (limit - fprs[i - 1]) / (fprs[i] - fprs[i - 1])
        area += 0.5 * (y + pros[i - 1]) * (limit - fprs[i - 1])
    return area / limit


def aupro_minmax(fprs, pros, limit):
    keep = fprs < limit
    x = fprs[keep] / fprs[keep].max()
    return trapezoid(x, pros[keep])


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20260)

    image = []
    for name, scores, labels in image_fixtures(rng):
        np.save(OUT / f"image_{name}_scores.npy", scores)
        np.save(OUT / f"image_{name}_labels.npy", labels.astype(np.uint8))
        image.append({
            "name": name,
            "auroc": float(roc_auc_score(labels, scores)),
            "ap": float(average_precision_score(labels, scores)),
        })

    pixel = []
    for name, maps, masks in pixel_fixtures(rng):
        np.save(OUT / f"pixel_{name}_maps.npy", maps)
        np.save(OUT / f"pixel_{name}_masks.npy", masks.astype(np.uint8))
        fprs, pros, regions = pro_curve(maps, masks)
        pixel.append({
            "name": name,
            "pixel_auroc": float(roc_auc_score((masks > 0).ravel(), maps.ravel())),
            "aupro": aupro_mvtec(fprs, pros, FPR_LIMIT),
            "aupro_minmax": aupro_minmax(fprs, pros, FPR_LIMIT),
            "regions": regions,
            "fpr_limit_hit_exactly": bool(FPR_LIMIT in fprs),
        })

    (OUT / "image.json").write_text(json.dumps(image, indent=1) + "\n")
    (OUT / "pixel.json").write_text(json.dumps(pixel, indent=1) + "\n")
    print(json.dumps({"image": image, "pixel": pixel}, indent=1))


if __name__ == "__main__":
    main()
