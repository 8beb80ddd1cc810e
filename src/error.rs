//! The crate's one error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument `{arg}`: expected {expected}, got {got}")]
    InvalidArgument {
        arg: String,
        expected: String,
        got: String,
    },

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A checkpoint tensor is missing or has the wrong shape or type.
    #[error("checkpoint tensor `{key}`: expected {expected}, got {got}")]
    Checkpoint {
        key: String,
        expected: String,
        got: String,
    },

    /// A checkpoint file or its configuration cannot be parsed.
    #[error("{path}: {reason}")]
    BadFile {
        path: std::path::PathBuf,
        reason: String,
    },

    /// An image could not be decoded.
    #[error("image {path}: {reason}")]
    Image {
        path: std::path::PathBuf,
        reason: String,
    },

    /// A tensor operation failed inside candle.
    #[cfg(feature = "candle")]
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(arg: &str, expected: impl Into<String>, got: impl ToString) -> Self {
        Error::InvalidArgument {
            arg: arg.to_string(),
            expected: expected.into(),
            got: got.to_string(),
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
