//! Identifiers and timestamps for jobs, runs, checkpoints, messages and events.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A 24-character lowercase id: time-ordered prefix, random suffix. Unique within a process
/// and, with overwhelming likelihood, across processes.
pub fn new_id() -> String {
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(count);
    hasher.write_u128(now_nanos());
    hasher.write_u32(std::process::id());
    let random = hasher.finish();
    let mut out = String::with_capacity(24);
    push_base36(
        &mut out,
        (now_millis() as u128) << 16 | (count as u128 & 0xffff),
        12,
    );
    push_base36(&mut out, random as u128, 12);
    out
}

fn push_base36(out: &mut String, mut value: u128, width: usize) {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut buf = vec![b'0'; width];
    for slot in buf.iter_mut().rev() {
        *slot = DIGITS[(value % 36) as usize];
        value /= 36;
    }
    out.extend(buf.into_iter().map(char::from));
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch, the timestamp of every event.
pub fn now_millis() -> u64 {
    (now_nanos() / 1_000_000) as u64
}

/// `2026-11-25T15:46:55Z` for a millisecond timestamp (UTC).
pub fn rfc3339(millis: u64) -> String {
    let secs = millis / 1000;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    format!("{year:04}-{month:02}-{day:02}T{}Z", clock(secs % 86_400))
}

/// `15:46:55.259` (UTC) for a millisecond timestamp: the time of day, for logs.
pub fn clock_time(millis: u64) -> String {
    format!("{}.{:03}", clock(millis / 1000 % 86_400), millis % 1000)
}

fn clock(seconds_of_day: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        seconds_of_day / 3600,
        seconds_of_day % 3600 / 60,
        seconds_of_day % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_and_times() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
        assert_eq!(rfc3339(1_795_621_615_259), "2026-11-25T15:46:55Z");
        assert_eq!(clock_time(1_795_621_615_259), "15:46:55.259");
    }

    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            assert_eq!(id.len(), 24);
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            );
        }
    }
}
