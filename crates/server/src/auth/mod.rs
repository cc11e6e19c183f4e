//! The auth store (etcd's `auth.AuthStore`): users, roles and their key
//! permissions, whether auth is enabled, and the auth revision that every
//! change raises.
//!
//! Changes are raft entries applied by the apply stage, each through one
//! method here that checks it with etcd's rules and errors, then writes
//! the backend's `auth`, `authUsers` and `authRoles` tables (through
//! `storage::schema::auth`, which owns their encoding) in the batch's transaction and only then changes memory (a failed write,
//! which stops the member, leaves memory as it was) (`storage/src/schema/FORMAT.md`), so every member
//! holds the same store and a snapshot carries it. Reads answer from
//! memory. Passwords arrive already hashed with bcrypt (the hash is made
//! before the change is proposed, never in the apply stage, and never
//! logged).
//!
//! While auth is enabled, every request is checked here: the server's
//! API layer asks for its [`AuthInfo`] ([`AuthStore::info_from_token`])
//! and checks reads; the apply stage checks writes against the store as
//! of their entry ([`AuthStore::check`], [`AuthStore::check_admin`]).
//! Each user's permissions are kept merged ([`perms::UserPerms`]) and
//! rebuilt on every change, so a check takes a read lock and a binary
//! search, never a write lock.

pub mod perms;
pub mod token;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;

use api::authpb::{Permission, Role, User, UserAddOptions};
use api::etcdserverpb::{
    AuthRoleAddRequest, AuthRoleDeleteRequest, AuthRoleGrantPermissionRequest,
    AuthRoleRevokePermissionRequest, AuthUserAddRequest, AuthUserChangePasswordRequest,
    AuthUserDeleteRequest, AuthUserGrantRoleRequest, AuthUserRevokeRoleRequest,
};
use storage::schema::auth::AuthTables;
use storage::Backend;

use self::perms::{Need, UserPerms};
use self::token::{AuthInfo, JwtKeys, SimpleTokens, TokenConfig};
use crate::rpctypes::EtcdError;

/// The `root` user and role, which may do everything.
pub const ROOT: &str = "root";

#[derive(Default)]
struct State {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    /// Every user's merged permissions, rebuilt on every change.
    perms: HashMap<String, UserPerms>,
}

impl State {
    fn rebuild_perms(&mut self) {
        let roles = &self.roles;
        self.perms = self
            .users
            .iter()
            .map(|(name, u)| {
                let root = u.roles.iter().any(|r| r == ROOT);
                let held = u.roles.iter().filter_map(|r| roles.get(r));
                (name.clone(), UserPerms::of(held, root))
            })
            .collect();
    }
}

/// How this member makes and checks tokens.
enum Tokens {
    Simple(SimpleTokens),
    Jwt(Box<JwtKeys>),
}

/// Users, roles and the auth revision, in memory and in the backend.
pub struct AuthStore {
    state: RwLock<State>,
    /// Copies of `state.enabled` and `state.revision`, read without the
    /// lock on every request.
    enabled: AtomicBool,
    revision: AtomicU64,
    tokens: Tokens,
}

fn internal(e: impl std::fmt::Display) -> EtcdError {
    EtcdError::Internal(e.to_string())
}

fn read_state(backend: &Backend) -> Result<State, EtcdError> {
    let records = storage::schema::auth::load(backend).map_err(internal)?;
    let name = |n: &[u8]| String::from_utf8_lossy(n).into_owned();
    let users = records
        .users
        .into_iter()
        .map(|u| (name(&u.name), u))
        .collect();
    let roles = records
        .roles
        .into_iter()
        .map(|r| (name(&r.name), r))
        .collect();
    // A new store starts at revision 1, as etcd's.
    let (enabled, revision) = (records.enabled, records.revision.max(1));
    let mut state = State {
        enabled,
        revision,
        users,
        roles,
        perms: HashMap::new(),
    };
    state.rebuild_perms();
    Ok(state)
}

/// Whether `[key, range_end)` is a range a permission may name (etcd's
/// `isValidPermissionRange`): a key, and no end, an end after it, or
/// `"\0"` (every key from it on).
fn valid_range(key: &[u8], range_end: &[u8]) -> bool {
    !key.is_empty() && (range_end.is_empty() || range_end == b"\0" || range_end > key)
}

impl AuthStore {
    /// The store held in `backend`, making tokens as `tokens` says.
    /// Errors: the backend's, a corrupt record.
    pub fn load(backend: &Backend, tokens: TokenConfig) -> Result<AuthStore, EtcdError> {
        let state = read_state(backend)?;
        Ok(AuthStore {
            enabled: AtomicBool::new(state.enabled),
            revision: AtomicU64::new(state.revision),
            state: RwLock::new(state),
            tokens: match tokens {
                TokenConfig::Simple(ttl) => Tokens::Simple(SimpleTokens::new(ttl)),
                TokenConfig::Jwt(keys) => Tokens::Jwt(keys),
            },
        })
    }

    /// Reads the store again (after a snapshot replaced the backend).
    pub fn reload(&self, backend: &Backend) -> Result<(), EtcdError> {
        let fresh = read_state(backend)?;
        let mut s = self.state.write().expect("auth lock");
        if s.enabled && !fresh.enabled {
            self.clear_tokens();
        }
        *s = fresh;
        self.publish(&s);
        Ok(())
    }

    /// Copies the enabled flag and revision where requests read them.
    fn publish(&self, s: &State) {
        self.enabled.store(s.enabled, Ordering::Release);
        self.revision.store(s.revision, Ordering::Release);
    }

    /// Whether auth is enabled, and the auth revision.
    pub fn status(&self) -> (bool, u64) {
        (self.is_enabled(), self.revision())
    }

    /// Whether auth is enabled.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// The auth revision.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// User `name`'s roles, sorted. Error: `UserNotFound`.
    pub fn user_roles(&self, name: &str) -> Result<Vec<String>, EtcdError> {
        let s = self.state.read().expect("auth lock");
        s.users
            .get(name)
            .map(|u| u.roles.clone())
            .ok_or(EtcdError::UserNotFound)
    }

    /// Every user name, in byte order.
    pub fn user_names(&self) -> Vec<String> {
        self.state
            .read()
            .expect("auth lock")
            .users
            .keys()
            .cloned()
            .collect()
    }

    /// Role `name`'s permissions, sorted by key. Error: `RoleNotFound`.
    pub fn role_permissions(&self, name: &str) -> Result<Vec<Permission>, EtcdError> {
        let s = self.state.read().expect("auth lock");
        s.roles
            .get(name)
            .map(|r| r.key_permission.clone())
            .ok_or(EtcdError::RoleNotFound)
    }

    /// Every role name, in byte order.
    pub fn role_names(&self) -> Vec<String> {
        self.state
            .read()
            .expect("auth lock")
            .roles
            .keys()
            .cloned()
            .collect()
    }

    /// Applies `UserAdd`; `hashed_password` is the bcrypt hash (empty for
    /// a `no_password` user, or when the password was empty: nobody can
    /// log in with it). Errors: `UserEmpty`, `UserAlreadyExist`.
    pub fn user_add(&self, tx: &AuthTables<'_>, r: &AuthUserAddRequest) -> Result<(), EtcdError> {
        let mut s = self.state.write().expect("auth lock");
        if r.name.is_empty() {
            return Err(EtcdError::UserEmpty);
        }
        if s.users.contains_key(&r.name) {
            return Err(EtcdError::UserAlreadyExist);
        }
        let no_password = r.options.as_ref().is_some_and(|o| o.no_password);
        let user = User {
            name: r.name.clone().into_bytes(),
            password: if no_password {
                Vec::new()
            } else {
                r.hashed_password.clone().into_bytes()
            },
            roles: Vec::new(),
            options: Some(UserAddOptions { no_password }),
        };
        save_user(tx, &user)?;
        s.revision = save_revision(tx, s.revision + 1)?;
        s.users.insert(r.name.clone(), user);
        self.changed(&mut s);
        Ok(())
    }

    /// Applies `UserDelete`. Errors: `InvalidAuthMgmt` (root while auth is
    /// on), `UserNotFound`.
    pub fn user_delete(
        &self,
        tx: &AuthTables<'_>,
        r: &AuthUserDeleteRequest,
    ) -> Result<(), EtcdError> {
        let mut s = self.state.write().expect("auth lock");
        if s.enabled && r.name == ROOT {
            return Err(EtcdError::InvalidAuthMgmt);
        }
        if !s.users.contains_key(&r.name) {
            return Err(EtcdError::UserNotFound);
        }
        tx.delete_user(r.name.as_bytes()).map_err(internal)?;
        s.revision = save_revision(tx, s.revision + 1)?;
        s.users.remove(&r.name);
        self.drop_tokens_of(&r.name);
        self.changed(&mut s);
        Ok(())
    }

    /// Applies `UserChangePassword` (a `no_password` user keeps none).
    /// Error: `UserNotFound`.
    pub fn user_change_password(
        &self,
        tx: &AuthTables<'_>,
        r: &AuthUserChangePasswordRequest,
    ) -> Result<(), EtcdError> {
        let mut s = self.state.write().expect("auth lock");
        let mut user = s
            .users
            .get(&r.name)
            .cloned()
            .ok_or(EtcdError::UserNotFound)?;
        if !user.options.as_ref().is_some_and(|o| o.no_password) {
            user.password = r.hashed_password.clone().into_bytes();
        }
        save_user(tx, &user)?;
        s.revision = save_revision(tx, s.revision + 1)?;
        s.users.insert(r.name.clone(), user);
        self.drop_tokens_of(&r.name);
        self.changed(&mut s);
        Ok(())
    }

    /// Applies `UserGrantRole`; granting a role the user has changes
    /// nothing. Errors: `UserNotFound`, `RoleNotFound` (the root role
    /// needs no role record).
    pub fn user_grant_role(
        &self,
        tx: &AuthTables<'_>,
        r: &AuthUserGrantRoleRequest,
    ) -> Result<(), EtcdError> {
        let mut s = self.state.write().expect("auth lock");
        let mut user = s
            .users
            .get(&r.user)
            .cloned()
            .ok_or(EtcdError::UserNotFound)?;
        if r.role != ROOT && !s.roles.contains_key(&r.role) {
            return Err(EtcdError::RoleNotFound);
        }
        let Err(at) = user.roles.binary_search(&r.role) else {
            return Ok(());
        };
        user.roles.insert(at, r.role.clone());
        save_user(tx, &user)?;
        s.revision = save_revision(tx, s.revision + 1)?;
        s.users.insert(r.user.clone(), user);
        self.changed(&mut s);
        Ok(())
    }

    /// Applies `UserRevokeRole`. Errors: `InvalidAuthMgmt` (root's root
    /// role while auth is on), `UserNotFound`, `RoleNotGranted`.
    pub fn user_revoke_role(
        &self,
        tx: &AuthTables<'_>,
        r: &AuthUserRevokeRoleRequest,
    ) -> Result<(), EtcdError> {
        let mut s = self.state.write().expect("auth lock");
        if s.enabled && r.name == ROOT && r.role == ROOT {
            return Err(EtcdError::InvalidAuthMgmt);
        }
        let mut user = s
            .users
            .get(&r.name)
            .cloned()
            .ok_or(EtcdError::UserNotFound)?;
        let at = user
            .roles
            .binary_search(&r.role)
            .map_err(|_| EtcdError::RoleNotGranted)?;
        user.roles.remove(at);
        save_user(tx, &user)?;
        s.revision = save_revision(tx, s.revision + 1)?;
        s.users.insert(r.name.clone(), user);
        self.changed(&mut s);
        Ok(())
    }

    /// Applies `RoleAdd`. Errors: `RoleEmpty`, `RoleAlreadyExist`.
    pub fn role_add(&self, tx: &AuthTables<'_>, r: &AuthRoleAddRequest) -> Result<(), EtcdError> {
        let mut s = self.state.write().expect("auth lock");
        if r.name.is_empty() {
            return Err(EtcdError::RoleEmpty);
        }
        if s.roles.contains_key(&r.name) {
            return Err(EtcdError::RoleAlreadyExist);
        }
        let role = Role {
            name: r.name.clone().into_bytes(),
            key_permission: Vec::new(),
        };
        save_role(tx, &role)?;
        s.revision = save_revision(tx, s.revision + 1)?;
        s.roles.insert(r.name.clone(), role);
        self.changed(&mut s);
        Ok(())
    }

    /// Applies `RoleDelete`; users holding the role lose it. Errors:
    /// `InvalidAuthMgmt` (root while auth is on), `RoleNotFound`.
    pub fn role_delete(
        &self,
        tx: &AuthTables<'_>,
        r: &AuthRoleDeleteRequest,
    ) -> Result<(), EtcdError> {
        let mut s = self.state.write().expect("auth lock");
        if s.enabled && r.role == ROOT {
            return Err(EtcdError::InvalidAuthMgmt);
        }
        if !s.roles.contains_key(&r.role) {
            return Err(EtcdError::RoleNotFound);
        }
        let holders: Vec<User> = s
            .users
            .values()
            .filter(|u| u.roles.contains(&r.role))
            .map(|u| {
                let mut u = u.clone();
                u.roles.retain(|role| *role != r.role);
                u
            })
            .collect();
        tx.delete_role(r.role.as_bytes()).map_err(internal)?;
        for user in &holders {
            save_user(tx, user)?;
        }
        s.revision = save_revision(tx, s.revision + 1)?;
        s.roles.remove(&r.role);
        for user in holders {
            s.users
                .insert(String::from_utf8_lossy(&user.name).into_owned(), user);
        }
        self.changed(&mut s);
        Ok(())
    }

    /// Applies `RoleGrantPermission`: a permission with the same key and
    /// range end as the first of the role's at or after its key gets the
    /// new type, else it joins the role's, sorted by key (as etcd 3.5).
    /// Errors, in etcd's order: `PermissionNotGiven`, `InvalidAuthMgmt` (a
    /// range that names no key), `RoleNotFound`.
    pub fn role_grant_permission(
        &self,
        tx: &AuthTables<'_>,
        r: &AuthRoleGrantPermissionRequest,
    ) -> Result<(), EtcdError> {
        let mut s = self.state.write().expect("auth lock");
        let perm = r.perm.as_ref().ok_or(EtcdError::PermissionNotGiven)?;
        if !valid_range(&perm.key, &perm.range_end) {
            return Err(EtcdError::InvalidAuthMgmt);
        }
        let mut role = s
            .roles
            .get(&r.name)
            .cloned()
            .ok_or(EtcdError::RoleNotFound)?;
        let at = role.key_permission.partition_point(|p| p.key < perm.key);
        match role.key_permission.get_mut(at) {
            Some(p) if p.key == perm.key && p.range_end == perm.range_end => {
                p.perm_type = perm.perm_type
            }
            _ => {
                role.key_permission.push(perm.clone());
                role.key_permission.sort_by(|a, b| a.key.cmp(&b.key));
            }
        }
        save_role(tx, &role)?;
        s.revision = save_revision(tx, s.revision + 1)?;
        s.roles.insert(r.name.clone(), role);
        self.changed(&mut s);
        Ok(())
    }

    /// Applies `RoleRevokePermission` of exactly `[key, range_end)`.
    /// Errors: `RoleNotFound`, `PermissionNotGranted`.
    pub fn role_revoke_permission(
        &self,
        tx: &AuthTables<'_>,
        r: &AuthRoleRevokePermissionRequest,
    ) -> Result<(), EtcdError> {
        let mut s = self.state.write().expect("auth lock");
        let mut role = s
            .roles
            .get(&r.role)
            .cloned()
            .ok_or(EtcdError::RoleNotFound)?;
        let before = role.key_permission.len();
        role.key_permission
            .retain(|p| !(p.key == r.key && p.range_end == r.range_end));
        if role.key_permission.len() == before {
            return Err(EtcdError::PermissionNotGranted);
        }
        save_role(tx, &role)?;
        s.revision = save_revision(tx, s.revision + 1)?;
        s.roles.insert(r.role.clone(), role);
        self.changed(&mut s);
        Ok(())
    }
}

impl AuthStore {
    /// After a change to `s`: rebuilds the permissions and publishes the
    /// enabled flag and revision.
    fn changed(&self, s: &mut State) {
        s.rebuild_perms();
        self.publish(s);
    }

    fn drop_tokens_of(&self, name: &str) {
        if let Tokens::Simple(t) = &self.tokens {
            t.drop_user(name);
        }
    }

    fn clear_tokens(&self) {
        if let Tokens::Simple(t) = &self.tokens {
            t.clear();
        }
    }

    /// Applies `AuthEnable`: needs the root user holding the root role;
    /// enabling an enabled store changes nothing. The revision stays, as
    /// etcd's. Errors: `RootUserNotExist`, `RootRoleNotExist`.
    pub fn auth_enable(&self, tx: &AuthTables<'_>) -> Result<(), EtcdError> {
        let mut s = self.state.write().expect("auth lock");
        if s.enabled {
            tracing::info!("authentication is already enabled; ignored auth enable request");
            return Ok(());
        }
        let root = s.users.get(ROOT).ok_or(EtcdError::RootUserNotExist)?;
        if !root.roles.iter().any(|r| r == ROOT) {
            return Err(EtcdError::RootRoleNotExist);
        }
        save_enabled(tx, true)?;
        s.enabled = true;
        self.changed(&mut s);
        tracing::info!("enabled authentication");
        Ok(())
    }

    /// Applies `AuthDisable`: raises the revision and drops every simple
    /// token; disabling a disabled store changes nothing.
    pub fn auth_disable(&self, tx: &AuthTables<'_>) -> Result<(), EtcdError> {
        let mut s = self.state.write().expect("auth lock");
        if !s.enabled {
            return Ok(());
        }
        save_enabled(tx, false)?;
        s.revision = save_revision(tx, s.revision + 1)?;
        s.enabled = false;
        self.clear_tokens();
        self.changed(&mut s);
        tracing::info!("disabled authentication");
        Ok(())
    }

    /// User `name`'s bcrypt hash and the auth revision it is read at, for
    /// checking a password before `Authenticate` is proposed (etcd's
    /// `CheckPassword`). Errors: `AuthNotEnabled`, `AuthFailed` (no such
    /// user, or one without password).
    pub fn password_hash(&self, name: &str) -> Result<(String, u64), EtcdError> {
        let s = self.state.read().expect("auth lock");
        if !s.enabled {
            return Err(EtcdError::AuthNotEnabled);
        }
        let user = s.users.get(name).ok_or(EtcdError::AuthFailed)?;
        if user.options.as_ref().is_some_and(|o| o.no_password) {
            return Err(EtcdError::AuthFailed);
        }
        let hash = String::from_utf8_lossy(&user.password).into_owned();
        Ok((hash, s.revision))
    }

    /// Applies `Authenticate` at raft index `index`: the password was
    /// checked before it was proposed. Returns the simple token
    /// `prefix.index` (recorded here, so every member knows it), or, with
    /// JWT, the revision to sign the token at (the proposer signs).
    /// Errors: `AuthNotEnabled`, `AuthFailed`.
    pub fn authenticate(&self, name: &str, prefix: &str, index: u64) -> Result<Issued, EtcdError> {
        let s = self.state.read().expect("auth lock");
        if !s.enabled {
            return Err(EtcdError::AuthNotEnabled);
        }
        let user = s.users.get(name).ok_or(EtcdError::AuthFailed)?;
        if user.options.as_ref().is_some_and(|o| o.no_password) {
            return Err(EtcdError::AuthFailed);
        }
        Ok(match &self.tokens {
            Tokens::Simple(t) => Issued::Token(t.assign(prefix, index, name)),
            Tokens::Jwt(_) => Issued::Sign(s.revision),
        })
    }

    /// A JWT for `name` at auth revision `revision`; `None` with simple
    /// tokens or without a private key.
    pub fn sign_jwt(&self, name: &str, revision: u64) -> Option<String> {
        match &self.tokens {
            Tokens::Jwt(keys) => keys.sign(name, revision),
            Tokens::Simple(_) => None,
        }
    }

    /// The simple token's raft index, which this member must have
    /// applied to know it; `None` for JWT or a malformed token.
    pub fn token_index(&self, token: &str) -> Option<u64> {
        match &self.tokens {
            Tokens::Simple(_) => SimpleTokens::index(token),
            Tokens::Jwt(_) => None,
        }
    }

    /// Whether simple tokens are in use (they need the index waited for).
    pub fn simple_tokens(&self) -> bool {
        matches!(self.tokens, Tokens::Simple(_))
    }

    /// Who `token` is, checked at the current revision (simple) or the one
    /// it was signed at (JWT). Error: `InvalidAuthToken`.
    pub fn info_from_token(&self, token: &str) -> Result<AuthInfo, EtcdError> {
        match &self.tokens {
            Tokens::Simple(t) => t
                .user(token)
                .map(|username| AuthInfo {
                    username,
                    revision: self.revision(),
                })
                .ok_or(EtcdError::InvalidAuthToken),
            Tokens::Jwt(keys) => keys.check(token).ok_or(EtcdError::InvalidAuthToken),
        }
    }

    /// etcd's `isOpPermitted`: whether `ai` may `need` on `[key,
    /// range_end)`; anything goes while auth is disabled. Errors:
    /// `UserEmpty` (no user), `AuthOldRevision` (checked at an older
    /// revision), `PermissionDenied`.
    pub fn check(
        &self,
        ai: &AuthInfo,
        need: Need,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), EtcdError> {
        if !self.is_enabled() {
            return Ok(());
        }
        if ai.revision == 0 {
            return Err(EtcdError::UserEmpty);
        }
        let s = self.state.read().expect("auth lock");
        if ai.revision < s.revision {
            return Err(EtcdError::AuthOldRevision);
        }
        match s.perms.get(&ai.username) {
            Some(p) if p.allows(need, key, range_end) => Ok(()),
            _ => Err(EtcdError::PermissionDenied),
        }
    }

    /// etcd's `IsAdminPermitted`: whether `ai` holds the root role; anything
    /// goes while auth is disabled. Errors: `UserEmpty`, `UserNotFound`,
    /// `PermissionDenied`.
    pub fn check_admin(&self, ai: &AuthInfo) -> Result<(), EtcdError> {
        if !self.is_enabled() {
            return Ok(());
        }
        if ai.username.is_empty() {
            return Err(EtcdError::UserEmpty);
        }
        let s = self.state.read().expect("auth lock");
        match s.perms.get(&ai.username) {
            None => Err(EtcdError::UserNotFound),
            Some(p) if p.root => Ok(()),
            Some(_) => Err(EtcdError::PermissionDenied),
        }
    }

    /// Whether user `name` holds `role`.
    pub fn has_role(&self, name: &str, role: &str) -> bool {
        let s = self.state.read().expect("auth lock");
        s.users
            .get(name)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }
}

/// What applying `Authenticate` gives the proposer.
#[derive(Debug)]
pub enum Issued {
    /// A simple token, known to every member.
    Token(String),
    /// JWT: sign a token at this auth revision.
    Sign(u64),
}

/// Writes the enabled flag to `tx`.
fn save_enabled(tx: &AuthTables<'_>, enabled: bool) -> Result<(), EtcdError> {
    tx.set_enabled(enabled).map_err(internal)
}

fn save_user(tx: &AuthTables<'_>, user: &User) -> Result<(), EtcdError> {
    tx.put_user(user).map_err(internal)
}

fn save_role(tx: &AuthTables<'_>, role: &Role) -> Result<(), EtcdError> {
    tx.put_role(role).map_err(internal)
}

/// Writes auth revision `revision` to `tx`; returns it.
fn save_revision(tx: &AuthTables<'_>, revision: u64) -> Result<u64, EtcdError> {
    tx.set_revision(revision).map_err(internal)?;
    Ok(revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_ranges_are_etcds() {
        assert!(valid_range(b"a", b""));
        assert!(valid_range(b"a", b"b"));
        assert!(valid_range(b"a", b"\0"));
        assert!(!valid_range(b"", b""));
        assert!(!valid_range(b"b", b"a"));
        assert!(!valid_range(b"a", b"a"));
    }
}
