//! Wall-clock time as the format needs it: milliseconds since the epoch, RFC 3339 in UTC.
//! Small enough not to need a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, the timestamp of every event.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2026-11-25T15:46:55Z` for a millisecond timestamp.
pub fn rfc3339(millis: u64) -> String {
    rfc3339_seconds((millis / 1000) as i64)
}

/// RFC 3339 of a file time; times before 1970 count backwards.
pub fn rfc3339_of(time: SystemTime) -> String {
    let seconds = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    rfc3339_seconds(seconds)
}

/// `15:46:55.259` for a millisecond timestamp: the time of day, for logs.
pub fn clock_time(millis: u64) -> String {
    format!(
        "{}.{:03}",
        clock((millis / 1000 % 86_400) as i64),
        millis % 1000
    )
}

fn rfc3339_seconds(seconds: i64) -> String {
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    format!(
        "{year:04}-{month:02}-{day:02}T{}Z",
        clock(seconds.rem_euclid(86_400))
    )
}

fn clock(seconds_of_day: i64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        seconds_of_day / 3600,
        seconds_of_day % 3600 / 60,
        seconds_of_day % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
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
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_instants() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
        assert_eq!(rfc3339(1_795_621_615_259), "2026-11-25T15:46:55Z");
        assert_eq!(clock_time(1_795_621_615_259), "15:46:55.259");
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(rfc3339_of(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_of(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_of(at(1_764_077_696)), "2025-11-25T13:34:56Z");
        assert_eq!(
            rfc3339_of(UNIX_EPOCH - Duration::from_secs(1)),
            "1969-12-31T23:59:59Z"
        );
    }
}
