//! Autopurge (`autopurge.snapRetainCount`, `autopurge.purgeInterval`): keep the newest N
//! snapshots and the logs they need; delete the rest, as Java's `PurgeTxnLog` does.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::files::{list, version_dir};

/// Java never keeps fewer than this many snapshots.
pub const MIN_RETAIN: usize = 3;

/// Delete old snapshots and logs; returns the files removed.
pub fn purge(data_dir: &Path, log_dir: &Path, retain: usize) -> io::Result<Vec<PathBuf>> {
    let retain = retain.max(MIN_RETAIN);
    let snaps: Vec<(i64, PathBuf)> = list(&version_dir(data_dir), "snapshot")?
        .into_iter()
        .filter(|(_, p)| !p.to_string_lossy().ends_with(".tmp"))
        .collect();
    if snaps.len() <= retain {
        return Ok(Vec::new());
    }
    let oldest_kept = snaps[snaps.len() - retain].0;
    let logs = list(&version_dir(log_dir), "log")?;
    // The newest log starting at or before the oldest kept snapshot holds txns it needs.
    let keep_log_from = logs
        .iter()
        .filter(|(z, _)| *z <= oldest_kept)
        .map(|(z, _)| *z)
        .max()
        .unwrap_or(i64::MIN);
    let mut removed = Vec::new();
    for (z, p) in snaps.iter().filter(|(z, _)| *z < oldest_kept) {
        let _ = z;
        fs::remove_file(p)?;
        removed.push(p.clone());
    }
    for (_, p) in logs.iter().filter(|(z, _)| *z < keep_log_from) {
        fs::remove_file(p)?;
        removed.push(p.clone());
    }
    for p in &removed {
        tracing::info!(file = %p.display(), "purged");
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_snapshots_and_the_logs_they_need() {
        let d = tempfile::tempdir().unwrap();
        let v = version_dir(d.path());
        fs::create_dir_all(&v).unwrap();
        for n in [
            "snapshot.0",
            "snapshot.10",
            "snapshot.20",
            "snapshot.30",
            "snapshot.40",
        ] {
            fs::write(v.join(n), b"x").unwrap();
        }
        for n in ["log.1", "log.b", "log.15", "log.25", "log.35"] {
            fs::write(v.join(n), b"x").unwrap();
        }
        let removed = purge(d.path(), d.path(), 3).unwrap();
        let mut names: Vec<String> = removed
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // Oldest kept snapshot is 0x20; log.15 holds 0x15.. so it stays, older logs go.
        assert_eq!(names, ["log.1", "log.b", "snapshot.0", "snapshot.10"]);
        assert!(purge(d.path(), d.path(), 3).unwrap().is_empty());
    }
}
