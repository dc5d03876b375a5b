//! The command line of the server binary: the server's configuration, and optionally
//! a subcommand to run instead of serving (a bulk move).

use clap::Parser;

use crate::config::Config;
use crate::moves::Command;

/// `server [settings] [import nest … | migrate-store …]`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "server",
    version,
    about = "The messenger API server: REST, Socket.IO and WebSocket on one port."
)]
pub struct Cli {
    /// The server's settings (also the target store of an import).
    #[command(flatten)]
    pub config: Config,
    /// Run this instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moves::ImportFrom;

    #[test]
    fn no_subcommand_serves_and_settings_still_parse() {
        let cli = Cli::try_parse_from(["server", "--port", "8080"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.config.port, 8080);
    }

    #[test]
    fn import_nest_takes_the_old_database_and_run_options() {
        let cli = Cli::try_parse_from([
            "server",
            "--data-dir",
            "/tmp/d",
            "import",
            "nest",
            "--from",
            "postgres://old/db",
            "--dry-run",
        ])
        .unwrap();
        let Some(Command::Import(ImportFrom::Nest(args))) = cli.command else {
            panic!("not an import: {:?}", cli.command);
        };
        assert_eq!(args.from, "postgres://old/db");
        assert!(args.run.dry_run && !args.run.accept_lossy);
        assert_eq!(args.run.batch_size, 10_000);
        assert!(Cli::try_parse_from(["server", "import", "nest"]).is_err());
    }

    #[test]
    fn migrate_store_needs_both_ends() {
        let cli = Cli::try_parse_from([
            "server",
            "migrate-store",
            "--from",
            "sqlite://a.db",
            "--to",
            "postgres://h/db",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::MigrateStore(_))));
        assert!(
            Cli::try_parse_from(["server", "migrate-store", "--from", "sqlite://a.db"]).is_err()
        );
    }
}
