//! Command-line front ends, one module per subcommand family.
#[cfg(feature = "candle")]
pub mod clip;
