//! `--force-new-cluster` (etcd's `restartAsStandaloneNode`): disaster
//! recovery for a member whose peers are lost for good. The log is cut
//! after its committed entries, and a committed removal of every other
//! member is appended to it; applying those leaves this member the only
//! voter of its cluster, with every key and revision it had, ready to
//! grow again with `member add`.

use std::collections::BTreeSet;

use protobuf::Message as _;
use raft::prelude::ConfChangeV2;
use storage::wal::{EntryRecord, EntryRef, HardState, Wal, WalContents};

use super::membership::{ConfChangeContext, MemberChange, Membership};
use super::{start_err, StartError};

/// raft-rs `EntryConfChangeV2`'s number.
const CONF_CHANGE_V2: i32 = 2;

/// Rewrites the log read into `contents` (and `wal` on disk) so that, once
/// applied, `member_id` is the only member; `consistent_index` is how far
/// the backend (whose members `membership` holds) has applied.
pub fn force_new_cluster(
    wal: &mut Wal,
    contents: &mut WalContents,
    membership: &Membership,
    member_id: u64,
    consistent_index: u64,
) -> Result<(), StartError> {
    let last = contents
        .entries
        .last()
        .map_or(contents.snapshot.index, |e| e.index);
    let commit = contents
        .hard_state
        .commit
        .max(consistent_index)
        .max(contents.snapshot.index)
        .min(last);
    let before = contents.entries.len();
    contents.entries.retain(|e| e.index <= commit);
    if contents.entries.len() < before {
        tracing::info!(
            discarded = before - contents.entries.len(),
            commit_index = commit,
            "discarding uncommitted WAL entries"
        );
    }
    // Members added by entries not applied yet are removed too.
    let mut ids: BTreeSet<u64> = membership.members().iter().map(|m| m.id).collect();
    for e in &contents.entries {
        if e.index <= consistent_index || e.entry_type != CONF_CHANGE_V2 {
            continue;
        }
        let ctx = ConfChangeV2::parse_from_bytes(&e.data)
            .ok()
            .and_then(|cc| ConfChangeContext::from_conf_change(&cc));
        if let Some(ConfChangeContext {
            change: MemberChange::Add(m),
            ..
        }) = ctx
        {
            ids.insert(m.id);
        }
    }
    let mut changes: Vec<MemberChange> = ids
        .into_iter()
        .filter(|id| *id != member_id)
        .map(MemberChange::Remove)
        .collect();
    if membership.is_learner(member_id) {
        changes.push(MemberChange::Promote(member_id));
    }
    let term = contents.hard_state.term;
    let appended: Vec<EntryRecord> = changes
        .into_iter()
        .zip(commit + 1..)
        .map(|(change, index)| EntryRecord {
            index,
            term,
            entry_type: CONF_CHANGE_V2,
            data: ConfChangeContext {
                request_id: 0,
                change,
            }
            .to_conf_change()
            .write_to_bytes()
            .expect("a configuration change encodes"),
            context: Vec::new(),
        })
        .collect();
    let hs = HardState {
        term,
        vote: contents.hard_state.vote,
        commit: appended.last().map_or(commit, |e| e.index),
    };
    wal.save(
        Some(hs),
        appended.iter().map(|e| EntryRef {
            index: e.index,
            term: e.term,
            entry_type: e.entry_type,
            data: &e.data,
            context: &e.context,
        }),
    )
    .map_err(start_err)?;
    tracing::info!(
        removed_members = appended.len(),
        commit_index = hs.commit,
        "forcing restart member as a one-member cluster"
    );
    contents.entries.extend(appended);
    contents.hard_state = hs;
    Ok(())
}
