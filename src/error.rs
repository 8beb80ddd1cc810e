//! The crate's one error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument `{arg}`: expected {expected}, got {got}")]
    InvalidArgument { arg: String, expected: String, got: String },
}
