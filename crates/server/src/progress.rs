//! How a bulk move shows its progress: a bar with counts and rate when stderr is a
//! terminal, plain lines (each stage's start and end, and every few seconds) when it
//! is not, so that a log file stays readable. Problems go to stdout, one line each.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use import::{Problem, Progress, Stage};
use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// How often a plain line is written while a stage runs.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// The display of one move.
pub struct Display {
    kind: Kind,
}

enum Kind {
    /// A bar on the terminal (stderr).
    Bar(Mutex<Option<ProgressBar>>),
    /// Plain lines on stderr.
    Plain(Mutex<Plain>),
}

/// What plain lines need to remember of the current stage.
struct Plain {
    stage: Stage,
    total: u64,
    done: u64,
    started: Instant,
    last_line: Instant,
}

impl Display {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn for_stderr() -> Self {
        let kind = if std::io::stderr().is_terminal() {
            Kind::Bar(Mutex::new(None))
        } else {
            let now = Instant::now();
            Kind::Plain(Mutex::new(Plain {
                stage: Stage::Users,
                total: 0,
                done: 0,
                started: now,
                last_line: now,
            }))
        };
        Self { kind }
    }

    /// Writes `line` to stdout without tearing the bar.
    pub fn println(&self, line: &str) {
        match &self.kind {
            Kind::Bar(bar) => match lock(bar).as_ref() {
                Some(bar) => bar.suspend(|| println!("{line}")),
                None => println!("{line}"),
            },
            Kind::Plain(_) => println!("{line}"),
        }
    }
}

/// The lock's value, also after a panic elsewhere (a display has no invariant to break).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `rows` per second over `elapsed`.
fn rate(rows: u64, elapsed: Duration) -> u64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        (rows as f64 / seconds) as u64
    } else {
        rows
    }
}

impl Progress for Display {
    fn start(&self, stage: Stage, total: u64) {
        match &self.kind {
            Kind::Bar(slot) => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                let style = ProgressStyle::with_template(
                    "{prefix:>9} [{bar:30}] {human_pos}/{human_len} {rate} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key(
                    "rate",
                    |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        // Whole rows per second: indicatif's own `per_sec` shows decimals.
                        let _ = write!(w, "{}/s", HumanCount(state.per_sec() as u64));
                    },
                )
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_prefix(stage.name());
                *lock(slot) = Some(bar);
            }
            Kind::Plain(plain) => {
                let now = Instant::now();
                *lock(plain) = Plain {
                    stage,
                    total,
                    done: 0,
                    started: now,
                    last_line: now,
                };
                eprintln!("{}: 0/{total}", stage.name());
            }
        }
    }

    fn advance(&self, rows: u64) {
        match &self.kind {
            Kind::Bar(slot) => {
                if let Some(bar) = lock(slot).as_ref() {
                    bar.inc(rows);
                }
            }
            Kind::Plain(plain) => {
                let mut plain = lock(plain);
                plain.done += rows;
                if plain.last_line.elapsed() >= PLAIN_EVERY {
                    plain.last_line = Instant::now();
                    eprintln!(
                        "{}: {}/{} ({}/s)",
                        plain.stage.name(),
                        plain.done,
                        plain.total,
                        rate(plain.done, plain.started.elapsed())
                    );
                }
            }
        }
    }

    fn finish(&self) {
        match &self.kind {
            Kind::Bar(slot) => {
                if let Some(bar) = lock(slot).take() {
                    bar.finish();
                }
            }
            Kind::Plain(plain) => {
                let plain = lock(plain);
                let elapsed = plain.started.elapsed();
                eprintln!(
                    "{}: {} done in {:.1} s ({}/s)",
                    plain.stage.name(),
                    plain.done,
                    elapsed.as_secs_f64(),
                    rate(plain.done, elapsed)
                );
            }
        }
    }

    fn problem(&self, problem: &Problem) {
        self.println(&format!("problem: {problem}"));
    }
}
