//! The kinds of request a raft entry carries: one enum, so the apply stage
//! and its auth gate dispatch with one `match` instead of probing each
//! optional field of `InternalRaftRequest`.

use api::etcdserverpb::*;
use api::membershippb::{ClusterMemberAttrSetRequest, ClusterVersionSetRequest};

/// One request of a raft entry, borrowed from its `InternalRaftRequest`.
pub enum Request<'a> {
    /// KV `Put`.
    Put(&'a PutRequest),
    /// KV `DeleteRange`.
    DeleteRange(&'a DeleteRangeRequest),
    /// KV `Txn`.
    Txn(&'a TxnRequest),
    /// KV `Compact`.
    Compaction(&'a CompactionRequest),
    /// Lease `LeaseGrant`.
    LeaseGrant(&'a LeaseGrantRequest),
    /// Lease `LeaseRevoke` (also the leader revoking an expired lease).
    LeaseRevoke(&'a LeaseRevokeRequest),
    /// The leader's remaining TTLs.
    LeaseCheckpoint(&'a LeaseCheckpointRequest),
    /// A member's name and client URLs.
    MemberAttrSet(&'a ClusterMemberAttrSetRequest),
    /// The cluster version.
    ClusterVersionSet(&'a ClusterVersionSetRequest),
    /// Auth `AuthEnable`.
    AuthEnable,
    /// Auth `AuthDisable`.
    AuthDisable,
    /// Auth `Authenticate`, password already checked.
    Authenticate(&'a InternalAuthenticateRequest),
    /// Auth `UserAdd`.
    UserAdd(&'a AuthUserAddRequest),
    /// Auth `UserDelete`.
    UserDelete(&'a AuthUserDeleteRequest),
    /// Auth `UserChangePassword`.
    UserChangePassword(&'a AuthUserChangePasswordRequest),
    /// Auth `UserGrantRole`.
    UserGrantRole(&'a AuthUserGrantRoleRequest),
    /// Auth `UserRevokeRole`.
    UserRevokeRole(&'a AuthUserRevokeRoleRequest),
    /// Auth `RoleAdd`.
    RoleAdd(&'a AuthRoleAddRequest),
    /// Auth `RoleDelete`.
    RoleDelete(&'a AuthRoleDeleteRequest),
    /// Auth `RoleGrantPermission`.
    RoleGrantPermission(&'a AuthRoleGrantPermissionRequest),
    /// Auth `RoleRevokePermission`.
    RoleRevokePermission(&'a AuthRoleRevokePermissionRequest),
    /// Maintenance `Alarm`: list, raise or disarm an alarm.
    Alarm(&'a AlarmRequest),
    /// A kind etcd-rs does not apply (v2, downgrades for now).
    Other,
}

impl<'a> Request<'a> {
    /// The request `r` carries (the first set field, as etcd's applier).
    pub fn of(r: &'a InternalRaftRequest) -> Request<'a> {
        use Request::*;
        if let Some(x) = &r.put {
            Put(x)
        } else if let Some(x) = &r.delete_range {
            DeleteRange(x)
        } else if let Some(x) = &r.txn {
            Txn(x)
        } else if let Some(x) = &r.compaction {
            Compaction(x)
        } else if let Some(x) = &r.lease_grant {
            LeaseGrant(x)
        } else if let Some(x) = &r.lease_revoke {
            LeaseRevoke(x)
        } else if let Some(x) = &r.lease_checkpoint {
            LeaseCheckpoint(x)
        } else if let Some(x) = &r.cluster_member_attr_set {
            MemberAttrSet(x)
        } else if let Some(x) = &r.cluster_version_set {
            ClusterVersionSet(x)
        } else if let Some(x) = &r.alarm {
            Alarm(x)
        } else if r.auth_enable.is_some() {
            AuthEnable
        } else if r.auth_disable.is_some() {
            AuthDisable
        } else if let Some(x) = &r.authenticate {
            Authenticate(x)
        } else if let Some(x) = &r.auth_user_add {
            UserAdd(x)
        } else if let Some(x) = &r.auth_user_delete {
            UserDelete(x)
        } else if let Some(x) = &r.auth_user_change_password {
            UserChangePassword(x)
        } else if let Some(x) = &r.auth_user_grant_role {
            UserGrantRole(x)
        } else if let Some(x) = &r.auth_user_revoke_role {
            UserRevokeRole(x)
        } else if let Some(x) = &r.auth_role_add {
            RoleAdd(x)
        } else if let Some(x) = &r.auth_role_delete {
            RoleDelete(x)
        } else if let Some(x) = &r.auth_role_grant_permission {
            RoleGrantPermission(x)
        } else if let Some(x) = &r.auth_role_revoke_permission {
            RoleRevokePermission(x)
        } else {
            Other
        }
    }

    /// Whether only a user with the root role may make it (etcd's
    /// `needAdminPermission`).
    pub fn needs_admin(&self) -> bool {
        use Request::*;
        matches!(
            self,
            AuthEnable
                | AuthDisable
                | UserAdd(_)
                | UserDelete(_)
                | UserChangePassword(_)
                | UserGrantRole(_)
                | UserRevokeRole(_)
                | RoleAdd(_)
                | RoleDelete(_)
                | RoleGrantPermission(_)
                | RoleRevokePermission(_)
        )
    }
}
