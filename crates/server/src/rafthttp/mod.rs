//! Member-to-member raft traffic on the peer URLs (etcd's `rafthttp`).
//!
//! [`Transport`] is owned by the raft loop: it queues each outgoing raft
//! message for its peer, and one task per peer streams the queue over a
//! long-lived gRPC call (`etcdrspb.Peer/Raft`), batching what accumulated
//! while the previous batch was on the wire, reconnecting with backoff. A
//! full queue drops messages: raft retransmits. The receiving side is the
//! Peer service (`crate::peerrpc`), above the server, as the other
//! services are: this module never calls the server.
//!
//! [`Dialer`] connects to peer URLs, over TLS for `https://` ones. The
//! peer server also serves the Lease service, so a follower forwards
//! keep-alives to the leader over the peer link (as etcd does).
//!
//! Messages are raft-rs `eraftpb.Message` values encoded with protobuf 2
//! (rust-protobuf). Peer links belong on a trusted network or behind peer
//! TLS (docs/security.md).

mod dial;
mod transport;

pub use dial::{Dialer, PeerEndpoint};
pub use transport::{PeerHealth, Transport, TransportConfig, REMOVED_MEMBER};
