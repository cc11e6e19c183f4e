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

use std::collections::HashMap;
use std::ffi::OsString;

/// `args` with each `-long[=value]` naming a long flag of `cmd` turned
/// into `--long[=value]`. The first argument (the program name) and
/// everything from a bare `--` on pass through unchanged.
pub fn normalize(cmd: &clap::Command, args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut longs = HashMap::new();
    collect_longs(cmd, &mut longs);
    let mut out = Vec::new();
    let mut rest = false;
    // The value of a flag given as `--flag value` is never a flag itself.
    let mut value_next = false;
    for (i, arg) in args.into_iter().enumerate() {
        if i == 0 || rest || std::mem::take(&mut value_next) {
            out.push(arg);
            continue;
        }
        let Some(a) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if a == "--" {
            rest = true;
            out.push(arg);
            continue;
        }
        let Some(body) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            out.push(arg);
            continue;
        };
        let (name, inline) = body
            .split_once('=')
            .map_or((body, false), |(n, _)| (n, true));
        match longs.get(name) {
            Some(&separate_value) if name.len() > 1 => {
                value_next = separate_value && !inline;
                out.push(if a.starts_with("--") {
                    arg
                } else {
                    OsString::from(format!("-{a}"))
                });
            }
            _ => out.push(arg),
        }
    }
    out
}

/// Every long flag of `cmd` and its subcommands, with whether it takes
/// its value as the next argument (`--name x`; not a Go-style boolean)
/// wherever it is defined.
fn collect_longs(cmd: &clap::Command, longs: &mut HashMap<String, bool>) {
    for a in cmd.get_arguments() {
        let separate_value = a.get_action().takes_values()
            && !a.is_require_equals_set()
            && a.get_num_args().is_none_or(|n| n.min_values() > 0);
        // A name that is a boolean in one subcommand and takes a value in
        // another never swallows the next argument.
        let names = a
            .get_long()
            .into_iter()
            .chain(a.get_all_aliases().unwrap_or_default());
        for n in names {
            longs
                .entry(n.to_string())
                .and_modify(|v| *v &= separate_value)
                .or_insert(separate_value);
        }
    }
    for sub in cmd.get_subcommands() {
        collect_longs(sub, longs);
    }
}

/// Go's `strconv.ParseBool`, which Go's flag packages use for boolean
/// flags and etcd for `ETCD_*` booleans: `1 t T TRUE true True` and
/// `0 f F FALSE false False`. Use as a clap `value_parser`.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("parse error: invalid syntax {s:?} (a boolean)")),
    }
}

/// Go's `time.ParseDuration`: a sequence of decimal numbers, each with
/// an optional fraction and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`,
/// `h`), e.g. `1h30m`, `1.5h`, `300ms`; `0` alone is zero. A sign is
/// accepted; a negative duration is refused here (etcd's flags have no
/// use for one). Errors: Go's texts, `time: invalid duration "x"`,
/// `time: missing unit in duration "x"`, `time: unknown unit "u" in
/// duration "x"`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        nanos += value * scale;
    }
    if negative && nanos > 0.0 {
        return Err(invalid());
    }
    if nanos > i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(std::time::Duration::from_nanos(nanos.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};
    use std::time::Duration;

    #[test]
    fn durations_parse_as_gos() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration("abc"),
            Err("time: invalid duration \"abc\"".to_string())
        );
        assert_eq!(
            parse_duration("10"),
            Err("time: missing unit in duration \"10\"".to_string())
        );
        assert_eq!(
            parse_duration("10x"),
            Err("time: unknown unit \"x\" in duration \"10x\"".to_string())
        );
    }

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
            .subcommand(Command::new("check").arg(Arg::new("prefix").long("prefix")))
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
    fn a_name_that_is_a_boolean_somewhere_takes_no_separate_value() {
        assert_eq!(
            norm(&["etcd", "get", "-prefix", "-name", "x"]),
            ["etcd", "get", "--prefix", "--name", "x"]
        );
    }

    #[test]
    fn booleans_take_gos_forms() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Ok(false));
        }
        assert!(parse_bool("yes").is_err());
    }

    #[test]
    fn a_flags_value_is_not_taken_for_a_flag() {
        assert_eq!(
            norm(&["etcd", "-name", "-auto-tls", "-auto-tls", "-name=-x"]),
            ["etcd", "--name", "-auto-tls", "--auto-tls", "--name=-x"]
        );
        assert_eq!(
            norm(&["etcd", "--name", "-name"]),
            ["etcd", "--name", "-name"]
        );
    }

    #[test]
    fn short_flags_unknown_words_and_what_follows_a_bare_dash_dash_stay() {
        assert_eq!(
            norm(&["etcd", "-w", "json", "-nope", "--name", "-1", "--", "-name"]),
            ["etcd", "-w", "json", "-nope", "--name", "-1", "--", "-name"]
        );
    }
}
