//! When HubSpot's daily API quota comes back.
//!
//! The daily limit is per account and resets at midnight in the account's
//! time zone (HubSpot's usage guidelines; account info's API usage reports the
//! same `resetsAt`). A daily 429 without `Retry-After` parks the workers until
//! then, instead of probing a spent quota all day.

use std::time::Duration;

use chrono::{DateTime, Days, LocalResult, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Work resumes this long after the reset: a clock running ahead of HubSpot's must not try
/// a moment before midnight there, be refused again and park for another whole day.
const CLOCK_MARGIN: Duration = Duration::from_secs(60);

/// How long from `now` until the daily quota of a portal in `time_zone` (IANA or HubSpot
/// names such as "US/Eastern") has been reset, margin included; `None` for an unknown zone.
pub fn until_daily_reset(now: DateTime<Utc>, time_zone: &str) -> Option<Duration> {
    let zone: Tz = time_zone.trim().parse().ok()?;
    let margin = chrono::TimeDelta::from_std(CLOCK_MARGIN).ok()?;
    // Within the margin after a midnight, that midnight's reset is still the one ahead.
    let local = (now - margin).with_timezone(&zone);
    let next_day = local.date_naive().checked_add_days(Days::new(1))?;
    let midnight = next_day.and_time(NaiveTime::MIN);
    let reset = match zone.from_local_datetime(&midnight) {
        LocalResult::Single(reset) | LocalResult::Ambiguous(reset, _) => reset.to_utc(),
        // Clocks jump forward at midnight there: the day begins where the gap ends, that
        // is at midnight read with the offset in force before the jump.
        LocalResult::None => midnight
            .and_local_timezone(local.offset().fix())
            .single()?
            .to_utc(),
    };
    (reset + margin - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn wait(now: &str, time_zone: &str) -> Duration {
        until_daily_reset(utc(now), time_zone).unwrap() - CLOCK_MARGIN
    }

    const fn hours(hours: u64) -> Duration {
        Duration::from_secs(hours * 3600)
    }

    #[test]
    fn the_quota_resets_at_the_next_local_midnight() {
        // Monday 22:00 in New York (EDT, UTC-4): midnight is 04:00 UTC.
        assert_eq!(wait("2024-05-21T02:00:00Z", "America/New_York"), hours(2));
        // Saturday 08:30 in Tokyo: Sunday starts at 15:00 UTC.
        assert_eq!(
            wait("2024-05-17T23:30:00Z", "Asia/Tokyo"),
            hours(15) + Duration::from_secs(30 * 60)
        );
        // Half-hour offsets (UTC+5:30) and HubSpot's legacy zone names.
        assert_eq!(
            wait("2024-05-17T12:00:00Z", "Asia/Kolkata"),
            hours(6) + Duration::from_secs(1800)
        );
        assert_eq!(wait("2024-05-21T02:00:00Z", "US/Eastern"), hours(2));
        assert_eq!(wait("2024-05-21T02:00:00Z", "UTC"), hours(22));
    }

    #[test]
    fn daylight_saving_days_are_as_long_as_the_clock_says() {
        // 10 March 2024, 01:00 EST in New York: clocks go forward at 02:00, so the
        // next midnight (EDT) is 22 hours away, not 23.
        assert_eq!(wait("2024-03-10T06:00:00Z", "America/New_York"), hours(22));
        // 3 November 2024, 01:30 EDT: clocks go back at 02:00, midnight (EST) is 23.5 hours away.
        assert_eq!(
            wait("2024-11-03T05:30:00Z", "America/New_York"),
            hours(23) + Duration::from_secs(30 * 60)
        );
        // 8 September 2024 in Santiago: clocks jump from Saturday 24:00 to Sunday 01:00,
        // so Sunday begins at 04:00 UTC although its midnight never shows on a clock.
        assert_eq!(wait("2024-09-07T16:00:00Z", "America/Santiago"), hours(12));
    }

    #[test]
    fn just_after_midnight_the_reset_that_just_passed_is_waited_for_with_its_margin() {
        // 00:00:30 in New York: HubSpot's clock may not have reached midnight yet.
        assert_eq!(
            until_daily_reset(utc("2024-05-21T04:00:30Z"), "America/New_York"),
            Some(Duration::from_secs(30))
        );
        // 00:01:00 exactly: the margin is over, so the next reset is a day away.
        assert_eq!(
            until_daily_reset(utc("2024-05-21T04:01:00Z"), "America/New_York"),
            Some(hours(24))
        );
    }

    #[test]
    fn an_unknown_time_zone_has_no_reset_time() {
        assert_eq!(
            until_daily_reset(utc("2024-05-21T02:00:00Z"), "Mars/Olympus_Mons"),
            None
        );
        assert_eq!(until_daily_reset(utc("2024-05-21T02:00:00Z"), ""), None);
    }
}
