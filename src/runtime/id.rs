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

/// When an id made by [`new_id`] was made (milliseconds since the epoch), read from its
/// time-ordered prefix; None for an id of another shape (one given by hand, say).
pub fn created_at(id: &str) -> Option<u64> {
    let prefix = id.get(..12)?;
    if id.len() != 24 {
        return None;
    }
    let mut value: u128 = 0;
    for c in prefix.chars() {
        value = value * 36 + u128::from(c.to_digit(36)?);
    }
    u64::try_from(value >> 16).ok()
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

pub use crate::time::now_millis;

/// An id given by a person (`--job-id`, `--continue-job`, `--resume-from`) names a directory or
/// file under the store, so it must be a plain name: never a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{flag} {id:?} is not a valid id: use 1 to 128 letters, digits, '-', '_' or '.', not starting with '.'"
)]
pub struct InvalidId {
    pub flag: &'static str,
    pub id: String,
}

pub fn check_id(flag: &'static str, id: &str) -> Result<(), InvalidId> {
    let plain = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain {
        Ok(())
    } else {
        Err(InvalidId {
            flag,
            id: id.to_string(),
        })
    }
}

/// Where the run machine takes the time and fresh ids from: the system in a real run, a
/// counter in tests, so every transition can be checked without a real clock.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
    fn new_id(&self) -> String;
}

/// The system's time and [`new_id`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_millis()
    }

    fn new_id(&self) -> String {
        new_id()
    }
}

/// A deterministic clock: time starts at `start_ms` and moves one millisecond per reading;
/// ids are `id1`, `id2`, ...
#[derive(Debug, Default)]
pub struct CountingClock {
    ms: AtomicU64,
    ids: AtomicU64,
}

impl CountingClock {
    pub fn new(start_ms: u64) -> Self {
        CountingClock {
            ms: AtomicU64::new(start_ms),
            ids: AtomicU64::new(0),
        }
    }
}

impl Clock for CountingClock {
    fn now_ms(&self) -> u64 {
        self.ms.fetch_add(1, Ordering::Relaxed)
    }

    fn new_id(&self) -> String {
        format!("id{}", self.ids.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_tells_when_it_was_made() {
        let before = now_millis();
        let id = new_id();
        let after = now_millis();
        let made = created_at(&id).expect("a new id has a time");
        assert!(
            (before..=after).contains(&made),
            "{before} <= {made} <= {after}"
        );
        assert_eq!(created_at("job-0001"), None);
        assert_eq!(created_at("ÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿ"), None);
    }

    #[test]
    fn ids_that_are_paths_are_refused() {
        for bad in [
            "",
            "/tmp/x",
            "../../escape",
            "a/b",
            "..",
            ".hidden",
            "a\\b",
            "a b",
        ] {
            assert!(check_id("--job-id", bad).is_err(), "{bad:?} was accepted");
        }
        for good in ["job-1", "0w6z9ytdcgn52hipg97s6328", "release_2.0"] {
            assert_eq!(check_id("--job-id", good), Ok(()));
        }
        assert_eq!(new_id().len(), 24);
        assert_eq!(check_id("--job-id", &new_id()), Ok(()));
    }

    #[test]
    fn the_counting_clock_is_deterministic() {
        let clock = CountingClock::new(1_000);
        assert_eq!((clock.now_ms(), clock.now_ms()), (1_000, 1_001));
        assert_eq!(
            (clock.new_id(), clock.new_id()),
            ("id1".into(), "id2".into())
        );
    }

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
