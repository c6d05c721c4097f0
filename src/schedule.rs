//! Cron schedules in a time zone -> slot instants. The only module that does
//! calendar arithmetic.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid schedule {expr:?}: {reason}")]
pub struct ScheduleError {
    pub expr: String,
    pub reason: String,
}

/// A parsed cron expression bound to a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    tz: Tz,
    cron: croner::Cron,
}

impl Schedule {
    /// Parses a 5-field (min hour dom month dow) or 6-field (sec min hour dom
    /// month dow) expression.
    pub fn parse(expr: &str, tz: Tz) -> Result<Schedule, ScheduleError> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| ScheduleError {
                expr: expr.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Schedule {
            expr: expr.to_string(),
            tz,
            cron,
        })
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first slot strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}
