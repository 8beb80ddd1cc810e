//! Building one image's incidence from its features: the similarity GEMM in row blocks
//! with the rule applied as each block comes out, so hard incidence never needs an `N × N`
//! float buffer.

use super::gemm::{gemm, Op};
use super::topk::TopK;
use crate::hypergraph::{
    Bitmask, Csr, HypergraphConfig, ImageGraph, Incidence, IncidenceMode, Representation, Rule,
    SPARSE_DENSITY,
};
use crate::real::Real;
use rayon::prelude::*;
use std::sync::Mutex;

/// Side of the square tiles of the similarity computed per task (a multiple of 64, so a
/// tile's columns fill whole bitmask words). Square tiles of the upper triangle balance
/// better over threads than row bands, and each tile's product is a well-shaped GEMM.
const TILE: usize = 256;
// LIMITATION: diagonal tiles are computed whole and their lower half thrown away (6 of 21
// tiles at N = 1369: ~14% more similarity work than the triangle); splitting them into
// sub-tiles, or a triangular-output product per diagonal tile, would lift it.

/// The tiles `(r0, c0)` of the upper triangle (`c0 >= r0`) of an `n × n` matrix, row band
/// after row band.
fn upper_tiles(n: usize) -> Vec<(usize, usize)> {
    let starts: Vec<usize> = (0..n).step_by(TILE).collect();
    let mut tiles = Vec::with_capacity(starts.len() * (starts.len() + 1) / 2);
    for (bi, &r0) in starts.iter().enumerate() {
        for &c0 in &starts[bi..] {
            tiles.push((r0, c0));
        }
    }
    tiles
}

/// The Gram tile `g[r][c] = ⟨a_{r0+r}, a_{c0+c}⟩`, `[rows, cols]` row-major, of the
/// `[n, d]` rows `a` (a sequential product: tiles are the parallel grain).
fn gram_tile<T: Real>(a: &[T], n: usize, d: usize, (r0, c0): (usize, usize), g: &mut Vec<T>) {
    let rows = TILE.min(n - r0);
    let cols = TILE.min(n - c0);
    g.resize(rows * cols, T::zero());
    gemm(
        g,
        (rows, d, cols),
        &a[r0 * d..(r0 + rows) * d],
        Op::N,
        &a[c0 * d..(c0 + cols) * d],
        Op::T,
        T::one(),
        false,
        false,
    );
}

/// The per-pair quantities of a rule, from the Gram entry `g = ⟨f_i, f_j⟩` of the raw
/// rows. Cosine rules fold the normalisation in: `S_ij = g · inv_i · inv_j` with
/// `inv_i = 1 / max(‖f_i‖, norm_eps)`, so `F̂` is never materialised.
pub(crate) struct Scorer<T> {
    /// `1 / max(‖f_i‖, norm_eps)` (cosine rules), or all ones when the rows given are
    /// already normalised.
    inv: Vec<T>,
    /// `‖f_i‖²` of the raw rows, for the ε-ball distance.
    sq: Vec<T>,
    tau: T,
    eps: Option<T>,
}

impl<T: Real> Scorer<T> {
    /// `a` is `[n, d]`; `normalised` says its rows are `f̂` already (the dense path).
    pub(crate) fn new(cfg: &HypergraphConfig, a: &[T], d: usize, normalised: bool) -> Self {
        Self::with_squares(cfg, squared_norms(a, d), normalised)
    }

    /// As [`Scorer::new`], given the rows' squared norms `‖f_i‖²`.
    pub(crate) fn with_squares(cfg: &HypergraphConfig, sq: Vec<T>, normalised: bool) -> Self {
        let eps = match cfg.rule {
            Rule::EpsBall { eps } => Some(T::of(eps)),
            _ => None,
        };
        let floor = T::of(cfg.norm_eps);
        let inv = if eps.is_some() || normalised {
            vec![T::one(); sq.len()]
        } else {
            sq.iter().map(|&s| T::one() / s.sqrt().max(floor)).collect()
        };
        Scorer {
            inv,
            sq,
            tau: T::of(cfg.tau),
            eps,
        }
    }

    /// Cosine similarity of rows `i` and `j` from their Gram entry.
    pub(crate) fn similarity(&self, i: usize, j: usize, g: T) -> T {
        g * self.inv[i] * self.inv[j]
    }

    /// Euclidean distance between raw rows `i` and `j` from their Gram entry (0 on the
    /// diagonal exactly).
    pub(crate) fn distance(&self, i: usize, j: usize, g: T) -> T {
        if i == j {
            return T::zero();
        }
        (self.sq[i] + self.sq[j] - (g + g)).max(T::zero()).sqrt()
    }

    /// The signed margin of the rule: positive means "in the hyperedge". The soft
    /// incidence is `σ(alpha · margin)`.
    pub(crate) fn margin(&self, i: usize, j: usize, g: T) -> T {
        match self.eps {
            Some(eps) => eps - self.distance(i, j, g),
            None => self.similarity(i, j, g) - self.tau,
        }
    }
}

/// `‖a_i‖²` of each row of width `d`, rows in parallel.
pub(crate) fn squared_norms<T: Real>(a: &[T], d: usize) -> Vec<T> {
    a.par_chunks(d.max(1))
        .map(|r| r.iter().map(|&x| x * x).sum())
        .collect()
}

/// Logistic sigmoid.
pub(crate) fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

/// Builds one image's hypergraph from its raw features `a: [n, d]`, row-major, and their
/// squared row norms `sq`.
pub(crate) fn build_image<T: Real>(
    a: &[T],
    sq: &[T],
    n: usize,
    d: usize,
    cfg: &HypergraphConfig,
) -> ImageGraph<T> {
    let scorer = Scorer::with_squares(cfg, sq.to_vec(), false);
    let selection = match cfg.rule {
        Rule::Threshold { top_k: Some(k) } => Some((k, true)),
        Rule::Knn { k } => Some((k, false)),
        _ => None,
    };

    if cfg.mode == IncidenceMode::Soft {
        let h = soft_incidence(a, n, d, cfg, &scorer, selection);
        let mut d_e = vec![T::zero(); n];
        for row in h.chunks(n) {
            for (s, &x) in d_e.iter_mut().zip(row) {
                *s += x;
            }
        }
        return ImageGraph {
            incidence: Incidence::Dense { h },
            d_e,
        };
    }

    let incidence = match selection {
        None => symmetric_incidence(symmetric_bitmask(a, n, d, &scorer), cfg.representation),
        Some((k, thresholded)) => {
            let by_edge = select_members(a, n, d, &scorer, k, thresholded);
            selected_incidence(by_edge, cfg.representation)
        }
    };
    let d_e = hard_edge_degrees(&incidence, n);
    ImageGraph { incidence, d_e }
}

/// Hard incidence of a symmetric rule as a bitmask: the upper triangle of the Gram matrix
/// in square tiles, each tile's bits packed as it comes out, then mirrored with bit-block
/// transposes. The centre is always set.
pub(crate) fn symmetric_bitmask<T: Real>(
    a: &[T],
    n: usize,
    d: usize,
    scorer: &Scorer<T>,
) -> Bitmask {
    let mut upper = Bitmask::zeros(n, n);
    let wpr = upper.words_per_row();
    // Each tile packs its bits into `rows × TILE / 64` words of its own; they are copied in
    // afterwards (tiles of one row band own disjoint words, but run on different threads).
    let packed: Vec<((usize, usize), Vec<u64>)> = upper_tiles(n)
        .into_par_iter()
        .map_init(Vec::new, |g, (r0, c0)| {
            gram_tile(a, n, d, (r0, c0), g);
            let rows = TILE.min(n - r0);
            let cols = TILE.min(n - c0);
            let tw = cols.div_ceil(64);
            let mut bits = vec![0u64; rows * tw];
            for r in 0..rows {
                let i = r0 + r;
                let out = &mut bits[r * tw..(r + 1) * tw];
                for (wi, (word, gs)) in out
                    .iter_mut()
                    .zip(g[r * cols..(r + 1) * cols].chunks(64))
                    .enumerate()
                {
                    let j0 = c0 + wi * 64;
                    let mut bitsw = 0u64;
                    for (b, &gij) in gs.iter().enumerate() {
                        let inside = scorer.margin(i, j0 + b, gij) > T::zero();
                        bitsw |= (inside as u64) << b;
                    }
                    *word = bitsw;
                }
                if c0 == r0 {
                    // Only pairs j > i: clear the diagonal and below in the diagonal tile.
                    for (wi, word) in out.iter_mut().enumerate() {
                        let lo = wi * 64;
                        if r + 1 >= lo + 64 {
                            *word = 0;
                        } else if r + 1 > lo {
                            *word &= !0u64 << (r + 1 - lo);
                        }
                    }
                }
            }
            ((r0, c0), bits)
        })
        .collect();
    let words = upper.words_mut();
    for ((r0, c0), bits) in packed {
        let tw = TILE.min(n - c0).div_ceil(64);
        for (r, src) in bits.chunks(tw).enumerate() {
            let w0 = (r0 + r) * wpr + c0 / 64;
            words[w0..w0 + tw].copy_from_slice(src);
        }
    }
    for i in 0..n {
        words[i * wpr + i / 64] |= 1 << (i % 64);
    }
    let lower = upper.transpose();
    let mut sym = upper;
    sym.words_mut()
        .iter_mut()
        .zip(lower.words())
        .for_each(|(u, l)| *u |= l);
    sym
}

/// Members of each hyperedge `e` (column `e` of `H`) under a selection rule: the centre,
/// then the `k − 1` most similar other vertices (ties to the lower index), counting only
/// vertices above the threshold when `thresholded` (the top-k cap).
///
/// Only the upper triangle of the Gram matrix is computed, in square tiles: a tile of rows
/// `R` and columns `C` offers each row `i ∈ R` the pairs `(i, j ∈ C)`, and (by symmetry,
/// off the diagonal) each row `j ∈ C` the pairs `(j, i ∈ R)`. Every row keeps a running
/// best list; the union of per-part best lists holds the overall best, so the result is
/// exact and does not depend on the order the tiles run in.
fn select_members<T: Real>(
    a: &[T],
    n: usize,
    d: usize,
    scorer: &Scorer<T>,
    k: usize,
    thresholded: bool,
) -> Csr {
    let keep = k - 1;
    let shortlists: Vec<Mutex<TopK<T>>> = (0..n).map(|_| Mutex::new(TopK::new(keep))).collect();
    let offer = |i: usize, j0: usize, gram: &[T]| {
        let mut list = shortlists[i].lock().unwrap_or_else(|p| p.into_inner());
        offer_row(&mut list, i, j0, gram, scorer, thresholded);
    };
    upper_tiles(n).into_par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(g, gt), (r0, c0)| {
            gram_tile(a, n, d, (r0, c0), g);
            let rows = TILE.min(n - r0);
            let cols = TILE.min(n - c0);
            for r in 0..rows {
                offer(r0 + r, c0, &g[r * cols..(r + 1) * cols]);
            }
            if c0 != r0 {
                gt.resize(cols * rows, T::zero());
                for r in 0..rows {
                    for c in 0..cols {
                        gt[c * rows + r] = g[r * cols + c];
                    }
                }
                for c in 0..cols {
                    offer(c0 + c, r0, &gt[c * rows..(c + 1) * rows]);
                }
            }
        },
    );
    let rows: Vec<Vec<u32>> = shortlists
        .into_par_iter()
        .enumerate()
        .map(|(e, list)| {
            let list = list.into_inner().unwrap_or_else(|p| p.into_inner());
            let mut members: Vec<u32> = list.indices().collect();
            members.push(e as u32);
            members.sort_unstable();
            members
        })
        .collect();
    Csr::from_rows(n, &rows)
}

/// Lanes of the screening pass of [`offer_row`].
const LANES: usize = 16;

/// Offers row `i` the candidates `j0 + c` with Gram entries `gram[c]`. Sixteen at a time,
/// the similarities are computed and screened against the list's bar with vector code;
/// only a group with one at or above the bar goes through the list one by one.
fn offer_row<T: Real>(
    list: &mut TopK<T>,
    i: usize,
    j0: usize,
    gram: &[T],
    scorer: &Scorer<T>,
    thresholded: bool,
) {
    let inv_i = scorer.inv[i];
    let inv = &scorer.inv[j0..j0 + gram.len()];
    let tau = scorer.tau;
    let mut bar = list.bar();
    let consider = |list: &mut TopK<T>, bar: &mut T, j: usize, sim: T| {
        if sim < *bar || j == i || (thresholded && sim - tau <= T::zero()) {
            return;
        }
        list.push(sim, j as u32);
        *bar = list.bar();
    };
    let groups = gram.chunks_exact(LANES).zip(inv.chunks_exact(LANES));
    for (start, (gs, invs)) in groups.enumerate() {
        let mut sims = [T::zero(); LANES];
        let mut any = false;
        for ((s, &g), &v) in sims.iter_mut().zip(gs).zip(invs) {
            *s = g * inv_i * v;
            any |= *s >= bar;
        }
        if any {
            for (c, &sim) in sims.iter().enumerate() {
                consider(list, &mut bar, j0 + start * LANES + c, sim);
            }
        }
    }
    let tail = gram.len() - gram.len() % LANES;
    for (c, (&g, &v)) in gram[tail..].iter().zip(&inv[tail..]).enumerate() {
        consider(list, &mut bar, j0 + tail + c, g * inv_i * v);
    }
}

/// The selection for hyperedge `e` from its Gram row `s` (`S_ej = S_je`).
pub(crate) fn select_row<T: Real>(
    e: usize,
    s: &[T],
    scorer: &Scorer<T>,
    k: usize,
    thresholded: bool,
) -> Vec<u32> {
    let mut candidates: Vec<u32> = (0..s.len() as u32)
        .filter(|&j| {
            j as usize != e
                && (!thresholded || scorer.margin(e, j as usize, s[j as usize]) > T::zero())
        })
        .collect();
    let keep = (k - 1).min(candidates.len());
    // Descending similarity, ties to the lower index: a total order, so deterministic.
    let sim = |j: u32| scorer.similarity(e, j as usize, s[j as usize]);
    let order = |x: &u32, y: &u32| {
        sim(*y)
            .partial_cmp(&sim(*x))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(x.cmp(y))
    };
    if keep < candidates.len() {
        if keep > 0 {
            candidates.select_nth_unstable_by(keep - 1, order);
        }
        candidates.truncate(keep);
    }
    candidates.push(e as u32);
    candidates.sort_unstable();
    candidates
}

/// Dense soft incidence `H = M ⊙ σ(alpha · margin)`, with `M` the selection mask (all ones
/// without a selection rule).
fn soft_incidence<T: Real>(
    a: &[T],
    n: usize,
    d: usize,
    cfg: &HypergraphConfig,
    scorer: &Scorer<T>,
    selection: Option<(usize, bool)>,
) -> Vec<T> {
    let mut g = vec![T::zero(); n * n];
    gemm(&mut g, (n, d, n), a, Op::N, a, Op::T, T::one(), false, true);
    let alpha = T::of(cfg.alpha);
    // Hyperedge e is column e; rows of `g` are hyperedges by symmetry of the Gram matrix.
    let members: Option<Vec<Vec<u32>>> = selection.map(|(k, thresholded)| {
        (0..n)
            .into_par_iter()
            .map(|e| select_row(e, &g[e * n..(e + 1) * n], scorer, k, thresholded))
            .collect()
    });
    let mut h = vec![T::zero(); n * n];
    h.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for (e, v) in row.iter_mut().enumerate() {
            *v = sigmoid(alpha * scorer.margin(i, e, g[i * n + e]));
        }
    });
    if let Some(members) = members {
        let mut masked = vec![T::zero(); n * n];
        for (e, m) in members.iter().enumerate() {
            for &i in m {
                masked[i as usize * n + e] = h[i as usize * n + e];
            }
        }
        h = masked;
    }
    h
}

/// Chooses the storage of a symmetric hard incidence.
fn symmetric_incidence<T: Real>(h: Bitmask, repr: Representation) -> Incidence<T> {
    let n = h.n_rows();
    let density = h.count_ones() as f64 / (n * n) as f64;
    match resolve(repr, density) {
        Representation::Csr => {
            let c = h.to_csr(false);
            Incidence::Csr {
                by_vertex: c.clone(),
                by_edge: c,
            }
        }
        Representation::ComplementCsr => {
            let c = h.to_csr(true);
            Incidence::Complement {
                by_vertex: c.clone(),
                by_edge: c,
            }
        }
        Representation::Dense => Incidence::Dense {
            h: Incidence::<T>::Bitmask { h, ht: None }.to_dense(n),
        },
        _ => Incidence::Bitmask { h, ht: None },
    }
}

/// Chooses the storage of a hard incidence given by hyperedge member lists.
fn selected_incidence<T: Real>(by_edge: Csr, repr: Representation) -> Incidence<T> {
    let n = by_edge.n_rows();
    let density = by_edge.nnz() as f64 / (n * n) as f64;
    let by_vertex = by_edge.transpose();
    match resolve(repr, density) {
        Representation::Bitmask => Incidence::Bitmask {
            h: by_vertex.to_bitmask(),
            ht: Some(by_edge.to_bitmask()),
        },
        Representation::ComplementCsr => Incidence::Complement {
            by_vertex: by_vertex.to_bitmask().to_csr(true),
            by_edge: by_edge.to_bitmask().to_csr(true),
        },
        Representation::Dense => Incidence::Dense {
            h: Incidence::<T>::Csr { by_vertex, by_edge }.to_dense(n),
        },
        _ => Incidence::Csr { by_vertex, by_edge },
    }
}

fn resolve(repr: Representation, density: f64) -> Representation {
    match repr {
        Representation::Auto if density <= SPARSE_DENSITY => Representation::Csr,
        Representation::Auto if density >= 1.0 - SPARSE_DENSITY => Representation::ComplementCsr,
        Representation::Auto => Representation::Bitmask,
        r => r,
    }
}

/// `d_e(e) = Σ_i H_ie` of a hard incidence.
fn hard_edge_degrees<T: Real>(inc: &Incidence<T>, n: usize) -> Vec<T> {
    let count = |c: usize| T::of(c as f64);
    match inc {
        Incidence::Bitmask { h, ht } => {
            let t = ht.as_ref().unwrap_or(h);
            (0..n).map(|e| count(t.row_count(e))).collect()
        }
        Incidence::Csr { by_edge, .. } => (0..n).map(|e| count(by_edge.row(e).len())).collect(),
        Incidence::Complement { by_edge, .. } => {
            (0..n).map(|e| count(n - by_edge.row(e).len())).collect()
        }
        Incidence::Dense { h } => (0..n).map(|e| (0..n).map(|i| h[i * n + e]).sum()).collect(),
    }
}
