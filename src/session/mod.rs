//! Session tracking: ids, passwords, and expiry in tick-sized buckets.
//!
//! Pure bookkeeping (Java's `SessionTrackerImpl` + `ExpiryQueue`): every method takes the
//! current [`Instant`], so tests drive time by hand and the core owns the only clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The 16-byte password of a session: `java.util.Random(id ^ 0xB3415C00).nextBytes(16)`.
/// Deterministic, so any server can check any session's password.
pub fn session_password(session_id: i64) -> [u8; 16] {
    const MULT: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;
    let mut seed = ((session_id ^ 0xB341_5C00) as u64 ^ MULT) & MASK;
    let mut out = [0u8; 16];
    for chunk in out.chunks_mut(4) {
        seed = (seed.wrapping_mul(MULT).wrapping_add(0xB)) & MASK;
        let v = (seed >> 16) as u32;
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = (v >> (8 * i)) as u8;
        }
    }
    out
}

#[derive(Debug, Clone)]
struct Session {
    timeout_ms: i32,
    /// Expiry bucket, in ticks since `start`.
    bucket: u64,
    closing: bool,
}

/// Live sessions and when each expires.
#[derive(Debug)]
pub struct SessionTracker {
    tick_ms: u64,
    start: Instant,
    next_id: i64,
    sessions: HashMap<i64, Session>,
    buckets: BTreeMap<u64, BTreeSet<i64>>,
}

impl SessionTracker {
    /// `server_id` becomes the top byte of every id (1 in standalone, as Java).
    pub fn new(server_id: i64, tick_time_ms: u64, start: Instant) -> SessionTracker {
        // Java uses a monotonic millisecond clock; wall-clock millis serve the same purpose
        // here: ids differ across restarts.
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut next_id = (((millis << 24) as u64) >> 8) as i64 | (server_id << 56);
        if next_id == i64::MIN {
            next_id += 1;
        }
        SessionTracker {
            tick_ms: tick_time_ms.max(1),
            start,
            next_id,
            sessions: HashMap::new(),
            buckets: BTreeMap::new(),
        }
    }

    pub fn next_session_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// The bucket a session touched at `now` falls into: the tick boundary strictly after
    /// `now + timeout`.
    fn bucket_for(&self, now: Instant, timeout_ms: i32) -> u64 {
        let t =
            now.saturating_duration_since(self.start).as_millis() as u64 + timeout_ms.max(0) as u64;
        t / self.tick_ms + 1
    }

    fn deadline(&self, bucket: u64) -> Instant {
        self.start + Duration::from_millis(bucket * self.tick_ms)
    }

    fn move_to(&mut self, id: i64, bucket: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let old = s.bucket;
        if old == bucket {
            return;
        }
        s.bucket = bucket;
        if let Some(set) = self.buckets.get_mut(&old) {
            set.remove(&id);
            if set.is_empty() {
                self.buckets.remove(&old);
            }
        }
        self.buckets.entry(bucket).or_default().insert(id);
    }

    /// Track a session (new, or recovered); it expires `timeout_ms` after `now`.
    pub fn add_session(&mut self, id: i64, timeout_ms: i32, now: Instant) {
        let bucket = self.bucket_for(now, timeout_ms);
        if self.sessions.contains_key(&id) {
            self.move_to(id, bucket);
            return;
        }
        self.sessions.insert(
            id,
            Session {
                timeout_ms,
                bucket,
                closing: false,
            },
        );
        self.buckets.entry(bucket).or_default().insert(id);
    }

    /// Push a session's expiry forward; false if it is unknown or closing.
    pub fn touch(&mut self, id: i64, now: Instant) -> bool {
        let timeout = match self.sessions.get(&id) {
            Some(s) if !s.closing => s.timeout_ms,
            _ => return false,
        };
        let bucket = self.bucket_for(now, timeout);
        let current = self.sessions.get(&id).map(|s| s.bucket).unwrap_or(0);
        if bucket > current {
            self.move_to(id, bucket);
        }
        true
    }

    pub fn set_closing(&mut self, id: i64) -> bool {
        match self.sessions.get_mut(&id) {
            Some(s) => {
                s.closing = true;
                true
            }
            None => false,
        }
    }

    pub fn is_closing(&self, id: i64) -> bool {
        self.sessions.get(&id).is_some_and(|s| s.closing)
    }

    pub fn exists(&self, id: i64) -> bool {
        self.sessions.contains_key(&id)
    }

    pub fn remove(&mut self, id: i64) {
        if let Some(s) = self.sessions.remove(&id) {
            if let Some(set) = self.buckets.get_mut(&s.bucket) {
                set.remove(&id);
                if set.is_empty() {
                    self.buckets.remove(&s.bucket);
                }
            }
        }
    }

    /// Every session with its negotiated timeout, sorted by id (what a snapshot stores).
    pub fn with_timeouts(&self) -> Vec<(i64, i32)> {
        let mut v: Vec<(i64, i32)> = self
            .sessions
            .iter()
            .map(|(id, s)| (*id, s.timeout_ms))
            .collect();
        v.sort_unstable();
        v
    }

    pub fn timeout_of(&self, id: i64) -> Option<i32> {
        self.sessions.get(&id).map(|s| s.timeout_ms)
    }

    /// Sessions whose bucket deadline has passed; they are marked closing (not removed: the
    /// caller runs their closeSession txn first).
    pub fn expired(&mut self, now: Instant) -> Vec<i64> {
        let mut out = Vec::new();
        let due: Vec<u64> = self
            .buckets
            .range(..)
            .map(|(b, _)| *b)
            .take_while(|b| self.deadline(*b) <= now)
            .collect();
        for b in due {
            if let Some(set) = self.buckets.get(&b) {
                for id in set {
                    if let Some(s) = self.sessions.get_mut(id) {
                        if !s.closing {
                            s.closing = true;
                            out.push(*id);
                        }
                    }
                }
            }
        }
        out
    }

    /// The earliest deadline of a session that is not already closing.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.buckets
            .iter()
            .find(|(_, set)| {
                set.iter()
                    .any(|id| self.sessions.get(id).is_some_and(|s| !s.closing))
            })
            .map(|(b, _)| self.deadline(*b))
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The session part of the `dump` four-letter word.
    pub fn dump(&self, now: Instant) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Session Sets ({})/({}):",
            self.buckets.len(),
            self.sessions.len()
        );
        let wall_now = SystemTime::now();
        for (b, set) in &self.buckets {
            let deadline = self.deadline(*b);
            let wall = if deadline >= now {
                wall_now + (deadline - now)
            } else {
                wall_now - (now - deadline)
            };
            let ms = wall
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let _ = writeln!(s, "{} expire at {}:", set.len(), java_date(ms as i64));
            for id in set {
                let _ = writeln!(s, "\t{id:#x}");
            }
        }
        s
    }
}

/// A wall-clock time in Java's `Date.toString()` form, in UTC: `Tue Nov 24 02:56:00 UTC 2026`.
pub fn java_date(epoch_ms: i64) -> String {
    let secs = epoch_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        year
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_print_like_java() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        // 2026-11-24 02:56:00 UTC, as Java 3.9's `dump` printed it on this machine.
        assert_eq!(java_date(1_795_488_960_000), "Tue Nov 24 02:56:00 UTC 2026");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn password_matches_java_random() {
        assert_eq!(
            hex(&session_password(0x0100000000000001)),
            "054cc74a37327db215e702e20c73f005"
        );
    }

    #[test]
    fn ids_carry_the_server_id_in_the_top_byte() {
        let mut t = SessionTracker::new(1, 2000, Instant::now());
        let a = t.next_session_id();
        let b = t.next_session_id();
        assert_eq!((a as u64) >> 56, 1);
        assert_eq!(b, a + 1);
    }

    #[test]
    fn expiry_rounds_up_to_the_next_tick_and_touch_extends() {
        let start = Instant::now();
        let mut t = SessionTracker::new(1, 2000, start);
        t.add_session(7, 4000, start);
        // now+timeout = 4000 → bucket boundary strictly after: 6000.
        assert_eq!(t.next_expiry(), Some(start + Duration::from_millis(6000)));
        assert!(t.expired(start + Duration::from_millis(5999)).is_empty());
        assert!(t.touch(7, start + Duration::from_millis(3000)));
        assert_eq!(t.next_expiry(), Some(start + Duration::from_millis(8000)));
        assert_eq!(t.expired(start + Duration::from_millis(8000)), vec![7]);
        assert!(t.is_closing(7));
        assert!(!t.touch(7, start + Duration::from_millis(8000)));
        assert_eq!(t.next_expiry(), None);
        t.remove(7);
        assert!(!t.exists(7));
        assert_eq!(t.session_count(), 0);
    }

    #[test]
    fn unknown_sessions_do_not_touch() {
        let mut t = SessionTracker::new(1, 2000, Instant::now());
        assert!(!t.touch(42, Instant::now()));
        assert!(!t.set_closing(42));
    }
}
