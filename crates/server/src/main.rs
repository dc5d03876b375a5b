//! The `server` binary: parse configuration, set up logging, run the application.

use std::process::ExitCode;

use clap::Parser;
use server::{Application, Config};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.rust_log).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, never into a file or a log shipper.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let started = async {
        let application = Application::build(config).await?;
        application.run_until_stopped().await
    };
    match started.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, with its causes: "cannot reach the database at …: connection refused".
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
