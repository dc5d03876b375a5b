//! The web client in a real browser: the suite in `tests/browser` (playwright-core
//! driving Debian's Chromium) against a fresh server. It installs what it needs: the
//! pinned npm packages, and Chromium with apt-get when `/usr/bin/chromium` is missing.
//! `cargo xtask test` runs it once, in the PostgreSQL pass.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::helpers::TestServer;
use crate::realtime::{install_js_suite, run_node_tests};

const CHROMIUM: &str = "/usr/bin/chromium";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the suite saves its screenshots: `target/screenshots`.
fn screenshot_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root().join("target"), PathBuf::from)
        .join("screenshots")
}

/// Installs Debian's Chromium unless it is there (needs root, as in CI).
async fn ensure_chromium() {
    if Path::new(CHROMIUM).exists() {
        return;
    }
    for args in [&["update"][..], &["install", "-y", "chromium"]] {
        let output = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .await
            .expect("running apt-get to install chromium for the browser test");
        assert!(
            output.status.success(),
            "apt-get {} failed (install Debian's chromium, or run as root):\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn the_web_client_works_in_a_real_chromium() {
    ensure_chromium().await;
    let dir = root().join("tests/browser");
    install_js_suite(&dir).await;
    let app = TestServer::spawn().await;
    let screenshots = screenshot_dir();
    let env: [(&str, &OsStr); 3] = [
        ("SERVER_URL", app.address.as_ref()),
        ("SCREENSHOT_DIR", screenshots.as_ref()),
        ("CHROMIUM", CHROMIUM.as_ref()),
    ];
    run_node_tests(&dir, &["--test-timeout=300000"], &env, "the browser suite").await;
}
