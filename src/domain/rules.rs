//! A policy's retention rules, as the policy file gives them. What they
//! decide is `retention::decide`'s job.

use std::time::Duration;

use chrono_tz::Tz;

/// A calendar period of the `keep_*` rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    pub fn name(self) -> &'static str {
        match self {
            Period::Hour => "hourly",
            Period::Day => "daily",
            Period::Week => "weekly",
            Period::Month => "monthly",
            Period::Year => "yearly",
        }
    }
}

/// The rules of one policy. A snapshot is kept if any rule keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Keep the newest `retain` good own snapshots.
    pub retain: Option<u32>,
    /// Keep the newest snapshot in each of the last N hours/days/weeks/
    /// months/years that have snapshots, in the policy's time zone.
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    /// Keep everything within this span of the newest good snapshot
    /// (not of now, so an outage cannot expire history).
    pub keep_within: Option<Duration>,
    /// A floor no rule can go under (at least 1).
    pub min_keep: u32,
    /// The zone periods are counted in (the schedule's).
    pub tz: Tz,
}

impl Rules {
    /// Count-based retention only.
    pub fn count(retain: u32) -> Rules {
        Rules {
            retain: Some(retain),
            keep_hourly: None,
            keep_daily: None,
            keep_weekly: None,
            keep_monthly: None,
            keep_yearly: None,
            keep_within: None,
            min_keep: 1,
            tz: Tz::UTC,
        }
    }

    /// No rule at all (`check` refuses such a policy).
    pub fn is_empty(&self) -> bool {
        self.retain.is_none() && self.periods().is_empty() && self.keep_within.is_none()
    }

    /// A short human description, e.g. `retain 7, daily 14, within 2days`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.retain {
            parts.push(format!("retain {n}"));
        }
        for (p, n) in self.periods() {
            parts.push(format!("{} {n}", p.name()));
        }
        if let Some(w) = self.keep_within {
            parts.push(format!("within {}", humantime::format_duration(w)));
        }
        if self.min_keep > 1 {
            parts.push(format!("min_keep {}", self.min_keep));
        }
        parts.join(", ")
    }

    /// The period rules that are set, shortest period first.
    pub fn periods(&self) -> Vec<(Period, u32)> {
        [
            (Period::Hour, self.keep_hourly),
            (Period::Day, self.keep_daily),
            (Period::Week, self.keep_weekly),
            (Period::Month, self.keep_monthly),
            (Period::Year, self.keep_yearly),
        ]
        .into_iter()
        .filter_map(|(p, n)| n.map(|n| (p, n)))
        .collect()
    }
}
