//! Hard incidence as one bit per (row, column) pair, and its CSR form.

use rayon::prelude::*;

/// A dense bit matrix, row-major, `words_per_row = ceil(n_cols / 64)` u64 words a row.
///
/// Bit `(i, j)` is bit `j % 64` of word `i * words_per_row + j / 64`; padding bits are 0.
/// For an incidence matrix, row `i` is vertex `i` and bit `j` says whether it belongs to
/// hyperedge `j`. The CUDA kernels write the same bytes (two u32 words per u64).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bitmask {
    n_rows: usize,
    n_cols: usize,
    words_per_row: usize,
    words: Vec<u64>,
}

impl Bitmask {
    /// An all-zero `n_rows × n_cols` bit matrix.
    pub fn zeros(n_rows: usize, n_cols: usize) -> Self {
        let words_per_row = n_cols.div_ceil(64);
        Bitmask {
            n_rows,
            n_cols,
            words_per_row,
            words: vec![0; n_rows * words_per_row],
        }
    }

    /// Wraps words laid out as described on the type; `None` if the length disagrees.
    pub fn from_words(n_rows: usize, n_cols: usize, words: Vec<u64>) -> Option<Self> {
        let words_per_row = n_cols.div_ceil(64);
        (words.len() == n_rows * words_per_row).then_some(Bitmask {
            n_rows,
            n_cols,
            words_per_row,
            words,
        })
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    pub fn words_per_row(&self) -> usize {
        self.words_per_row
    }

    /// All words, row after row.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    pub(crate) fn words_mut(&mut self) -> &mut [u64] {
        &mut self.words
    }

    /// The words of row `i`.
    pub fn row(&self, i: usize) -> &[u64] {
        &self.words[i * self.words_per_row..(i + 1) * self.words_per_row]
    }

    pub fn get(&self, i: usize, j: usize) -> bool {
        (self.words[i * self.words_per_row + j / 64] >> (j % 64)) & 1 == 1
    }

    pub fn set(&mut self, i: usize, j: usize) {
        self.words[i * self.words_per_row + j / 64] |= 1 << (j % 64);
    }

    /// Number of set bits in row `i`.
    pub fn row_count(&self, i: usize) -> usize {
        self.row(i).iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Column indices of the set bits of row `i`, ascending.
    pub fn iter_row(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.row(i).iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let b = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    w * 64 + b
                })
            })
        })
    }

    /// The transpose, built from 64×64 bit-block transposes.
    pub fn transpose(&self) -> Bitmask {
        let mut out = Bitmask::zeros(self.n_cols, self.n_rows);
        let out_wpr = out.words_per_row;
        let in_blocks = self.n_rows.div_ceil(64);
        out.words
            .par_chunks_mut(64 * out_wpr.max(1))
            .enumerate()
            .for_each(|(jb, rows)| {
                // Output rows 64·jb.. are input columns 64·jb..: word `jb` of each input row.
                for ib in 0..in_blocks {
                    let mut block = [0u64; 64];
                    for (r, slot) in block.iter_mut().enumerate() {
                        let i = ib * 64 + r;
                        if i < self.n_rows {
                            *slot = self.words[i * self.words_per_row + jb];
                        }
                    }
                    transpose64(&mut block);
                    for (r, row) in rows.chunks_mut(out_wpr).enumerate() {
                        row[ib] = block[r];
                    }
                }
            });
        out
    }

    /// CSR of the set bits, or of the clear bits (the complement) when `complement`.
    pub fn to_csr(&self, complement: bool) -> Csr {
        let rows: Vec<Vec<u32>> = (0..self.n_rows)
            .into_par_iter()
            .map(|i| {
                if complement {
                    let mut c = Vec::new();
                    for (w, &word) in self.row(i).iter().enumerate() {
                        let valid = (self.n_cols - w * 64).min(64);
                        let mask = if valid == 64 {
                            u64::MAX
                        } else {
                            (1u64 << valid) - 1
                        };
                        let mut bits = !word & mask;
                        while bits != 0 {
                            c.push((w * 64 + bits.trailing_zeros() as usize) as u32);
                            bits &= bits - 1;
                        }
                    }
                    c
                } else {
                    self.iter_row(i).map(|j| j as u32).collect()
                }
            })
            .collect();
        Csr::from_rows(self.n_cols, &rows)
    }
}

/// Transposes a 64×64 bit matrix in place (bit `c` of word `r` is element `(r, c)`).
///
/// Swaps off-diagonal blocks of size 32, 16, ..., 1 (the recursive block transpose).
pub fn transpose64(a: &mut [u64; 64]) {
    let mut j = 32;
    let mut m: u64 = 0x0000_0000_FFFF_FFFF;
    while j != 0 {
        let mut k = 0;
        while k < 64 {
            let t = ((a[k] >> j) ^ a[k | j]) & m;
            a[k | j] ^= t;
            a[k] ^= t << j;
            k = ((k | j) + 1) & !j;
        }
        j >>= 1;
        m ^= m << j;
    }
}

/// Compressed sparse rows: the column indices of row `i` are
/// `col_idx[row_ptr[i]..row_ptr[i + 1]]`, ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Csr {
    n_cols: usize,
    row_ptr: Vec<usize>,
    col_idx: Vec<u32>,
}

impl Csr {
    /// Builds from per-row column lists (each ascending).
    pub fn from_rows(n_cols: usize, rows: &[Vec<u32>]) -> Self {
        let mut row_ptr = Vec::with_capacity(rows.len() + 1);
        row_ptr.push(0);
        let mut col_idx = Vec::with_capacity(rows.iter().map(Vec::len).sum());
        for r in rows {
            col_idx.extend_from_slice(r);
            row_ptr.push(col_idx.len());
        }
        Csr {
            n_cols,
            row_ptr,
            col_idx,
        }
    }

    pub fn n_rows(&self) -> usize {
        self.row_ptr.len() - 1
    }

    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    pub fn nnz(&self) -> usize {
        self.col_idx.len()
    }

    pub fn row_ptr(&self) -> &[usize] {
        &self.row_ptr
    }

    pub fn col_idx(&self) -> &[u32] {
        &self.col_idx
    }

    /// Column indices of row `i`.
    pub fn row(&self, i: usize) -> &[u32] {
        &self.col_idx[self.row_ptr[i]..self.row_ptr[i + 1]]
    }

    /// The transpose (rows become columns), still ascending within each row.
    pub fn transpose(&self) -> Csr {
        let mut counts = vec![0usize; self.n_cols + 1];
        for &c in &self.col_idx {
            counts[c as usize + 1] += 1;
        }
        for i in 0..self.n_cols {
            counts[i + 1] += counts[i];
        }
        let row_ptr = counts.clone();
        let mut next = counts;
        let mut col_idx = vec![0u32; self.nnz()];
        for i in 0..self.n_rows() {
            for &c in self.row(i) {
                col_idx[next[c as usize]] = i as u32;
                next[c as usize] += 1;
            }
        }
        Csr {
            n_cols: self.n_rows(),
            row_ptr,
            col_idx,
        }
    }

    /// The same pattern as a bitmask.
    pub fn to_bitmask(&self) -> Bitmask {
        let mut b = Bitmask::zeros(self.n_rows(), self.n_cols);
        for i in 0..self.n_rows() {
            for &c in self.row(i) {
                b.set(i, c as usize);
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n_rows: usize, n_cols: usize) -> Bitmask {
        let mut b = Bitmask::zeros(n_rows, n_cols);
        for i in 0..n_rows {
            for j in 0..n_cols {
                if (i * 7 + j * 13 + i * j) % 5 < 2 {
                    b.set(i, j);
                }
            }
        }
        b
    }

    #[test]
    fn transpose_moves_every_bit_for_awkward_sizes() {
        for (r, c) in [(1, 1), (3, 70), (64, 64), (65, 130), (130, 5)] {
            let b = pattern(r, c);
            let t = b.transpose();
            for i in 0..r {
                for j in 0..c {
                    assert_eq!(b.get(i, j), t.get(j, i), "({i}, {j}) of {r}x{c}");
                }
            }
            assert_eq!(t.count_ones(), b.count_ones());
        }
    }

    #[test]
    fn csr_and_its_complement_partition_the_matrix() {
        let b = pattern(33, 70);
        let on = b.to_csr(false);
        let off = b.to_csr(true);
        assert_eq!(on.nnz() + off.nnz(), 33 * 70);
        assert_eq!(on.to_bitmask(), b);
        for i in 0..33 {
            for &j in off.row(i) {
                assert!(!b.get(i, j as usize));
            }
        }
        assert_eq!(on.transpose().transpose(), on);
        assert_eq!(on.transpose().to_bitmask(), b.transpose());
    }
}
