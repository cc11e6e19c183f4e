//! etcdctl's errors: the text after `Error: ` and the exit code (etcd's
//! `cobrautl` codes).

use std::process::exit;

/// Exit code of a failed request or command (`ExitError`).
pub const EXIT_ERROR: i32 = 1;
/// Exit code when no endpoint could be reached (`ExitBadConnection`).
pub const EXIT_BAD_CONNECTION: i32 = 2;
/// Exit code for input that does not parse (`ExitInvalidInput`).
pub const EXIT_INVALID_INPUT: i32 = 3;
/// Exit code for an output format a command does not have
/// (`ExitBadFeature`).
pub const EXIT_BAD_FEATURE: i32 = 4;
/// Exit code for file errors (`ExitIO`).
pub const EXIT_IO: i32 = 6;
/// Exit code for wrong arguments (`ExitBadArgs`).
pub const EXIT_BAD_ARGS: i32 = 128;

/// A failed command: what to print after `Error: `, and the exit code.
#[derive(Debug)]
pub struct CtlError {
    /// Exit code.
    pub code: i32,
    /// Message.
    pub msg: String,
}

impl CtlError {
    /// An error with exit code `code`.
    pub fn new(code: i32, msg: impl Into<String>) -> CtlError {
        CtlError {
            code,
            msg: msg.into(),
        }
    }

    /// Wrong arguments (exit 128).
    pub fn bad_args(msg: impl Into<String>) -> CtlError {
        CtlError::new(EXIT_BAD_ARGS, msg)
    }

    /// Prints `Error: <msg>` to standard error and exits with the code.
    pub fn exit(self) -> ! {
        eprintln!("Error: {}", self.msg);
        exit(self.code)
    }
}

/// A server's answer: etcd's message text (`etcdserver: ...`), exit 1.
impl From<tonic::Status> for CtlError {
    fn from(s: tonic::Status) -> CtlError {
        CtlError::new(EXIT_ERROR, status_text(&s))
    }
}

impl From<client::ConnectError> for CtlError {
    fn from(e: client::ConnectError) -> CtlError {
        CtlError::new(EXIT_ERROR, e.to_string())
    }
}

pub use client::status_text;

/// Help and version requests print and exit 0; anything else is a usage
/// error: `Error: <text>` and exit 1, as cobra reports bad flags.
pub fn exit_for_clap(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            exit(0)
        }
        ErrorKind::InvalidSubcommand => {
            let text = e.render().to_string();
            let name = text.split('\'').nth(1).unwrap_or_default();
            // cobra prints its own error with a hint, etcdctl the error again.
            let msg = format!("unknown command \"{name}\" for \"etcdctl\"");
            eprintln!("Error: {msg}\nRun 'etcdctl --help' for usage.");
            CtlError::new(EXIT_ERROR, msg).exit()
        }
        _ => {
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            // cobra prints the error, its usage (not reproduced here), a
            // blank line, and etcdctl then the error again.
            let msg = clap_to_cobra(first);
            eprintln!("Error: {msg}\n");
            CtlError::new(EXIT_ERROR, msg).exit()
        }
    }
}

/// clap's wording of an unknown flag -> cobra's (`unknown flag: --x`,
/// `unknown shorthand flag: 'c' in -c`).
fn clap_to_cobra(text: &str) -> String {
    if let Some(rest) = text.strip_prefix("unexpected argument '") {
        let flag = rest.split('\'').next().unwrap_or_default();
        if flag.starts_with("--") {
            let name = flag.split('=').next().unwrap_or(flag);
            return format!("unknown flag: {name}");
        }
        if let Some(c) = flag.strip_prefix('-').and_then(|f| f.chars().next()) {
            return format!("unknown shorthand flag: '{c}' in {flag}");
        }
    }
    text.to_string()
}
