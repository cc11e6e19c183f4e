//! The KV service (etcd `etcdserverpb.KV`): validates each request and
//! hands it, with who sends it, to the server's API layer.

use std::sync::Arc;

use api::etcdserverpb::kv_server::Kv;
use api::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
};
use tonic::{Request, Response, Status};

use super::validate;
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

/// The service's checks of a Range before the API layer: the request's
/// own (`validate::range`), then that a learner serves serializable reads
/// only (etcd's isRPCSupportedForLearner; the interceptor lets Range
/// through). Shared with the gRPC route `kv_range`.
pub(super) fn check_range(server: &EtcdServer, r: &RangeRequest) -> Result<(), Status> {
    validate::range(r)?;
    if !r.serializable && server.is_learner() {
        return Err(EtcdError::NotSupportedForLearner.into());
    }
    Ok(())
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let creds = super::credentials(&req);
        let r = req.into_inner();
        check_range(&self.server, &r)?;
        let mut resp = self.server.range(&creds, r).await?;
        resp.header = self.header(resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let creds = super::credentials(&req);
        let r = req.into_inner();
        validate::put(&r)?;
        Ok(Response::new(self.server.put(&creds, r).await?))
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let creds = super::credentials(&req);
        let r = req.into_inner();
        validate::delete_range(&r)?;
        Ok(Response::new(self.server.delete_range(&creds, r).await?))
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let creds = super::credentials(&req);
        let r = req.into_inner();
        validate::txn(&r, self.server.cfg.max_txn_ops)?;
        Ok(Response::new(self.server.txn(&creds, r).await?))
    }

    type RangeStreamStream = super::kv_stream::Chunks;

    /// etcd 3.7's streamed Range (`kv_stream`).
    async fn range_stream(
        &self,
        req: Request<RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        let creds = super::credentials(&req);
        let r = req.into_inner();
        check_range(&self.server, &r)?;
        super::kv_stream::check(&r)?;
        Ok(Response::new(super::kv_stream::chunks(
            self.server.clone(),
            creds,
            r,
        )))
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let creds = super::credentials(&req);
        Ok(Response::new(
            self.server.compact(&creds, req.into_inner()).await?,
        ))
    }
}
