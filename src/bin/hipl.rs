//! The `hipl` command line.
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hipl",
    version,
    about = "Hypergraph prompt learning for zero-shot anomaly detection"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed images and texts with a CLIP checkpoint; writes image_embeds.npy, text_embeds.npy.
    #[cfg(feature = "candle")]
    ClipEmbed(hipl::cli::clip::ClipEmbedArgs),
    /// Print CLIP token ids of texts as JSON.
    #[cfg(feature = "candle")]
    Tokenize(hipl::cli::clip::TokenizeArgs),
}

#[cfg_attr(not(feature = "candle"), allow(unreachable_code, unused_variables))]
fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result: hipl::Result<()> = match cli.command {
        #[cfg(feature = "candle")]
        Command::ClipEmbed(args) => hipl::cli::clip::run_clip_embed(&args),
        #[cfg(feature = "candle")]
        Command::Tokenize(args) => hipl::cli::clip::run_tokenize(&args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
