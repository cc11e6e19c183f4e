//! The Lock service (etcd's `v3lockpb.Lock`): translates to the lock
//! recipe of `etcdserver/concurrency/lock.rs`.
//!
//! etcd serves this service on an in-process client, whose errors reach
//! the caller as plain errors: every failure is code Unknown with the
//! error's text (`etcdserver: requested lease not found`, ...).

use std::sync::Arc;

use api::v3lockpb::lock_server::Lock;
use api::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::{Request, Response, Status};

use crate::etcdserver::concurrency::lock;
use crate::etcdserver::EtcdServer;
use crate::rpctypes::EtcdError;

/// The Lock service on a member.
pub struct LockService {
    server: Arc<EtcdServer>,
}

impl LockService {
    /// The service for `server`.
    pub fn new(server: Arc<EtcdServer>) -> Self {
        LockService { server }
    }
}

/// An error as etcd's in-process client hands it on: code Unknown.
pub(crate) fn unknown(e: EtcdError) -> Status {
    Status::unknown(e.to_string())
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let creds = super::credentials(&req);
        let r = req.into_inner();
        let held = lock::lock(&self.server, &creds, &r.name, r.lease)
            .await
            .map_err(unknown)?;
        Ok(Response::new(LockResponse {
            header: Some(held.header),
            key: held.key,
        }))
    }

    async fn unlock(
        &self,
        req: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let creds = super::credentials(&req);
        let key = req.into_inner().key;
        let header = lock::unlock(&self.server, &creds, key)
            .await
            .map_err(unknown)?;
        Ok(Response::new(UnlockResponse {
            header: Some(header),
        }))
    }
}
