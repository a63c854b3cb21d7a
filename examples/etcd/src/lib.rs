//! Active/standby Area Controllers on etcd.
//!
//! Several `pcxses-ac` processes of one area share an etcd cluster. One leads: it holds the
//! area's leader key, attached to an etcd lease it keeps alive ([`Leadership`]); the others
//! stand by, watching the key. The leader's journal lives in etcd ([`EtcdJournal`]): every
//! commit is one transaction that succeeds only while the leader key is still the one this
//! AC created, so a deposed or partitioned leader can never make durable, and so never
//! acknowledge, a state the next leader does not hold. A leader that cannot renew its lease
//! stops acknowledging before the lease could have expired ([`Lease::valid_until`]).
//!
//! The etcd client runs on a tokio runtime of its own thread ([`Etcd`]); the AC's loop and
//! its journal call it and wait.

mod etcd;
mod journal;
mod leadership;

pub use etcd::{Etcd, EtcdError};
pub use journal::{EtcdJournal, Stored};
pub use leadership::{Leadership, Lease};
