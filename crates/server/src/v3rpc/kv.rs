//! The KV service (etcd `etcdserverpb.KV`): checks each request, reads
//! locally (after a ReadIndex round unless serializable) or proposes
//! writes through raft, and fills the response header.

use std::sync::Arc;

use api::etcdserverpb::kv_server::Kv;
use api::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    InternalRaftRequest, PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader,
    TxnRequest, TxnResponse,
};
use tonic::{Request, Response, Status};

use super::validate;
use crate::etcdserver::stage::Applied;
use crate::etcdserver::EtcdServer;
use crate::rpctypes::EtcdError;

/// The KV service on a member.
pub struct KvService {
    server: Arc<EtcdServer>,
}

impl KvService {
    /// The service for `server`.
    pub fn new(server: Arc<EtcdServer>) -> Self {
        KvService { server }
    }

    fn header(&self, h: Option<ResponseHeader>) -> Option<ResponseHeader> {
        Some(self.server.header(h.map_or(0, |h| h.revision)))
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let creds = super::credentials(&req);
        let r = req.into_inner();
        validate::range(&r)?;
        // A learner serves serializable reads only (etcd's
        // isRPCSupportedForLearner); `learner_gate` lets Range through.
        if !r.serializable && self.server.is_learner() {
            return Err(EtcdError::NotSupportedForLearner.into());
        }
        let mut resp = self.server.range(&creds, &r).await?;
        resp.header = self.header(resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let creds = super::credentials(&req);
        let r = req.into_inner();
        validate::put(&r)?;
        let req = InternalRaftRequest {
            put: Some(r),
            ..Default::default()
        };
        super::write(&self.server, &creds, req, |a| match a {
            Applied::Put(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let creds = super::credentials(&req);
        let r = req.into_inner();
        validate::delete_range(&r)?;
        let req = InternalRaftRequest {
            delete_range: Some(r),
            ..Default::default()
        };
        super::write(&self.server, &creds, req, |a| match a {
            Applied::DeleteRange(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let creds = super::credentials(&req);
        let r = req.into_inner();
        validate::txn(&r, self.server.cfg.max_txn_ops)?;
        let req = InternalRaftRequest {
            txn: Some(r),
            ..Default::default()
        };
        super::write(&self.server, &creds, req, |a| match a {
            Applied::Txn(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let creds = super::credentials(&req);
        let req = InternalRaftRequest {
            compaction: Some(req.into_inner()),
            ..Default::default()
        };
        super::write(&self.server, &creds, req, |a| match a {
            Applied::Compaction(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }
}
