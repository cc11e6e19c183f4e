//! `etcdctl`: etcd's command-line client for the v3 API, with the Go
//! etcdctl's commands, flags, `ETCDCTL_*` variables, output formats, error
//! texts and exit codes, on `crates/client`.
//!
//! `main` parses the command line, runs one command and turns its error
//! into `Error: ...` on standard error with etcdctl's exit code. Commands
//! live in `command/`, one module per group; they fetch responses and hand
//! them to `printer/`, which owns every output format.

mod command;
mod debug;
mod error;
mod global;
mod printer;

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::command::Command;
use crate::error::CtlError;
use crate::global::GlobalFlags;

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "etcdctl",
    about = "A simple command line client for etcd3.",
    disable_version_flag = true,
    args_override_self = true
)]
struct Cli {
    #[command(flatten)]
    global: GlobalFlags,
    #[command(subcommand)]
    command: Command,
}

/// The command tree, where a unique prefix names a command at every level
/// (`etcdctl compact 5` is `compaction`), as cobra's prefix matching,
/// which etcdctl turns on.
fn command() -> clap::Command {
    fn infer(c: clap::Command) -> clap::Command {
        c.infer_subcommands(true).mut_subcommands(infer)
    }
    infer(Cli::command())
}

fn main() {
    // Arguments that are not UTF-8 are taken lossily rather than refused.
    let args = goflags::normalize(&command(), std::env::args_os())
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned());
    let argv = match command::split_watch_exec(args.collect()) {
        Ok(argv) => argv,
        Err(e) => e.exit(),
    };
    let parsed = command()
        .try_get_matches_from(argv)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => error::exit_for_clap(e),
    };
    debug::print_flags(&cli.global);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result: Result<(), CtlError> = runtime.block_on(cli.command.run(&cli.global));
    if let Err(e) = result {
        e.exit();
    }
}
