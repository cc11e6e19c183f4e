//! The Auth service (etcd `etcdserverpb.Auth`): users, roles and their
//! permissions, managed through raft ([`crate::auth::AuthStore`]).
//! Reads are linearizable, as etcd's (which go through raft).
//!
//! Enabling auth answers `Unimplemented` until every request is checked
//! against these permissions: a cluster that said it enforces auth
//! without doing so would be worse than one that says it does not. So
//! auth stays disabled, `AuthDisable` succeeds with nothing to do, and
//! `Authenticate` answers etcd's `authentication is not enabled`.

use std::sync::Arc;

use api::etcdserverpb::auth_server::Auth;
use api::etcdserverpb::*;
use tonic::{Request, Response, Status};

use crate::etcdserver::stage::Applied;
use crate::etcdserver::EtcdServer;
use crate::rpctypes::EtcdError;

/// The Auth service on a member.
pub struct AuthService {
    server: Arc<EtcdServer>,
}

impl AuthService {
    /// The service for `server`.
    pub fn new(server: Arc<EtcdServer>) -> Self {
        AuthService { server }
    }

    /// Proposes an auth change and waits for it; the header of its answer.
    async fn change(&self, req: InternalRaftRequest) -> Result<Option<ResponseHeader>, Status> {
        match self.server.propose(req).await? {
            Applied::Done => Ok(Some(self.header())),
            other => Err(EtcdError::Internal(format!("unexpected apply result {other:?}")).into()),
        }
    }

    /// Waits until a linearizable read may run; the header of its answer.
    async fn read(&self) -> Result<Option<ResponseHeader>, Status> {
        self.server.linearizable_read().await?;
        Ok(Some(self.header()))
    }

    /// etcd's auth answers carry the store revision.
    fn header(&self) -> ResponseHeader {
        self.server.header(self.server.store.current_revision())
    }
}

/// The bcrypt hash of `password` at `cost` (`--bcrypt-cost`; etcd's `$2a$`
/// form), made off the async threads: it takes tens of milliseconds by
/// design.
async fn hash(password: String, cost: u32) -> Result<String, Status> {
    tokio::task::spawn_blocking(move || {
        bcrypt::hash_with_result(password, cost)
            .map(|h| h.format_for_version(bcrypt::Version::TwoA))
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))?
    .map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        _req: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        Err(Status::unimplemented(
            "etcd-rs: enabling authentication is not implemented yet: requests are not checked against permissions",
        ))
    }

    async fn auth_disable(
        &self,
        _req: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        Ok(Response::new(AuthDisableResponse {
            header: self.read().await?,
        }))
    }

    async fn auth_status(
        &self,
        _req: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        let header = self.read().await?;
        let (enabled, auth_revision) = self.server.auth.status();
        Ok(Response::new(AuthStatusResponse {
            header,
            enabled,
            auth_revision,
        }))
    }

    async fn authenticate(
        &self,
        _req: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        Err(EtcdError::AuthNotEnabled.into())
    }

    async fn user_add(
        &self,
        req: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let mut r = req.into_inner();
        // An empty password is kept empty: nobody can log in with it (etcd
        // 3.5 hashes only a password that was given).
        if !r.options.as_ref().is_some_and(|o| o.no_password) && !r.password.is_empty() {
            r.hashed_password =
                hash(std::mem::take(&mut r.password), self.server.cfg.bcrypt_cost).await?;
        }
        r.password.clear();
        let header = self
            .change(InternalRaftRequest {
                auth_user_add: Some(r),
                ..Default::default()
            })
            .await?;
        Ok(Response::new(AuthUserAddResponse { header }))
    }

    async fn user_get(
        &self,
        req: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let header = self.read().await?;
        let roles = self.server.auth.user_roles(&req.get_ref().name)?;
        Ok(Response::new(AuthUserGetResponse { header, roles }))
    }

    async fn user_list(
        &self,
        _req: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        let header = self.read().await?;
        Ok(Response::new(AuthUserListResponse {
            header,
            users: self.server.auth.user_names(),
        }))
    }

    async fn user_delete(
        &self,
        req: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let header = self
            .change(InternalRaftRequest {
                auth_user_delete: Some(req.into_inner()),
                ..Default::default()
            })
            .await?;
        Ok(Response::new(AuthUserDeleteResponse { header }))
    }

    async fn user_change_password(
        &self,
        req: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let mut r = req.into_inner();
        if !r.password.is_empty() {
            r.hashed_password =
                hash(std::mem::take(&mut r.password), self.server.cfg.bcrypt_cost).await?;
        }
        let header = self
            .change(InternalRaftRequest {
                auth_user_change_password: Some(r),
                ..Default::default()
            })
            .await?;
        Ok(Response::new(AuthUserChangePasswordResponse { header }))
    }

    async fn user_grant_role(
        &self,
        req: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let header = self
            .change(InternalRaftRequest {
                auth_user_grant_role: Some(req.into_inner()),
                ..Default::default()
            })
            .await?;
        Ok(Response::new(AuthUserGrantRoleResponse { header }))
    }

    async fn user_revoke_role(
        &self,
        req: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let header = self
            .change(InternalRaftRequest {
                auth_user_revoke_role: Some(req.into_inner()),
                ..Default::default()
            })
            .await?;
        Ok(Response::new(AuthUserRevokeRoleResponse { header }))
    }

    async fn role_add(
        &self,
        req: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        let header = self
            .change(InternalRaftRequest {
                auth_role_add: Some(req.into_inner()),
                ..Default::default()
            })
            .await?;
        Ok(Response::new(AuthRoleAddResponse { header }))
    }

    async fn role_get(
        &self,
        req: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let header = self.read().await?;
        let perm = self.server.auth.role_permissions(&req.get_ref().role)?;
        Ok(Response::new(AuthRoleGetResponse { header, perm }))
    }

    async fn role_list(
        &self,
        _req: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        let header = self.read().await?;
        Ok(Response::new(AuthRoleListResponse {
            header,
            roles: self.server.auth.role_names(),
        }))
    }

    async fn role_delete(
        &self,
        req: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let header = self
            .change(InternalRaftRequest {
                auth_role_delete: Some(req.into_inner()),
                ..Default::default()
            })
            .await?;
        Ok(Response::new(AuthRoleDeleteResponse { header }))
    }

    async fn role_grant_permission(
        &self,
        req: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let header = self
            .change(InternalRaftRequest {
                auth_role_grant_permission: Some(req.into_inner()),
                ..Default::default()
            })
            .await?;
        Ok(Response::new(AuthRoleGrantPermissionResponse { header }))
    }

    async fn role_revoke_permission(
        &self,
        req: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let header = self
            .change(InternalRaftRequest {
                auth_role_revoke_permission: Some(req.into_inner()),
                ..Default::default()
            })
            .await?;
        Ok(Response::new(AuthRoleRevokePermissionResponse { header }))
    }
}
