//! `watch`: prints every event of one watch (or, with `-i`, of watches
//! read from standard input) until interrupted, optionally running a
//! command per event (`watch key -- cmd args`).

use std::io::BufRead;
use std::sync::OnceLock;

use api::etcdserverpb::watch_request::RequestUnion;
use api::etcdserverpb::{WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse};
use clap::{ArgAction, Args, Parser};
use tokio::sync::mpsc;

use super::prefix_end;
use crate::error::{CtlError, EXIT_INVALID_INPUT};
use crate::global::GlobalFlags;
use crate::printer::{fields::go_quote, Printer};

/// The command after `--` on a `watch` command line, run for each event.
static EXEC: OnceLock<Vec<String>> = OnceLock::new();

/// Global flags whose value may be the next argument.
const VALUE_FLAGS: &[&str] = &[
    "--endpoints",
    "--dial-timeout",
    "--command-timeout",
    "--keepalive-time",
    "--keepalive-timeout",
    "-w",
    "--write-out",
    "--cacert",
    "--cert",
    "--key",
    "--user",
    "--password",
];

/// Where the command name is in `argv`: the first argument that is neither
/// a flag nor a flag's value.
fn command_position(argv: &[String]) -> Option<usize> {
    let mut i = 1;
    while i < argv.len() {
        let a = &argv[i];
        if !a.starts_with('-') {
            return Some(i);
        }
        i += if VALUE_FLAGS.contains(&a.as_str()) {
            2
        } else {
            1
        };
    }
    None
}

/// Takes `-- cmd args...` off a `watch` command line (clap would treat
/// them as keys). Errors when `--` has nothing after it.
pub fn split_exec(mut argv: Vec<String>) -> Result<Vec<String>, CtlError> {
    let Some(w) = command_position(&argv).filter(|&i| argv[i] == "watch") else {
        return Ok(argv);
    };
    if let Some(sep) = argv.iter().skip(w).position(|a| a == "--").map(|i| i + w) {
        let exec: Vec<String> = argv.split_off(sep).into_iter().skip(1).collect();
        if exec.is_empty() {
            return Err(CtlError::bad_args(
                "bad number of arguments (found separator --, but no commands)",
            ));
        }
        let _ = EXEC.set(exec);
    }
    Ok(argv)
}

/// `watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]`.
#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// Interactive mode
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    interactive: bool,
    /// Watch on a prefix if prefix is set
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    prefix: bool,
    /// Revision to start watching
    #[arg(long, default_value_t = 0)]
    rev: i64,
    /// get the previous key-value pair before the event happens
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    prev_kv: bool,
    /// get periodic watch progress notification from server
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    progress_notify: bool,
    /// key and optional range end
    args: Vec<String>,
}

impl WatchArgs {
    /// The create request; the key may come from `ETCDCTL_WATCH_KEY`.
    fn create(&self) -> Result<WatchCreateRequest, CtlError> {
        let mut args = self.args.clone();
        if args.is_empty() {
            if let Ok(k) = std::env::var("ETCDCTL_WATCH_KEY") {
                args.push(k);
                if let Ok(e) = std::env::var("ETCDCTL_WATCH_RANGE_END") {
                    args.push(e);
                }
            }
        }
        if args.is_empty() || args.len() > 2 {
            return Err(CtlError::bad_args("bad number of arguments"));
        }
        let key = args[0].clone().into_bytes();
        let range_end = if self.prefix {
            prefix_end(&key)
        } else {
            args.get(1)
                .map(|e| e.clone().into_bytes())
                .unwrap_or_default()
        };
        Ok(WatchCreateRequest {
            key,
            range_end,
            start_revision: self.rev,
            progress_notify: self.progress_notify,
            prev_kv: self.prev_kv,
            ..Default::default()
        })
    }
}

/// `watch`.
pub async fn run(g: &GlobalFlags, a: &WatchArgs) -> Result<(), CtlError> {
    let p = g.printer()?;
    let c = g.client().await?;
    let (tx, rx) = mpsc::channel::<WatchRequest>(16);
    if a.interactive {
        let tx = tx.clone();
        std::thread::spawn(move || read_interactive(tx));
    } else {
        let create = a.create()?;
        let _ = tx
            .send(WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(create)),
            })
            .await;
    }
    let mut stream = c
        .watch()
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let exec = EXEC.get().cloned().unwrap_or_default();
    while let Some(resp) = stream.message().await? {
        if resp.created && resp.events.is_empty() {
            continue;
        }
        show(&p, &resp, &exec)?;
        if resp.canceled && !a.interactive {
            break;
        }
    }
    drop(tx);
    Err(CtlError::new(5, "watch is canceled by the server"))
}

/// Prints one response as etcdctl does, and runs `exec` per event.
fn show(p: &Printer, resp: &WatchResponse, exec: &[String]) -> Result<(), CtlError> {
    if resp.canceled {
        eprintln!("watch was canceled ({})", cancel_reason(resp));
    }
    let revision = resp.header.as_ref().map_or(0, |h| h.revision);
    let progress = resp.events.is_empty()
        && !resp.canceled
        && !resp.created
        && resp.compact_revision == 0
        && revision != 0;
    if progress {
        println!("progress notify: {revision}");
    }
    p.watch(resp)?;
    if let Some((cmd, args)) = exec.split_first() {
        for ev in &resp.events {
            let kv = ev.kv.clone().unwrap_or_default();
            let kind = if ev.r#type == 1 { "DELETE" } else { "PUT" };
            let _ = std::process::Command::new(cmd)
                .args(args)
                .env("ETCD_WATCH_REVISION", revision.to_string())
                .env("ETCD_WATCH_EVENT_TYPE", format!("{kind:?}"))
                .env("ETCD_WATCH_KEY", go_quote(&kv.key))
                .env("ETCD_WATCH_VALUE", go_quote(&kv.value))
                .status();
        }
    }
    Ok(())
}

/// clientv3's `WatchResponse.Err()` text for a canceled watch.
fn cancel_reason(resp: &WatchResponse) -> String {
    if resp.compact_revision != 0 {
        "etcdserver: mvcc: required revision has been compacted".to_string()
    } else if !resp.cancel_reason.is_empty() {
        resp.cancel_reason.clone()
    } else {
        "etcdserver: mvcc: required revision is a future revision".to_string()
    }
}

#[derive(Parser, Debug)]
#[command(no_binary_name = true)]
struct Line {
    #[command(flatten)]
    watch: WatchArgs,
}

/// `-i`: each stdin line is `watch [options] key [range_end]` or
/// `progress`; bad lines are reported on stderr and skipped. End of input
/// ends etcdctl (exit 3), as in etcd.
fn read_interactive(tx: mpsc::Sender<WatchRequest>) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        let req = match words.first().map(String::as_str) {
            None => {
                eprintln!("Invalid command: {line} (watch and progress supported)");
                continue;
            }
            Some("progress") => WatchRequest {
                request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
            },
            Some("watch") => {
                let parsed = Line::try_parse_from(&words[1..]);
                match parsed
                    .map_err(|e| e.to_string())
                    .and_then(|l| l.watch.create().map_err(|e| e.msg))
                {
                    Ok(create) => WatchRequest {
                        request_union: Some(RequestUnion::CreateRequest(create)),
                    },
                    Err(e) => {
                        eprintln!(
                            "Invalid command {line} ({})",
                            e.lines().next().unwrap_or_default()
                        );
                        continue;
                    }
                }
            }
            Some(_) => {
                eprintln!("Invalid command {line} (only support watch)");
                continue;
            }
        };
        if tx.blocking_send(req).is_err() {
            return;
        }
    }
    CtlError::new(EXIT_INVALID_INPUT, "Error reading watch request line: EOF").exit();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn only_a_watch_command_loses_its_exec_part() {
        let kept = split_exec(argv("etcdctl put watch -- -v")).unwrap();
        assert_eq!(kept, argv("etcdctl put watch -- -v"));
        let cut = split_exec(argv("etcdctl --endpoints x:1 watch k -- echo hi")).unwrap();
        assert_eq!(cut, argv("etcdctl --endpoints x:1 watch k"));
        let e = split_exec(argv("etcdctl watch k --")).unwrap_err();
        assert_eq!(e.code, 128);
    }
}
