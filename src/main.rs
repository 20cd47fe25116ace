use std::io::IsTerminal;
use std::process::ExitCode;

use flotilla::cli::{self, LogFormat};

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code),
    };
    init_logging(cli.log_format, cli.log_level());
    match cli::run(cli) {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // Errors quote file names and revisions: escapes are shown.
            eprintln!(
                "error: {}",
                flotilla::repo::printable_text(&message(&error))
            );
            ExitCode::from(cli::exit::FAILURE)
        }
    }
}

/// Logs on stderr at `level` (`-q`/`-v`), unless FLOTILLA_LOG sets the
/// filter; coloured only on a terminal and without NO_COLOR.
fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOTILLA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(cli::colour(std::io::stderr().is_terminal()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The error and those of its causes its own text does not already
/// include (most of flotilla's errors quote their cause).
fn message(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// A closed pipe (`flotilla status --output json | head`): not an error.
/// serde_json wraps the I/O error in its own, so both are looked at.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let io = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind);
        let json = cause
            .downcast_ref::<serde_json::Error>()
            .and_then(serde_json::Error::io_error_kind);
        io.or(json) == Some(std::io::ErrorKind::BrokenPipe)
    })
}
