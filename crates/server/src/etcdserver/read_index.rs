//! The ReadIndex rounds of linearizable reads (etcd's
//! `linearizableReadLoop`), owned by the raft loop: the reads waiting for
//! a round, the rounds sent and not answered, and their contexts.
//!
//! Reads that arrive together share one round. A round unanswered for
//! [`READ_INDEX_RETRY`] is sent again (raft does not retransmit a
//! ReadIndex or its answer), and always under a new context: raft-rs
//! confirms, with a quorum of acknowledgements of one context, every
//! request queued before it, so a context sent again behind newer ones
//! would let heartbeat answers sent before a pause (and read after it)
//! confirm reads made after it, at a leader that no longer leads. A
//! context is this member's id and a counter started from the clock, so
//! none is used twice, by this member, another or an earlier run.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use raft::{RawNode, ReadState, Storage};
use tokio::sync::oneshot;

/// How long a ReadIndex round may go unanswered before it is sent again
/// (etcd's `readIndexRetryTime`).
pub const READ_INDEX_RETRY: Duration = Duration::from_millis(500);

/// The linearizable reads of one member.
pub struct Reads {
    member_id: u64,
    /// Reads waiting for the next round.
    pending: Vec<oneshot::Sender<u64>>,
    /// Rounds sent and not answered, by counter: when each was sent, and
    /// its reads.
    inflight: HashMap<u64, (Instant, Vec<oneshot::Sender<u64>>)>,
    /// The next round's counter.
    next: u64,
}

impl Reads {
    /// No reads yet, for member `member_id`.
    pub fn new(member_id: u64) -> Reads {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Reads {
            member_id,
            pending: Vec::new(),
            inflight: HashMap::new(),
            next: now,
        }
    }

    /// Queues a read; `reply` gets the index to wait for.
    pub fn push(&mut self, reply: oneshot::Sender<u64>) {
        self.pending.push(reply);
    }

    /// Sends one round for the reads that wait: those queued since the
    /// last round and those of rounds unanswered for
    /// [`READ_INDEX_RETRY`] at `now` (whose contexts are dropped).
    pub fn send<S: Storage>(&mut self, raw: &mut RawNode<S>, now: Instant) {
        let expired: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, (sent, _))| now.duration_since(*sent) >= READ_INDEX_RETRY)
            .map(|(&n, _)| n)
            .collect();
        for n in expired {
            if let Some((_, waiters)) = self.inflight.remove(&n) {
                self.pending.extend(waiters);
            }
        }
        if self.pending.is_empty() {
            return;
        }
        let n = self.next;
        self.next = self.next.wrapping_add(1);
        raw.read_index(self.context(n));
        self.inflight
            .insert(n, (now, std::mem::take(&mut self.pending)));
    }

    /// Answers the reads of the rounds raft confirmed; states of rounds
    /// given up, or of another member's, are ignored.
    pub fn answer(&mut self, states: &[ReadState]) {
        for rs in states {
            let Some(n) = self.counter(&rs.request_ctx) else {
                continue;
            };
            if let Some((_, waiters)) = self.inflight.remove(&n) {
                for w in waiters {
                    let _ = w.send(rs.index);
                }
            }
        }
    }

    /// Fails the reads of every round sent (their leader is gone): each
    /// gets `LeaderChanged`.
    pub fn fail_inflight(&mut self) {
        self.inflight.clear();
    }

    fn context(&self, n: u64) -> Vec<u8> {
        let mut ctx = Vec::with_capacity(16);
        ctx.extend_from_slice(&self.member_id.to_be_bytes());
        ctx.extend_from_slice(&n.to_be_bytes());
        ctx
    }

    fn counter(&self, ctx: &[u8]) -> Option<u64> {
        let (id, n) = ctx.split_at_checked(8)?;
        if u64::from_be_bytes(id.try_into().ok()?) != self.member_id {
            return None;
        }
        Some(u64::from_be_bytes(n.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::prelude::{ConfState, Message, MessageType};
    use raft::storage::MemStorage;
    use raft::Config;

    fn node(id: u64) -> RawNode<MemStorage> {
        let storage = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
        let cfg = Config {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            pre_vote: true,
            check_quorum: true,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        RawNode::new(&cfg, storage, &logger).expect("a raft node")
    }

    /// Takes what `n` has to send, persisting what it must first.
    fn outbox(n: &mut RawNode<MemStorage>, reads: Option<&mut Reads>) -> Vec<Message> {
        if !n.has_ready() {
            return Vec::new();
        }
        let mut rd = n.ready();
        let mut out = rd.take_messages();
        if let Some(reads) = reads {
            reads.answer(rd.read_states());
        }
        n.mut_store()
            .wl()
            .append(rd.entries())
            .expect("entries follow the log");
        if let Some(hs) = rd.hs() {
            n.mut_store().wl().set_hardstate(hs.clone());
        }
        out.extend(rd.take_persisted_messages());
        let mut light = n.advance(rd);
        out.extend(light.take_messages());
        n.advance_apply();
        out
    }

    /// Delivers messages among `up` until none is left.
    fn settle(nodes: &mut [RawNode<MemStorage>], up: &[u64]) {
        loop {
            let mut msgs = Vec::new();
            for &i in up {
                msgs.extend(outbox(&mut nodes[i as usize - 1], None));
            }
            let msgs: Vec<_> = msgs.into_iter().filter(|m| up.contains(&m.to)).collect();
            if msgs.is_empty() {
                return;
            }
            for m in msgs {
                let to = m.to as usize - 1;
                let _ = nodes[to].step(m);
            }
        }
    }

    /// A leader paused past the election timeout wakes up with its
    /// followers' heartbeat answers from before the pause still to
    /// read, and a read made after the others elected a new leader: no
    /// stale answer may confirm that read.
    #[test]
    fn heartbeat_answers_from_before_a_pause_confirm_no_later_read() {
        let mut nodes: Vec<_> = (1..=3).map(node).collect();
        nodes[0].campaign().expect("campaigns");
        settle(&mut nodes, &[1, 2, 3]);
        assert_eq!(nodes[0].raft.state, raft::StateRole::Leader);
        let mut reads = Reads::new(1);
        let (tx_a, _rx_a) = oneshot::channel();
        reads.push(tx_a);
        let t0 = Instant::now();
        reads.send(&mut nodes[0], t0);
        // The round's heartbeats reach the followers; their answers are
        // held (the leader is paused).
        let mut held = Vec::new();
        for m in outbox(&mut nodes[0], Some(&mut reads)) {
            let to = m.to as usize - 1;
            nodes[to].step(m).expect("steps");
            held.extend(
                outbox(&mut nodes[to], None)
                    .into_iter()
                    .filter(|r| r.get_msg_type() == MessageType::MsgHeartbeatResponse),
            );
        }
        assert_eq!(held.len(), 2, "both followers answered the heartbeat");
        // Meanwhile 2 and 3 time out, elect a new leader and commit a
        // write.
        let mut ticks = 0;
        let new_leader = loop {
            if let Some(l) = (1..3).find(|&i| nodes[i].raft.state == raft::StateRole::Leader) {
                break l;
            }
            assert!(ticks < 100, "2 and 3 elected no leader");
            ticks += 1;
            nodes[1].tick();
            nodes[2].tick();
            settle(&mut nodes, &[2, 3]);
        };
        nodes[new_leader]
            .propose(vec![], b"write".to_vec())
            .expect("proposes");
        settle(&mut nodes, &[2, 3]);
        // The old leader wakes: the first held answer, then a new read
        // and the retry of the old round, then the second held answer.
        nodes[0].step(held.remove(0)).expect("steps");
        let (tx_b, mut rx_b) = oneshot::channel();
        reads.push(tx_b);
        reads.send(&mut nodes[0], t0 + READ_INDEX_RETRY);
        outbox(&mut nodes[0], Some(&mut reads));
        nodes[0].step(held.remove(0)).expect("steps");
        outbox(&mut nodes[0], Some(&mut reads));
        assert!(
            rx_b.try_recv().is_err(),
            "a read made after the new leader's write was confirmed by the old leader"
        );
    }
}
