//! Durable storage in Java ZooKeeper's own formats.
//!
//! * [`txnlog`] — the `FileTxnLog` record format (read and write);
//! * [`log_writer`] — the log files and the group-commit writer thread;
//! * [`snapshot`], [`snap_writer`], [`compress`] — `FileSnap` snapshots, fuzzy, written in the
//!   background, optionally gz or snappy;
//! * [`recovery`] — start-up: newest good snapshot plus the logs after it;
//! * [`purge`], [`epoch`], [`files`] — autopurge, the quorum's epoch files, file naming;
//! * [`dump`] — the `log-dump` and `snapshot-dump` tools.

pub mod compress;
pub mod dump;
pub mod epoch;
pub mod files;
pub mod log_writer;
pub mod purge;
pub mod recovery;
pub mod snap_writer;
pub mod snapshot;
pub mod truncate;
pub mod txnlog;

#[cfg(test)]
mod tests;
