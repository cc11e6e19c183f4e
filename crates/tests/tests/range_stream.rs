//! `KV.RangeStream` (etcd 3.7's, beyond 3.5): the chunks of a streamed
//! range, merged, are exactly the plain Range's answer (kvs in order,
//! header, `more`, `count`), with and without a limit, for keys-only and
//! count-only reads and a single key; the chunks grow from 10 kvs; every
//! chunk is read at the first one's revision, so writes made while the
//! stream is read do not show; custom sorts and revision filters are
//! Unimplemented with etcd 3.7's messages. Our `etcdctl get` reads
//! ranges through it, printing what the Go etcdctl's Range prints.

use std::time::Duration;

use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::range_request::SortOrder;
use api::etcdserverpb::{PutRequest, RangeRequest, RangeResponse};
use etcd_rs_tests::bins::{our_etcdctl_bin, reference_etcd_bin};
use etcd_rs_tests::etcdctl::{etcdctl, etcdctl_with};
use etcd_rs_tests::health::http_get;
use etcd_rs_tests::{within, TestCluster};
use tonic::transport::Channel;

const LIMIT: Duration = Duration::from_secs(120);
const KEYS: usize = 3000;

fn prefix(p: &str) -> RangeRequest {
    let mut end = p.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    RangeRequest {
        key: p.as_bytes().to_vec(),
        range_end: end,
        ..Default::default()
    }
}

/// The stream's chunks for `r`, and them merged as proto.Merge would.
async fn streamed(
    kv: &mut KvClient<Channel>,
    r: RangeRequest,
) -> (Vec<RangeResponse>, RangeResponse) {
    let mut stream = kv
        .range_stream(r)
        .await
        .expect("RangeStream starts")
        .into_inner();
    let mut chunks = Vec::new();
    while let Some(c) = stream.message().await.expect("a chunk") {
        chunks.push(c.range_response.expect("a chunk holds a response"));
    }
    let mut merged = RangeResponse::default();
    for c in &chunks {
        merged.kvs.extend(c.kvs.iter().cloned());
        if c.header.is_some() {
            merged.header = c.header;
        }
        merged.more |= c.more;
        merged.count = merged.count.max(c.count);
    }
    (chunks, merged)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_ranges_merge_into_the_plain_range() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        let mut kv = KvClient::connect(c.endpoint()).await.unwrap();
        for i in 0..KEYS {
            kv.put(PutRequest {
                key: format!("p/{i:05}").into_bytes(),
                value: vec![b'v'; 100],
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let cases = [
            prefix("p/"),
            RangeRequest {
                limit: 1234,
                ..prefix("p/")
            },
            RangeRequest {
                keys_only: true,
                ..prefix("p/")
            },
            RangeRequest {
                count_only: true,
                ..prefix("p/")
            },
            RangeRequest {
                serializable: true,
                limit: 10,
                ..prefix("p/")
            },
            RangeRequest {
                key: b"p/00042".to_vec(),
                ..Default::default()
            },
            RangeRequest {
                revision: 500,
                ..prefix("p/")
            },
            RangeRequest {
                sort_order: SortOrder::Ascend as i32,
                ..prefix("p/")
            },
        ];
        for r in cases {
            let plain = kv.range(r.clone()).await.unwrap().into_inner();
            let (chunks, merged) = streamed(&mut kv, r.clone()).await;
            assert_eq!(merged, plain, "{r:?}");
            for c in &chunks[..chunks.len() - 1] {
                assert!(
                    c.header.is_none() && !c.more && c.count == 0,
                    "only the last chunk has them"
                );
            }
        }
        let (chunks, _) = streamed(&mut kv, prefix("p/")).await;
        assert_eq!(chunks[0].kvs.len(), 10, "the first chunk holds 10 kvs");
        assert!(chunks.len() > 2 && chunks[1].kvs.len() > 10, "chunks grow");

        // Writes during the stream are not in it: every chunk is read at
        // the first one's revision.
        let mut stream = kv.range_stream(prefix("p/")).await.unwrap().into_inner();
        let first = stream.message().await.unwrap().unwrap();
        assert_eq!(first.range_response.unwrap().kvs.len(), 10);
        kv.put(PutRequest {
            key: b"p/99999".to_vec(),
            value: b"late".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
        let mut rest = Vec::new();
        while let Some(c) = stream.message().await.unwrap() {
            rest.extend(c.range_response.unwrap().kvs);
        }
        assert_eq!(rest.len(), KEYS - 10);
        assert!(rest.iter().all(|kv| kv.key != b"p/99999"));

        for (r, msg) in [
            (
                RangeRequest {
                    sort_order: SortOrder::Descend as i32,
                    ..prefix("p/")
                },
                "RangeStream does not support custom sort orders",
            ),
            (
                RangeRequest {
                    min_mod_revision: 2,
                    ..prefix("p/")
                },
                "RangeStream does not support revision filters",
            ),
        ] {
            let e = kv.range_stream(r).await.expect_err("refused");
            assert_eq!((e.code(), e.message()), (tonic::Code::Unimplemented, msg));
        }
        let e = kv
            .range_stream(RangeRequest::default())
            .await
            .expect_err("refused");
        assert_eq!(e.message(), "etcdserver: key is not provided");
    })
    .await;
}

/// How many RangeStream calls member `c` has started, from `/metrics`.
fn range_streams_started(c: &TestCluster) -> u64 {
    let addr = ([127, 0, 0, 1], c.member(0).client_port()).into();
    let metrics = http_get(addr, "/metrics", Duration::from_secs(5)).expect("/metrics");
    metrics
        .body
        .lines()
        .find(|l| {
            l.starts_with("grpc_server_started_total{") && l.contains("grpc_method=\"RangeStream\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |n| n.parse().expect("a count"))
}

/// `etcdctl get` over a range reads it through RangeStream when the
/// server has it (our etcdctl against etcd-rs: the member counts the
/// calls) and through Range when it has not (against etcd 3.4); either
/// way it prints what the Go etcdctl's Range prints, in every format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_get_streams_ranges_and_prints_what_range_prints() {
    within(LIMIT, async {
        let ours = TestCluster::start(1).await;
        let reference = TestCluster::builder(1)
            .bin(reference_etcd_bin())
            .start()
            .await;
        for c in [&ours, &reference] {
            let mut kv = KvClient::connect(c.endpoint()).await.unwrap();
            for i in 0..500 {
                kv.put(PutRequest {
                    key: format!("/ctl/{i:04}").into_bytes(),
                    value: format!("value {i}\x01").into_bytes(),
                    ..Default::default()
                })
                .await
                .unwrap();
            }
        }
        let cases: &[&[&str]] = &[
            &["get", "/ctl/", "--prefix"],
            &["get", "/ctl/", "--prefix", "-w", "json"],
            &["get", "/ctl/", "--prefix", "-w", "fields"],
            &["get", "/ctl/", "--prefix", "-w", "protobuf"],
            &["get", "/ctl/", "--prefix", "--keys-only"],
            &["get", "/ctl/", "--prefix", "--print-value-only"],
            &["get", "/ctl/", "--prefix", "--limit", "100", "-w", "json"],
            &["get", "/ctl/", "--prefix", "--rev", "300", "--hex"],
            &["get", "/ctl/0100", "/ctl/0200"],
            &["get", "/ctl/0400", "--from-key", "-w", "json"],
        ];
        let streams = cases.len() as u64;
        let before = range_streams_started(&ours);
        for c in [&ours, &reference] {
            let eps = c.endpoints();
            for args in cases {
                let go = etcdctl(&eps, args, None);
                let rs = etcdctl_with(&our_etcdctl_bin(), &eps, args, None);
                assert_eq!(go.code, 0, "{}: {}", go.command, go.stderr);
                assert_eq!(rs.code, 0, "{}: {}", rs.command, rs.stderr);
                assert!(
                    rs.stdout == go.stdout,
                    "{args:?}: our etcdctl printed\n{:.400}\nthe Go one\n{:.400}",
                    rs.stdout,
                    go.stdout
                );
            }
        }
        assert_eq!(
            range_streams_started(&ours) - before,
            streams,
            "one RangeStream for each of our etcdctl's gets"
        );
    })
    .await
}
