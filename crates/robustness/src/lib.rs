//! The robustness hunter (issue 16): fault runs against a 3-member
//! cluster under concurrent traffic, and the checks of what the clients
//! saw: [`workload`] (clients recording a history), [`linearizability`]
//! (the checker of key-value histories), [`watch`] (watchers and etcd's
//! watch guarantees), [`lease`] (leases and their guarantees), [`proxy`]
//! (the peer links, which faults cut, slow or make lossy), [`faults`] (what
//! hits the members, from the seed). The binary (`main.rs`) runs one seed.

pub mod faults;
pub mod lease;
pub mod linearizability;
pub mod proxy;
pub mod watch;
pub mod workload;
