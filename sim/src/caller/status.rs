//! The call status callback Twilio sends as a call progresses (`POST /twilio/status`).

use std::time::{SystemTime, UNIX_EPOCH};

use super::{CallError, http_client};
use crate::signature::{signing_url, twilio_signature};

/// One call-progress event, as Twilio posts it to the number's status callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent<'a> {
    /// Gateway base URL (e.g. `http://127.0.0.1:8080`); the event goes to `/twilio/status`.
    pub gateway: &'a str,
    /// The account that owns the number.
    pub account_sid: &'a str,
    /// Key for `X-Twilio-Signature`.
    pub auth_token: &'a str,
    /// The call.
    pub call_sid: &'a str,
    /// Caller, sent when known.
    pub from: Option<&'a str>,
    /// Called number, sent when known.
    pub to: Option<&'a str>,
    /// `initiated`, `ringing`, `in-progress`, `completed`, `busy`, `failed`, `no-answer`, …
    pub status: &'a str,
    /// Seconds, on terminal events.
    pub duration_s: Option<u32>,
    /// `SequenceNumber` (from 0; Twilio may deliver them out of order).
    pub seq: u32,
}

/// Posts a signed status callback and returns the gateway's HTTP status.
pub async fn send_status(
    gateway: &str,
    account_sid: &str,
    auth_token: &str,
    call_sid: &str,
    status: &str,
    duration_s: Option<u32>,
    seq: u32,
) -> Result<u16, CallError> {
    send_status_event(&StatusEvent {
        gateway,
        account_sid,
        auth_token,
        call_sid,
        from: None,
        to: None,
        status,
        duration_s,
        seq,
    })
    .await
}

/// Posts a signed status callback with every field of `event`.
pub async fn send_status_event(event: &StatusEvent<'_>) -> Result<u16, CallError> {
    let url = format!("{}/twilio/status", event.gateway.trim_end_matches('/'));
    let params = status_params(event, SystemTime::now());
    let signature = twilio_signature(event.auth_token, &signing_url(&url), &params);
    let response = http_client()?
        .post(&url)
        .header("X-Twilio-Signature", signature)
        .header(reqwest::header::USER_AGENT, "TwilioProxy/1.1")
        .form(&params)
        .send()
        .await
        .map_err(CallError::Http)?;
    Ok(response.status().as_u16())
}

fn status_params(event: &StatusEvent<'_>, now: SystemTime) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = [
        ("CallSid", event.call_sid),
        ("AccountSid", event.account_sid),
        ("CallStatus", event.status),
        ("CallbackSource", "call-progress-events"),
        ("ApiVersion", "2010-04-01"),
        ("Direction", "inbound"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (name, value) in [("From", event.from), ("To", event.to)] {
        if let Some(value) = value {
            params.push((name.to_owned(), value.to_owned()));
            let echo = if name == "From" { "Caller" } else { "Called" };
            params.push((echo.to_owned(), value.to_owned()));
        }
    }
    if let Some(d) = event.duration_s {
        params.push(("CallDuration".to_owned(), d.to_string()));
    }
    params.push(("SequenceNumber".to_owned(), event.seq.to_string()));
    params.push(("Timestamp".to_owned(), rfc2822(now)));
    params
}

/// `Tue, 01 Jul 2025 12:34:56 +0000`, the format of Twilio's `Timestamp`.
pub(crate) fn rfc2822(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic Gregorian
/// (Howard Hinnant's algorithm, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc2822_dates() {
        assert_eq!(rfc2822(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        // 2024-02-29T23:59:59Z, a leap day.
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199);
        assert_eq!(rfc2822(t), "Thu, 29 Feb 2024 23:59:59 +0000");
        // 2025-07-01T12:34:56Z
        let t = UNIX_EPOCH + Duration::from_secs(1_751_373_296);
        assert_eq!(rfc2822(t), "Tue, 01 Jul 2025 12:34:56 +0000");
    }

    #[test]
    fn status_params_follow_twilio() {
        let event = StatusEvent {
            gateway: "http://gw",
            account_sid: "ACx",
            auth_token: "t",
            call_sid: "CAy",
            from: Some("+15551230000"),
            to: None,
            status: "completed",
            duration_s: Some(42),
            seq: 3,
        };
        let params = status_params(&event, UNIX_EPOCH);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CallStatus"), Some("completed"));
        assert_eq!(get("CallDuration"), Some("42"));
        assert_eq!(get("SequenceNumber"), Some("3"));
        assert_eq!(get("CallbackSource"), Some("call-progress-events"));
        assert_eq!(get("From"), Some("+15551230000"));
        assert_eq!(get("Caller"), Some("+15551230000"));
        assert_eq!(get("To"), None);
        assert_eq!(get("Timestamp"), Some("Thu, 01 Jan 1970 00:00:00 +0000"));
    }
}
