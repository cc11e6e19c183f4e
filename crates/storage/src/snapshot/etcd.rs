//! A snapshot of our backend in etcd's layout: every table of the redb
//! file (`schema/FORMAT.md`) read from one read snapshot and written as
//! etcd 3.5's bucket of the same name (`FORMAT.md` here), so that real
//! etcd's `snapshot status` and `snapshot restore` take it. Most records
//! are the same bytes in both; these differ and are converted:
//!
//! - `meta`: the compaction revisions are 17-byte revisions in etcd (8
//!   bytes here); `join_index` is ours alone and left out; `confState`
//!   (the voters and learners, as JSON) is etcd's alone and made from the
//!   members;
//! - `members`, `members_removed`: keyed by the id in lowercase hex in
//!   etcd (8 bytes big-endian here); a member is etcd's JSON, with etcd's
//!   field order and omitted empty fields;
//! - `lease`: a `leasepb.Lease` protobuf in etcd (the TTLs as integers
//!   here).

use std::io::{Seek, Write};

use prost::Message;
use redb::{ReadableTable, TableHandle};

use super::bbolt::Writer;
use super::{LeasePb, SnapshotError};
use crate::backend::Backend;
use crate::schema::members::Member;
use crate::schema::TABLES;

/// The `meta` keys whose values are revisions.
const COMPACT_REVS: [&[u8]; 2] = [b"scheduledCompactRev", b"finishedCompactRev"];
/// Our `meta` key that etcd has not.
const JOIN_INDEX: &[u8] = b"join_index";
/// etcd's `meta` key of the raft configuration.
const CONF_STATE: &[u8] = b"confState";

/// A revision as etcd's 17 bytes: main big-endian, `_`, sub 0.
fn revision_bytes(main: i64) -> Vec<u8> {
    let mut b = main.to_be_bytes().to_vec();
    b.push(b'_');
    b.extend_from_slice(&0i64.to_be_bytes());
    b
}

fn corrupt(what: &str) -> SnapshotError {
    SnapshotError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("backend: corrupt {what}"),
    ))
}

fn id_of(key: &[u8]) -> Result<u64, SnapshotError> {
    Ok(u64::from_be_bytes(
        key.try_into().map_err(|_| corrupt("member id"))?,
    ))
}

/// A member as etcd's `membership.Member` marshals to JSON: id, peerURLs,
/// isLearner (only if true), name and clientURLs (only if not empty).
fn member_json(m: &Member) -> String {
    let mut out = format!("{{\"id\":{},\"peerURLs\":{}", m.id, json(&m.peer_urls));
    if m.is_learner {
        out.push_str(",\"isLearner\":true");
    }
    if !m.name.is_empty() {
        out.push_str(&format!(",\"name\":{}", json(&m.name)));
    }
    if !m.client_urls.is_empty() {
        out.push_str(&format!(",\"clientURLs\":{}", json(&m.client_urls)));
    }
    out.push('}');
    out
}

/// `raftpb.ConfState` as etcd 3.5 stores it: voters and learners (each
/// only if any, ascending, as raft lists them), `auto_leave` always.
fn conf_state_json(members: &[Member]) -> String {
    let ids = |learner: bool| -> Vec<u64> {
        let mut ids: Vec<u64> = members
            .iter()
            .filter(|m| m.is_learner == learner)
            .map(|m| m.id)
            .collect();
        ids.sort_unstable();
        ids
    };
    let mut out = String::from("{");
    for (name, list) in [("voters", ids(false)), ("learners", ids(true))] {
        if !list.is_empty() {
            out.push_str(&format!("\"{name}\":{},", json(&list)));
        }
    }
    out.push_str("\"auto_leave\":false}");
    out
}

/// JSON text of strings and numbers.
fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("strings and numbers serialize")
}

/// Writes the backend, as of one read snapshot, to `out` as a bbolt file
/// in etcd's layout; returns `out` and the image's size in bytes (the
/// SHA-256 trailer is the caller's). Errors: the backend's, a record
/// that does not decode, the output's.
pub fn write_backend<W: Write + Seek>(
    backend: &Backend,
    out: W,
) -> Result<(W, u64), SnapshotError> {
    let rtx = backend
        .read()
        .map_err(|e| SnapshotError::Io(std::io::Error::other(e)))?;
    let w = write_tables(&rtx, Writer::new(out)?)?;
    Ok(w.finish()?)
}

/// Streams the backend, as of one read snapshot, to `out` as a bbolt file
/// in etcd's layout, without a file: the tables are written once to learn
/// the metas (which come first but name the root, known last), then again
/// after them, into the output `open` makes once it is told the image's
/// size in bytes. Returns the output. Errors: the backend's, a record that
/// does not decode, the output's.
pub fn stream_backend<W: Write>(
    backend: &Backend,
    open: impl FnOnce(u64) -> W,
) -> Result<W, SnapshotError> {
    let rtx = backend
        .read()
        .map_err(|e| SnapshotError::Io(std::io::Error::other(e)))?;
    let (_, metas, size) = write_tables(&rtx, Writer::body(std::io::sink())?)?.finish_body()?;
    let mut out = open(size);
    out.write_all(&metas)?;
    let (out, _, written) = write_tables(&rtx, Writer::body(out)?)?.finish_body()?;
    if written != size {
        return Err(corrupt(
            "snapshot: the tables changed between two reads of one snapshot",
        ));
    }
    Ok(out)
}

/// Writes every table of `rtx` as etcd's bucket into `w`.
fn write_tables<W: Write>(
    rtx: &redb::ReadTransaction,
    mut w: Writer<W>,
) -> Result<Writer<W>, SnapshotError> {
    let redb_err = |e: redb::Error| SnapshotError::Io(std::io::Error::other(e));
    let mut tables = TABLES;
    tables.sort_by(|a, b| a.name().as_bytes().cmp(b.name().as_bytes()));
    let mut members = Vec::new();
    for def in tables {
        let name = def.name();
        let t = rtx.open_table(def).map_err(|e| redb_err(e.into()))?;
        let rows = t.iter().map_err(|e| redb_err(e.into()))?;
        let mut bucket = w.bucket(name.as_bytes());
        // Tables whose keys change, or gain a row, are sorted first.
        let mut sorted: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for row in rows {
            let (k, v) = row.map_err(|e| redb_err(e.into()))?;
            let (k, v) = (k.value(), v.value());
            match name {
                "members" => {
                    let m: Member = serde_json::from_slice(v).map_err(|_| corrupt("member"))?;
                    sorted.push((
                        format!("{:x}", id_of(k)?).into_bytes(),
                        member_json(&m).into_bytes(),
                    ));
                    members.push(m);
                }
                "members_removed" => {
                    sorted.push((format!("{:x}", id_of(k)?).into_bytes(), v.to_vec()));
                }
                "meta" if k == JOIN_INDEX => {}
                "meta" if COMPACT_REVS.contains(&k) => {
                    let rev = i64::from_be_bytes(v.try_into().map_err(|_| corrupt("revision"))?);
                    sorted.push((k.to_vec(), revision_bytes(rev)));
                }
                "meta" => sorted.push((k.to_vec(), v.to_vec())),
                "lease" => {
                    let id = i64::from_be_bytes(k.try_into().map_err(|_| corrupt("lease id"))?);
                    let (ttl, remaining_ttl) =
                        crate::schema::lease::decode(v).ok_or_else(|| corrupt("lease"))?;
                    let pb = LeasePb {
                        id,
                        ttl,
                        remaining_ttl,
                    };
                    bucket.put(k, &pb.encode_to_vec())?;
                }
                _ => bucket.put(k, v)?,
            }
        }
        if name == "meta" {
            sorted.push((CONF_STATE.to_vec(), conf_state_json(&members).into_bytes()));
        }
        sorted.sort();
        for (k, v) in sorted {
            bucket.put(&k, &v)?;
        }
        bucket.finish()?;
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Sha256;

    fn member(id: u64, learner: bool, name: &str) -> Member {
        Member {
            id,
            name: name.into(),
            peer_urls: vec!["http://127.0.0.1:2380".into()],
            client_urls: if name.is_empty() {
                vec![]
            } else {
                vec!["http://127.0.0.1:2379".into()]
            },
            is_learner: learner,
        }
    }

    #[test]
    fn members_marshal_as_etcd_marshals_them() {
        assert_eq!(
            member_json(&member(10276657743932975437, false, "default")),
            "{\"id\":10276657743932975437,\"peerURLs\":[\"http://127.0.0.1:2380\"],\
             \"name\":\"default\",\"clientURLs\":[\"http://127.0.0.1:2379\"]}"
        );
        assert_eq!(
            member_json(&member(7, true, "")),
            "{\"id\":7,\"peerURLs\":[\"http://127.0.0.1:2380\"],\"isLearner\":true}"
        );
    }

    #[test]
    fn the_conf_state_lists_voters_and_learners() {
        let ms = [
            member(2, false, "a"),
            member(1, false, "b"),
            member(3, true, "c"),
        ];
        assert_eq!(
            conf_state_json(&ms),
            "{\"voters\":[1,2],\"learners\":[3],\"auto_leave\":false}"
        );
        assert_eq!(conf_state_json(&[]), "{\"auto_leave\":false}");
    }

    #[test]
    fn a_stream_is_the_file_with_its_hash_in_32_kib_blobs() {
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(&dir.path().join("db")).unwrap();
        let tx = b.write(false).unwrap();
        {
            let mut t = tx.open_table(crate::schema::KEY_TABLE).unwrap();
            for i in 0u64..300 {
                let v = vec![b'v'; 1000 + i as usize];
                t.insert(i.to_be_bytes().as_slice(), v.as_slice()).unwrap();
            }
        }
        b.commit(tx).unwrap();
        let (file, size) = write_backend(&b, std::io::Cursor::new(Vec::new())).unwrap();
        let file = file.into_inner();
        let mut blobs: Vec<(Vec<u8>, u64)> = Vec::new();
        let stream = stream_backend(&b, |total| {
            assert_eq!(total, size);
            super::super::ChunkStream::new(total, 32 * 1024, |blob, left| {
                blobs.push((blob, left));
                true
            })
        })
        .unwrap();
        stream.finish().unwrap();
        let (hash, last) = blobs.pop().unwrap();
        assert_eq!((hash, last), (Sha256::digest(&file).to_vec(), 0));
        let (tail, full) = blobs.split_last().unwrap();
        assert!(full.iter().all(|(b, _)| b.len() == 32 * 1024) && tail.0.len() <= 32 * 1024);
        let mut sent = 0u64;
        for (blob, left) in &blobs {
            sent += blob.len() as u64;
            assert_eq!(*left, size - sent);
        }
        let streamed: Vec<u8> = blobs.into_iter().flat_map(|(b, _)| b).collect();
        assert_eq!(streamed, file);
    }

    #[test]
    fn a_stream_whose_receiver_left_stops() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(&dir.path().join("db")).unwrap();
        let mut sends = 0;
        let err = stream_backend(&b, |total| {
            super::super::ChunkStream::new(total, 4096, |_, _| {
                sends += 1;
                false
            })
        })
        .err()
        .expect("a receiver that left ends the stream");
        assert!(err.to_string().contains("pipe"), "{err}");
        assert_eq!(sends, 1);
    }

    #[test]
    fn compaction_revisions_take_etcds_17_bytes() {
        let b = revision_bytes(3);
        assert_eq!(b.len(), 17);
        assert_eq!(&b[..9], &[0, 0, 0, 0, 0, 0, 0, 3, b'_']);
    }
}
