//! Cutting history back, for a learner the leader tells to TRUNC (its log holds proposals the
//! ensemble never committed) or replaces with a SNAP (its whole history is superseded).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;

use super::files::{list, sync_dir, version_dir};
use super::txnlog::read_log;

/// Remove every logged txn after `zxid`, and every snapshot newer than it (a snapshot taken
/// after an uncommitted txn holds it too). Java's `FileTxnSnapLog.truncateLog`.
pub fn truncate_after(data_dir: &Path, log_dir: &Path, zxid: i64) -> io::Result<()> {
    let logs = version_dir(log_dir);
    for (start, path) in list(&logs, "log")? {
        if start > zxid {
            tracing::warn!(file = %path.display(), "removing a log that starts after the truncation point");
            fs::remove_file(&path)?;
            continue;
        }
        let bytes = fs::read(&path)?;
        let (entries, _) = read_log(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        if let Some(first_after) = entries.iter().find(|e| e.entry.header.zxid > zxid) {
            tracing::warn!(
                file = %path.display(),
                offset = first_after.offset,
                zxid = format_args!("{zxid:#x}"),
                "truncating the txn log"
            );
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(first_after.offset as u64)?;
            f.sync_all()?;
        }
    }
    sync_dir(&logs)?;
    let snaps = version_dir(data_dir);
    for (z, path) in list(&snaps, "snapshot")? {
        if z > zxid {
            tracing::warn!(file = %path.display(), "removing a snapshot newer than the truncation point");
            fs::remove_file(&path)?;
        }
    }
    sync_dir(&snaps)
}

/// Remove every txn log: a snapshot received from the leader now holds all history, and logs
/// of another branch must not be replayed over it.
pub fn remove_logs(log_dir: &Path) -> io::Result<()> {
    let logs = version_dir(log_dir);
    for (_, path) in list(&logs, "log")? {
        fs::remove_file(&path)?;
    }
    sync_dir(&logs)
}
