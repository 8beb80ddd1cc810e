//! Image-level ranking metrics: AUROC and average precision, with ties treated as
//! scikit-learn treats them (all samples of equal score enter the ranking together).

use crate::error::{Error, Result};
use rayon::prelude::*;

/// A score as a sort key: widened to `f64`, with `-0.0` folded into `0.0` so that the
/// total order used for sorting agrees with `==` on every finite value.
pub(crate) fn key<T: Into<f64>>(x: T) -> f64 {
    x.into() + 0.0
}

/// Fails when `values` is empty or holds a NaN or an infinity; names `arg` and the index.
pub(crate) fn check_scores(arg: &str, values: &[f64], shape: &[usize]) -> Result<()> {
    if values.is_empty() {
        return Err(Error::shape(arg, "a non-empty array", shape));
    }
    if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
        let mut index = Vec::with_capacity(shape.len());
        let mut rest = pos;
        for &dim in shape.iter().rev() {
            index.push(rest % dim.max(1));
            rest /= dim.max(1);
        }
        index.reverse();
        return Err(Error::NonFinite {
            arg: arg.into(),
            index: format!("{index:?}"),
            value: values[pos],
        });
    }
    Ok(())
}

/// `(score, tag)` pairs sorted by score, highest first, then walked one distinct score at
/// a time. The tag is a label (0 normal, 1 anomalous) or a ground-truth region id.
pub(crate) struct Ranking {
    pairs: Vec<(f64, u32)>,
}

impl Ranking {
    /// Sorts the pairs (in parallel; `O(P log P)`).
    pub(crate) fn new(mut pairs: Vec<(f64, u32)>) -> Self {
        pairs.par_sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        Ranking { pairs }
    }

    /// The runs of equal score, highest score first: one threshold step each.
    pub(crate) fn steps(&self) -> impl Iterator<Item = &[(f64, u32)]> {
        self.pairs.chunk_by(|a, b| a.0 == b.0)
    }
}

/// Cumulative true and false positives after each threshold step.
pub(crate) struct Counts {
    pub tp: u64,
    pub fp: u64,
}

/// Area under the ROC curve from the cumulative counts at each threshold step, by the
/// trapezoid rule; exact in integers until the final division.
pub(crate) fn auroc_from_counts(counts: impl Iterator<Item = Counts>, pos: u64, neg: u64) -> f64 {
    let (mut tp0, mut fp0, mut twice_area) = (0u64, 0u64, 0u128);
    for Counts { tp, fp } in counts {
        twice_area += (fp - fp0) as u128 * (tp + tp0) as u128;
        tp0 = tp;
        fp0 = fp;
    }
    twice_area as f64 / (2.0 * pos as f64 * neg as f64)
}

fn check_labels(
    scores_arg: &str,
    n: usize,
    labels_arg: &str,
    labels: &[bool],
) -> Result<(u64, u64)> {
    if labels.len() != n {
        return Err(Error::shape(
            labels_arg,
            format!("[{n}] (one label per entry of `{scores_arg}`)"),
            [labels.len()],
        ));
    }
    let pos = labels.iter().filter(|&&l| l).count() as u64;
    Ok((pos, n as u64 - pos))
}

fn image_ranking<T: Copy + Into<f64>>(
    scores: &[T],
    labels: &[bool],
) -> Result<(Ranking, u64, u64)> {
    let keys: Vec<f64> = scores.iter().map(|&s| key(s)).collect();
    check_scores("scores", &keys, &[keys.len()])?;
    let (pos, neg) = check_labels("scores", keys.len(), "labels", labels)?;
    let pairs = keys
        .into_iter()
        .zip(labels)
        .map(|(k, &l)| (k, l as u32))
        .collect();
    Ok((Ranking::new(pairs), pos, neg))
}

/// Cumulative counts per step of a ranking whose tag is nonzero for positives.
pub(crate) fn counts(ranking: &Ranking) -> impl Iterator<Item = Counts> + '_ {
    let (mut tp, mut fp) = (0u64, 0u64);
    ranking.steps().map(move |step| {
        let p = step.iter().filter(|(_, t)| *t != 0).count() as u64;
        tp += p;
        fp += step.len() as u64 - p;
        Counts { tp, fp }
    })
}

/// Fails unless both classes occur: the ROC curve needs positives and negatives.
pub(crate) fn require_both(arg: &str, pos: u64, neg: u64) -> Result<()> {
    if pos == 0 || neg == 0 {
        return Err(Error::invalid(
            arg,
            "both classes (at least one normal = 0 and one anomalous = 1); AUROC is undefined otherwise",
            format!("{pos} anomalous and {neg} normal"),
        ));
    }
    Ok(())
}

/// Area under the ROC curve of `scores` (higher = more anomalous) against `labels`
/// (`true` = anomalous), equal to scikit-learn's `roc_auc_score`.
///
/// Ties: all samples of equal score form one threshold step, so a tie between a positive
/// and a negative counts one half.
pub fn auroc<T: Copy + Into<f64>>(scores: &[T], labels: &[bool]) -> Result<f64> {
    let (ranking, pos, neg) = image_ranking(scores, labels)?;
    require_both("labels", pos, neg)?;
    Ok(auroc_from_counts(counts(&ranking), pos, neg))
}

/// Average precision of `scores` against `labels`, as scikit-learn's
/// `average_precision_score` defines it: `Σ_k (R_k − R_{k−1}) P_k` over the distinct
/// thresholds, highest first, with no interpolation of the precision.
///
/// Well defined with no negatives (it is then 1); fails with no positives.
pub fn average_precision<T: Copy + Into<f64>>(scores: &[T], labels: &[bool]) -> Result<f64> {
    let (ranking, pos, _) = image_ranking(scores, labels)?;
    if pos == 0 {
        return Err(Error::invalid(
            "labels",
            "at least one anomalous label (1); average precision is undefined otherwise",
            "only normal labels",
        ));
    }
    let (mut tp0, mut ap) = (0u64, 0.0f64);
    for Counts { tp, fp } in counts(&ranking) {
        if tp > tp0 {
            ap += (tp - tp0) as f64 / pos as f64 * (tp as f64 / (tp + fp) as f64);
        }
        tp0 = tp;
    }
    Ok(ap)
}
