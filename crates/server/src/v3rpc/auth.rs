//! The Auth service (etcd `etcdserverpb.Auth`): users, roles and their
//! permissions, managed through raft ([`crate::auth::AuthStore`]), and
//! `Authenticate`. Changes are checked for the root role when applied;
//! reads are linearizable, as etcd's (which go through raft), and for
//! root, except a user reading itself and a role it holds.

use std::sync::Arc;

use api::etcdserverpb::auth_server::Auth;
use api::etcdserverpb::*;
use tonic::{Request, Response, Status};

use crate::etcdserver::v3server::{AuthChange, Credentials};
use crate::etcdserver::EtcdServer;

/// The Auth service on a member.
pub struct AuthService {
    server: Arc<EtcdServer>,
}

impl AuthService {
    /// The service for `server`.
    pub fn new(server: Arc<EtcdServer>) -> Self {
        AuthService { server }
    }

    /// Proposes an auth change as `creds` and waits for it; the header of
    /// its answer.
    async fn change(
        &self,
        creds: &Credentials,
        change: AuthChange,
    ) -> Result<Option<ResponseHeader>, Status> {
        Ok(Some(self.server.auth_change(creds, change).await?))
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

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        req: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        let creds = super::credentials(&req);
        let header = self.change(&creds, AuthChange::Enable).await?;
        Ok(Response::new(AuthEnableResponse { header }))
    }

    async fn auth_disable(
        &self,
        req: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        let creds = super::credentials(&req);
        let header = self.change(&creds, AuthChange::Disable).await?;
        Ok(Response::new(AuthDisableResponse { header }))
    }

    async fn auth_status(
        &self,
        req: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        self.server.check_admin(&super::credentials(&req)).await?;
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
        req: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let r = req.into_inner();
        Ok(Response::new(
            self.server.authenticate(&r.name, r.password).await?,
        ))
    }

    async fn user_add(
        &self,
        req: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let creds = super::credentials(&req);
        let header = self
            .change(&creds, AuthChange::UserAdd(req.into_inner()))
            .await?;
        Ok(Response::new(AuthUserAddResponse { header }))
    }

    async fn user_get(
        &self,
        req: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let name = req.get_ref().name.clone();
        self.server
            .check_admin_or(&super::credentials(&req), |ai| ai.username == name)
            .await?;
        let header = self.read().await?;
        let roles = self.server.auth.user_roles(&req.get_ref().name)?;
        Ok(Response::new(AuthUserGetResponse { header, roles }))
    }

    async fn user_list(
        &self,
        req: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        self.server.check_admin(&super::credentials(&req)).await?;
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
        let creds = super::credentials(&req);
        let header = self
            .change(&creds, AuthChange::UserDelete(req.into_inner()))
            .await?;
        Ok(Response::new(AuthUserDeleteResponse { header }))
    }

    async fn user_change_password(
        &self,
        req: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let creds = super::credentials(&req);
        let header = self
            .change(&creds, AuthChange::UserChangePassword(req.into_inner()))
            .await?;
        Ok(Response::new(AuthUserChangePasswordResponse { header }))
    }

    async fn user_grant_role(
        &self,
        req: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let creds = super::credentials(&req);
        let header = self
            .change(&creds, AuthChange::UserGrantRole(req.into_inner()))
            .await?;
        Ok(Response::new(AuthUserGrantRoleResponse { header }))
    }

    async fn user_revoke_role(
        &self,
        req: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let creds = super::credentials(&req);
        let header = self
            .change(&creds, AuthChange::UserRevokeRole(req.into_inner()))
            .await?;
        Ok(Response::new(AuthUserRevokeRoleResponse { header }))
    }

    async fn role_add(
        &self,
        req: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        let creds = super::credentials(&req);
        let header = self
            .change(&creds, AuthChange::RoleAdd(req.into_inner()))
            .await?;
        Ok(Response::new(AuthRoleAddResponse { header }))
    }

    async fn role_get(
        &self,
        req: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let auth = &self.server.auth;
        let role = &req.get_ref().role;
        self.server
            .check_admin_or(&super::credentials(&req), |ai| {
                auth.has_role(&ai.username, role)
            })
            .await?;
        let header = self.read().await?;
        let perm = self.server.auth.role_permissions(&req.get_ref().role)?;
        Ok(Response::new(AuthRoleGetResponse { header, perm }))
    }

    async fn role_list(
        &self,
        req: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        self.server.check_admin(&super::credentials(&req)).await?;
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
        let creds = super::credentials(&req);
        let header = self
            .change(&creds, AuthChange::RoleDelete(req.into_inner()))
            .await?;
        Ok(Response::new(AuthRoleDeleteResponse { header }))
    }

    async fn role_grant_permission(
        &self,
        req: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let creds = super::credentials(&req);
        let header = self
            .change(&creds, AuthChange::RoleGrantPermission(req.into_inner()))
            .await?;
        Ok(Response::new(AuthRoleGrantPermissionResponse { header }))
    }

    async fn role_revoke_permission(
        &self,
        req: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let creds = super::credentials(&req);
        let header = self
            .change(&creds, AuthChange::RoleRevokePermission(req.into_inner()))
            .await?;
        Ok(Response::new(AuthRoleRevokePermissionResponse { header }))
    }
}
