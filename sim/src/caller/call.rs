//! Placing a call: the signed webhook, the TwiML answer, the signed stream handshake.

use std::time::Instant;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::ids::new_sid;
use super::session::{self, Stream};
use super::twiml::{
    FollowUp, StreamTarget, Twiml, parse_follow_up, parse_twiml, resolve_stream_url,
};
use super::{CallConfig, CallError, CallReport, ensure_crypto_provider, http_client};
use crate::signature::{header_for, signing_url};

/// Places one simulated inbound call and runs its script to the end.
///
/// A call the gateway refuses (non-2xx webhook, `<Reject>`, `<Hangup>`) is a report with
/// [`CallReport::refused`] set, not an error; errors are transport failures, unusable
/// TwiML and a failed stream handshake.
pub async fn place_call(cfg: &CallConfig) -> Result<CallReport, CallError> {
    let call_sid = cfg.call_sid.clone().unwrap_or_else(|| new_sid("CA"));
    let mut report = CallReport {
        call_sid: call_sid.clone(),
        ..CallReport::default()
    };
    let webhook_url = format!("{}/twilio/voice", cfg.gateway.trim_end_matches('/'));
    url::Url::parse(&webhook_url).map_err(|_| CallError::BadUrl(cfg.gateway.clone()))?;
    let params = webhook_params(cfg, &call_sid);
    let mut request = http_client()?
        .post(&webhook_url)
        .timeout(cfg.connect_timeout)
        .header(reqwest::header::USER_AGENT, "TwilioProxy/1.1")
        .header(reqwest::header::ACCEPT, "*/*")
        .form(&params);
    if let Some(sig) = header_for(
        cfg.signature,
        &cfg.auth_token,
        &signing_url(&webhook_url),
        &params,
    ) {
        request = request.header("X-Twilio-Signature", sig);
    }

    let webhook_sent = Instant::now();
    let response = request.send().await.map_err(CallError::Http)?;
    let status = response.status();
    report.webhook_status = status.as_u16();
    if !status.is_success() {
        // Twilio logs 11200 and plays "an application error has occurred".
        report.refused = Some(format!("webhook answered HTTP {}", status.as_u16()));
        return Ok(report);
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response.text().await.map_err(CallError::Http)?;
    if !is_xml(&content_type) {
        report.violations.push(format!(
            "webhook answer Content-Type {content_type:?} is not text/xml or application/xml"
        ));
    }
    let target = match parse_twiml(&body)? {
        Twiml::Refused(why) => {
            report.refused = Some(why);
            return Ok(report);
        }
        Twiml::Connect(target) => target,
    };
    let (stream_url, warnings) = resolve_stream_url(&target.url, &webhook_url)?;
    report.violations.extend(target.warnings.clone());
    report.violations.extend(warnings);
    report.stream_url = Some(stream_url.clone());
    report.custom_parameters = target.parameters.clone();

    let ws = connect_stream(cfg, &stream_url).await?;
    let stream_sid = new_sid("MZ");
    report.stream_sid = Some(stream_sid.clone());
    let stream = Stream {
        account_sid: &cfg.account_sid,
        call_sid: &call_sid,
        stream_sid: &stream_sid,
        webhook_sent,
        record_audio: cfg.record_audio,
    };
    session::run(ws, &stream, cfg.script.clone(), &mut report).await;
    if report.ended_by_gateway {
        after_stream(cfg, &call_sid, &webhook_url, &target, &mut report).await;
    }
    Ok(report)
}

/// What Twilio says when it cannot fetch or run the TwiML of a call.
const APPLICATION_ERROR: &str = "We are sorry, an application error has occurred. Goodbye.";

/// Does what Twilio does once the gateway has closed a `<Connect><Stream>`: request
/// `<Connect action>` (signed POST) and run its answer, or run the verbs after
/// `</Connect>`; with neither, the call ends in silence (nothing is heard).
async fn after_stream(
    cfg: &CallConfig,
    call_sid: &str,
    webhook_url: &str,
    target: &StreamTarget,
    report: &mut CallReport,
) {
    let verbs = match &target.action {
        None => target.after.clone(),
        Some(action) => match request_action(cfg, call_sid, webhook_url, action).await {
            Ok(verbs) => verbs,
            Err(why) => {
                report
                    .violations
                    .push(format!("11200 <Connect action> failed: {why}"));
                vec![
                    FollowUp::Say(APPLICATION_ERROR.to_owned()),
                    FollowUp::Hangup,
                ]
            }
        },
    };
    for verb in verbs {
        match verb {
            FollowUp::Say(text) => report.heard_after_stream.push(text),
            FollowUp::Hangup => {
                report.hangup_after_stream = true;
                return;
            }
            FollowUp::Other(name) => report
                .violations
                .push(format!("simulator does not run <{name}> after a stream")),
        }
    }
}

async fn request_action(
    cfg: &CallConfig,
    call_sid: &str,
    webhook_url: &str,
    action: &str,
) -> Result<Vec<FollowUp>, String> {
    let url = url::Url::parse(webhook_url)
        .and_then(|base| base.join(action))
        .map_err(|e| format!("action url {action:?}: {e}"))?
        .to_string();
    let mut params = webhook_params(cfg, call_sid);
    for (name, value) in &mut params {
        if name == "CallStatus" {
            *value = "in-progress".to_owned();
        }
    }
    let mut request = http_client()
        .map_err(|e| e.to_string())?
        .post(&url)
        .timeout(cfg.connect_timeout)
        .header(reqwest::header::USER_AGENT, "TwilioProxy/1.1")
        .form(&params);
    if let Some(sig) = header_for(cfg.signature, &cfg.auth_token, &signing_url(&url), &params) {
        request = request.header("X-Twilio-Signature", sig);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status().as_u16()));
    }
    let body = response.text().await.map_err(|e| e.to_string())?;
    parse_follow_up(&body).map_err(|e| e.to_string())
}

fn is_xml(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "text/xml" || mime == "application/xml"
}

/// The parameters Twilio posts for an inbound call to a Voice URL (geo fields empty when
/// unknown, as Twilio sends them).
fn webhook_params(cfg: &CallConfig, call_sid: &str) -> Vec<(String, String)> {
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let mut params = vec![
        pair("AccountSid", &cfg.account_sid),
        pair("ApiVersion", "2010-04-01"),
        pair("CallSid", call_sid),
        pair("CallStatus", "ringing"),
        pair("Direction", "inbound"),
        pair("From", &cfg.from),
        pair("Caller", &cfg.from),
        pair("To", &cfg.to),
        pair("Called", &cfg.to),
    ];
    let sides = [
        ("From", &cfg.from),
        ("Caller", &cfg.from),
        ("To", &cfg.to),
        ("Called", &cfg.to),
    ];
    for (who, number) in sides {
        for field in ["City", "State", "Zip"] {
            params.push((format!("{who}{field}"), String::new()));
        }
        let country = if number.starts_with("+1") { "US" } else { "" };
        params.push((format!("{who}Country"), country.to_owned()));
    }
    params
}

/// Opens the media stream; Twilio signs the handshake over the stream URL with no
/// parameters.
async fn connect_stream(cfg: &CallConfig, url: &str) -> Result<session::Ws, CallError> {
    let fail = |reason: String| CallError::StreamConnect {
        url: url.to_owned(),
        reason,
    };
    ensure_crypto_provider();
    let mut request = url.into_client_request().map_err(|e| fail(e.to_string()))?;
    if let Some(sig) = header_for(cfg.signature, &cfg.auth_token, url, &[]) {
        let value = HeaderValue::from_str(&sig).map_err(|e| fail(e.to_string()))?;
        request.headers_mut().insert("X-Twilio-Signature", value);
    }
    let connect = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(cfg.connect_timeout, connect).await {
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(_) => Err(fail(format!(
            "no handshake within {} ms",
            cfg.connect_timeout.as_millis()
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn webhook_params_are_twilios_inbound_set() {
        let cfg = CallConfig {
            from: "+15551230000".into(),
            to: "+15005550006".into(),
            ..CallConfig::default()
        };
        let params = webhook_params(&cfg, "CA1");
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CallSid"), Some("CA1"));
        assert_eq!(get("CallStatus"), Some("ringing"));
        assert_eq!(get("Direction"), Some("inbound"));
        assert_eq!(get("ApiVersion"), Some("2010-04-01"));
        assert_eq!(get("Called"), Some("+15005550006"));
        assert_eq!(get("Caller"), Some("+15551230000"));
        assert_eq!(get("ToCountry"), Some("US"));
        assert_eq!(get("FromCity"), Some(""));
        let mut names: Vec<_> = params.iter().map(|(n, _)| n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), params.len(), "duplicate parameter");
    }

    #[test]
    fn xml_content_types() {
        assert!(is_xml("text/xml"));
        assert!(is_xml("application/xml; charset=utf-8"));
        assert!(is_xml("Text/XML"));
        assert!(!is_xml("text/html"));
        assert!(!is_xml(""));
    }
}
