//! `put`, `get`, `del` and `compaction`.

use std::io::Read;

use api::etcdserverpb::range_request::{SortOrder, SortTarget};
use api::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse,
};
use clap::{ArgAction, Args};

use super::{parse_lease_id, prefix_end, strconv_error};
use crate::error::{CtlError, EXIT_BAD_FEATURE};
use crate::global::GlobalFlags;

/// `put [options] <key> <value>` (the value may come from stdin).
#[derive(Args, Debug)]
pub struct PutArgs {
    /// lease ID (in hexadecimal) to attach to the key
    #[arg(long, default_value = "0")]
    lease: String,
    /// return the previous key-value pair before modification
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    prev_kv: bool,
    /// updates the key using its current value
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    ignore_value: bool,
    /// updates the key using its current lease
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    ignore_lease: bool,
    /// key and value
    args: Vec<String>,
}

impl PutArgs {
    /// The request, as etcdctl builds it from the arguments (and stdin).
    pub fn request(&self, stdin: bool) -> Result<PutRequest, CtlError> {
        let needs = "put command needs 1 argument and input from stdin or 2 arguments";
        let key = self.args.first().ok_or_else(|| CtlError::bad_args(needs))?;
        let value = if self.ignore_value {
            if self.args.len() > 1 {
                return Err(CtlError::bad_args(
                    "put command needs only 1 argument when 'ignore-value' is set",
                ));
            }
            Vec::new()
        } else if let Some(v) = self.args.get(1) {
            v.clone().into_bytes()
        } else {
            // The whole of stdin, as bytes (values may be binary).
            let mut v = Vec::new();
            if stdin {
                let _ = std::io::stdin().read_to_end(&mut v);
            }
            if v.is_empty() {
                return Err(CtlError::bad_args(needs));
            }
            v
        };
        let lease = parse_lease_id(&self.lease).map_err(|e| {
            CtlError::bad_args(format!(
                "bad lease ID ({}), expecting ID in Hex",
                strconv_error("ParseInt", &self.lease, &e)
            ))
        })?;
        Ok(PutRequest {
            key: key.clone().into_bytes(),
            value,
            lease,
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        })
    }
}

/// `put`.
pub async fn put(g: &GlobalFlags, a: &PutArgs) -> Result<(), CtlError> {
    let req = a.request(true)?;
    let p = g.printer()?;
    let c = g.client().await?;
    let resp = g.timed(c.kv().put(req)).await?.into_inner();
    p.put(&resp)
}

/// `get [options] <key> [range_end]`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// Linearizable(l) or Serializable(s)
    #[arg(long, default_value = "l")]
    consistency: String,
    /// Order of results; ASCEND or DESCEND (ASCEND by default)
    #[arg(long, default_value = "")]
    order: String,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION
    #[arg(long, default_value = "")]
    sort_by: String,
    /// Maximum number of results
    #[arg(long, default_value_t = 0)]
    limit: i64,
    /// Get keys with matching prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    prefix: bool,
    /// Get keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    from_key: bool,
    /// Specify the kv revision
    #[arg(long, default_value_t = 0)]
    rev: i64,
    /// Get only the keys
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    keys_only: bool,
    /// Get only the count
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    count_only: bool,
    /// Only write values when using the "simple" output format
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    print_value_only: bool,
    /// key and optional range end
    args: Vec<String>,
}

/// The key range of `key [range_end]` with `--prefix` / `--from-key`, as
/// etcdctl resolves it; `cmd` names the command in errors.
pub fn key_range(
    cmd: &str,
    args: &[String],
    prefix: bool,
    from_key: bool,
) -> Result<(Vec<u8>, Vec<u8>), CtlError> {
    let Some(key) = args.first() else {
        return Err(CtlError::bad_args(format!(
            "{cmd} command needs one argument as key and an optional argument as range_end"
        )));
    };
    if prefix && from_key {
        return Err(CtlError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let mut key = key.clone().into_bytes();
    let mut end = Vec::new();
    if let Some(e) = args.get(1) {
        if prefix || from_key {
            return Err(CtlError::bad_args(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ));
        }
        end = e.clone().into_bytes();
    }
    if args.len() > 2 {
        return Err(CtlError::bad_args(format!(
            "{cmd} command needs one argument as key and an optional argument as range_end"
        )));
    }
    if prefix {
        if key.is_empty() {
            key = vec![0];
            end = vec![0];
        } else {
            end = prefix_end(&key);
        }
    }
    if from_key {
        if key.is_empty() {
            key = vec![0];
        }
        end = vec![0];
    }
    Ok((key, end))
}

impl GetArgs {
    /// The request, as etcdctl builds it.
    pub fn request(&self) -> Result<RangeRequest, CtlError> {
        let (key, range_end) = key_range("get", &self.args, self.prefix, self.from_key)?;
        if self.keys_only && self.count_only {
            return Err(CtlError::bad_args(
                "`--keys-only` and `--count-only` cannot be set at the same time, choose one",
            ));
        }
        let serializable = match self.consistency.as_str() {
            "s" => true,
            "l" => false,
            other => {
                return Err(CtlError::new(
                    EXIT_BAD_FEATURE,
                    format!("unknown consistency flag {other:?}"),
                ))
            }
        };
        let mut order = match self.order.to_uppercase().as_str() {
            "ASCEND" => SortOrder::Ascend,
            "DESCEND" => SortOrder::Descend,
            "" => SortOrder::None,
            _ => {
                return Err(CtlError::new(
                    EXIT_BAD_FEATURE,
                    format!("bad sort order {}", self.order),
                ))
            }
        };
        let target = match self.sort_by.to_uppercase().as_str() {
            "CREATE" => SortTarget::Create,
            "KEY" | "" => SortTarget::Key,
            "MODIFY" => SortTarget::Mod,
            "VALUE" => SortTarget::Value,
            "VERSION" => SortTarget::Version,
            _ => {
                return Err(CtlError::new(
                    EXIT_BAD_FEATURE,
                    format!("bad sort target {}", self.sort_by),
                ))
            }
        };
        // clientv3: ascending by key is the server's own order.
        if target == SortTarget::Key && order == SortOrder::Ascend {
            order = SortOrder::None;
        }
        Ok(RangeRequest {
            key,
            range_end,
            limit: self.limit,
            revision: self.rev,
            sort_order: order as i32,
            sort_target: target as i32,
            serializable,
            keys_only: self.keys_only,
            count_only: self.count_only,
            ..Default::default()
        })
    }
}

/// `get`.
pub async fn get(g: &GlobalFlags, a: &GetArgs) -> Result<(), CtlError> {
    let req = a.request()?;
    let mut p = g.printer()?;
    if a.print_value_only {
        if p.format != crate::printer::Format::Simple {
            return Err(CtlError::bad_args(
                "print-value-only is only for `--write-out=simple`",
            ));
        }
        p.value_only = true;
    }
    let c = g.client().await?;
    if streams(&req) {
        let streamed = g.timed(get_streamed(&c, req.clone(), &p)).await?;
        if let Some(resp) = streamed {
            if p.format != crate::printer::Format::Simple {
                p.get(&resp)?;
            }
            return Ok(());
        }
    }
    let resp = g.timed(c.kv().range(req)).await?.into_inner();
    // etcd 3.5 checks this after the request, as here.
    if a.count_only && p.format != crate::printer::Format::Fields {
        return Err(CtlError::bad_args(
            "--count-only is only for `--write-out=fields`",
        ));
    }
    p.get(&resp)
}

/// Whether `get` reads `req` through `KV.RangeStream` (etcd 3.7's): a
/// range rather than one key, kvs rather than a count, in the server's
/// key order (what RangeStream serves).
fn streams(req: &RangeRequest) -> bool {
    !req.range_end.is_empty() && !req.count_only && req.sort_order == SortOrder::None as i32
}

/// `req` through RangeStream. In the simple format each chunk's kvs are
/// printed as they come, so etcdctl never holds a huge list either; the
/// other formats print the chunks merged, which is the plain Range's
/// answer. `None` when the server has no RangeStream (etcd before 3.7
/// answers Unimplemented before any chunk), for a plain Range instead.
async fn get_streamed(
    c: &client::Client,
    req: RangeRequest,
    p: &crate::printer::Printer,
) -> Result<Option<RangeResponse>, tonic::Status> {
    let unimplemented = |s: &tonic::Status| s.code() == tonic::Code::Unimplemented;
    let mut chunks = match c.kv().range_stream(req).await {
        Ok(r) => r.into_inner(),
        Err(s) if unimplemented(&s) => return Ok(None),
        Err(s) => return Err(s),
    };
    let simple = p.format == crate::printer::Format::Simple;
    let mut merged = RangeResponse::default();
    let mut first = true;
    loop {
        let chunk = match chunks.message().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Ok(Some(merged)),
            Err(s) if first && unimplemented(&s) => return Ok(None),
            Err(s) => return Err(s),
        };
        first = false;
        let r = chunk.range_response.unwrap_or_default();
        if simple {
            p.get_chunk(&r.kvs);
        } else {
            merged.kvs.extend(r.kvs);
        }
        if r.header.is_some() {
            merged.header = r.header;
            merged.more = r.more;
            merged.count = r.count;
        }
    }
}

/// `del [options] <key> [range_end]`.
#[derive(Args, Debug)]
pub struct DelArgs {
    /// delete keys with matching prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    prefix: bool,
    /// return deleted key-value pairs
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    prev_kv: bool,
    /// delete keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    from_key: bool,
    /// key and optional range end
    args: Vec<String>,
}

impl DelArgs {
    /// The request, as etcdctl builds it.
    pub fn request(&self) -> Result<DeleteRangeRequest, CtlError> {
        let (key, range_end) = key_range("del", &self.args, self.prefix, self.from_key)?;
        Ok(DeleteRangeRequest {
            key,
            range_end,
            prev_kv: self.prev_kv,
        })
    }
}

/// `del`.
pub async fn del(g: &GlobalFlags, a: &DelArgs) -> Result<(), CtlError> {
    let req = a.request()?;
    let p = g.printer()?;
    let c = g.client().await?;
    let resp = g.timed(c.kv().delete_range(req)).await?.into_inner();
    p.del(&resp)
}

/// `compaction [options] <revision>`.
#[derive(Args, Debug)]
pub struct CompactionArgs {
    /// 'true' to wait for compaction to physically remove all old revisions
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    physical: bool,
    /// the revision
    args: Vec<String>,
}

/// `compaction`.
pub async fn compaction(g: &GlobalFlags, a: &CompactionArgs) -> Result<(), CtlError> {
    let [rev] = a.args.as_slice() else {
        return Err(CtlError::bad_args("compaction command needs 1 argument"));
    };
    let revision: i64 = rev
        .parse()
        .map_err(|e| CtlError::new(crate::error::EXIT_ERROR, strconv_error("ParseInt", rev, &e)))?;
    let p = g.printer()?;
    let c = g.client().await?;
    let req = CompactionRequest {
        revision,
        physical: a.physical,
    };
    g.timed(c.kv().compact(req)).await?;
    p.compact(revision);
    Ok(())
}
