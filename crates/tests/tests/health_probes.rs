//! `/health`, `/livez` and `/readyz` as a Kubernetes probe or a load
//! balancer reads them: true on a healthy member; while quorum is lost,
//! `/health` and `/readyz` turn false with the reason and `/livez` stays
//! true (the member itself works); true again once quorum is back. Also
//! the shapes etcd writes: `?verbose`, `?exclude=`, a check's own path,
//! `?serializable=true`, and 405 for anything but GET.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use etcd_rs_tests::health::{http_get, HttpResponse};
use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(120);
/// How long the probes may take to change after the cluster does.
const CHANGE_LIMIT: Duration = Duration::from_secs(30);

fn get(c: &TestCluster, path: &str) -> HttpResponse {
    let addr: SocketAddr = format!("127.0.0.1:{}", c.member(0).client_port())
        .parse()
        .unwrap();
    http_get(addr, path, Duration::from_secs(10)).expect("the member answers HTTP")
}

/// Polls `path` on member 0 until `want` holds of the answer; panics with
/// the last answer after [`CHANGE_LIMIT`].
async fn wait_for(
    c: &TestCluster,
    path: &str,
    want: impl Fn(&HttpResponse) -> bool,
) -> HttpResponse {
    let deadline = Instant::now() + CHANGE_LIMIT;
    loop {
        let resp = get(c, path);
        if want(&resp) {
            return resp;
        }
        assert!(
            Instant::now() < deadline,
            "{path} did not change as expected: {} {}",
            resp.status,
            resp.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_follow_quorum() {
    within(LIMIT, async {
        let mut c = TestCluster::start(3).await;
        let h = get(&c, "/health");
        assert_eq!(
            (h.status, h.body.as_str()),
            (200, r#"{"health":"true","reason":""}"#)
        );
        let r = get(&c, "/readyz");
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
        let r = get(&c, "/readyz?verbose");
        assert_eq!(
            r.body,
            "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\nok\n"
        );
        let r = get(&c, "/readyz?verbose&exclude=linearizable_read");
        assert_eq!(
            r.body,
            "[+]data_corruption ok\n[+]serializable_read ok\nok\n"
        );
        let r = get(&c, "/livez?verbose");
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "[+]serializable_read ok\nok\n")
        );
        let r = get(&c, "/readyz/linearizable_read");
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));

        c.member_mut(1).kill9();
        c.member_mut(2).kill9();
        let h = wait_for(&c, "/health", |r| r.status == 503).await;
        let v: serde_json::Value = serde_json::from_str(h.body.trim()).unwrap();
        assert_eq!(v["health"], "false", "{}", h.body);
        let reason = v["reason"].as_str().unwrap();
        assert!(
            reason == "RAFT NO LEADER" || reason.starts_with("RANGE ERROR:"),
            "{reason}"
        );
        let r = wait_for(&c, "/readyz", |r| r.status == 503).await;
        assert!(r.body.contains("[+]serializable_read ok\n"), "{}", r.body);
        assert!(
            r.body.contains("[-]linearizable_read failed: "),
            "{}",
            r.body
        );
        let l = get(&c, "/livez");
        assert_eq!((l.status, l.body.as_str()), (200, "ok\n"));
        let s = get(&c, "/health?serializable=true");
        assert_eq!(
            s.status, 200,
            "a serializable check needs no leader: {}",
            s.body
        );

        c.member_mut(1).start_again();
        c.member_mut(2).start_again();
        wait_for(&c, "/health", |r| r.status == 200).await;
        wait_for(&c, "/readyz", |r| r.status == 200 && r.body == "ok\n").await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_only_get() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        for path in ["/health", "/readyz", "/livez"] {
            let out = std::process::Command::new("curl")
                .args([
                    "-s",
                    "-X",
                    "POST",
                    "-w",
                    "\n%{http_code}",
                    "--max-time",
                    "10",
                ])
                .arg(format!("{}{path}", c.endpoint()))
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            assert_eq!(text, "Method Not Allowed\n\n405", "{path}");
        }
    })
    .await
}
