//! The `hipl` command line.

use clap::{Parser, Subcommand};
use hipl::cli;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hipl",
    version,
    about = "HiPL zero-shot anomaly detection tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Image AUROC/AP, pixel AUROC and AUPRO of saved scores, labels, maps and masks.
    Eval(cli::eval::Args),
    /// Write a synthetic MVTec-AD-layout dataset with exact defect masks.
    Synth(cli::synth::Args),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();

    let result = match Cli::parse().command {
        Command::Eval(args) => cli::eval::run_eval(&args).map(|m| match args.format {
            cli::eval::Format::Json => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&m.to_json()).unwrap_or_default()
                )
            }
            cli::eval::Format::Table => print!("{}", m.table()),
        }),
        Command::Synth(args) => cli::synth::run_synth(&args).map(|classes| {
            println!(
                "wrote {} classes to {}: {}",
                classes.len(),
                args.out.display(),
                classes.join(", ")
            )
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
