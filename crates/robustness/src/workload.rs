//! The traffic of a fault run: clients doing Put, linearizable Range,
//! DeleteRange, compare-and-swap Txns and Txns putting two keys at once on
//! a few shared keys, each operation recorded with its invocation and
//! return time (a two-key put as one put per key), and serializable
//! Ranges, recorded with the revision they were answered at. A write
//! without an answer (timeout, lost connection, any error) is recorded
//! with an unknown outcome; a read without one is dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::request_op::Request as Op;
use api::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

use crate::linearizability::{Input, Operation, Output};

/// How long a client waits for one answer.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// The keys every client works on.
pub fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("/rb/k{i}").into_bytes()).collect()
}

/// A serializable read: the key, the revision of the answer's header and
/// the value it had (`None`: no such key). It must be the key's value at
/// that revision in the cluster's history, however stale.
#[derive(Clone, Debug)]
pub struct SerializableRead {
    /// The key read.
    pub key: Vec<u8>,
    /// The member's store revision the answer reflects.
    pub revision: i64,
    /// What it held.
    pub value: Option<Vec<u8>>,
}

/// What a client recorded.
#[derive(Default)]
pub struct Recorded {
    /// Its linearizable operations.
    pub history: Vec<Operation>,
    /// Its serializable reads.
    pub serializable: Vec<SerializableRead>,
}

/// One client: `endpoints` to choose from, its seed, the shared clock.
pub struct Client {
    id: usize,
    endpoints: Vec<String>,
    rng: StdRng,
    start: Instant,
    kv: Option<KvClient<Channel>>,
    seq: u64,
}

impl Client {
    /// Client `id` of a run that started at `start`.
    pub fn new(id: usize, endpoints: Vec<String>, seed: u64, start: Instant) -> Client {
        Client {
            id,
            endpoints,
            rng: StdRng::seed_from_u64(seed ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            start,
            kv: None,
            seq: 0,
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// A connection to a member chosen at random (a new one after an
    /// error, so a client moves off a member that is down).
    async fn kv(&mut self) -> Option<KvClient<Channel>> {
        if self.kv.is_none() {
            let ep = self.endpoints[self.rng.gen_range(0..self.endpoints.len())].clone();
            let channel = Channel::from_shared(ep)
                .ok()?
                .connect_timeout(OP_TIMEOUT)
                .timeout(OP_TIMEOUT)
                .connect_lazy();
            self.kv = Some(KvClient::new(channel));
        }
        self.kv.clone()
    }

    fn next_value(&mut self) -> Vec<u8> {
        self.seq += 1;
        format!("{}-{}", self.id, self.seq).into_bytes()
    }

    /// Runs operations on `keys` until `until`; what it recorded.
    pub async fn run(mut self, keys: Arc<Vec<Vec<u8>>>, until: Instant) -> Recorded {
        let mut rec = Recorded::default();
        while Instant::now() < until {
            let key = keys[self.rng.gen_range(0..keys.len())].clone();
            let op = match self.rng.gen_range(0..20) {
                0..=6 => Input::Put(self.next_value()),
                7..=11 => Input::Get,
                12..=13 => Input::Delete,
                14..=16 => {
                    let expect = rec
                        .history
                        .iter()
                        .rev()
                        .find_map(|o: &Operation| match (&o.output, o.key == key) {
                            (Output::Value(v), true) => Some(v.clone()),
                            _ => None,
                        })
                        .unwrap_or(None);
                    Input::CompareAndSwap {
                        expect,
                        value: self.next_value(),
                    }
                }
                17..=18 => {
                    if let Some(read) = self.serializable_get(&key).await {
                        rec.serializable.push(read);
                    }
                    continue;
                }
                _ => {
                    let other = keys[self.rng.gen_range(0..keys.len())].clone();
                    if other != key {
                        let values = [self.next_value(), self.next_value()];
                        rec.history
                            .extend(self.put_both([key, other], values).await);
                        continue;
                    }
                    Input::Put(self.next_value())
                }
            };
            let done = self.once(key, op).await;
            rec.history.push(done);
        }
        rec
    }

    /// A serializable Range of `key`, if answered in time.
    async fn serializable_get(&mut self, key: &[u8]) -> Option<SerializableRead> {
        let mut kv = self.kv().await?;
        let req = RangeRequest {
            key: key.to_vec(),
            serializable: true,
            ..Default::default()
        };
        let answer = tokio::time::timeout(OP_TIMEOUT, kv.range(req)).await;
        let Ok(Ok(r)) = answer else {
            self.kv = None;
            return None;
        };
        let r = r.into_inner();
        Some(SerializableRead {
            key: key.to_vec(),
            revision: r.header?.revision,
            value: r.kvs.into_iter().next().map(|kv| kv.value),
        })
    }

    /// One Txn putting `values` on `keys`, recorded as one put per key.
    async fn put_both(&mut self, keys: [Vec<u8>; 2], values: [Vec<u8>; 2]) -> Vec<Operation> {
        let invoked = self.now();
        let success = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: k.clone(),
                    value: v.clone(),
                    ..Default::default()
                })),
            })
            .collect();
        let txn = TxnRequest {
            success,
            ..Default::default()
        };
        let ok = match self.kv().await {
            Some(mut kv) => matches!(
                tokio::time::timeout(OP_TIMEOUT, kv.txn(txn)).await,
                Ok(Ok(_))
            ),
            None => false,
        };
        if !ok {
            self.kv = None;
        }
        let returned = ok.then(|| self.now());
        keys.into_iter()
            .zip(values)
            .map(|(key, value)| Operation {
                client: self.id,
                key,
                input: Input::Put(value),
                output: if ok { Output::Ok } else { Output::Unknown },
                invoked,
                returned,
            })
            .collect()
    }

    /// Makes one operation; what was seen.
    pub async fn once(&mut self, key: Vec<u8>, input: Input) -> Operation {
        let invoked = self.now();
        let answer = match self.kv().await {
            Some(kv) => tokio::time::timeout(OP_TIMEOUT, call(kv, &key, &input))
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        let returned = answer.as_ref().map(|_| self.now());
        if answer.is_none() {
            self.kv = None;
        }
        Operation {
            client: self.id,
            key,
            input,
            output: answer.unwrap_or(Output::Unknown),
            invoked,
            returned,
        }
    }
}

async fn call(
    mut kv: KvClient<Channel>,
    key: &[u8],
    input: &Input,
) -> Result<Output, tonic::Status> {
    Ok(match input {
        Input::Put(v) => {
            kv.put(PutRequest {
                key: key.to_vec(),
                value: v.clone(),
                ..Default::default()
            })
            .await?;
            Output::Ok
        }
        Input::Get => {
            let r = kv
                .range(RangeRequest {
                    key: key.to_vec(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            Output::Value(r.kvs.into_iter().next().map(|kv| kv.value))
        }
        Input::Delete => {
            kv.delete_range(DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })
            .await?;
            Output::Ok
        }
        Input::CompareAndSwap { expect, value } => {
            let compare = match expect {
                Some(v) => Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Value as i32,
                    key: key.to_vec(),
                    target_union: Some(TargetUnion::Value(v.clone())),
                    ..Default::default()
                },
                None => Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Create as i32,
                    key: key.to_vec(),
                    target_union: Some(TargetUnion::CreateRevision(0)),
                    ..Default::default()
                },
            };
            let r = kv
                .txn(TxnRequest {
                    compare: vec![compare],
                    success: vec![RequestOp {
                        request: Some(Op::RequestPut(PutRequest {
                            key: key.to_vec(),
                            value: value.clone(),
                            ..Default::default()
                        })),
                    }],
                    failure: Vec::new(),
                })
                .await?
                .into_inner();
            Output::Swapped(r.succeeded)
        }
    })
}
