//! The floating-point element types the CPU path runs on (f32, and f64 for tests).

use std::fmt::Debug;

/// An element type of features, weights and gradients.
///
/// Implemented for `f32` (the working type) and `f64` (finite-difference tests).
pub trait Real:
    faer::traits::RealField
    + num_traits::Float
    + num_traits::FromPrimitive
    + std::iter::Sum
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + Copy
    + Default
    + Debug
    + Send
    + Sync
    + 'static
{
    /// Name of the type as `.npy` and error messages spell it.
    const NAME: &'static str;

    /// Converts from `f64`, rounding to the nearest value of `Self`.
    fn of(x: f64) -> Self;

    /// Widens to `f64`.
    fn to64(self) -> f64;
}

impl Real for f32 {
    const NAME: &'static str = "f32";

    fn of(x: f64) -> Self {
        x as f32
    }

    fn to64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    const NAME: &'static str = "f64";

    fn of(x: f64) -> Self {
        x
    }

    fn to64(self) -> f64 {
        self
    }
}
