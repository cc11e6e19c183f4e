//! The schema of the backend: every table and every record encoding, in
//! one place (the layout is in `FORMAT.md` beside this file). The tables
//! carry etcd's bucket names; `key` and `meta` are read and written by the
//! MVCC store with the keys named here, the other tables each by one
//! module below, which is the only code that knows how its records are
//! written. The snapshot formats (`crate::snapshot`) convert to and from
//! etcd's encodings of the same records.
//!
//! - [`members`]: `members`, `members_removed` and `meta/join_index`;
//! - [`lease`]: the `lease` table;
//! - [`auth`]: `auth`, `authUsers`, `authRoles`;
//! - [`cluster`]: `cluster` (the cluster version);
//! - [`alarm`]: the `alarm` table.

pub mod alarm;
pub mod auth;
pub mod cluster;
pub mod lease;
pub mod members;

use redb::TableDefinition;

use crate::backend::BackendError;

/// `key`: 17/18-byte revision keys to encoded `mvccpb.KeyValue`.
pub const KEY_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("key");
/// `meta`: named values (`consistent_index`, `term`, `scheduledCompactRev`,
/// `finishedCompactRev`), integers as 8 bytes big-endian.
pub const META_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("meta");
/// `members`: member id (8 bytes big-endian) to the member as JSON.
pub const MEMBERS_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("members");
/// `members_removed`: ids (8 bytes big-endian) of members removed from
/// the cluster, each to the value `removed`; an id here never comes back.
pub const MEMBERS_REMOVED_TABLE: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("members_removed");
/// `lease`: lease id (i64 big-endian) to its granted TTL in seconds (i64
/// big-endian).
pub const LEASE_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("lease");
/// `auth`: `authEnabled` (one byte, 1 or 0) and `authRevision` (u64
/// big-endian), as etcd's `auth` bucket.
pub const AUTH_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("auth");
/// `authUsers`: user name to the user as protobuf `authpb.User` (bcrypt
/// password hash, sorted roles, options).
pub const AUTH_USERS_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("authUsers");
/// `authRoles`: role name to the role as protobuf `authpb.Role` (its key
/// permissions, sorted by key).
pub const AUTH_ROLES_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("authRoles");
/// `cluster`: cluster-wide values (`clusterVersion`).
pub const CLUSTER_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("cluster");

/// `alarm`: the active alarms, keyed by protobuf `etcdserverpb.AlarmMember`.
pub const ALARM_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("alarm");

/// Every table, in the order a snapshot carries them.
pub const TABLES: [TableDefinition<&[u8], &[u8]>; 10] = [
    KEY_TABLE,
    META_TABLE,
    MEMBERS_TABLE,
    MEMBERS_REMOVED_TABLE,
    AUTH_TABLE,
    AUTH_USERS_TABLE,
    AUTH_ROLES_TABLE,
    CLUSTER_TABLE,
    LEASE_TABLE,
    ALARM_TABLE,
];

/// The table of `TABLES` called `name`.
pub fn table_named(name: &str) -> Option<TableDefinition<'static, &'static [u8], &'static [u8]>> {
    use redb::TableHandle;
    TABLES.into_iter().find(|t| t.name() == name)
}

/// `meta`: the last raft entry applied (u64 big-endian).
pub const CONSISTENT_INDEX: &[u8] = b"consistent_index";
/// `meta`: that entry's term (u64 big-endian).
pub const TERM: &[u8] = b"term";
/// `meta`: the last compaction applied (u64 big-endian).
pub const SCHEDULED_COMPACT_REV: &[u8] = b"scheduledCompactRev";
/// `meta`: the last compaction whose superseded rows are all removed.
pub const FINISHED_COMPACT_REV: &[u8] = b"finishedCompactRev";

/// Reads an 8-byte big-endian integer from `meta`, 0 when absent.
pub fn meta_u64(
    table: &impl redb::ReadableTable<&'static [u8], &'static [u8]>,
    name: &[u8],
) -> Result<u64, BackendError> {
    Ok(table
        .get(name)?
        .and_then(|v| v.value().try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(0))
}

/// Appends to `buf` a `key` table record: the protobuf `mvccpb.KeyValue`
/// of these fields, byte for byte what prost's `encode` of the message
/// writes (fields in number order, zero and empty fields left out), from
/// borrowed key and value so the write path copies them only into `buf`.
pub fn encode_key_value(
    buf: &mut Vec<u8>,
    key: &[u8],
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    value: &[u8],
    lease: i64,
) {
    use prost::encoding::{encode_key, encode_varint, WireType};
    let bytes = |buf: &mut Vec<u8>, tag: u32, b: &[u8]| {
        if !b.is_empty() {
            encode_key(tag, WireType::LengthDelimited, buf);
            encode_varint(b.len() as u64, buf);
            buf.extend_from_slice(b);
        }
    };
    let int = |buf: &mut Vec<u8>, tag: u32, v: i64| {
        if v != 0 {
            encode_key(tag, WireType::Varint, buf);
            encode_varint(v as u64, buf);
        }
    };
    bytes(buf, 1, key);
    int(buf, 2, create_revision);
    int(buf, 3, mod_revision);
    int(buf, 4, version);
    bytes(buf, 5, value);
    int(buf, 6, lease);
}

#[cfg(test)]
mod tests {
    use api::mvccpb::KeyValue;
    use prost::Message;

    #[test]
    fn key_value_records_are_what_prost_writes() {
        let cases = [
            KeyValue::default(),
            KeyValue {
                key: b"k".to_vec(),
                create_revision: 2,
                mod_revision: 300,
                version: 1,
                value: vec![7; 300],
                lease: 0x1234_5678_9abc,
            },
            KeyValue {
                key: vec![0xff; 200],
                mod_revision: i64::MAX,
                lease: -1,
                ..Default::default()
            },
        ];
        for kv in cases {
            let mut buf = vec![9];
            super::encode_key_value(
                &mut buf,
                &kv.key,
                kv.create_revision,
                kv.mod_revision,
                kv.version,
                &kv.value,
                kv.lease,
            );
            assert_eq!(buf[1..], kv.encode_to_vec(), "{kv:?}");
        }
    }
}
