//! `KV.RangeStream`, etcd 3.7's streamed Range: the answer to a range
//! comes in chunks of disjoint kvs, in key order, all read at one
//! revision (the first chunk's), so a list of a million keys is never
//! held by the member at once; the last chunk carries the header, `more`
//! and `count`, so the chunks merged are the plain Range's answer.
//!
//! As etcd's: the first chunk holds at most 10 kvs; each next chunk's
//! limit doubles while a chunk encodes to less than half of
//! `--max-request-bytes` and halves while it encodes to more than twice
//! that. Custom sort orders and revision filters are Unimplemented. Only
//! the first read is linearizable; later chunks read the pinned revision
//! from this member's store, which already holds it.

use std::pin::Pin;
use std::sync::Arc;

use api::etcdserverpb::range_request::{SortOrder, SortTarget};
use api::etcdserverpb::{RangeRequest, RangeResponse, RangeStreamResponse};
use futures::Stream;
use prost::Message;
use tonic::Status;

use crate::etcdserver::v3server::Credentials;
use crate::etcdserver::EtcdServer;

/// The kvs of the first chunk, at most (etcd's `initialStreamChunkLimit`).
const FIRST_CHUNK: i64 = 10;

/// The answer stream of a RangeStream.
pub type Chunks = Pin<Box<dyn Stream<Item = Result<RangeStreamResponse, Status>> + Send>>;

/// etcd 3.7's refusals of what RangeStream does not do.
pub fn check(r: &RangeRequest) -> Result<(), Status> {
    let key_ascending =
        r.sort_order == SortOrder::Ascend as i32 && r.sort_target == SortTarget::Key as i32;
    if r.sort_order != SortOrder::None as i32 && !key_ascending {
        return Err(Status::unimplemented(
            "RangeStream does not support custom sort orders",
        ));
    }
    if r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0
    {
        return Err(Status::unimplemented(
            "RangeStream does not support revision filters",
        ));
    }
    Ok(())
}

/// Where a stream is between chunks.
struct Cursor {
    server: Arc<EtcdServer>,
    creds: Credentials,
    /// The request, its key moved past each chunk, its revision pinned
    /// after the first.
    next: RangeRequest,
    /// kvs still allowed by the request's limit (`i64::MAX` for none).
    left: i64,
    /// The limit of the next chunk.
    chunk: i64,
    /// Total matching keys, from the first chunk.
    count: i64,
    /// The store revision the first chunk's header gave.
    header_rev: i64,
    started: bool,
    done: bool,
}

/// The chunks answering `r` (already checked) for `creds`.
pub fn chunks(server: Arc<EtcdServer>, creds: Credentials, r: RangeRequest) -> Chunks {
    let left = if r.limit > 0 { r.limit } else { i64::MAX };
    let cursor = Cursor {
        server,
        creds,
        chunk: FIRST_CHUNK.min(left),
        left,
        count: 0,
        header_rev: 0,
        next: r,
        started: false,
        done: false,
    };
    Box::pin(futures::stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        let item = c.step().await;
        if item.is_err() {
            c.done = true;
        }
        Some((item, c))
    }))
}

impl Cursor {
    /// Reads the next chunk.
    async fn step(&mut self) -> Result<RangeStreamResponse, Status> {
        let first = !std::mem::replace(&mut self.started, true);
        let single = self.next.range_end.is_empty() || self.next.count_only;
        let mut req = self.next.clone();
        if !single {
            req.limit = self.chunk;
        }
        let mut resp = self.server.range(&self.creds, req).await?;
        if first {
            self.count = resp.count;
            self.header_rev = resp.header.as_ref().map_or(0, |h| h.revision);
            // Later chunks: the revision asked for, or the one read, from
            // this member's store.
            if self.next.revision <= 0 {
                self.next.revision = self.header_rev;
            }
            self.next.serializable = true;
        }
        let returned = resp.kvs.len() as i64;
        self.left -= returned;
        let last = single || !resp.more || self.left <= 0;
        if last {
            self.done = true;
            resp.header = Some(self.server.header(self.header_rev));
            resp.count = self.count;
            return Ok(wrap(resp));
        }
        if let Some(kv) = resp.kvs.last() {
            let mut key = kv.key.clone();
            key.push(0);
            self.next.key = key;
        }
        self.chunk = next_chunk(
            self.chunk,
            resp.encoded_len(),
            self.server.cfg.max_request_bytes,
        )
        .min(self.left);
        Ok(wrap(RangeResponse {
            header: None,
            kvs: resp.kvs,
            more: false,
            count: 0,
        }))
    }
}

fn wrap(r: RangeResponse) -> RangeStreamResponse {
    RangeStreamResponse {
        range_response: Some(r),
    }
}

/// The limit after a chunk of `limit` kvs encoded to `bytes`, aiming at
/// `target` bytes a chunk (etcd's `adjustChunkLimit`).
fn next_chunk(limit: i64, bytes: usize, target: usize) -> i64 {
    if bytes < target / 2 {
        limit.saturating_mul(2)
    } else if bytes > target.saturating_mul(2) {
        (limit / 2).max(1)
    } else {
        limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_grow_and_shrink_toward_the_target() {
        assert_eq!(next_chunk(10, 100, 1000), 20);
        assert_eq!(next_chunk(10, 700, 1000), 10);
        assert_eq!(next_chunk(10, 2500, 1000), 5);
        assert_eq!(next_chunk(1, 5000, 1000), 1);
    }

    #[test]
    fn custom_orders_and_filters_are_refused() {
        let ok = RangeRequest {
            sort_order: SortOrder::Ascend as i32,
            ..Default::default()
        };
        assert!(check(&ok).is_ok());
        let desc = RangeRequest {
            sort_order: SortOrder::Descend as i32,
            ..Default::default()
        };
        assert_eq!(check(&desc).unwrap_err().code(), tonic::Code::Unimplemented);
        let filtered = RangeRequest {
            min_mod_revision: 3,
            ..Default::default()
        };
        assert_eq!(
            check(&filtered).unwrap_err().message(),
            "RangeStream does not support revision filters"
        );
    }
}
