//! Placing a call: the signed webhook, the TwiML answer, the signed stream handshake.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::ids::new_sid;
use super::session::{self, Stream, StreamEnd};
use super::twiml::{StreamTarget, Twiml, parse_twiml, resolve_stream_url};
use super::{
    CallConfig, CallError, CallReport, DialReport, Person, ensure_crypto_provider, http_client, xml,
};
use crate::signature::{header_for, signing_url};
use crate::twilio_rest::Control;

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

    let mut control = cfg
        .rest
        .as_ref()
        .map(|r| r.register_call(&cfg.account_sid, &call_sid, &cfg.from, &cfg.to));
    let ws = connect_stream(cfg, &stream_url).await?;
    let stream_sid = new_sid("MZ");
    report.stream_sid = Some(stream_sid.clone());
    report.streams = 1;
    let stream = Stream {
        account_sid: &cfg.account_sid,
        call_sid: &call_sid,
        stream_sid: &stream_sid,
        webhook_sent,
        record_audio: cfg.record_audio,
        progress: cfg.progress.as_deref(),
    };
    let end = session::run(
        ws,
        &stream,
        cfg.script.clone(),
        &mut report,
        control.as_mut(),
    )
    .await;
    let mut ctx = Follow {
        cfg,
        call_sid: &call_sid,
        webhook_url: &webhook_url,
        webhook_sent,
        control,
    };
    match end {
        StreamEnd::CallerHungUp => {}
        StreamEnd::HungUpByRest => report.rest_hangup = true,
        StreamEnd::Redirected(doc) => {
            report.redirects += 1;
            report.redirect_at_ms = Some(webhook_sent.elapsed().as_millis() as u64);
            ctx.run(doc, &mut report).await;
        }
        StreamEnd::GatewayClosed => after_stream(&mut ctx, &target, &body, &mut report).await,
    }
    if let Some(rest) = &cfg.rest {
        rest.call_ended(&call_sid);
    }
    Ok(report)
}

/// What Twilio says when it cannot fetch or run the TwiML of a call.
pub(crate) const APPLICATION_ERROR: &str =
    "We are sorry, an application error has occurred. Goodbye.";
/// Documents one call may run after its first stream (Twilio follows at most 10
/// redirects, error 11215).
const MAX_DOCUMENTS: usize = 10;

/// The call after its first TwiML: what Twilio runs next, and what it needs to run it.
struct Follow<'a> {
    cfg: &'a CallConfig,
    call_sid: &'a str,
    webhook_url: &'a str,
    webhook_sent: Instant,
    control: Option<mpsc::UnboundedReceiver<Control>>,
}

/// Does what Twilio does once the gateway has closed a `<Connect><Stream>`: request
/// `<Connect action>` (signed POST) and run its answer, or run the verbs after
/// `</Connect>` in `doc` (the document that started the stream); with neither, the call
/// ends in silence (nothing is heard).
async fn after_stream(
    ctx: &mut Follow<'_>,
    target: &StreamTarget,
    doc: &str,
    report: &mut CallReport,
) {
    let Some(action) = &target.action else {
        ctx.run_from(doc.to_owned(), true, report).await;
        return;
    };
    match ctx.request(action, &[]).await {
        Ok(doc) => ctx.run(doc, report).await,
        Err(why) => {
            report
                .violations
                .push(format!("11200 <Connect action> failed: {why}"));
            report.heard_after_stream.push(APPLICATION_ERROR.to_owned());
            report.hangup_after_stream = true;
        }
    }
}

impl Follow<'_> {
    /// A signed POST of the call's parameters plus `extra` to `action` (relative to the
    /// webhook URL); the TwiML answered.
    async fn request(&self, action: &str, extra: &[(&str, String)]) -> Result<String, String> {
        let url = url::Url::parse(self.webhook_url)
            .and_then(|base| base.join(action))
            .map_err(|e| format!("action url {action:?}: {e}"))?
            .to_string();
        let mut params = webhook_params(self.cfg, self.call_sid);
        for (name, value) in &mut params {
            if name == "CallStatus" {
                *value = "in-progress".to_owned();
            }
        }
        for (k, v) in extra {
            params.push(((*k).to_owned(), v.clone()));
        }
        let mut request = http_client()
            .map_err(|e| e.to_string())?
            .post(&url)
            .timeout(self.cfg.connect_timeout)
            .header(reqwest::header::USER_AGENT, "TwilioProxy/1.1")
            .form(&params);
        if let Some(sig) = header_for(
            self.cfg.signature,
            &self.cfg.auth_token,
            &signing_url(&url),
            &params,
        ) {
            request = request.header("X-Twilio-Signature", sig);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        response.text().await.map_err(|e| e.to_string())
    }

    /// Runs TwiML documents as Twilio does until the call ends: `<Say>` is heard,
    /// `<Hangup/>` ends, `<Dial>` rings the simulated person and requests its action,
    /// `<Record>` leaves a voicemail and requests its action, `<Connect><Stream>` opens a
    /// new media stream (the caller back with the agent).
    async fn run(&mut self, doc: String, report: &mut CallReport) {
        self.run_from(doc, false, report).await;
    }

    /// [`Follow::run`], starting after the first `<Connect>` of `doc` when
    /// `after_connect` (its stream has ended: Twilio goes on with the next verb).
    async fn run_from(&mut self, mut doc: String, after_connect: bool, report: &mut CallReport) {
        let mut skip = after_connect;
        'documents: for _ in 0..MAX_DOCUMENTS {
            let root = match xml::parse(&doc) {
                Ok(r) if r.name == "Response" => r,
                Ok(r) => {
                    report
                        .violations
                        .push(format!("12100 TwiML root is <{}>", r.name));
                    return;
                }
                Err(e) => {
                    report.violations.push(format!("12100 TwiML not XML: {e}"));
                    return;
                }
            };
            for verb in root.elements() {
                if skip {
                    skip = verb.name != "Connect";
                    continue;
                }
                match verb.name.as_str() {
                    "Say" => report
                        .heard_after_stream
                        .push(verb.text().trim().to_owned()),
                    "Pause" => {}
                    "Hangup" => {
                        report.hangup_after_stream = true;
                        return;
                    }
                    "Dial" => {
                        let Some(next) = self.dial(verb, report).await else {
                            continue;
                        };
                        match next {
                            Ok(d) => {
                                doc = d;
                                continue 'documents;
                            }
                            Err(why) => {
                                report
                                    .violations
                                    .push(format!("11200 <Dial action> failed: {why}"));
                                return;
                            }
                        }
                    }
                    "Record" => {
                        let Some(action) = verb.attr("action") else {
                            report.violations.push("<Record> without action".to_owned());
                            return;
                        };
                        let url = format!(
                            "https://api.twilio.com/2010-04-01/Accounts/{}/Recordings/{}",
                            self.cfg.account_sid,
                            new_sid("RE")
                        );
                        report.recordings.push(url.clone());
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let sid = url.rsplit('/').next().unwrap_or_default().to_owned();
                        let extra = [
                            ("RecordingUrl", url),
                            ("RecordingSid", sid),
                            ("RecordingDuration", self.cfg.voicemail_secs.to_string()),
                        ];
                        match self.request(action, &extra).await {
                            Ok(d) => {
                                doc = d;
                                continue 'documents;
                            }
                            Err(why) => {
                                report
                                    .violations
                                    .push(format!("11200 <Record action> failed: {why}"));
                                return;
                            }
                        }
                    }
                    "Connect" => match self.connect(&doc, report).await {
                        Some((d, after_connect)) => {
                            doc = d;
                            skip = after_connect;
                            continue 'documents;
                        }
                        None => return,
                    },
                    other => {
                        report
                            .violations
                            .push(format!("simulator does not run <{other}>"));
                        return;
                    }
                }
            }
            // Out of verbs: Twilio hangs up.
            return;
        }
        report
            .violations
            .push("11215 too many TwiML documents for one call".to_owned());
    }

    /// Rings the person; `None` when the `<Dial>` has no action (Twilio goes on with the
    /// next verb), else the action's answer.
    async fn dial(
        &mut self,
        verb: &xml::Element,
        report: &mut CallReport,
    ) -> Option<Result<String, String>> {
        let noun = verb.elements().next();
        let to = noun.map(|n| n.text().trim().to_owned()).unwrap_or_default();
        if !matches!(noun.map(|n| n.name.as_str()), Some("Number" | "Sip")) {
            report
                .violations
                .push("<Dial> without a <Number> or <Sip>".to_owned());
        }
        let timeout_s: u32 = verb
            .attr("timeout")
            .and_then(|t| t.parse().ok())
            .unwrap_or(30);
        let at_ms = self.webhook_sent.elapsed().as_millis() as u64;
        let (status, duration) = match self.cfg.person {
            Person::Answers(secs) => ("completed", Some(secs)),
            Person::Busy => ("busy", None),
            Person::NoAnswer => {
                let ring = Duration::from_millis(self.cfg.ring_ms.min(u64::from(timeout_s) * 1000));
                tokio::time::sleep(ring).await;
                ("no-answer", None)
            }
        };
        report.dials.push(DialReport {
            to,
            caller_id: verb.attr("callerId").map(str::to_owned),
            timeout_s,
            status: status.to_owned(),
            at_ms,
        });
        let action = verb.attr("action")?;
        let mut extra = vec![
            ("DialCallStatus", status.to_owned()),
            ("DialCallSid", new_sid("CA")),
        ];
        if let Some(d) = duration {
            extra.push(("DialCallDuration", d.to_string()));
        }
        Some(self.request(action, &extra).await)
    }

    /// Runs the `<Connect><Stream>` of `doc` with the return script; the next document
    /// (the connect action's answer or a REST update; or `doc` itself with `true`: go on
    /// after its `</Connect>`), or `None` when the call ended.
    async fn connect(&mut self, doc: &str, report: &mut CallReport) -> Option<(String, bool)> {
        let target = match parse_twiml(doc) {
            Ok(Twiml::Connect(t)) => t,
            Ok(Twiml::Refused(why)) => {
                report.violations.push(format!("unexpected {why}"));
                return None;
            }
            Err(e) => {
                report.violations.push(format!("bad <Connect>: {e}"));
                return None;
            }
        };
        let (url, warnings) = match resolve_stream_url(&target.url, self.webhook_url) {
            Ok(u) => u,
            Err(e) => {
                report.violations.push(e.to_string());
                return None;
            }
        };
        report.violations.extend(warnings);
        let ws = match connect_stream(self.cfg, &url).await {
            Ok(ws) => ws,
            Err(e) => {
                report
                    .violations
                    .push(format!("31920 stream handshake failed: {e}"));
                return None;
            }
        };
        report.streams += 1;
        let stream_sid = new_sid("MZ");
        let stream = Stream {
            account_sid: &self.cfg.account_sid,
            call_sid: self.call_sid,
            stream_sid: &stream_sid,
            webhook_sent: self.webhook_sent,
            record_audio: self.cfg.record_audio,
            progress: None,
        };
        // A later leg reports into its own report, merged after: the first leg's turns
        // stay.
        let mut leg = CallReport {
            custom_parameters: target.parameters.clone(),
            ..CallReport::default()
        };
        let end = session::run(
            ws,
            &stream,
            self.cfg.return_script.clone(),
            &mut leg,
            self.control.as_mut(),
        )
        .await;
        report.turns.extend(leg.turns);
        report.agent_silences_ms.extend(leg.agent_silences_ms);
        report.heard_ms_total += leg.heard_ms_total;
        report.marks_received += leg.marks_received;
        report.marks_echoed += leg.marks_echoed;
        report.clears += leg.clears;
        report.violations.extend(leg.violations);
        report.frames_sent += leg.frames_sent;
        report.frames_dropped += leg.frames_dropped;
        if leg.last_mark_echo_ms.is_some() {
            report.last_mark_echo_ms = leg.last_mark_echo_ms;
        }
        report.script_timeouts.extend(leg.script_timeouts);
        report.stream_ms += leg.stream_ms;
        report.heard_audio.extend(leg.heard_audio);
        match end {
            StreamEnd::CallerHungUp => None,
            StreamEnd::HungUpByRest => {
                report.rest_hangup = true;
                None
            }
            StreamEnd::Redirected(d) => {
                report.redirects += 1;
                report.redirect_at_ms = Some(self.webhook_sent.elapsed().as_millis() as u64);
                Some((d, false))
            }
            StreamEnd::GatewayClosed => {
                report.ended_by_gateway = true;
                let Some(action) = target.action else {
                    return Some((doc.to_owned(), true));
                };
                match self.request(&action, &[]).await {
                    Ok(d) => Some((d, false)),
                    Err(why) => {
                        report
                            .violations
                            .push(format!("11200 <Connect action> failed: {why}"));
                        report.heard_after_stream.push(APPLICATION_ERROR.to_owned());
                        report.hangup_after_stream = true;
                        None
                    }
                }
            }
        }
    }
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
