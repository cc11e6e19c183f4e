//! The robustness hunter (issue 16): fault runs against a 3-member
//! cluster under concurrent traffic, and the checks of what the clients
//! saw. So far: [`linearizability`], the checker of key-value histories.
//! The fault runner, the watch and lease checks and the reports come
//! next (see the notes).

pub mod linearizability;
pub mod workload;
