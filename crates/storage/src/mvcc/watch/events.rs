//! The events of one delivery, shared: every watcher that wants all of a
//! revision's events gets the same [`Events`], so a commit copies them
//! once however many watchers it has, and their wire encoding is made
//! once too ([`Events::encoded`]), the first time a watch stream sends
//! them.

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use api::mvccpb::Event;
use bytes::Bytes;

/// `events` of a WatchResponse (rpc.proto: `repeated mvccpb.Event events =
/// 11`).
const EVENTS_FIELD: u32 = 11;

/// The events of one delivery, in revision order; cloning shares them.
#[derive(Clone, Debug)]
pub struct Events(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    events: Vec<Event>,
    encoded: OnceLock<Bytes>,
}

impl Events {
    /// The events as a vector of their own: taken when nothing else shares
    /// them, copied otherwise.
    pub fn into_vec(self) -> Vec<Event> {
        match Arc::try_unwrap(self.0) {
            Ok(shared) => shared.events,
            Err(arc) => arc.events.clone(),
        }
    }

    /// The events as the `events` field of a WatchResponse encodes them
    /// (each one tag 11, its length and the Event message): appended to
    /// the encoding of a WatchResponse without events, they make the
    /// encoding of that response with these events. Made on the first
    /// call, then shared.
    pub fn encoded(&self) -> Bytes {
        self.0
            .encoded
            .get_or_init(|| {
                let len: usize = self
                    .0
                    .events
                    .iter()
                    .map(|e| prost::encoding::message::encoded_len(EVENTS_FIELD, e))
                    .sum();
                let mut buf = Vec::with_capacity(len);
                for e in &self.0.events {
                    prost::encoding::message::encode(EVENTS_FIELD, e, &mut buf);
                }
                Bytes::from(buf)
            })
            .clone()
    }
}

impl From<Vec<Event>> for Events {
    fn from(events: Vec<Event>) -> Self {
        Events(Arc::new(Shared {
            events,
            encoded: OnceLock::new(),
        }))
    }
}

impl Deref for Events {
    type Target = [Event];

    fn deref(&self) -> &[Event] {
        &self.0.events
    }
}

impl PartialEq for Events {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod tests {
    use api::etcdserverpb::WatchResponse;
    use api::mvccpb::KeyValue;
    use prost::Message;

    use super::*;

    #[test]
    fn encoded_events_complete_a_response_as_prost_encodes_it() {
        let events: Vec<Event> = (1..4)
            .map(|i| Event {
                kv: Some(KeyValue {
                    key: format!("key/{i}").into_bytes(),
                    value: vec![i as u8; 300 * i],
                    mod_revision: i as i64 + 7,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        let mut resp = WatchResponse {
            watch_id: 5,
            ..Default::default()
        };
        let mut wire = resp.encode_to_vec();
        let shared = Events::from(events.clone());
        wire.extend_from_slice(&shared.clone().encoded());
        resp.events = events;
        assert_eq!(wire, resp.encode_to_vec());
        assert_eq!(WatchResponse::decode(&wire[..]).unwrap(), resp);
    }

    #[test]
    fn a_batch_is_copied_only_while_shared() {
        let a = Events::from(vec![Event::default(); 2]);
        let b = a.clone();
        assert_eq!(a, b);
        let at = b.as_ptr();
        // `b` still shares the events: `a` gets a copy of them.
        let copy = a.into_vec();
        assert_ne!(copy.as_ptr(), at);
        // `b` is the last holder: it gets the events themselves.
        let own = b.into_vec();
        assert_eq!(own.as_ptr(), at);
    }
}
