//! The server's API layer (etcd's `v3_server.go`): what the gRPC services
//! call once they have translated a request. It finds who is asking
//! ([`Credentials`] to [`AuthInfo`]), checks what can be checked before
//! raft (reads, admin-only calls), puts the user and auth revision into
//! the raft header of what it proposes (the apply stage checks writes
//! again there, `apply_auth.rs`), proposes and waits.

use api::etcdserverpb::*;

use super::encoded_range::EncodedRange;
use super::stage::Applied;
use super::{kvops, EtcdServer};
use crate::auth::perms::Need;
use crate::auth::token::{AuthInfo, SimpleTokens};
use crate::auth::Issued;
use crate::rpctypes::EtcdError;
use storage::mvcc::KvStore;

/// What a request brings to say who sends it.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// The `token` (or `authorization`) metadata: from `Authenticate`.
    pub token: Option<String>,
    /// The Common Name of the client certificate the connection's TLS
    /// handshake verified.
    pub common_name: Option<String>,
}

/// Responses to writes, whose header the apply stage gives a revision and
/// the server completes.
trait WithHeader {
    fn header_mut(&mut self) -> &mut Option<ResponseHeader>;
}

macro_rules! with_header {
    ($($t:ty),*) => {$(
        impl WithHeader for $t {
            fn header_mut(&mut self) -> &mut Option<ResponseHeader> {
                &mut self.header
            }
        }
    )*};
}
with_header!(
    PutResponse,
    DeleteRangeResponse,
    TxnResponse,
    CompactionResponse,
    LeaseGrantResponse,
    LeaseRevokeResponse
);

/// A change to the auth store, as the Auth service receives it; the
/// server hashes passwords before it proposes.
pub enum AuthChange {
    /// `AuthEnable`.
    Enable,
    /// `AuthDisable`.
    Disable,
    /// `UserAdd`, with the plain password.
    UserAdd(AuthUserAddRequest),
    /// `UserDelete`.
    UserDelete(AuthUserDeleteRequest),
    /// `UserChangePassword`, with the plain password.
    UserChangePassword(AuthUserChangePasswordRequest),
    /// `UserGrantRole`.
    UserGrantRole(AuthUserGrantRoleRequest),
    /// `UserRevokeRole`.
    UserRevokeRole(AuthUserRevokeRoleRequest),
    /// `RoleAdd`.
    RoleAdd(AuthRoleAddRequest),
    /// `RoleDelete`.
    RoleDelete(AuthRoleDeleteRequest),
    /// `RoleGrantPermission`.
    RoleGrantPermission(AuthRoleGrantPermissionRequest),
    /// `RoleRevokePermission`.
    RoleRevokePermission(AuthRoleRevokePermissionRequest),
}

/// The bcrypt hash of `password` at `cost` (`--bcrypt-cost`; etcd's `$2a$`
/// form), made off the async threads: it takes tens of milliseconds by
/// design.
async fn hash(password: String, cost: u32) -> Result<String, EtcdError> {
    tokio::task::spawn_blocking(move || {
        bcrypt::hash_with_result(password, cost)
            .map(|h| h.format_for_version(bcrypt::Version::TwoA))
    })
    .await
    .map_err(|e| EtcdError::Internal(e.to_string()))?
    .map_err(|e| EtcdError::Internal(e.to_string()))
}

impl EtcdServer {
    /// Proposes `req` for user `ai`, takes its response out of the apply
    /// result with `pick`, and completes the header (cluster, member,
    /// term) around the revision the apply stage set.
    async fn write<T: WithHeader>(
        &self,
        ai: AuthInfo,
        req: InternalRaftRequest,
        pick: fn(Applied) -> Result<T, Applied>,
    ) -> Result<T, EtcdError> {
        let mut resp = pick(self.propose_with(ai, req).await?)
            .map_err(|other| EtcdError::Internal(format!("unexpected apply result {other:?}")))?;
        let h = resp.header_mut();
        *h = Some(self.header(h.take().map_or(0, |h| h.revision)));
        Ok(resp)
    }

    /// KV `Put` as `creds`, checked for WRITE (and READ for `prev_kv`)
    /// when applied. Errors: `NoSpace` past the space quota (`quota.rs`;
    /// Txn with writes and LeaseGrant too), the auth errors, those of
    /// proposing and applying.
    pub async fn put(&self, creds: &Credentials, r: PutRequest) -> Result<PutResponse, EtcdError> {
        self.check_quota(super::quota::put_cost(&r)).await?;
        let req = InternalRaftRequest {
            put: Some(r),
            ..Default::default()
        };
        let ai = self.auth_info(creds).await?.unwrap_or_default();
        self.write(ai, req, |a| match a {
            Applied::Put(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    /// KV `DeleteRange` as `creds`. Errors: as [`EtcdServer::put`].
    pub async fn delete_range(
        &self,
        creds: &Credentials,
        r: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, EtcdError> {
        let req = InternalRaftRequest {
            delete_range: Some(r),
            ..Default::default()
        };
        let ai = self.auth_info(creds).await?.unwrap_or_default();
        self.write(ai, req, |a| match a {
            Applied::DeleteRange(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    /// KV `Txn` as `creds`, every compare and operation checked when
    /// applied. Errors: as [`EtcdServer::put`].
    pub async fn txn(&self, creds: &Credentials, r: TxnRequest) -> Result<TxnResponse, EtcdError> {
        self.check_quota(super::quota::txn_cost(&r)).await?;
        let req = InternalRaftRequest {
            txn: Some(r),
            ..Default::default()
        };
        let ai = self.auth_info(creds).await?.unwrap_or_default();
        self.write(ai, req, |a| match a {
            Applied::Txn(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    /// KV `Compact` (no permission needed, as etcd). Errors: as
    /// [`EtcdServer::put`].
    pub async fn compact(
        &self,
        creds: &Credentials,
        r: CompactionRequest,
    ) -> Result<CompactionResponse, EtcdError> {
        let req = InternalRaftRequest {
            compaction: Some(r),
            ..Default::default()
        };
        let ai = self.auth_info(creds).await?.unwrap_or_default();
        self.write(ai, req, |a| match a {
            Applied::Compaction(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    /// Maintenance `Alarm`: every action goes through raft, as etcd's,
    /// and needs no permission (etcd checks none). The answer has no
    /// header. Errors: those of proposing.
    pub async fn alarm(&self, r: AlarmRequest) -> Result<AlarmResponse, EtcdError> {
        let req = InternalRaftRequest {
            alarm: Some(r),
            ..Default::default()
        };
        match self.propose_with(AuthInfo::default(), req).await? {
            Applied::Alarm(resp) => Ok(resp),
            other => Err(EtcdError::Internal(format!(
                "unexpected apply result {other:?}"
            ))),
        }
    }

    /// Lease `LeaseGrant` as `creds` (a user is needed while auth is on),
    /// choosing an id when `r.id` is 0. Errors: `UserEmpty`, as
    /// [`EtcdServer::put`].
    pub async fn lease_grant(
        &self,
        creds: &Credentials,
        mut r: LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, EtcdError> {
        self.check_quota(super::quota::LEASE_COST).await?;
        let ai = self.require_user(creds).await?;
        if r.id == 0 {
            r.id = self.new_id();
        }
        let req = InternalRaftRequest {
            lease_grant: Some(r),
            ..Default::default()
        };
        self.write(ai, req, |a| match a {
            Applied::LeaseGrant(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    /// Lease `LeaseRevoke` as `creds`, checked for WRITE on every attached
    /// key when applied. Errors: `UserEmpty`, as [`EtcdServer::put`].
    pub async fn lease_revoke(
        &self,
        creds: &Credentials,
        r: LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, EtcdError> {
        let ai = self.require_user(creds).await?;
        let req = InternalRaftRequest {
            lease_revoke: Some(r),
            ..Default::default()
        };
        self.write(ai, req, |a| match a {
            Applied::LeaseRevoke(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    /// An auth store change as `creds` (root, checked when applied);
    /// passwords are hashed here first, an empty one staying empty (nobody
    /// can log in with it, as etcd 3.5). The header of its answer, with
    /// the store revision. Errors: the auth store's, as
    /// [`EtcdServer::put`].
    pub async fn auth_change(
        &self,
        creds: &Credentials,
        change: AuthChange,
    ) -> Result<ResponseHeader, EtcdError> {
        let cost = self.cfg.bcrypt_cost;
        let mut req = InternalRaftRequest::default();
        match change {
            AuthChange::Enable => req.auth_enable = Some(AuthEnableRequest {}),
            AuthChange::Disable => req.auth_disable = Some(AuthDisableRequest {}),
            AuthChange::UserAdd(mut r) => {
                let no_password = r.options.as_ref().is_some_and(|o| o.no_password);
                if !no_password && !r.password.is_empty() {
                    r.hashed_password = hash(std::mem::take(&mut r.password), cost).await?;
                }
                r.password.clear();
                req.auth_user_add = Some(r);
            }
            AuthChange::UserChangePassword(mut r) => {
                if !r.password.is_empty() {
                    r.hashed_password = hash(std::mem::take(&mut r.password), cost).await?;
                }
                req.auth_user_change_password = Some(r);
            }
            AuthChange::UserDelete(r) => req.auth_user_delete = Some(r),
            AuthChange::UserGrantRole(r) => req.auth_user_grant_role = Some(r),
            AuthChange::UserRevokeRole(r) => req.auth_user_revoke_role = Some(r),
            AuthChange::RoleAdd(r) => req.auth_role_add = Some(r),
            AuthChange::RoleDelete(r) => req.auth_role_delete = Some(r),
            AuthChange::RoleGrantPermission(r) => req.auth_role_grant_permission = Some(r),
            AuthChange::RoleRevokePermission(r) => req.auth_role_revoke_permission = Some(r),
        }
        match self.propose_as(creds, req).await? {
            Applied::Done => Ok(self.header(self.store.current_revision())),
            other => Err(EtcdError::Internal(format!(
                "unexpected apply result {other:?}"
            ))),
        }
    }

    /// Who sends a request with `creds` (etcd's `AuthInfoFromCtx`): the
    /// token's user, else with `--client-cert-auth` the certificate's CN,
    /// else nobody. A simple token made at a raft index this member has
    /// not applied yet is waited for. Errors: `InvalidAuthToken`.
    pub async fn auth_info(&self, creds: &Credentials) -> Result<Option<AuthInfo>, EtcdError> {
        if let Some(token) = &creds.token {
            if let Some(index) = self.auth.token_index(token) {
                if index > self.applied_index() {
                    tokio::time::timeout(self.cfg.request_timeout, self.wait_applied(index))
                        .await
                        .map_err(|_| EtcdError::InvalidAuthToken)??;
                }
            }
            return self
                .auth
                .info_from_token(token)
                .map(Some)
                .inspect_err(|_| tracing::warn!("invalid auth token"));
        }
        if self.cfg.client_tls.client_cert_auth {
            if let Some(cn) = &creds.common_name {
                return Ok(Some(AuthInfo {
                    username: cn.clone(),
                    revision: self.auth.revision(),
                }));
            }
        }
        Ok(None)
    }

    /// Proposes `req` on behalf of `creds` (the apply stage checks it as
    /// that user) and waits for it. Errors: `InvalidAuthToken` and those
    /// of [`EtcdServer::propose`].
    pub async fn propose_as(
        &self,
        creds: &Credentials,
        req: InternalRaftRequest,
    ) -> Result<Applied, EtcdError> {
        let ai = self.auth_info(creds).await?.unwrap_or_default();
        self.propose_with(ai, req).await
    }

    /// A linearizable (unless `serializable`) Range, checked for READ on
    /// its range. Errors: `InvalidAuthToken`, `UserEmpty`,
    /// `PermissionDenied`, `AuthOldRevision` (auth changed meanwhile),
    /// those of the read. The store is read on a blocking thread: a range
    /// may touch pages redb has not cached.
    pub async fn range(
        &self,
        creds: &Credentials,
        r: RangeRequest,
    ) -> Result<RangeResponse, EtcdError> {
        self.read_range(creds, r, kvops::range).await
    }

    /// [`EtcdServer::range`], answered encoded as it is read (the gRPC
    /// route's form, [`EncodedRange`]). Errors: as [`EtcdServer::range`].
    pub async fn range_encoded(
        &self,
        creds: &Credentials,
        r: RangeRequest,
    ) -> Result<EncodedRange, EtcdError> {
        self.read_range(creds, r, kvops::range_encoded).await
    }

    /// The checks of a range around `read`, which runs on a blocking
    /// thread: the store is read from disk.
    async fn read_range<T: Send + 'static>(
        &self,
        creds: &Credentials,
        r: RangeRequest,
        read: fn(&KvStore, &RangeRequest) -> Result<T, EtcdError>,
    ) -> Result<T, EtcdError> {
        if !r.serializable {
            self.linearizable_read().await?;
        }
        let ai = self.auth_info(creds).await?.unwrap_or_default();
        self.auth.check(&ai, Need::Read, &r.key, &r.range_end)?;
        let store = self.store.clone();
        let resp = tokio::task::spawn_blocking(move || read(&store, &r))
            .await
            .expect("a range does not panic")?;
        self.still_current(&ai)?;
        Ok(resp)
    }

    /// Whether `creds` may read `[key, range_end)` (a watch). Errors: as
    /// [`EtcdServer::range`].
    pub async fn check_read(
        &self,
        creds: &Credentials,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), EtcdError> {
        let ai = self.auth_info(creds).await?.unwrap_or_default();
        self.auth.check(&ai, Need::Read, key, range_end)
    }

    /// For calls only root may make (maintenance, membership changes):
    /// whether `creds` holds the root role. Errors: `InvalidAuthToken`,
    /// `UserEmpty`, `UserNotFound`, `PermissionDenied`.
    pub async fn check_admin(&self, creds: &Credentials) -> Result<(), EtcdError> {
        let ai = self.auth_info(creds).await?.unwrap_or_default();
        self.auth.check_admin(&ai)
    }

    /// For calls any valid token may make (Status, MemberList): only an
    /// invalid token is refused. Error: `InvalidAuthToken`.
    pub async fn check_token(&self, creds: &Credentials) -> Result<(), EtcdError> {
        self.auth_info(creds).await.map(|_| ())
    }

    /// For calls that need some user while auth is on (etcd's
    /// `requireAuthInfo`: LeaseGrant, LeaseRevoke, LeaseTimeToLive).
    /// Errors: `InvalidAuthToken`, `UserEmpty`.
    pub async fn require_user(&self, creds: &Credentials) -> Result<AuthInfo, EtcdError> {
        let ai = self.auth_info(creds).await?;
        if self.auth.is_enabled() && ai.is_none() {
            return Err(EtcdError::UserEmpty);
        }
        Ok(ai.unwrap_or_default())
    }

    /// Leases `ids` may be renewed (`need` WRITE) or have their keys
    /// listed (READ) by root or a user with `need` on each of their keys
    /// (etcd's `checkLeaseRenew`, `checkLeaseTimeToLive`,
    /// `checkLeaseLeases`). Errors: as [`EtcdServer::require_user`],
    /// `PermissionDenied`.
    pub async fn check_lease_keys(
        &self,
        creds: &Credentials,
        ids: &[i64],
        need: Need,
    ) -> Result<(), EtcdError> {
        let ai = self.require_user(creds).await?;
        if !self.auth.is_enabled() || self.auth.check_admin(&ai).is_ok() {
            return Ok(());
        }
        for &id in ids {
            for key in self.lessor.keys(id) {
                self.auth.check(&ai, need, &key, &[])?;
            }
        }
        Ok(())
    }

    /// `UserGet` is for root or the user itself; `RoleGet` for root or a
    /// holder of the role (etcd's auth applier). Errors: as
    /// [`EtcdServer::check_admin`].
    pub async fn check_admin_or(
        &self,
        creds: &Credentials,
        allowed: impl FnOnce(&AuthInfo) -> bool,
    ) -> Result<(), EtcdError> {
        let ai = self.auth_info(creds).await?.unwrap_or_default();
        match self.auth.check_admin(&ai) {
            Err(_) if allowed(&ai) => Ok(()),
            other => other,
        }
    }

    /// Checks `name`'s password and proposes an `Authenticate`, retrying
    /// when the auth store changed between the two (etcd's
    /// `Authenticate`); the token. Errors: `AuthNotEnabled`, `AuthFailed`,
    /// those of proposing.
    pub async fn authenticate(
        &self,
        name: &str,
        password: String,
    ) -> Result<AuthenticateResponse, EtcdError> {
        self.linearizable_read().await?;
        loop {
            let (hash, checked) = self.auth.password_hash(name).inspect_err(|e| {
                if !matches!(e, EtcdError::AuthNotEnabled) {
                    tracing::warn!(user = name, error = %e, "invalid authentication was requested");
                }
            })?;
            let pw = password.clone();
            let ok =
                tokio::task::spawn_blocking(move || bcrypt::verify(pw, &hash).unwrap_or(false))
                    .await
                    .map_err(|e| EtcdError::Internal(e.to_string()))?;
            if !ok {
                tracing::info!(user = name, "invalid password");
                return Err(EtcdError::AuthFailed);
            }
            let req = InternalRaftRequest {
                authenticate: Some(InternalAuthenticateRequest {
                    name: name.to_string(),
                    password: String::new(),
                    simple_token: if self.auth.simple_tokens() {
                        SimpleTokens::prefix()
                    } else {
                        String::new()
                    },
                }),
                ..Default::default()
            };
            let issued = match self.propose(req).await? {
                Applied::Authenticated(i) => i,
                other => {
                    return Err(EtcdError::Internal(format!(
                        "unexpected apply result {other:?}"
                    )))
                }
            };
            if checked != self.auth.revision() {
                tracing::info!("revision when password checked became stale; retrying");
                continue;
            }
            let token = match issued {
                Issued::Token(t) => t,
                Issued::Sign(revision) => self.auth.sign_jwt(name, revision).ok_or_else(|| {
                    EtcdError::Internal("no JWT private key to sign tokens with".into())
                })?,
            };
            return Ok(AuthenticateResponse {
                header: Some(self.header(self.store.current_revision())),
                token,
            });
        }
    }

    /// `AuthOldRevision` if the auth store changed since `ai` was checked.
    fn still_current(&self, ai: &AuthInfo) -> Result<(), EtcdError> {
        if ai.revision != 0 && ai.revision != self.auth.revision() {
            return Err(EtcdError::AuthOldRevision);
        }
        Ok(())
    }

    /// Proposes `req` for user `ai`.
    async fn propose_with(
        &self,
        ai: AuthInfo,
        req: InternalRaftRequest,
    ) -> Result<Applied, EtcdError> {
        self.propose_headed(
            RequestHeader {
                username: ai.username,
                auth_revision: ai.revision,
                ..Default::default()
            },
            req,
        )
        .await
    }
}
