//! Structured logs as etcd writes them: one JSON object per line,
//! starting with `level`, `ts`, `caller` and `msg`, then the event's
//! fields, to every `--log-outputs` output (standard error by default,
//! standard output, files).

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter for etcd's zap-style JSON lines.
pub struct EtcdJson;

#[derive(Default)]
struct Fields {
    msg: String,
    rest: String,
}

impl Fields {
    fn push(&mut self, name: &str, value: serde_json::Value) {
        let _ = write!(self.rest, ",{}:{}", serde_json::Value::from(name), value);
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = value.to_string();
        } else {
            self.push(field.name(), value.into());
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field.name(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field.name(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field.name(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let s = format!("{value:?}");
        if field.name() == "message" {
            self.msg = s;
        } else {
            self.push(field.name(), s.into());
        }
    }
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "debug",
    }
}

impl<S, N> FormatEvent<S, N> for EtcdJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        // zap's short caller: the last directory and the file, with the line.
        let file = meta.file().unwrap_or("?");
        let short = file.rsplitn(3, '/').take(2).collect::<Vec<_>>();
        let caller = format!(
            "{}:{}",
            short.into_iter().rev().collect::<Vec<_>>().join("/"),
            meta.line().unwrap_or(0)
        );
        let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        writeln!(
            w,
            "{{\"level\":\"{}\",\"ts\":\"{}\",\"caller\":{},\"msg\":{}{}}}",
            level_name(meta.level()),
            ts,
            serde_json::Value::from(caller),
            serde_json::Value::from(fields.msg),
            fields.rest
        )
    }
}

/// Where log lines go: each line is written whole to every output.
#[derive(Clone)]
struct Outputs {
    stderr: bool,
    stdout: bool,
    files: Vec<std::sync::Arc<std::sync::Mutex<std::fs::File>>>,
}

impl Outputs {
    /// `default` and `stderr`: standard error; `stdout`; anything else a
    /// file, created or appended to. Errors: a file that cannot be opened.
    fn open(outputs: &[String]) -> Result<Outputs, String> {
        let mut o = Outputs {
            stderr: outputs.is_empty(),
            stdout: false,
            files: Vec::new(),
        };
        for out in outputs {
            match out.as_str() {
                "default" | "stderr" => o.stderr = true,
                "stdout" => o.stdout = true,
                path => {
                    let f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        // Go's os.OpenFile error, as zap reports it.
                        .map_err(|e| format!("open {path}: {}", crate::tls::io_text(&e)))?;
                    o.files.push(std::sync::Arc::new(std::sync::Mutex::new(f)));
                }
            }
        }
        Ok(o)
    }
}

impl std::io::Write for Outputs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.stderr {
            std::io::stderr().write_all(buf)?;
        }
        if self.stdout {
            std::io::stdout().write_all(buf)?;
        }
        for f in &self.files {
            f.lock().expect("log file lock").write_all(buf)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Outputs {
    type Writer = Outputs;

    fn make_writer(&'a self) -> Outputs {
        self.clone()
    }
}

/// Installs the logger at `level` (etcd's names: debug, info, warn, error,
/// panic, fatal) writing to `outputs` (`--log-outputs`). Returns an error
/// text for an unknown level or an output that cannot be opened.
pub fn init(level: &str, outputs: &[String]) -> Result<(), String> {
    let writer = Outputs::open(outputs)?;
    let filter = match level {
        "debug" => "debug",
        "info" => "info",
        "warn" => "warn",
        "error" | "dpanic" | "panic" | "fatal" => "error",
        other => return Err(format!("unknown level {other:?}")),
    };
    // Logs of our own crates at the asked level; the libraries only warn.
    let directives = format!("warn,server={filter},storage={filter}");
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
        .with_writer(writer)
        .event_format(EtcdJson)
        .init();
    Ok(())
}

/// Stops the process after an error the member cannot survive without
/// breaking a promise (a failed fsync, a half-applied entry), as etcd's
/// fatal log does.
pub fn fatal(msg: &str, error: &dyn std::fmt::Display) -> ! {
    tracing::error!(error = %error, "{msg}");
    std::process::exit(1)
}
