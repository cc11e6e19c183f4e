//! `txn`: reads compares, then success requests, then failure requests from
//! standard input (each list ended by a blank line), in etcdctl's grammar:
//! `mod("k") > "5"`, `value("k") = "v"`, then `put k v`, `get k --prefix`,
//! `del k` with those commands' own flags.

use std::io::BufRead;

use api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use api::etcdserverpb::request_op::Request;
use api::etcdserverpb::{Compare, RequestOp, TxnRequest};
use clap::{ArgAction, Args, Parser, Subcommand};

use super::kv::{DelArgs, GetArgs, PutArgs};
use crate::error::{CtlError, EXIT_BAD_ARGS, EXIT_INVALID_INPUT};
use crate::global::GlobalFlags;

/// `txn [options]`.
#[derive(Args, Debug)]
pub struct TxnArgs {
    /// Input transaction in interactive mode
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    interactive: bool,
    /// no arguments are accepted
    args: Vec<String>,
}

/// `txn`.
pub async fn run(g: &GlobalFlags, a: &TxnArgs) -> Result<(), CtlError> {
    if !a.args.is_empty() {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            "txn command does not accept argument",
        ));
    }
    let p = g.printer()?;
    let req = read_txn(&mut std::io::stdin().lock(), a.interactive)?;
    let c = g.client().await?;
    let resp = g.timed(c.kv().txn(req)).await?.into_inner();
    p.txn(&resp)
}

/// Reads a whole transaction from `input`; `prompt` prints etcdctl's
/// interactive prompts. Errors (exit 3): a line that does not parse, or
/// input that ends before a list's blank line (`EOF`).
pub fn read_txn(input: &mut impl BufRead, prompt: bool) -> Result<TxnRequest, CtlError> {
    let compare = section(input, prompt, "compares:", parse_compare)?;
    let success = section(input, prompt, "success requests (get, put, del):", parse_op)?;
    let failure = section(input, prompt, "failure requests (get, put, del):", parse_op)?;
    Ok(TxnRequest {
        compare,
        success,
        failure,
    })
}

/// One section of the txn input: its prompt (with `prompt`), then its
/// lines up to a blank one, each parsed by `parse`.
fn section<T>(
    input: &mut impl BufRead,
    prompt: bool,
    title: &str,
    parse: fn(&str) -> Result<T, CtlError>,
) -> Result<Vec<T>, CtlError> {
    if prompt {
        println!("{title}");
    }
    read_lines(input)?.iter().map(|l| parse(l)).collect()
}

/// Lines up to the next blank one.
fn read_lines(input: &mut impl BufRead) -> Result<Vec<String>, CtlError> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = input
            .read_line(&mut line)
            .map_err(|e| CtlError::new(EXIT_INVALID_INPUT, e.to_string()))?;
        if n == 0 || !line.ends_with('\n') {
            return Err(CtlError::new(EXIT_INVALID_INPUT, "EOF"));
        }
        let line = line.trim_end_matches('\n').trim_end_matches('\r');
        if line.trim().is_empty() {
            return Ok(lines);
        }
        lines.push(line.to_string());
    }
}

/// A Go-quoted string at the start of `s` (`"..."` with escapes, or
/// `` `...` ``), and the rest.
fn quoted(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix('`') {
        let end = rest.find('`')?;
        return Some((rest[..end].to_string(), &rest[end + 1..]));
    }
    let rest = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &rest[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                out.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '0' => '\0',
                    other => other,
                });
            }
            c => out.push(c),
        }
    }
    None
}

/// One compare line: `target("key") op "value"`.
pub fn parse_compare(line: &str) -> Result<Compare, CtlError> {
    let malformed = || CtlError::new(EXIT_INVALID_INPUT, format!("malformed comparison: {line}"));
    let (target, rest) = line.split_once('(').ok_or_else(malformed)?;
    let (key, rest) = quoted(rest).ok_or_else(malformed)?;
    let rest = rest.strip_prefix(')').ok_or_else(malformed)?;
    let rest = rest.trim_start();
    let (op, rest) = rest.split_once(char::is_whitespace).ok_or_else(malformed)?;
    let (val, _) = quoted(rest).ok_or_else(malformed)?;
    let result = match op {
        "=" | "==" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        ">" => CompareResult::Greater,
        "<" => CompareResult::Less,
        _ => {
            return Err(CtlError::new(
                EXIT_INVALID_INPUT,
                format!("malformed comparison: {line} (unknown op {op})"),
            ))
        }
    };
    let invalid = || {
        CtlError::new(
            EXIT_INVALID_INPUT,
            format!("invalid txn compare request: {line}"),
        )
    };
    let int = |radix| i64::from_str_radix(&val, radix).map_err(|_| invalid());
    let (t, union) = match target.trim() {
        "ver" | "version" => (CompareTarget::Version, TargetUnion::Version(int(10)?)),
        "c" | "create" => (CompareTarget::Create, TargetUnion::CreateRevision(int(10)?)),
        "m" | "mod" => (CompareTarget::Mod, TargetUnion::ModRevision(int(10)?)),
        "val" | "value" => (
            CompareTarget::Value,
            TargetUnion::Value(val.clone().into_bytes()),
        ),
        "lease" => (CompareTarget::Lease, TargetUnion::Lease(int(16)?)),
        other => {
            return Err(CtlError::new(
                EXIT_INVALID_INPUT,
                format!("malformed comparison: {line} (unknown target {other})"),
            ))
        }
    };
    Ok(Compare {
        result: result as i32,
        target: t as i32,
        key: key.into_bytes(),
        range_end: Vec::new(),
        target_union: Some(union),
    })
}

/// Splits a request line into arguments: words, `"quoted"` (with escapes)
/// or `'quoted'`.
fn argify(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        if rest.starts_with('"') {
            if let Some((s, r)) = quoted(rest) {
                args.push(s);
                rest = r.trim_start();
                continue;
            }
        }
        if let Some(r) = rest.strip_prefix('\'') {
            if let Some(end) = r.find('\'') {
                args.push(r[..end].to_string());
                rest = r[end + 1..].trim_start();
                continue;
            }
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        args.push(rest[..end].to_string());
        rest = rest[end..].trim_start();
    }
    args
}

#[derive(Parser, Debug)]
#[command(no_binary_name = true)]
struct OpLine {
    #[command(subcommand)]
    op: Op,
}

#[derive(Subcommand, Debug)]
enum Op {
    Put(PutArgs),
    Get(GetArgs),
    #[command(alias = "delete")]
    Del(DelArgs),
}

/// One request line: `put`, `get` or `del` with its flags.
pub fn parse_op(line: &str) -> Result<RequestOp, CtlError> {
    let invalid = || CtlError::new(EXIT_INVALID_INPUT, format!("invalid txn request: {line}"));
    let args = argify(line);
    if args.len() < 2 {
        return Err(CtlError::new(
            EXIT_INVALID_INPUT,
            format!("invalid txn compare request: {line}"),
        ));
    }
    let parsed = OpLine::try_parse_from(args).map_err(|_| invalid())?;
    let request = match parsed.op {
        Op::Put(a) => Request::RequestPut(a.request(false).map_err(|_| invalid())?),
        Op::Get(a) => Request::RequestRange(a.request().map_err(|_| invalid())?),
        Op::Del(a) => Request::RequestDeleteRange(a.request().map_err(|_| invalid())?),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_etcdctls_grammar() {
        let text = "mod(\"k1\") > \"0\"\nvalue(\"k 2\") = \"a b\"\n\nput k2 \"v 2\"\nget k --prefix\n\ndel k9\n\n";
        let t = read_txn(&mut text.as_bytes(), false).unwrap();
        assert_eq!(t.compare.len(), 2);
        assert_eq!(t.compare[1].key, b"k 2");
        assert_eq!(
            t.compare[1].target_union,
            Some(TargetUnion::Value(b"a b".to_vec()))
        );
        assert_eq!(t.compare[0].result, CompareResult::Greater as i32);
        match &t.success[0].request {
            Some(Request::RequestPut(p)) => assert_eq!(p.value, b"v 2"),
            other => panic!("{other:?}"),
        }
        match &t.success[1].request {
            Some(Request::RequestRange(r)) => assert_eq!(r.range_end, b"l"),
            other => panic!("{other:?}"),
        }
        assert_eq!(t.failure.len(), 1);
    }

    #[test]
    fn bad_lines_and_early_eof_are_invalid_input() {
        let e = read_txn(&mut "nope\n\n\n\n".as_bytes(), false).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (3, "malformed comparison: nope"));
        let e = read_txn(&mut "\nput k v\n".as_bytes(), false).unwrap_err();
        assert_eq!(e.msg, "EOF");
        let e = read_txn(&mut "\nfoo k v\n\n\n".as_bytes(), false).unwrap_err();
        assert_eq!(e.msg, "invalid txn request: foo k v");
    }
}
