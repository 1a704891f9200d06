//! `acceptedEpoch` and `currentEpoch`: the two numbers a quorum peer must never forget, kept
//! as Java keeps them — a file in `<dataDir>/version-2` holding the value in decimal, replaced
//! atomically (written to `<name>.tmp`, fsynced, renamed).

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::files::{sync_dir, version_dir};

/// The epoch this peer accepted in discovery (Java's `acceptedEpoch`).
pub const ACCEPTED_EPOCH: &str = "acceptedEpoch";
/// The epoch of the leader this peer last synced with (Java's `currentEpoch`).
pub const CURRENT_EPOCH: &str = "currentEpoch";

/// Read an epoch file; `None` if it does not exist.
pub fn read_epoch(data_dir: &Path, name: &str) -> io::Result<Option<i64>> {
    let path = version_dir(data_dir).join(name);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let line = text.lines().next().unwrap_or("").trim();
    line.parse::<i64>().map(Some).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a number: {line:?}", path.display()),
        )
    })
}

/// Replace an epoch file atomically.
pub fn write_epoch(data_dir: &Path, name: &str, value: i64) -> io::Result<()> {
    let dir = version_dir(data_dir);
    fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(value.to_string().as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(&dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_round_trip_and_reject_garbage() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_epoch(d.path(), CURRENT_EPOCH).unwrap(), None);
        write_epoch(d.path(), CURRENT_EPOCH, 7).unwrap();
        write_epoch(d.path(), ACCEPTED_EPOCH, 8).unwrap();
        assert_eq!(read_epoch(d.path(), CURRENT_EPOCH).unwrap(), Some(7));
        assert_eq!(read_epoch(d.path(), ACCEPTED_EPOCH).unwrap(), Some(8));
        // Java writes the bare number; a trailing newline is read too.
        let raw = fs::read_to_string(version_dir(d.path()).join(CURRENT_EPOCH)).unwrap();
        assert_eq!(raw, "7");
        fs::write(version_dir(d.path()).join(CURRENT_EPOCH), "9\n").unwrap();
        assert_eq!(read_epoch(d.path(), CURRENT_EPOCH).unwrap(), Some(9));
        fs::write(version_dir(d.path()).join(CURRENT_EPOCH), "x").unwrap();
        assert!(read_epoch(d.path(), CURRENT_EPOCH).is_err());
    }
}
