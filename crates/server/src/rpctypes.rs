//! Every client-visible error in one table (etcd's `rpctypes`): the gRPC
//! code and the exact message, defined once. Handlers and the apply stage
//! return [`EtcdError`]; it becomes a `tonic::Status` only here. Client
//! libraries map errors by these strings, so they must never drift.

use storage::MvccError;
use tonic::{Code, Status};

/// An error a client sees, by etcd's name for it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    /// `ErrGRPCEmptyKey`.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ErrGRPCKeyNotFound`.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// `ErrGRPCValueProvided`.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ErrGRPCLeaseProvided`.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// `ErrGRPCTooManyOps`.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// `ErrGRPCDuplicateKey`.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// `ErrGRPCInvalidSortOption`.
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
    /// `ErrGRPCCompacted`.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// `ErrGRPCFutureRev`.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    /// `ErrGRPCLeaseNotFound`.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// `ErrGRPCLeaseExist`.
    #[error("etcdserver: lease already exists")]
    LeaseExist,
    /// `ErrGRPCLeaseTTLTooLarge`.
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// `ErrGRPCNoSpace`: a NOSPACE alarm is active; writes that add data
    /// are refused until it is disarmed.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// `ErrGRPCCorrupt`: a CORRUPT alarm is active; every write is
    /// refused.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// `ErrGRPCRequestTooLarge`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// `ErrGRPCNoLeader`.
    #[error("etcdserver: no leader")]
    NoLeader,
    /// `ErrGRPCLeaderChanged`.
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    /// `ErrGRPCNotLeader`.
    #[error("etcdserver: not leader")]
    NotLeader,
    /// etcd's `lease.ErrNotPrimary`, which it returns unmapped (code
    /// Unknown): a leader could not confirm its leadership to renew.
    #[error("not a primary lessor")]
    NotPrimary,
    /// `ErrGRPCBadLeaderTransferee`.
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    /// `ErrGRPCTimeoutLeaderTransfer`.
    #[error("etcdserver: request timed out, leader transfer took too long")]
    TimeoutLeaderTransfer,
    /// `ErrGRPCTimeout`.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// `ErrGRPCStopped`.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// `ErrGRPCMemberExist`: the new member's id is taken.
    #[error("etcdserver: member ID already exist")]
    MemberExist,
    /// `ErrGRPCPeerURLExist`: another member has one of the peer URLs.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExist,
    /// `ErrMemberNotEnoughStarted`: the change would leave too few started
    /// voting members for a quorum. etcd returns it as a plain error, so
    /// clients see code Unknown.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    MemberNotEnoughStarted,
    /// `ErrGRPCMemberBadURLs`.
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    /// `ErrGRPCMemberNotFound`: not a member (or removed).
    #[error("etcdserver: member not found")]
    MemberNotFound,
    /// `ErrGRPCMemberNotLearner`: promote of a voting member.
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    /// `ErrGRPCLearnerNotReady`: the learner is behind the leader's log.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// `ErrGRPCTooManyLearners`: etcd allows one learner.
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// `ErrGRPCUnhealthy`: a voting member is not connected (strict
    /// reconfiguration check).
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    /// `ErrGRPCNotSupportedForLearner`.
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    /// `ErrGRPCUserEmpty`.
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    /// `ErrGRPCUserAlreadyExist`.
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    /// `ErrGRPCUserNotFound`.
    #[error("etcdserver: user name not found")]
    UserNotFound,
    /// `ErrGRPCRoleEmpty`.
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    /// `ErrGRPCRoleAlreadyExist`.
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    /// `ErrGRPCRoleNotFound`.
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    /// `ErrGRPCRoleNotGranted`: revoke of a role the user does not have.
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    /// `ErrGRPCPermissionNotGiven`: a grant without a permission.
    #[error("etcdserver: permission not given")]
    PermissionNotGiven,
    /// `ErrGRPCPermissionNotGranted`: revoke of a permission the role does
    /// not have.
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    /// `ErrGRPCRootUserNotExist`.
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    /// `ErrGRPCRootRoleNotExist`.
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    /// `ErrGRPCAuthNotEnabled`.
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    /// `ErrGRPCInvalidAuthMgmt`: a change that would break auth (root's
    /// root role while enabled, a bad permission range).
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    /// `ErrGRPCAuthFailed`: a wrong name or password at Authenticate.
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    /// `ErrGRPCPermissionDenied`: the user's roles do not cover the request.
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    /// `ErrGRPCInvalidAuthToken`: a token that is unknown, expired or
    /// forged.
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    /// `ErrGRPCAuthOldRevision`: the request was checked at an auth
    /// revision older than the store's.
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// clientv3 concurrency's `ErrElectionNotLeader`: a Proclaim (or a
    /// campaign's) whose leader key is gone or was made again.
    #[error("election: not leader")]
    ElectionNotLeader,
    /// clientv3 concurrency's `ErrElectionNoLeader`: Leader of an
    /// election nobody leads.
    #[error("election: no leader")]
    ElectionNoLeader,
    /// v3election's `ErrMissingLeaderKey`: Proclaim or Resign without a
    /// leader key.
    #[error("\"leader\" field must be provided")]
    MissingLeaderKey,
    /// clientv3 concurrency's `ErrSessionExpired`: the lock's key was gone
    /// (its lease expired) once the lock was free.
    #[error("mutex: session is expired")]
    SessionExpired,
    /// The leader's answer to a request this member forwarded to it
    /// (MemberPromote), passed on as it came.
    #[error("{1}")]
    Forwarded(Code, String),
    /// A failure of this member's storage; the text says what failed.
    #[error("etcdserver: {0}")]
    Internal(String),
}

impl EtcdError {
    /// The gRPC status code etcd returns with this error.
    pub fn code(&self) -> Code {
        use EtcdError::*;
        match self {
            EmptyKey | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps | DuplicateKey
            | InvalidSortOption | RequestTooLarge => Code::InvalidArgument,
            Compacted | FutureRev => Code::OutOfRange,
            LeaseNotFound => Code::NotFound,
            LeaseExist => Code::FailedPrecondition,
            LeaseTtlTooLarge => Code::OutOfRange,
            NoSpace => Code::ResourceExhausted,
            Corrupt => Code::DataLoss,
            NotLeader | BadLeaderTransferee => Code::FailedPrecondition,
            TimeoutLeaderTransfer => Code::Unavailable,
            NoLeader | LeaderChanged | Timeout | Stopped => Code::Unavailable,
            MemberExist
            | PeerUrlExist
            | MemberNotLearner
            | LearnerNotReady
            | TooManyLearners
            | NotSupportedForLearner => Code::FailedPrecondition,
            MemberNotEnoughStarted | NotPrimary => Code::Unknown,
            ElectionNotLeader | ElectionNoLeader | MissingLeaderKey | SessionExpired => {
                Code::Unknown
            }
            MemberBadUrls => Code::InvalidArgument,
            MemberNotFound => Code::NotFound,
            Unhealthy => Code::Unavailable,
            UserAlreadyExist | UserNotFound | RoleAlreadyExist | RoleNotFound | RoleNotGranted
            | PermissionNotGranted | RootUserNotExist | RootRoleNotExist | AuthNotEnabled => {
                Code::FailedPrecondition
            }
            UserEmpty | RoleEmpty | PermissionNotGiven | InvalidAuthMgmt | AuthFailed
            | AuthOldRevision => Code::InvalidArgument,
            PermissionDenied => Code::PermissionDenied,
            InvalidAuthToken => Code::Unauthenticated,
            Forwarded(code, _) => *code,
            Internal(_) => Code::Internal,
        }
    }
}

impl From<EtcdError> for Status {
    fn from(e: EtcdError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

impl From<MvccError> for EtcdError {
    fn from(e: MvccError) -> EtcdError {
        match e {
            MvccError::Compacted => EtcdError::Compacted,
            MvccError::FutureRev => EtcdError::FutureRev,
            other => EtcdError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_etcd_codes_and_texts() {
        let s = Status::from(EtcdError::Compacted);
        assert_eq!(s.code(), Code::OutOfRange);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let s = Status::from(EtcdError::EmptyKey);
        assert_eq!(
            (s.code(), s.message()),
            (Code::InvalidArgument, "etcdserver: key is not provided")
        );
    }
}
