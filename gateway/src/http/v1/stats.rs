//! `GET /api/v1/stats/daily`: per-day totals of the key's tenant's calls.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use jiff::civil::Date;
use switchboard_store::DayRange;

use super::auth::Caller;
use super::problem::Problem;
use super::types::{DailyParams, DailyTotals, DayTotals};
use crate::state::AppState;

/// Longest range one request may ask for, days.
const MAX_DAYS: i64 = 366;

fn day_ms(d: Date) -> Result<i64, Problem> {
    d.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|_| Problem::bad_request("date out of range"))
}

/// The range `p` names (whole UTC days, `until` included).
pub fn range(p: &DailyParams, today: Date) -> Result<DayRange, Problem> {
    let date = |name: &str, v: &Option<String>| -> Result<Option<Date>, Problem> {
        v.as_deref()
            .map(|s| {
                s.parse::<Date>().map_err(|_| {
                    Problem::bad_request(format!("{name}: expected a date such as 2026-12-01"))
                })
            })
            .transpose()
    };
    let until = date("until", &p.until)?.unwrap_or(today);
    let since = match date("since", &p.since)? {
        Some(d) => d,
        None => until
            .checked_sub(jiff::Span::new().days(29))
            .map_err(|_| Problem::bad_request("until: out of range"))?,
    };
    let from_ms = day_ms(since)?;
    let before_ms = day_ms(until)? + 86_400_000;
    let days = (before_ms - from_ms) / 86_400_000;
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(Problem::bad_request(
            "since..until: 1 to 366 days, since not after until",
        ));
    }
    Ok(DayRange { from_ms, before_ms })
}

/// Per-day totals: calls, minutes, average duration, share without transfer, cost.
#[utoipa::path(
    get,
    path = "/api/v1/stats/daily",
    tag = "stats",
    params(DailyParams),
    responses(
        (status = 200, description = "Totals per UTC day", body = DailyTotals),
        (status = 400, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited (see Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Call store unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn daily(
    State(state): State<AppState>,
    Caller(key): Caller,
    params: Result<Query<DailyParams>, QueryRejection>,
) -> Result<Json<DailyTotals>, Problem> {
    let Query(params) = params.map_err(|e| Problem::bad_request(e.body_text()))?;
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let r = range(&params, today)?;
    let days = state.store.daily_stats(&key.tenant, r).await.map_err(|e| {
        tracing::warn!(error = %e, "daily stats failed");
        Problem::store_unavailable()
    })?;
    Ok(Json(DailyTotals {
        days: days.iter().map(DayTotals::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_whole_days_and_bounded() {
        let today = jiff::civil::date(2026, 12, 7);
        let r = range(&DailyParams::default(), today).unwrap();
        assert_eq!((r.before_ms - r.from_ms) / 86_400_000, 30);
        let p = DailyParams {
            since: Some("2026-12-01".into()),
            until: Some("2026-12-01".into()),
        };
        let r = range(&p, today).unwrap();
        assert_eq!(r.before_ms - r.from_ms, 86_400_000);
        assert_eq!(r.from_ms, 1_796_083_200_000);
        for (since, until) in [
            ("2026-12-02", "2026-12-01"),
            ("2024-01-01", "2026-01-01"),
            ("x", "2026-01-01"),
        ] {
            let p = DailyParams {
                since: Some(since.into()),
                until: Some(until.into()),
            };
            assert!(range(&p, today).is_err(), "{since}..{until}");
        }
    }
}
