//! The log stage of the write path.
//!
//! Every write passes through a [`TxnLog`] between prep and apply, so durability (Java's
//! `FileTxnLog` format, group commit) plugs in here without changing the pipeline. Until the
//! durability issue lands, [`MemoryLog`] is the only implementation: it keeps the zxid order
//! honest and counts entries, and stores nothing.

pub mod dump;
pub mod snapshot;
pub mod txnlog;

use std::io;

use crate::request::txn::TxnEntry;

/// Where committed txns go before they are applied.
pub trait TxnLog: Send {
    /// Append one entry (not yet durable).
    fn append(&mut self, entry: &TxnEntry) -> io::Result<()>;
    /// Make every appended entry durable; one call covers a whole batch (group commit).
    fn sync(&mut self) -> io::Result<()>;
    /// Zxid of the last appended entry.
    fn last_zxid(&self) -> i64;
}

/// A log that keeps nothing: the standalone server before durability.
#[derive(Debug, Default)]
pub struct MemoryLog {
    last_zxid: i64,
    appended: u64,
}

impl TxnLog for MemoryLog {
    fn append(&mut self, entry: &TxnEntry) -> io::Result<()> {
        if entry.header.zxid <= self.last_zxid {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "zxid {:#x} does not follow {:#x}",
                    entry.header.zxid, self.last_zxid
                ),
            ));
        }
        self.last_zxid = entry.header.zxid;
        self.appended += 1;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn last_zxid(&self) -> i64 {
        self.last_zxid
    }
}
