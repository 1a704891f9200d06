//! File names in a data directory, as Java ZooKeeper's `Util` names and parses them.
//!
//! `log.<zxid>` and `snapshot.<zxid>[.gz|.snappy]` live in `version-2/` below dataLogDir and
//! dataDir; the zxid is lowercase hex without padding and is the first txn of a log, or the
//! last txn a snapshot includes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The sub-directory Java keeps its files in.
pub const VERSION_DIR: &str = "version-2";

/// `<dir>/version-2`.
pub fn version_dir(dir: &Path) -> PathBuf {
    dir.join(VERSION_DIR)
}

/// The name of the log file whose first txn is `zxid`.
pub fn log_name(zxid: i64) -> String {
    format!("log.{zxid:x}")
}

/// The name of the snapshot of the tree at `zxid`, with the suffix of its compression.
pub fn snapshot_name(zxid: i64, suffix: &str) -> String {
    format!("snapshot.{zxid:x}{suffix}")
}

/// The zxid in a file name with `prefix` (`log` or `snapshot`), as Java parses it: the part
/// after the first dot, up to the next dot, in base 16.
pub fn zxid_of(name: &str, prefix: &str) -> Option<i64> {
    let mut parts = name.split('.');
    if parts.next()? != prefix {
        return None;
    }
    u64::from_str_radix(parts.next()?, 16)
        .ok()
        .map(|z| z as i64)
}

/// Files in `dir` named `<prefix>.<zxid>…`, sorted by zxid ascending. A missing directory
/// lists as empty.
pub fn list(dir: &Path, prefix: &str) -> io::Result<Vec<(i64, PathBuf)>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(z) = zxid_of(name, prefix) {
            out.push((z, ent.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// fsync a directory so that a file created or renamed in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_like_java() {
        assert_eq!(log_name(0x1_0000_0001), "log.100000001");
        assert_eq!(snapshot_name(0, ""), "snapshot.0");
        assert_eq!(snapshot_name(0x2a, ".gz"), "snapshot.2a.gz");
        assert_eq!(zxid_of("log.100000001", "log"), Some(0x1_0000_0001));
        assert_eq!(zxid_of("snapshot.2a.snappy", "snapshot"), Some(0x2a));
        assert_eq!(zxid_of("snapshot.2a.tmp", "snapshot"), Some(0x2a));
        assert_eq!(zxid_of("log.zz", "log"), None);
        assert_eq!(zxid_of("snapshot.2a", "log"), None);
        assert_eq!(zxid_of("acceptedEpoch", "log"), None);
    }
}
