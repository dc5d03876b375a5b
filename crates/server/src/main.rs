//! The `server` binary: parse the command line, set up logging, then serve (or run a
//! bulk move, when a subcommand is given).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use server::cli::Cli;
use server::{Application, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let Cli { config, command } = Cli::parse();
    let filter = EnvFilter::try_new(&config.rust_log).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        // Each line carries its spans (`spans`: the request's `request_id`, the use
        // case's fields), so a shipper can group a request's lines.
        LogFormat::Json => logs.json().init(),
        // Colours only for a person at a terminal, never into a file or a log shipper.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }

    let done = async {
        match command {
            Some(command) => server::moves::run(command, &config).await,
            None => {
                let address_file = config.address_file.clone();
                let application = Application::build(config).await?;
                if let Some(path) = address_file {
                    // Connections made from now on wait in the listener's backlog.
                    let address = application.local_addr()?;
                    std::fs::write(&path, format!("{address}\n")).with_context(|| {
                        format!("cannot write the address to {}", path.display())
                    })?;
                }
                application.run_until_stopped().await
            }
        }
    };
    match done.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, with its causes: "cannot reach the database at …: connection refused".
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
