//! Writing to the terminal: colour only on a terminal and without NO_COLOR,
//! and a closed pipe (`flotilla plan | head`) is not an error.

use std::fmt::Display;
use std::io::{IsTerminal, Write};

pub struct Output {
    writer: Box<dyn Write>,
    color: bool,
    terminal: bool,
    quiet: bool,
}

/// Whether a stream that is (or is not) a terminal gets colour: only a
/// terminal, never with NO_COLOR set to anything (https://no-color.org),
/// and never on a `TERM=dumb` terminal (Emacs' shell, some CI consoles).
pub fn colour(terminal: bool) -> bool {
    terminal
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|term| term != "dumb")
}

impl Output {
    /// Standard output; `quiet` (`-q`) leaves progress lines out.
    pub fn stdout(quiet: bool) -> Self {
        let stdout = std::io::stdout();
        let terminal = stdout.is_terminal();
        Output {
            writer: Box::new(stdout),
            color: colour(terminal),
            terminal,
            quiet,
        }
    }

    /// Whether this writes to a terminal (progress may then redraw a line).
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// `-q`: no progress lines, only results.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// A warning or a note on standard error, left out with `-q`.
    pub fn warn(&self, text: impl Display) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }

    pub fn color(&self) -> bool {
        self.color
    }

    pub fn line(&mut self, text: impl Display) -> std::io::Result<()> {
        writeln!(self.writer, "{text}")
    }

    pub fn text(&mut self, text: impl Display) -> std::io::Result<()> {
        write!(self.writer, "{text}")
    }

    pub fn json(&mut self, value: &impl serde::Serialize) -> anyhow::Result<()> {
        serde_json::to_writer_pretty(&mut self.writer, value)?;
        writeln!(self.writer)?;
        Ok(())
    }

    /// `text` in bold red (errors), when colour is on.
    pub fn red(&self, text: &str) -> String {
        self.paint("1;31", text)
    }

    /// `text` in bold yellow (warnings), when colour is on.
    pub fn yellow(&self, text: &str) -> String {
        self.paint("1;33", text)
    }

    /// `text` in bold green, when colour is on.
    pub fn green(&self, text: &str) -> String {
        self.paint("1;32", text)
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}
