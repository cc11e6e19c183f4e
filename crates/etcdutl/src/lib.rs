//! etcdutl's commands: those etcdctl 3.5 also offers (deprecated there,
//! forwarding here, as etcdctl 3.5 calls etcdutl's code), `snapshot
//! status` and `restore` ([`snapshot`]); `hashkv` ([`hashkv`]); and the
//! output helpers both tools share ([`print`]). The `etcdutl` binary
//! (`main.rs`) adds the command line.

pub mod hashkv;
pub mod print;
pub mod snapshot;

/// cobrautl's exit codes.
pub mod exit {
    /// A command that failed.
    pub const ERROR: i32 = 1;
    /// An output format the command cannot print.
    pub const BAD_FEATURE: i32 = 4;
    /// Arguments the command does not take.
    pub const BAD_ARGS: i32 = 128;
}

/// A failed command: its exit code and what it prints after `Error: `.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    /// The exit code ([`exit`]).
    pub code: i32,
    /// The message.
    pub message: String,
}

impl Failure {
    /// A failure with `code` saying `message`.
    pub fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}
