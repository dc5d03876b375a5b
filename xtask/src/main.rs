//! `cargo xtask`: the project's developer workflows (`test`, `e2e`, `tidy`, `ci`, `bench`)
//! as one small binary, so that CI and a developer run exactly the same commands.
//!
//! Each workflow is a list of steps; every step is printed before it runs and the first
//! failing step stops the workflow with a non-zero exit status.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// What `cargo xtask` with no or an unknown command prints.
const USAGE: &str = "\
usage: cargo xtask <command> [args...]

commands:
  test [args...]  run every test of the workspace (unit, repository, end-to-end on
                  PostgreSQL and on SQLite); extra args go to `cargo test`
  e2e [args...]   run only the end-to-end suite (tests/e2e) against the real server,
                  on PostgreSQL and on SQLite
  tidy            every .rs file starts with `//!`; the domain depends on no I/O crate
  contract        contract testing: schemathesis (from PyPI, in a venv under the
                  target dir) against a fresh server on a fresh SQLite database, every
                  operation of /openapi.json, with a registered user's token; fails on
                  any 5xx or any answer the document does not describe
  ci              what CI runs: fmt check, clippy -D warnings, tidy, `test`,
                  `contract`, then `bench --quick` and
                  `bench --quick --nodes 2 --store postgres` (smoke tests of the
                  harness, alone and as a cluster, never a timing)
  bench [args...] build the server and the load generator in release, then run the
                  benchmarks (`bench --help` lists the options; `--quick` is a smoke
                  test); JSON goes to target/bench/results.json. See BENCHMARKS.md

The repository and end-to-end tests need PostgreSQL: DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/postgres, trust auth). The Socket.IO
suite needs Node.js 20+ and npm (it installs its pinned packages itself); `contract`
needs Python 3 with venv and pip.";

/// Crates the domain must not depend on: the domain is pure, and these are I/O,
/// transport or wire-format crates (see ARCHITECTURE.md, invariants). Serialisation is
/// the wire crate's and the adapters' business, so `serde` itself is out too.
const FORBIDDEN_IN_DOMAIN: &[&str] = &[
    "sqlx",
    "axum",
    "tokio",
    "serde",
    "serde_json",
    "socketioxide",
    "tower",
    "hyper",
    "reqwest",
];

/// Folders whose Rust files must each start with a `//!` line.
const DOCUMENTED_TREES: &[&str] = &["crates", "xtask", "tests", "bench"];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Dispatches on the first argument.
fn run() -> Result<()> {
    let mut args = env::args_os().skip(1);
    let command = args.next();
    let rest: Vec<OsString> = args.collect();
    let root = workspace_root();
    match command.as_ref().and_then(|c| c.to_str()) {
        Some("test") => test(&root, &rest),
        Some("e2e") => e2e(&root, &rest),
        Some("tidy") => tidy(&root),
        Some("contract") => {
            if !rest.is_empty() {
                bail!("`contract` takes no arguments\n\n{USAGE}");
            }
            contract(&root)
        }
        Some("bench") => bench(&root, &rest),
        Some("ci") => {
            if !rest.is_empty() {
                bail!("`ci` takes no arguments\n\n{USAGE}");
            }
            ci(&root)
        }
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
        None => bail!("no command given\n\n{USAGE}"),
    }
}

/// `cargo xtask test`: the doc tests (which `--all-targets` leaves out), every test
/// target of every crate (the end-to-end suite on PostgreSQL among them), then the
/// end-to-end suite again on the embedded SQLite store. `extra` is forwarded to each run.
fn test(root: &Path, extra: &[OsString]) -> Result<()> {
    cargo(root, &["test", "--workspace", "--doc"], extra)?;
    cargo(root, &["test", "--workspace", "--all-targets"], extra)?;
    e2e_on_sqlite(root, extra)
}

/// `cargo xtask e2e`: only the end-to-end suite, on PostgreSQL and then on SQLite. It is
/// compiled as a test of the `server` package so that Cargo builds the server binary it
/// starts.
fn e2e(root: &Path, extra: &[OsString]) -> Result<()> {
    cargo(root, &["test", "-p", "server", "--test", "e2e"], extra)?;
    e2e_on_sqlite(root, extra)
}

/// The end-to-end suite with `E2E_STORE=sqlite`: the server runs on its embedded default
/// database. Two modules are skipped here, by nature: `postgres_only` cuts a database
/// server off from the process, which has no meaning for a database inside the process,
/// and `cluster` runs several server processes on one shared database, which an embedded
/// file cannot be (the server refuses `REDIS_URL` without PostgreSQL). `browser` (the web
/// client in Chromium, the slowest test) tests the client, not the store: once is enough.
fn e2e_on_sqlite(root: &Path, extra: &[OsString]) -> Result<()> {
    let mut args: Vec<OsString> = extra.to_vec();
    if !args.iter().any(|a| a == "--") {
        args.push("--".into());
    }
    args.extend([
        "--skip".into(),
        "postgres_only::".into(),
        "--skip".into(),
        "cluster::".into(),
        "--skip".into(),
        "browser::".into(),
    ]);
    run_cargo(
        root,
        &["test", "-p", "server", "--test", "e2e"],
        &args,
        &[("E2E_STORE", "sqlite")],
    )
}

/// `cargo xtask bench`: builds the server and the `bench` load generator in release
/// (one build, so they share their dependencies), then runs `bench` with `extra`. The
/// load generator starts the server itself; see BENCHMARKS.md.
fn bench(root: &Path, extra: &[OsString]) -> Result<()> {
    cargo(
        root,
        &["build", "--release", "-p", "server", "-p", "bench"],
        &[],
    )?;
    let target = env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let target = if target.is_absolute() {
        target
    } else {
        root.join(target)
    };
    let release = target.join("release");
    let given = |flag: &str| {
        extra.iter().any(|a| {
            let a = a.to_string_lossy();
            a == flag || a.starts_with(&format!("{flag}="))
        })
    };
    let mut args: Vec<OsString> = Vec::new();
    if !given("--server") {
        args.push("--server".into());
        args.push(release.join("server").into_os_string());
    }
    if !given("--out") {
        args.push("--out".into());
        args.push(target.join("bench").join("results.json").into_os_string());
    }
    args.extend(extra.iter().cloned());
    let program = release.join("bench");
    step(&format!(
        "{} {}",
        relative(root, &program),
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let status = Command::new(&program)
        .current_dir(root)
        .args(&args)
        .status()
        .with_context(|| format!("starting {}", program.display()))?;
    if !status.success() {
        bail!("the benchmark failed ({status})");
    }
    Ok(())
}

/// `cargo xtask ci`: formatting, lints, tidy checks, the whole test suite, then the
/// benchmark harness's smoke tests (one server on SQLite; a two-node cluster).
fn ci(root: &Path) -> Result<()> {
    cargo(root, &["fmt", "--all", "--", "--check"], &[])?;
    cargo(
        root,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    tidy(root)?;
    test(root, &[])?;
    contract(root)?;
    // A smoke test of the benchmark harness: it checks that messages flowed with none
    // lost, duplicated or reordered, never a timing.
    bench(root, &[OsString::from("--quick")])?;
    // The same for a two-node cluster over Redis (about 10 s more): messages that
    // cross from one node to the other must arrive, once and in order, too.
    bench(
        root,
        &["--quick", "--nodes", "2", "--store", "postgres"].map(OsString::from),
    )
}

/// The schemathesis release `contract` installs (pinned: a new release may add checks).
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// What `contract` checks on every answer: no server error, and the status, media type,
/// headers and body each as the document describes them.
const CONTRACT_CHECKS: &str = "not_a_server_error,status_code_conformance,\
content_type_conformance,response_headers_conformance,response_schema_conformance";

/// Test cases per operation and phase: enough to reach each status an operation
/// documents, few enough that the whole run takes well under a minute.
const CONTRACT_EXAMPLES: &str = "40";

/// The target directory (`CARGO_TARGET_DIR`, else `target/`), absolute.
fn target_dir(root: &Path) -> PathBuf {
    let target = env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    if target.is_absolute() {
        target
    } else {
        root.join(target)
    }
}

/// A server process that is killed when dropped, also when a step fails.
struct RunningServer(std::process::Child);

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cargo xtask contract`: builds the server, makes (once) a Python venv under the
/// target dir with schemathesis, starts the server on a free port with a fresh SQLite
/// database, and runs schemathesis over every operation of its `/openapi.json`, with
/// `xtask/contract/hooks.py` registering a user and logging in so that authenticated
/// operations get a valid bearer token. Fails on any 5xx or any answer the document
/// does not describe.
fn contract(root: &Path) -> Result<()> {
    cargo(root, &["build", "-p", "server"], &[])?;
    let target = target_dir(root);
    let work = target.join("contract");
    let venv = work.join("venv");
    let schemathesis = venv.join("bin").join("schemathesis");
    let pinned = SCHEMATHESIS.split("==").nth(1).unwrap_or_default();
    let installed = Command::new(&schemathesis)
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(pinned));
    if !installed {
        step(&format!(
            "python3 -m venv {} && pip install {SCHEMATHESIS}",
            relative(root, &venv)
        ));
        run_checked(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        )?;
        run_checked(
            Command::new(venv.join("bin").join("pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                SCHEMATHESIS,
            ]),
            "pip install schemathesis",
        )?;
    }

    // A free port: bind port 0, note what the system gave, let it go for the server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .context("finding a free port")?
        .port();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let data = work.join(format!("data-{stamp}"));
    let base = format!("http://127.0.0.1:{port}");
    step(&format!(
        "server on {base}, a fresh SQLite database in {}",
        relative(root, &data)
    ));
    let server = RunningServer(
        Command::new(target.join("debug").join("server"))
            .current_dir(root)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("DATA_DIR", &data)
            .env("JWT_SECRET", format!("contract-testing-only-{stamp:0>40}"))
            .env("RUST_LOG", "warn")
            // The run registers and logs in far more often than a person: the limits a
            // deployment keeps would only turn its requests into 429s.
            .env("RATE_LIMIT_LOGIN", "off")
            .env("RATE_LIMIT_REGISTER", "off")
            .env("RATE_LIMIT_FAILED_LOGINS", "off")
            .spawn()
            .context("starting the server")?,
    );

    let hooks = root.join("xtask").join("contract");
    let mut schemathesis_run = Command::new(&schemathesis);
    schemathesis_run
        .current_dir(&work)
        .env("PYTHONPATH", &hooks)
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("CONTRACT_BASE_URL", &base)
        .args(["run", &format!("{base}/openapi.json")])
        .args(["--wait-for-schema", "60"])
        .args(["--checks", CONTRACT_CHECKS])
        .args(["--max-examples", CONTRACT_EXAMPLES])
        .args(["--generation-database", "none"])
        .args(["--suppress-health-check", "all"])
        .args(["--workers", "2", "--no-color"])
        .args(["--report", "junit", "--report-dir"])
        .arg(work.join("report"));
    step(&format!(
        "schemathesis run {base}/openapi.json --checks {CONTRACT_CHECKS} --max-examples {CONTRACT_EXAMPLES}"
    ));
    let outcome = run_checked(&mut schemathesis_run, "schemathesis");
    drop(server);
    let _ = fs::remove_dir_all(&data);
    outcome
}

/// Runs `command`, failing when it cannot start or exits unsuccessfully.
fn run_checked(command: &mut Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Checks the conventions the compiler does not: leading `//!` docs and the purity of
/// the domain crate.
fn tidy(root: &Path) -> Result<()> {
    step("tidy: every .rs file starts with `//!`; domain depends on no I/O crate");
    let mut problems = Vec::new();

    for tree in DOCUMENTED_TREES {
        let mut files = Vec::new();
        rust_files(&root.join(tree), &mut files)?;
        for file in files {
            let text =
                fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            if !text.trim_start_matches('\u{feff}').starts_with("//!") {
                problems.push(format!(
                    "{}: does not start with a `//!` line saying what the file is for",
                    relative(root, &file)
                ));
            }
        }
    }

    let manifest = root.join("crates/domain/Cargo.toml");
    let text =
        fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    for dep in forbidden_dependencies(&text) {
        problems.push(format!(
            "crates/domain/Cargo.toml: depends on `{dep}`; the domain must know nothing of {}",
            FORBIDDEN_IN_DOMAIN.join(", ")
        ));
    }
    for dep in forbidden_in_domain_tree(root)? {
        problems.push(format!(
            "crates/domain: pulls in `{dep}` through its dependencies (see `cargo tree -p domain -i {dep}`)"
        ));
    }

    if problems.is_empty() {
        Ok(())
    } else {
        for problem in &problems {
            eprintln!("tidy: {problem}");
        }
        bail!("tidy found {} problem(s)", problems.len())
    }
}

/// The forbidden crates named in a manifest's dependency tables (`[dependencies]`,
/// `[dev-dependencies]`, `[build-dependencies]`, their `[target.….…]` forms, and the
/// `[dependencies.name]` form), including renamed ones (`package = "…"`).
fn forbidden_dependencies(manifest: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_deps_table = false;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            let header = line.trim_matches(|c| c == '[' || c == ']').trim();
            let mut parts = header.rsplitn(2, '.');
            let last = parts.next().unwrap_or("");
            in_deps_table = is_deps_table(header);
            // `[dependencies.sqlx]`: the table names the crate.
            if !in_deps_table && parts.next().is_some_and(is_deps_table) {
                let name = last.trim_matches('"');
                if FORBIDDEN_IN_DOMAIN.contains(&name) {
                    found.push(name.to_owned());
                }
            }
            continue;
        }
        if !in_deps_table {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().trim_matches('"');
        // `name.workspace = true` and `name = { … }` both start with the name.
        let name = key.split('.').next().unwrap_or(key);
        if FORBIDDEN_IN_DOMAIN.contains(&name) {
            found.push(name.to_owned());
        }
        if let Some(package) = value.split("package").nth(1) {
            let package = package
                .trim_start_matches(|c: char| c == '=' || c.is_whitespace())
                .split('"')
                .nth(1)
                .unwrap_or("");
            if FORBIDDEN_IN_DOMAIN.contains(&package) {
                found.push(package.to_owned());
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Whether a table header (without brackets) is a dependency table.
fn is_deps_table(header: &str) -> bool {
    let last = header.rsplit('.').next().unwrap_or(header);
    matches!(
        last,
        "dependencies" | "dev-dependencies" | "build-dependencies"
    ) && (header == last || header.starts_with("target."))
}

/// The forbidden crates anywhere in the domain's normal and build dependency tree, all
/// features on: a direct check of the manifest would miss one pulled in indirectly.
fn forbidden_in_domain_tree(root: &Path) -> Result<Vec<String>> {
    let output = Command::new(cargo_program())
        .current_dir(root)
        .args([
            "tree",
            "--quiet",
            "-p",
            "domain",
            "--all-features",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .context("running `cargo tree -p domain`")?;
    if !output.status.success() {
        bail!(
            "`cargo tree -p domain` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let mut found: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| FORBIDDEN_IN_DOMAIN.contains(name))
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    Ok(found)
}

/// Collects the `.rs` files under `dir`, skipping build output and hidden folders.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "target" && name != "node_modules" && !name.starts_with('.') {
                rust_files(&path, out)?;
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

/// Runs `cargo <args> <extra>` in the workspace root, printing it first.
fn cargo(root: &Path, args: &[&str], extra: &[OsString]) -> Result<()> {
    run_cargo(root, args, extra, &[])
}

/// Like [`cargo`], with environment variables set for the run.
fn run_cargo(root: &Path, args: &[&str], extra: &[OsString], env: &[(&str, &str)]) -> Result<()> {
    let shown: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .chain(std::iter::once("cargo".to_owned()))
        .chain(args.iter().map(|a| (*a).to_owned()))
        .chain(extra.iter().map(|a| a.to_string_lossy().into_owned()))
        .collect();
    let shown = shown.join(" ");
    step(&shown);
    let status = Command::new(cargo_program())
        .current_dir(root)
        .envs(env.iter().copied())
        .args(args)
        .args(extra)
        .status()
        .with_context(|| format!("starting `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Announces a step, so that a log shows which one failed.
fn step(what: &str) {
    eprintln!("\n==> {what}");
}

/// The cargo that runs us (so that `cargo +toolchain xtask` stays on that toolchain).
fn cargo_program() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The workspace root: the parent of this crate's folder.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// `path` relative to the workspace root, for messages.
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_without_forbidden_crates_passes() {
        let manifest = r#"
[package]
name = "domain"
description = "no tokio here"

[dependencies]
thiserror.workspace = true
time = { workspace = true }
"#;
        assert!(forbidden_dependencies(manifest).is_empty());
    }

    #[test]
    fn every_spelling_of_a_forbidden_dependency_is_found() {
        let manifest = r#"
[dependencies]
tokio.workspace = true
"serde_json" = "1"
rt = { package = "sqlx", version = "0.9" }

[dev-dependencies]
axum = "0.8"

[target.'cfg(unix)'.dependencies]
hyper = "1"

[dependencies.reqwest]
version = "0.13"
"#;
        assert_eq!(
            forbidden_dependencies(manifest),
            ["axum", "hyper", "reqwest", "serde_json", "sqlx", "tokio"]
        );
    }

    #[test]
    fn features_and_package_tables_are_not_dependency_tables() {
        let manifest = r#"
[package]
tokio = "not a dependency"

[features]
tower = []
"#;
        assert!(forbidden_dependencies(manifest).is_empty());
    }
}
