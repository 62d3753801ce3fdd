//! Durations and instants of the policy files. Times are Unix milliseconds (UTC); a date is its
//! first millisecond. Years and months are calendar arithmetic; a day that does not exist in the
//! target month (29 February, the 31st) rounds up to the next day, so that a retention never
//! ends earlier than the rule asks.

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeDelta};

/// A duration as a policy writes it: a whole number and one unit, `y` (years), `m` (months),
/// `d` (days), `h` (hours) or `s` (seconds) — `10y`, `18m`, `90d`; seconds are for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Months(u32),
    Millis(i64),
}

impl Span {
    pub fn parse(s: &str) -> Option<Span> {
        let s = s.trim();
        let unit = s.chars().last()?;
        let n: u32 = s[..s.len() - unit.len_utf8()].parse().ok()?;
        Some(match unit {
            'y' => Span::Months(n.checked_mul(12)?),
            'm' => Span::Months(n),
            'd' => Span::Millis(i64::from(n) * 86_400_000),
            'h' => Span::Millis(i64::from(n) * 3_600_000),
            's' => Span::Millis(i64::from(n) * 1000),
            _ => return None,
        })
    }

    /// `from` plus this span; `None` past the calendar's range.
    pub fn after(self, from_ms: i64) -> Option<i64> {
        match self {
            Span::Millis(ms) => from_ms.checked_add(ms),
            Span::Months(n) => {
                let t = DateTime::from_timestamp_millis(from_ms)?.naive_utc();
                let moved = t.checked_add_months(Months::new(n))?;
                // chrono clamps to the month's last day: round up instead.
                let moved = if moved.day() < t.day() { moved.checked_add_signed(TimeDelta::days(1))? } else { moved };
                Some(moved.and_utc().timestamp_millis())
            }
        }
    }
}

/// A date `YYYY-MM-DD` (or DICOM's `YYYYMMDD`) as the Unix milliseconds of its start.
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").or_else(|_| NaiveDate::parse_from_str(s, "%Y%m%d")).ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// A date, or an RFC 3339 instant (`2026-12-06T10:00:00Z`).
pub fn parse_instant(s: &str) -> Option<i64> {
    parse_date(s).or_else(|| DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.timestamp_millis()))
}

/// `ms` as an RFC 3339 UTC instant with milliseconds, for reports.
pub fn show(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(|| format!("{ms} ms"), |t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// Whole years from `birth` to `at` (an age), both Unix milliseconds.
pub fn years_between(birth_ms: i64, at_ms: i64) -> Option<i64> {
    let b = DateTime::from_timestamp_millis(birth_ms)?.date_naive();
    let a = DateTime::from_timestamp_millis(at_ms)?.date_naive();
    let mut years = i64::from(a.year() - b.year());
    if (a.month(), a.day()) < (b.month(), b.day()) {
        years -= 1;
    }
    Some(years)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_and_add_calendar_years_rounding_up() {
        let d = |s| parse_date(s).unwrap();
        assert_eq!(Span::parse("10y"), Some(Span::Months(120)));
        assert_eq!(Span::parse("90d"), Some(Span::Millis(90 * 86_400_000)));
        assert_eq!(Span::parse("30s"), Some(Span::Millis(30_000)));
        for bad in ["", "y", "10", "10w", "-1d", "1.5y", "10 y"] {
            assert_eq!(Span::parse(bad), None, "{bad}");
        }
        assert_eq!(Span::parse("10y").unwrap().after(d("2024-02-01")), Some(d("2034-02-01")));
        assert_eq!(Span::parse("1y").unwrap().after(d("2024-02-29")), Some(d("2025-03-01")), "no 29 February: the day after");
        assert_eq!(Span::parse("1m").unwrap().after(d("2026-01-31")), Some(d("2026-03-01")));
        assert_eq!(Span::parse("2d").unwrap().after(d("2026-12-31")), Some(d("2027-01-02")));
    }

    #[test]
    fn dates_and_ages() {
        assert_eq!(parse_date("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_date("19700102"), Some(86_400_000));
        assert_eq!(parse_date("2026-02-30"), None);
        assert_eq!(parse_instant("1970-01-01T00:00:01Z"), Some(1000));
        let d = |s| parse_date(s).unwrap();
        assert_eq!(years_between(d("2008-06-15"), d("2026-06-14")), Some(17));
        assert_eq!(years_between(d("2008-06-15"), d("2026-06-15")), Some(18));
    }
}
