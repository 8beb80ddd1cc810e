//! `hipl synth`: writes a synthetic MVTec-AD-layout dataset from real images.

use crate::error::Result;
use crate::eval::synth::{find_source, synthesize, SynthConfig};
use std::path::PathBuf;

/// Arguments of `hipl synth`.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Output directory (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of classes, one per source image (default: all source images).
    #[arg(long)]
    pub classes: Option<usize>,
    /// Side of the square images in pixels.
    #[arg(long, default_value_t = 256)]
    pub size: u32,
    /// Normal training images per class.
    #[arg(long, default_value_t = 8)]
    pub train: usize,
    /// Test images per class (half of them, rounded down, defective).
    #[arg(long, default_value_t = 12)]
    pub test: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory of source images (default: $HIPL_DATA, data/images, ../shared/data/images).
    #[arg(long)]
    pub source: Option<PathBuf>,
}

/// Writes the dataset and returns its class names.
pub fn run_synth(args: &Args) -> Result<Vec<String>> {
    let source = find_source(args.source.as_deref())?;
    let cfg = SynthConfig {
        classes: args.classes,
        size: args.size,
        train: args.train,
        test: args.test,
        seed: args.seed,
    };
    synthesize(&source, &args.out, &cfg)
}
