//! A bounded set of the best `(similarity, index)` candidates: descending similarity, ties
//! to the lower index — a total order, so the kept set never depends on arrival order.

use crate::real::Real;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A candidate ordered so that the heap's top is the worst one kept.
#[derive(Clone, Copy, Debug)]
struct Worst<T>(T, u32);

impl<T: Real> Worst<T> {
    /// Whether `self` ranks before `other` (higher similarity, then lower index).
    fn better(&self, other: &Self) -> bool {
        match self.0.partial_cmp(&other.0) {
            Some(Ordering::Greater) => true,
            Some(Ordering::Less) => false,
            _ => self.1 < other.1,
        }
    }
}

impl<T: Real> PartialEq for Worst<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<T: Real> Eq for Worst<T> {}

impl<T: Real> PartialOrd for Worst<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T: Real> Ord for Worst<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.better(other) {
            Ordering::Less
        } else if other.better(self) {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    }
}

/// The best `cap` candidates seen so far.
#[derive(Clone, Debug)]
pub struct TopK<T> {
    cap: usize,
    heap: BinaryHeap<Worst<T>>,
}

impl<T: Real> TopK<T> {
    pub fn new(cap: usize) -> Self {
        TopK {
            cap,
            heap: BinaryHeap::with_capacity(cap + 1),
        }
    }

    /// The similarity a candidate must reach to be considered: `-inf` until the set is full,
    /// then the worst kept one's (an equal one may still win on a lower index).
    #[inline]
    pub fn bar(&self) -> T {
        match self.heap.peek() {
            Some(w) if self.heap.len() == self.cap => w.0,
            _ => T::neg_infinity(),
        }
    }

    /// Offers one candidate; O(log cap) when it makes the set.
    #[inline]
    pub fn push(&mut self, sim: T, index: u32) {
        if self.cap == 0 {
            return;
        }
        let cand = Worst(sim, index);
        if self.heap.len() < self.cap {
            self.heap.push(cand);
        } else if let Some(mut top) = self.heap.peek_mut() {
            if cand.better(&top) {
                *top = cand;
            }
        }
    }

    /// Offers every candidate of another set.
    pub fn merge(&mut self, other: &TopK<T>) {
        for w in other.heap.iter() {
            self.push(w.0, w.1);
        }
    }

    /// The kept indices, in no particular order.
    pub fn indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.heap.iter().map(|w| w.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best_with_ties_to_the_lower_index_in_any_order() {
        let cands = [(0.5, 7), (0.9, 3), (0.5, 2), (0.1, 0), (0.9, 1), (0.5, 4)];
        let mut forward = TopK::new(4);
        let mut backward = TopK::new(4);
        for &(s, i) in &cands {
            forward.push(s, i);
        }
        for &(s, i) in cands.iter().rev() {
            backward.push(s, i);
        }
        let sorted = |t: &TopK<f64>| {
            let mut v: Vec<u32> = t.indices().collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&forward), vec![1, 2, 3, 4]);
        assert_eq!(sorted(&backward), vec![1, 2, 3, 4]);
    }
}
