//! The traffic of a fault run: clients doing Put, linearizable Range,
//! DeleteRange and compare-and-swap Txns on a few shared keys, each
//! operation recorded with its invocation and return time. A write
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

    /// Runs operations on `keys` until `until`; the history.
    pub async fn run(mut self, keys: Arc<Vec<Vec<u8>>>, until: Instant) -> Vec<Operation> {
        let mut history = Vec::new();
        while Instant::now() < until {
            let key = keys[self.rng.gen_range(0..keys.len())].clone();
            let op = match self.rng.gen_range(0..10) {
                0..=3 => {
                    self.seq += 1;
                    Input::Put(format!("{}-{}", self.id, self.seq).into_bytes())
                }
                4..=6 => Input::Get,
                7 => Input::Delete,
                _ => {
                    self.seq += 1;
                    let expect = history
                        .iter()
                        .rev()
                        .find_map(|o: &Operation| match (&o.output, o.key == key) {
                            (Output::Value(v), true) => Some(v.clone()),
                            _ => None,
                        })
                        .unwrap_or(None);
                    Input::CompareAndSwap {
                        expect,
                        value: format!("{}-{}", self.id, self.seq).into_bytes(),
                    }
                }
            };
            let done = self.once(key, op).await;
            history.push(done);
        }
        history
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
