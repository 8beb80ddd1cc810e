//! The `hipl` command line: one module per subcommand, each an `Args` struct (clap) and a
//! `run_*` function returning what the binary prints.

pub mod eval;
pub mod synth;
