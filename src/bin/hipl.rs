//! `hipl`: dynamic hypergraphs and hypergraph convolution from the command line.
//!
//! Each subcommand lives in `hipl::cli::<name>` as an `Args` struct and a `run` function;
//! adding one is a variant here and an arm in `main`.

use clap::{Parser, Subcommand};
use hipl::cli::{self, conv, demo, hypergraph};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "hipl", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the hypergraph from features and run the convolution (and its backward).
    Conv(conv::ConvArgs),
    /// Build the hypergraph from features and print its statistics as JSON.
    Hypergraph(hypergraph::HypergraphArgs),
    /// Run the pipeline on a real image and draw a few hyperedges.
    Demo(demo::DemoArgs),
    /// Image and pixel metrics (AUROC, AP, AUPRO) of any method's scores, maps and masks.
    Eval(cli::eval::Args),
    /// Write a synthetic MVTec-layout dataset (real textures with pasted defects and masks).
    Synth(cli::synth::Args),
    /// Embed images and texts with a CLIP checkpoint; writes image_embeds.npy, text_embeds.npy.
    #[cfg(feature = "candle")]
    ClipEmbed(hipl::cli::clip::ClipEmbedArgs),
    /// Print CLIP token ids of texts as JSON.
    #[cfg(feature = "candle")]
    Tokenize(hipl::cli::clip::TokenizeArgs),
    /// Train HiPL's prompts and hypergraph on a dataset's annotated test split (frozen CLIP).
    #[cfg(feature = "candle")]
    Train(hipl::cli::train::TrainArgs),
    /// Test a trained checkpoint zero-shot: metrics table, metrics.json, map overlays.
    #[cfg(feature = "candle")]
    Test(hipl::cli::test::TestArgs),
    /// Synthesise a dataset, write a tiny random CLIP, train briefly, test, print metrics.
    #[cfg(feature = "candle")]
    Quickstart(hipl::cli::quickstart::QuickstartArgs),
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so writing to a closed pipe (`hipl eval ... | head -1`) fails
    // with an error, or a panic inside println!; a command-line tool should end quietly
    // instead, as the C tools do.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    cli::install_panic_hook();
    cli::init_logging();
    let args = match Cli::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // --help and --version are not failures; usage errors exit 1 like every other.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let out = &mut std::io::stdout().lock();
    cli::exit_code(match &args.command {
        Command::Conv(a) => conv::run(a, out),
        Command::Hypergraph(a) => hypergraph::run(a, out),
        Command::Demo(a) => demo::run(a, out),
        Command::Eval(a) => cli::eval::run_eval(a).map(|m| match a.format {
            cli::eval::Format::Json => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&m.to_json()).unwrap_or_default()
                )
            }
            cli::eval::Format::Table => print!("{}", m.table()),
        }),
        Command::Synth(a) => cli::synth::run_synth(a).map(|classes| {
            println!(
                "wrote {} classes to {}: {}",
                classes.len(),
                a.out.display(),
                classes.join(", ")
            )
        }),
        #[cfg(feature = "candle")]
        Command::ClipEmbed(a) => hipl::cli::clip::run_clip_embed(a),
        #[cfg(feature = "candle")]
        Command::Tokenize(a) => hipl::cli::clip::run_tokenize(a),
        #[cfg(feature = "candle")]
        Command::Train(a) => hipl::cli::train::run_train(a, out).map(|_| ()),
        #[cfg(feature = "candle")]
        Command::Test(a) => hipl::cli::test::run_test(a, out).map(|_| ()),
        #[cfg(feature = "candle")]
        Command::Quickstart(a) => hipl::cli::quickstart::run_quickstart(a, out).map(|_| ()),
    })
}
