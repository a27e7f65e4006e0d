//! Just enough RFC 3339 to read Hono's `not-before` / `not-after` secret validity.
//!
//! A date-time crate would be the usual answer, but this is the only place the
//! registry handles time and two small functions are cheaper than a dependency
//! on a 2-core build machine.

use std::time::{SystemTime, UNIX_EPOCH};

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` into seconds since the Unix epoch.
/// Fractional seconds are accepted and dropped.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = s.get(from..to)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // 60 allows a leap second; it simply rolls into the next minute.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let ob = rest.as_bytes();
            if ob.len() != 6 || ob[3] != b':' {
                return None;
            }
            let sign = match ob[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Seconds since the Unix epoch, now (negative before 1970, which never happens in practice).
pub fn now_unix() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date: count whole years and
/// months before the date (the loop is over at most 12 months, and years are
/// counted in closed form through the leap-year rule).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Leap days in years [1, y): y/4 - y/100 + y/400 for the year before.
    let leaps_before = |y: i64| {
        let p = y - 1;
        p.div_euclid(4) - p.div_euclid(100) + p.div_euclid(400)
    };
    let year_days = (year - 1970) * 365 + leaps_before(year) - leaps_before(1970);
    let month_days: i64 = (1..month).map(|m| days_in_month(year, m)).sum();
    year_days + month_days + day - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_and_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:30:15.123Z"),
            Some(1_709_209_815)
        );
        // 14:00 at +01:00 is 13:00 UTC.
        assert_eq!(
            parse_rfc3339("2017-05-01T14:00:00+01:00"),
            parse_rfc3339("2017-05-01T13:00:00Z")
        );
        assert_eq!(
            parse_rfc3339("1969-12-31T23:00:00-01:00"),
            Some(0),
            "negative offsets move forward"
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01 00:00:00",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.Z",
            "２０24-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }
}
