//! The embedding example trains: a short run of `examples/candle_embedding.rs` lowers the
//! held-out loss at least tenfold, and below the no-hypergraph baseline's.
#![cfg(feature = "candle")]

#[allow(dead_code)]
#[path = "../examples/candle_embedding.rs"]
mod example;

#[test]
fn hsc_student_learns_the_teacher_at_least_tenfold() {
    let r = example::train(200, 0).unwrap();
    assert!(r.initial / r.final_ >= 10.0, "{r:?}");
    assert!(r.final_ < r.baseline_final, "{r:?}");
}
