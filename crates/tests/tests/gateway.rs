//! The HTTP/JSON gateway, driven with curl as etcd's docs drive it.
//!
//! A differential test runs one script of curl calls (the examples of
//! etcd's gateway guide verbatim, then every kind of call: ranges, txns in
//! both field spellings, leases and keep-alive, watch streams, members,
//! status, alarms, bad requests, unknown paths, auth with a token in the
//! `Authorization` header) against the reference etcd and against
//! etcd-rs, and compares each answer's HTTP status and JSON, with what
//! differs between members (ids, terms, sizes, URLs, tokens) masked.
//! Known differences of etcd 3.5 from the reference 3.4 are stated where
//! the comparison allows them.

use std::process::Command;
use std::time::Duration;

use etcd_rs_tests::bins::reference_etcd_bin;
use etcd_rs_tests::{within, TestCluster};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(180);

/// How a call is made and compared.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// One answer; status and JSON must equal the reference's.
    Unary,
    /// A stream read for [`STREAM_SECONDS`]: every JSON line must equal.
    Stream,
    /// Bad JSON: the decoder's text differs (Go's and serde's), so only
    /// the status and the error's code are compared.
    BadJson,
}

/// How long a streamed answer is read before curl hangs up.
const STREAM_SECONDS: &str = "2";

struct Step {
    path: &'static str,
    body: Option<&'static str>,
    kind: Kind,
    /// Send `Authorization: $TOKEN`.
    token: bool,
}

const fn unary(path: &'static str, body: &'static str) -> Step {
    Step {
        path,
        body: Some(body),
        kind: Kind::Unary,
        token: false,
    }
}

const fn stream(path: &'static str, body: &'static str) -> Step {
    Step {
        path,
        body: Some(body),
        kind: Kind::Stream,
        token: false,
    }
}

const fn bad(path: &'static str, body: &'static str) -> Step {
    Step {
        path,
        body: Some(body),
        kind: Kind::BadJson,
        token: false,
    }
}

const fn with_token(path: &'static str, body: &'static str) -> Step {
    Step {
        path,
        body: Some(body),
        kind: Kind::Unary,
        token: true,
    }
}

/// `$LEASE` is the ID of the last lease granted; `$TOKEN` the last token.
const SCRIPT: &[Step] = &[
    // etcd's gateway guide (dev-guide/api_grpc_gateway.md), verbatim.
    unary("/v3/kv/put", r#"{"key": "Zm9v", "value": "YmFy"}"#),
    unary("/v3/kv/range", r#"{"key": "Zm9v"}"#),
    unary("/v3/kv/range", r#"{"key": "Zm9v", "range_end": "Zm9w"}"#),
    unary(
        "/v3/kv/txn",
        r#"{"compare":[{"target":"CREATE","key":"Zm9v","createRevision":"2"}],"success":[{"requestPut":{"key":"Zm9v","value":"YmFy"}}]}"#,
    ),
    unary(
        "/v3/kv/txn",
        r#"{"compare":[{"version":"4","result":"EQUAL","target":"VERSION","key":"Zm9v"}],"success":[{"requestRange":{"key":"Zm9v"}}]}"#,
    ),
    // Ranges and writes in both spellings, with every kind of field.
    unary(
        "/v3/kv/put",
        r#"{"key":"YQ==","value":"MQ==","prev_kv":true}"#,
    ),
    unary(
        "/v3/kv/put",
        r#"{"key":"Yg==","value":"Mg==","prevKv":true}"#,
    ),
    unary(
        "/v3/kv/put",
        r#"{"key":"YQ==","value":"Mw==","prev_kv":true}"#,
    ),
    unary(
        "/v3/kv/range",
        r#"{"key":"YQ==","range_end":"Yw==","sort_order":"DESCEND","sortTarget":"MOD"}"#,
    ),
    unary(
        "/v3/kv/range",
        r#"{"key":"AA==","range_end":"AA==","limit":"2","keys_only":true}"#,
    ),
    unary(
        "/v3/kv/range",
        r#"{"key":"YQ==","range_end":"Yw==","count_only":true}"#,
    ),
    unary("/v3/kv/range", r#"{"key":"YQ==","revision":"4"}"#),
    unary(
        "/v3/kv/range",
        r#"{"key":"YQ==","serializable":true,"bogus":1}"#,
    ),
    unary("/v3beta/kv/range", r#"{"key":"Yg=="}"#),
    unary(
        "/v3/kv/txn",
        r#"{"compare":[{"target":"VALUE","key":"YQ==","value":"MQ=="}],"success":[{"request_delete_range":{"key":"YQ=="}}],"failure":[{"request_put":{"key":"Yw==","value":"NA=="}},{"request_range":{"key":"Yw=="}}]}"#,
    ),
    unary("/v3/kv/deleterange", r#"{"key":"Yg==","prev_kv":true}"#),
    unary("/v3/kv/deleterange", r#"{"key":"eg=="}"#),
    unary("/v3/kv/compaction", r#"{"revision":"3"}"#),
    unary("/v3/kv/range", r#"{"key":"YQ==","revision":"2"}"#),
    // Errors the server gives, with etcd's texts and codes.
    unary("/v3/kv/put", r#"{"key":""}"#),
    unary("/v3/kv/compaction", r#"{"revision":"1000"}"#),
    unary("/v3/kv/range", r#"{"key":"YQ==","revision":"1000"}"#),
    unary(
        "/v3/kv/put",
        r#"{"key":"YQ==","value":"MQ==","lease":"12345"}"#,
    ),
    bad("/v3/kv/range", "notjson"),
    bad("/v3/kv/range", r#"{"key":1}"#),
    bad("/v3/kv/range", r#"{"key":"Zm9v!!"}"#),
    bad("/v3/kv/range", r#"{"key":"Zm9v","sort_order":"BOGUS"}"#),
    // Leases, with the kv/lease aliases.
    unary("/v3/lease/grant", r#"{"TTL":"30"}"#),
    unary(
        "/v3/kv/put",
        r#"{"key":"bA==","value":"MQ==","lease":"$LEASE"}"#,
    ),
    unary("/v3/lease/timetolive", r#"{"ID":"$LEASE","keys":true}"#),
    unary("/v3/kv/lease/timetolive", r#"{"ID":"$LEASE"}"#),
    unary("/v3/lease/leases", "{}"),
    unary("/v3/kv/lease/leases", "{}"),
    stream("/v3/lease/keepalive", r#"{"ID":"$LEASE"}"#),
    unary("/v3/lease/revoke", r#"{"ID":"$LEASE"}"#),
    unary("/v3/kv/lease/revoke", r#"{"ID":"$LEASE"}"#),
    unary("/v3/kv/range", r#"{"key":"bA=="}"#),
    // Watches: history from revision 1, a prefix with prev_kv, filters.
    stream(
        "/v3/watch",
        r#"{"create_request":{"key":"YQ==","start_revision":"3"}}"#,
    ),
    stream(
        "/v3/watch",
        r#"{"create_request":{"key":"AA==","range_end":"AA==","start_revision":"3","prev_kv":true,"filters":["NODELETE"]}}"#,
    ),
    stream(
        "/v3/watch",
        r#"{"create_request":{"key":"YQ==","start_revision":"1"}}"#,
    ),
    // Members, status, alarms, hash of the key space.
    unary("/v3/cluster/member/list", "{}"),
    unary("/v3/maintenance/status", "{}"),
    unary("/v3/maintenance/alarm", "{}"),
    unary("/v3/maintenance/alarm", r#"{"action":"GET"}"#),
    // Paths nothing serves.
    unary("/v3/kv/nothing", "{}"),
    unary("/v3alpha/kv/range", r#"{"key":"YQ=="}"#),
    unary("/readyz-not", "{}"),
    // Auth through the gateway, as the guide shows it.
    unary(
        "/v3/auth/authenticate",
        r#"{"name":"root","password":"pass"}"#,
    ),
    unary(
        "/v3/auth/user/add",
        r#"{"name": "root", "password": "pass"}"#,
    ),
    unary("/v3/auth/role/add", r#"{"name": "root"}"#),
    unary("/v3/auth/user/grant", r#"{"user": "root", "role": "root"}"#),
    unary("/v3/auth/user/add", r#"{"name":"alice","password":"a"}"#),
    unary("/v3/auth/role/add", r#"{"name":"reader"}"#),
    unary(
        "/v3/auth/role/grant",
        r#"{"name":"reader","perm":{"permType":"READ","key":"YQ==","range_end":"Yg=="}}"#,
    ),
    unary("/v3/auth/user/grant", r#"{"user":"alice","role":"reader"}"#),
    unary("/v3/auth/role/get", r#"{"role":"reader"}"#),
    unary("/v3/auth/user/get", r#"{"name":"alice"}"#),
    unary("/v3/auth/user/list", "{}"),
    unary("/v3/auth/role/list", "{}"),
    unary("/v3/auth/enable", "{}"),
    unary("/v3/kv/put", r#"{"key": "Zm9v", "value": "YmFy"}"#),
    unary(
        "/v3/auth/authenticate",
        r#"{"name": "root", "password": "wrong"}"#,
    ),
    unary(
        "/v3/auth/authenticate",
        r#"{"name": "root", "password": "pass"}"#,
    ),
    with_token("/v3/kv/put", r#"{"key": "Zm9v", "value": "YmFy"}"#),
    with_token("/v3/kv/range", r#"{"key": "Zm9v"}"#),
    unary(
        "/v3/auth/authenticate",
        r#"{"name":"alice","password":"a"}"#,
    ),
    with_token("/v3/kv/range", r#"{"key":"YQ=="}"#),
    with_token("/v3/kv/put", r#"{"key":"YQ==","value":"MQ=="}"#),
    with_token("/v3/kv/range", r#"{"key":"Zm9v"}"#),
    unary(
        "/v3/auth/authenticate",
        r#"{"name": "root", "password": "pass"}"#,
    ),
    with_token("/v3/auth/disable", "{}"),
    unary("/v3/kv/range", r#"{"key": "Zm9v"}"#),
];

/// Fields whose values differ from member to member or server to server;
/// only whether they are set is compared.
const MASKED: &[&str] = &[
    "cluster_id",
    "member_id",
    "raft_term",
    "ID",
    "lease",
    "leader",
    "version",
    "dbSize",
    "dbSizeInUse",
    "raftIndex",
    "raftTerm",
    "raftAppliedIndex",
    "peerURLs",
    "clientURLs",
    "token",
];

fn mask(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, field) in m.iter_mut() {
                if MASKED.contains(&k.as_str()) {
                    *field = Value::String("<set>".into());
                } else {
                    mask(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask),
        _ => {}
    }
}

/// An answer body as compared: its JSON masked, or its text.
fn normalise(body: &str, kind: Kind) -> Value {
    match serde_json::from_str::<Value>(body) {
        Ok(mut v) => {
            mask(&mut v);
            if kind == Kind::BadJson {
                if let Value::Object(m) = &mut v {
                    m.remove("error");
                    m.remove("message");
                }
            }
            v
        }
        Err(_) => Value::String(body.to_string()),
    }
}

/// The status etcd 3.5's grpc-gateway (v1.16) answers where 3.4's
/// answered `reference`: FailedPrecondition became 400 instead of 412.
fn status_of_3_5(reference: u16) -> u16 {
    if reference == 412 {
        400
    } else {
        reference
    }
}

/// Runs `curl` for one call; (HTTP status, body).
fn curl(url: &str, body: &str, token: Option<&str>, stream: bool) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-X", "POST", "-w", "\n%{http_code}"]);
    cmd.args(["--max-time", if stream { STREAM_SECONDS } else { "10" }]);
    if stream {
        cmd.arg("-N");
    }
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: {t}")]);
    }
    let out = cmd.args(["-d", body, url]).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The script's answers from the member at `endpoint`: one line per step.
fn transcript(endpoint: &str) -> Vec<(u16, Vec<Value>)> {
    let mut lease = String::new();
    let mut token = String::new();
    let mut out = Vec::new();
    for step in SCRIPT {
        let body = step.body.unwrap_or("").replace("$LEASE", &lease);
        let url = format!("{endpoint}{}", step.path);
        let (status, text) = curl(
            &url,
            &body,
            step.token.then_some(token.as_str()),
            step.kind == Kind::Stream,
        );
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            if step.path.ends_with("/lease/grant") {
                lease = v["ID"].as_str().unwrap_or_default().to_string();
            }
            if let Some(t) = v["token"].as_str() {
                token = t.to_string();
            }
        }
        let lines = if step.kind == Kind::Stream {
            text.lines().map(|l| normalise(l, step.kind)).collect()
        } else {
            vec![normalise(&text, step.kind)]
        };
        out.push((status, lines));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_answers_as_etcd_does() {
    within(LIMIT, async {
        let (reference, ours) = tokio::join!(
            TestCluster::builder(1).bin(reference_etcd_bin()).start(),
            TestCluster::start(1),
        );
        let (r, o) = (reference.endpoint(), ours.endpoint());
        let (want, got) = tokio::join!(
            tokio::task::spawn_blocking(move || transcript(&r)),
            tokio::task::spawn_blocking(move || transcript(&o)),
        );
        let (want, got) = (want.unwrap(), got.unwrap());
        let mut diffs = Vec::new();
        for (i, (step, ((ws, wl), (gs, gl)))) in
            SCRIPT.iter().zip(want.iter().zip(&got)).enumerate()
        {
            if status_of_3_5(*ws) != *gs || wl != gl {
                diffs.push(format!(
                    "step {i} ({} {}):\n  reference: {ws} {wl:?}\n  ours:      {gs} {gl:?}",
                    step.path,
                    step.body.unwrap_or("")
                ));
            }
        }
        assert!(
            diffs.is_empty(),
            "{} of {} steps differ from the reference etcd:\n{}",
            diffs.len(),
            SCRIPT.len(),
            diffs.join("\n")
        );
        // The script reached what it means to test.
        let watched = &got[SCRIPT
            .iter()
            .position(|s| s.kind == Kind::Stream && s.path == "/v3/watch")
            .unwrap()];
        assert!(
            watched.1.len() >= 2,
            "a watch answered created, then events: {watched:?}"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_serves_what_etcd_3_5_adds() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        let e = c.endpoint();
        let post = |path: &'static str, body: String| {
            let e = e.clone();
            tokio::task::spawn_blocking(move || curl(&format!("{e}{path}"), &body, None, false))
        };
        // "l" in base64 is "bA=="; lease 0 makes the server grant one.
        let (status, body) = post("/v3/lock/lock", r#"{"name":"bA=="}"#.into())
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let key = v["key"].as_str().expect("a lock key").to_string();
        assert!(
            v["header"]["revision"].as_str().is_some(),
            "the lock's revision: {body}"
        );
        let (status, body) = post("/v3/lock/unlock", format!(r#"{{"key":"{key}"}}"#))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let (status, body) = post("/v3/lock/lock", r#"{"name":"bA==","lease":"12345"}"#.into())
            .await
            .unwrap();
        assert_eq!(status, 500, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["code"], 2,
            "etcd's in-process client answers Unknown: {body}"
        );
        assert_eq!(v["message"], "etcdserver: requested lease not found");

        // An election: campaign (as "e", base64 "ZQ=="), leader, observe
        // (a stream: its first line is the leader), resign.
        let (_, body) = post("/v3/lease/grant", r#"{"TTL":"30"}"#.into())
            .await
            .unwrap();
        let lease: Value = serde_json::from_str(&body).unwrap();
        let id = lease["ID"].as_str().expect("a lease id").to_string();
        let campaign = format!(r#"{{"name":"ZQ==","lease":"{id}","value":"djE="}}"#);
        let (status, body) = post("/v3/election/campaign", campaign).await.unwrap();
        assert_eq!(status, 200, "{body}");
        let won: Value = serde_json::from_str(&body).unwrap();
        let leader = won["leader"].clone();
        assert_eq!(leader["name"], "ZQ==", "{body}");
        assert_eq!(leader["lease"], id.as_str(), "{body}");
        let (status, body) = post("/v3/election/leader", r#"{"name":"ZQ=="}"#.into())
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let now: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(now["kv"]["value"], "djE=", "{body}");
        assert_eq!(now["kv"]["key"], leader["key"], "{body}");
        let e = c.endpoint();
        let (status, body) = tokio::task::spawn_blocking(move || {
            curl(
                &format!("{e}/v3/election/observe"),
                r#"{"name":"ZQ=="}"#,
                None,
                true,
            )
        })
        .await
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let first: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
        assert_eq!(first["result"]["kv"]["value"], "djE=", "{body}");
        let resign = format!(r#"{{"leader":{leader}}}"#);
        let (status, body) = post("/v3/election/resign", resign).await.unwrap();
        assert_eq!(status, 200, "{body}");
        let (status, body) = post("/v3/election/leader", r#"{"name":"ZQ=="}"#.into())
            .await
            .unwrap();
        assert_eq!(status, 500, "{body}");
        let none: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(none["message"], "election: no leader", "{body}");
        let e = c.endpoint();
        let (status, body) = tokio::task::spawn_blocking(move || {
            curl(&format!("{e}/v3/maintenance/snapshot"), "{}", None, true)
        })
        .await
        .unwrap();
        assert_eq!(status, 200);
        let first: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
        assert!(first["result"]["blob"].is_string(), "{first}");
        let last: Value = serde_json::from_str(body.lines().last().unwrap()).unwrap();
        assert!(
            last["result"]["remaining_bytes"].is_null(),
            "the last chunk leaves nothing: {last}"
        );
    })
    .await
}
