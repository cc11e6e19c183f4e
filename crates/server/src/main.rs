//! `etcd`: one member of an etcd-rs cluster. See `server::etcdmain`.

fn main() -> std::process::ExitCode {
    server::etcdmain::main()
}
