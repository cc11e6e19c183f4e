//! The auth store's tables (etcd's `auth`, `authUsers` and `authRoles`
//! buckets, `FORMAT.md`): the enabled flag and auth revision, users
//! and roles as protobuf `authpb.User` and `authpb.Role` keyed by name.
//! The server's auth store decides what changes; this module is the only
//! one that knows how it is written.

use api::authpb::{Role, User};
use prost::Message;
use redb::{ReadableTable, WriteTransaction};

use crate::schema::{meta_u64, AUTH_ROLES_TABLE, AUTH_TABLE, AUTH_USERS_TABLE};
use crate::{Backend, BackendError};

/// Key of the enabled flag in the `auth` table (one byte: 1 enabled).
const ENABLED_KEY: &[u8] = b"authEnabled";
/// Key of the auth revision in the `auth` table (u64 big-endian).
const REVISION_KEY: &[u8] = b"authRevision";

/// Everything the auth tables hold.
#[derive(Debug, Default)]
pub struct AuthRecords {
    /// Whether auth is enabled.
    pub enabled: bool,
    /// The auth revision; 0 when never written.
    pub revision: u64,
    /// Every user, in name order.
    pub users: Vec<User>,
    /// Every role, in name order.
    pub roles: Vec<Role>,
}

fn corrupt(e: prost::DecodeError) -> BackendError {
    BackendError::Corrupt(format!("auth record: {e}"))
}

/// Reads the auth tables of `backend`. Errors: the backend's, a record
/// that does not decode.
pub fn load(backend: &Backend) -> Result<AuthRecords, BackendError> {
    let rtx = backend.read()?;
    let auth = rtx.open_table(AUTH_TABLE)?;
    let enabled = auth.get(ENABLED_KEY)?.is_some_and(|v| v.value() == [1]);
    let revision = meta_u64(&auth, REVISION_KEY)?;
    let mut users = Vec::new();
    let t = rtx.open_table(AUTH_USERS_TABLE)?;
    for item in t.iter()? {
        let (_, v) = item?;
        users.push(User::decode(v.value()).map_err(corrupt)?);
    }
    let mut roles = Vec::new();
    let t = rtx.open_table(AUTH_ROLES_TABLE)?;
    for item in t.iter()? {
        let (_, v) = item?;
        roles.push(Role::decode(v.value()).map_err(corrupt)?);
    }
    Ok(AuthRecords {
        enabled,
        revision,
        users,
        roles,
    })
}

/// Writes to the auth tables inside an apply batch's transaction
/// ([`crate::mvcc::StoreTxn::auth_tables`]).
pub struct AuthTables<'a>(pub(crate) &'a WriteTransaction);

impl AuthTables<'_> {
    /// Writes `user` under its name.
    pub fn put_user(&self, user: &User) -> Result<(), BackendError> {
        let mut t = self.0.open_table(AUTH_USERS_TABLE)?;
        t.insert(user.name.as_slice(), user.encode_to_vec().as_slice())?;
        Ok(())
    }

    /// Removes user `name`.
    pub fn delete_user(&self, name: &[u8]) -> Result<(), BackendError> {
        let mut t = self.0.open_table(AUTH_USERS_TABLE)?;
        t.remove(name)?;
        Ok(())
    }

    /// Writes `role` under its name.
    pub fn put_role(&self, role: &Role) -> Result<(), BackendError> {
        let mut t = self.0.open_table(AUTH_ROLES_TABLE)?;
        t.insert(role.name.as_slice(), role.encode_to_vec().as_slice())?;
        Ok(())
    }

    /// Removes role `name`.
    pub fn delete_role(&self, name: &[u8]) -> Result<(), BackendError> {
        let mut t = self.0.open_table(AUTH_ROLES_TABLE)?;
        t.remove(name)?;
        Ok(())
    }

    /// Writes the auth revision.
    pub fn set_revision(&self, revision: u64) -> Result<(), BackendError> {
        let mut t = self.0.open_table(AUTH_TABLE)?;
        t.insert(REVISION_KEY, revision.to_be_bytes().as_slice())?;
        Ok(())
    }

    /// Writes the enabled flag.
    pub fn set_enabled(&self, enabled: bool) -> Result<(), BackendError> {
        let mut t = self.0.open_table(AUTH_TABLE)?;
        t.insert(ENABLED_KEY, [enabled as u8].as_slice())?;
        Ok(())
    }
}
