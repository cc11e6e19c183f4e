//! Go's flag syntax for clap: Go's `flag` package, which etcd's server
//! parses its command line with, takes a long flag after one dash or two
//! (`-name x`, `-name=x`, `--name x`, `--name=x` are the same). Old etcd
//! guides start etcd with `-name ... -listen-client-urls ...`, so every
//! etcd-rs binary accepts both forms.
//!
//! [`normalize`] rewrites a single-dash argument into clap's double-dash
//! form when what follows the dash is a long flag the command (or one of
//! its subcommands) defines; everything else, short flags (`-w`) and
//! what comes after `--` included, is left alone.

use std::collections::HashSet;
use std::ffi::OsString;

/// `args` with each `-long[=value]` naming a long flag of `cmd` turned
/// into `--long[=value]`. The first argument (the program name) and
/// everything from a bare `--` on pass through unchanged.
pub fn normalize(cmd: &clap::Command, args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut names = HashSet::new();
    collect_longs(cmd, &mut names);
    let mut out = Vec::new();
    let mut rest = false;
    for (i, arg) in args.into_iter().enumerate() {
        if i == 0 || rest {
            out.push(arg);
            continue;
        }
        let rewritten = arg.to_str().and_then(|a| {
            if a == "--" {
                return None;
            }
            let body = a.strip_prefix('-').filter(|b| !b.starts_with('-'))?;
            let name = body.split_once('=').map_or(body, |(n, _)| n);
            (name.len() > 1 && names.contains(name)).then(|| OsString::from(format!("-{a}")))
        });
        rest = arg == "--";
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

fn collect_longs(cmd: &clap::Command, names: &mut HashSet<String>) {
    for a in cmd.get_arguments() {
        if let Some(l) = a.get_long() {
            names.insert(l.to_string());
        }
        if let Some(aliases) = a.get_all_aliases() {
            names.extend(aliases.into_iter().map(String::from));
        }
    }
    for sub in cmd.get_subcommands() {
        collect_longs(sub, names);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn cmd() -> Command {
        Command::new("etcd")
            .args_override_self(true)
            .arg(Arg::new("name").long("name"))
            .arg(Arg::new("write-out").short('w').long("write-out"))
            .arg(
                Arg::new("auto-tls")
                    .long("auto-tls")
                    .action(ArgAction::SetTrue),
            )
            .subcommand(
                Command::new("get")
                    .arg(Arg::new("prefix").long("prefix").action(ArgAction::SetTrue)),
            )
    }

    fn norm(args: &[&str]) -> Vec<String> {
        normalize(&cmd(), args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        assert_eq!(
            norm(&[
                "etcd",
                "-name",
                "x",
                "-auto-tls",
                "-write-out=json",
                "get",
                "-prefix"
            ]),
            [
                "etcd",
                "--name",
                "x",
                "--auto-tls",
                "--write-out=json",
                "get",
                "--prefix"
            ]
        );
        let m = cmd()
            .try_get_matches_from(norm(&["etcd", "-name=a", "--name", "b"]))
            .unwrap();
        assert_eq!(m.get_one::<String>("name").unwrap(), "b");
    }

    #[test]
    fn short_flags_unknown_words_and_what_follows_a_bare_dash_dash_stay() {
        assert_eq!(
            norm(&["etcd", "-w", "json", "-nope", "--name", "-1", "--", "-name"]),
            ["etcd", "-w", "json", "-nope", "--name", "-1", "--", "-name"]
        );
    }
}
