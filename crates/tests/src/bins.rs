//! Where the binaries under test are found.
//!
//! - the server under test: `ETCD_BIN`, else our `etcd` built in the same
//!   cargo profile directory as the running test executable;
//! - the reference server for differential tests: `ETCD_REFERENCE_BIN`, else
//!   `/usr/bin/etcd` (Debian's `etcd-server`);
//! - the Go client: `ETCDCTL_BIN`, else `/usr/bin/etcdctl` (Debian's
//!   `etcd-client`);
//! - our client: `ETCDCTL_RS_BIN`, else our `etcdctl` beside our `etcd`;
//! - our load generator: `BENCHMARK_BIN`, else our `benchmark` beside our
//!   `etcd`;
//! - our offline tool: `ETCDUTL_BIN`, else our `etcdutl` beside our `etcd`.
//!
//! A missing binary is a loud panic with the fix, never a silent skip.

use std::env;
use std::path::{Path, PathBuf};

/// The `etcd` server binary under test.
///
/// Panics if `ETCD_BIN` names a missing file, or if our binary has not been
/// built (`cargo build --bin etcd`).
pub fn etcd_bin() -> PathBuf {
    if let Some(p) = env::var_os("ETCD_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            panic!("ETCD_BIN={} does not exist or is not a file", p.display());
        }
        return p;
    }
    let exe = env::current_exe().expect("cannot locate the running test executable");
    // Test executables live in target/<profile>/deps/; binaries in target/<profile>/.
    let mut dir = exe
        .parent()
        .expect("test executable has no parent directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().expect("deps directory has no parent");
    }
    let p = dir.join(format!("etcd{}", env::consts::EXE_SUFFIX));
    if !p.is_file() {
        panic!(
            "our server binary {} does not exist: build it first: cargo build --bin etcd \
             (or point ETCD_BIN at an etcd binary, e.g. ETCD_BIN=/usr/bin/etcd)",
            p.display()
        );
    }
    p
}

/// Our `etcdctl` (`ETCDCTL_RS_BIN`, else the one built beside `etcd`).
///
/// Panics if it has not been built (`cargo build --bin etcdctl`).
pub fn our_etcdctl_bin() -> PathBuf {
    ours_beside_etcd("ETCDCTL_RS_BIN", "etcdctl")
}

/// Our `etcdutl` (`ETCDUTL_BIN`, else the one built beside `etcd`).
///
/// Panics if it has not been built (`cargo build --bin etcdutl`).
pub fn etcdutl_bin() -> PathBuf {
    ours_beside_etcd("ETCDUTL_BIN", "etcdutl")
}

/// Our `benchmark` (`BENCHMARK_BIN`, else the one built beside `etcd`).
///
/// Panics if it has not been built (`cargo build --bin benchmark`).
pub fn benchmark_bin() -> PathBuf {
    ours_beside_etcd("BENCHMARK_BIN", "benchmark")
}

/// An example program of the workspace (`cargo build --examples` puts it
/// in `examples/` beside our binaries).
///
/// Panics if it has not been built.
pub fn example_bin(name: &str) -> PathBuf {
    let dir = etcd_bin().with_file_name("examples");
    let p = dir.join(format!("{name}{}", env::consts::EXE_SUFFIX));
    if !p.is_file() {
        panic!(
            "the example {} does not exist: build it first: cargo build --workspace --examples",
            p.display()
        );
    }
    p
}

/// `$var` if set, else our binary `name` in the directory of [`etcd_bin`].
fn ours_beside_etcd(var: &str, name: &str) -> PathBuf {
    if let Some(p) = env::var_os(var) {
        return PathBuf::from(p);
    }
    let p = etcd_bin().with_file_name(format!("{name}{}", env::consts::EXE_SUFFIX));
    if !p.is_file() {
        panic!(
            "our {name} {} does not exist: build it first: cargo build --bin {name}",
            p.display()
        );
    }
    p
}

/// The reference Go etcd used by differential tests.
pub fn reference_etcd_bin() -> PathBuf {
    required(
        "ETCD_REFERENCE_BIN",
        "/usr/bin/etcd",
        "the reference etcd server; install it with `apt-get install etcd-server`",
    )
}

/// The Go `etcdctl` used as an independent client.
pub fn etcdctl_bin() -> PathBuf {
    required(
        "ETCDCTL_BIN",
        "/usr/bin/etcdctl",
        "the Go etcdctl; install it with `apt-get install etcd-client`",
    )
}

fn required(var: &str, default: &str, what: &str) -> PathBuf {
    let p = env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    if !Path::new(&p).is_file() {
        panic!("{} not found: {what} (or set {var})", p.display());
    }
    p
}
