//! Starting the server binary on a port it picks itself and learning which: it is
//! started with `PORT=0` and `ADDRESS_FILE=/dev/stdout`, and prints the address it
//! bound as its first line on stdout once listening. Asking the kernel for a free port
//! first and handing it to the server would race with any other process binding it
//! in between.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Has the server started by `command` listen on `port`, or on a free port when `None`,
/// and print the address it bound on its stdout (which this pipes). Read it with
/// [`bound_address`].
pub fn report_address(command: &mut Command, port: Option<u16>) {
    command
        .env("PORT", port.unwrap_or(0).to_string())
        .env("ADDRESS_FILE", "/dev/stdout")
        .stdout(Stdio::piped());
}

/// The address the server `child` (set up by [`report_address`]) bound, once it
/// listens: connections made from then on wait in its backlog until it serves them.
/// Whatever else it prints on stdout is passed on to ours.
///
/// # Errors
/// When the server exits before listening (its stdout ends), prints something else
/// first, or says nothing within `within`.
pub async fn bound_address(child: &mut Child, within: Duration) -> anyhow::Result<SocketAddr> {
    let stdout = child
        .stdout
        .take()
        .context("the server's stdout is not piped (see report_address)")?;
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    let read = tokio::time::timeout(within, lines.read_line(&mut line))
        .await
        .with_context(|| format!("the server did not listen within {within:?}"))?
        .context("reading the server's stdout")?;
    if read == 0 {
        let status = child.wait().await.context("reaping the server")?;
        bail!("the server exited ({status}) before listening");
    }
    let address = line
        .trim()
        .parse()
        .with_context(|| format!("the server's first line is not an address: {line:?}"))?;
    tokio::spawn(async move {
        tokio::io::copy(&mut lines, &mut tokio::io::stdout())
            .await
            .ok();
    });
    Ok(address)
}
