//! The crate's one error type: every failure on user input comes back as an [`Error`]
//! that names the argument, what was expected and what came.

use std::path::PathBuf;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `hipl`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scalar or option outside its domain (`alpha <= 0`, `k > N`, ...).
    #[error("invalid argument `{arg}`: expected {expected}, got {got}")]
    InvalidArgument {
        arg: String,
        expected: String,
        got: String,
    },

    /// A tensor whose shape disagrees with the others.
    #[error("shape mismatch in `{arg}`: expected {expected}, got {got}")]
    Shape {
        arg: String,
        expected: String,
        got: String,
    },

    /// NaN or infinity in an input tensor.
    #[error("non-finite value in `{arg}` at {index}: {value}")]
    NonFinite {
        arg: String,
        index: String,
        value: f64,
    },

    /// A vertex or hyperedge of degree zero under [`crate::ZeroDegree::Error`].
    #[error("zero {kind} degree at image {image}, index {index} (zero_degree policy is Error)")]
    ZeroDegree {
        kind: &'static str,
        image: usize,
        index: usize,
    },

    /// A file that could not be read or written.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file that was read but holds something other than what was expected.
    #[error("bad file {}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },

    /// An error from candle (tensor ops, devices, var builders).
    #[cfg(feature = "candle")]
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(arg: &str, expected: impl Into<String>, got: impl ToString) -> Self {
        Error::InvalidArgument {
            arg: arg.into(),
            expected: expected.into(),
            got: got.to_string(),
        }
    }

    /// Shorthand for [`Error::Shape`].
    pub fn shape(arg: &str, expected: impl Into<String>, got: impl std::fmt::Debug) -> Self {
        Error::Shape {
            arg: arg.into(),
            expected: expected.into(),
            got: format!("{got:?}"),
        }
    }
}
