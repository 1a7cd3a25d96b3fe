//! What a call cost: its token usage (summed over every `response.done`) and its minutes,
//! priced with the table of known Realtime models below or the tenant's `spec.pricing`.
//!
//! Prices were read on 2026-12-07 from OpenAI's model pages as stored in the project's
//! documentation search (developers.openai.com/api/docs/models/<model>), each entry naming
//! its source; see docs/api.md, "Costs". A model whose price could not be found there
//! (`gpt-realtime-mini`, dated snapshots) has no entry: none is guessed, and its calls'
//! cost is "unknown" ([`unknown_reason`]) unless the tenant sets the six token prices.

use serde::Serialize;
use switchboard_crds::PricingSpec;
use switchboard_store::{CallCost, Usage};

/// Where the table's prices come from (the general statement; each entry names its page).
pub const TABLE_SOURCE: &str =
    "OpenAI model pages (developers.openai.com/api/docs/models/<model>), read 2026-12-07";

/// Prices of one model, US dollars per million tokens, plus a per-minute rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prices {
    /// Text input.
    pub text_input: f64,
    /// Cached text input.
    pub text_cached_input: f64,
    /// Text output.
    pub text_output: f64,
    /// Audio input.
    pub audio_input: f64,
    /// Cached audio input.
    pub audio_cached_input: f64,
    /// Audio output.
    pub audio_output: f64,
    /// Per minute of call (not part of OpenAI's prices: the tenant's carrier rate).
    pub per_minute: f64,
}

const fn tokens(t: [f64; 3], a: [f64; 3]) -> Prices {
    Prices {
        text_input: t[0],
        text_cached_input: t[1],
        text_output: t[2],
        audio_input: a[0],
        audio_cached_input: a[1],
        audio_output: a[2],
        per_minute: 0.0,
    }
}

/// OpenAI's page of a model, read 2026-12-07 through the documentation search.
const PAGE_1_5: &str =
    "OpenAI model page developers.openai.com/api/docs/models/gpt-realtime-1.5, read 2026-12-07";
const PAGE_2: &str =
    "OpenAI model page developers.openai.com/api/docs/models/gpt-realtime-2, read 2026-12-07";
const PAGE_2_1: &str =
    "OpenAI model page developers.openai.com/api/docs/models/gpt-realtime-2.1, read 2026-12-07";
const PAGE_2_1_MINI: &str = "OpenAI model page developers.openai.com/api/docs/models/gpt-realtime-2.1-mini, read 2026-12-07";
const PAGE_4O: &str = "OpenAI model page developers.openai.com/api/docs/models/gpt-4o-realtime-preview (model shut down), read 2026-12-07";
const PAGE_4O_MINI: &str = "OpenAI model page developers.openai.com/api/docs/models/gpt-4o-mini-realtime-preview, read 2026-12-07";
/// OpenAI's own gpt-realtime page is not in the stored documentation: the figures are a
/// maintained price table's copy of it (equal to OpenAI's gpt-realtime-1.5 page).
const SECONDARY_REALTIME: &str = "truefoundry/models providers/openai/gpt-realtime.yaml (a copy of OpenAI's gpt-realtime page, which the documentation search does not hold), read 2026-12-07";

/// The table: (model, [text input, cached, output], [audio input, cached, output],
/// source). Only the names the CRD accepts without a date; a dated snapshot can be
/// priced differently from its alias (OpenAI repriced snapshots of the same model), so
/// it is not priced from this table.
const TABLE: &[(&str, Prices, &str)] = &[
    (
        "gpt-realtime",
        tokens([4.0, 0.4, 16.0], [32.0, 0.4, 64.0]),
        SECONDARY_REALTIME,
    ),
    (
        "gpt-realtime-1.5",
        tokens([4.0, 0.4, 16.0], [32.0, 0.4, 64.0]),
        PAGE_1_5,
    ),
    (
        "gpt-realtime-2",
        tokens([4.0, 0.4, 24.0], [32.0, 0.4, 64.0]),
        PAGE_2,
    ),
    (
        "gpt-realtime-2.1",
        tokens([4.0, 0.4, 24.0], [32.0, 0.4, 64.0]),
        PAGE_2_1,
    ),
    (
        "gpt-realtime-2.1-mini",
        tokens([0.6, 0.06, 2.4], [10.0, 0.3, 20.0]),
        PAGE_2_1_MINI,
    ),
    (
        "gpt-4o-realtime-preview",
        tokens([5.0, 2.5, 20.0], [40.0, 2.5, 80.0]),
        PAGE_4O,
    ),
    (
        "gpt-4o-mini-realtime-preview",
        tokens([0.6, 0.3, 2.4], [10.0, 0.3, 20.0]),
        PAGE_4O_MINI,
    ),
];

/// The table's prices for `model` and their source, if it has them.
pub fn table(model: &str) -> Option<(Prices, &'static str)> {
    TABLE
        .iter()
        .find(|(m, _, _)| *m == model)
        .map(|(_, p, src)| (*p, *src))
}

/// Why a call of `model` has no cost, said in its record's place instead of a number.
pub fn unknown_reason(model: &str) -> String {
    format!(
        "no published price for {model} was found (docs/api.md, Costs) and spec.pricing does not set all six token prices"
    )
}

/// The prices a tenant's calls are charged at and where they come from; `None` when the
/// model is not in the table and the tenant does not set all six token prices.
pub fn prices_for(model: &str, pricing: Option<&PricingSpec>) -> Option<(Prices, &'static str)> {
    let o = pricing.cloned().unwrap_or_default();
    let overrides = o.fields().iter().any(|(_, v)| v.is_some());
    let base = match table(model) {
        Some((p, _)) => p,
        None => {
            // Every token price must come from the tenant.
            let all = [
                o.text_input,
                o.text_cached_input,
                o.text_output,
                o.audio_input,
                o.audio_cached_input,
                o.audio_output,
            ];
            if all.iter().any(Option::is_none) {
                return None;
            }
            tokens([0.0; 3], [0.0; 3])
        }
    };
    let p = Prices {
        text_input: o.text_input.unwrap_or(base.text_input),
        text_cached_input: o.text_cached_input.unwrap_or(base.text_cached_input),
        text_output: o.text_output.unwrap_or(base.text_output),
        audio_input: o.audio_input.unwrap_or(base.audio_input),
        audio_cached_input: o.audio_cached_input.unwrap_or(base.audio_cached_input),
        audio_output: o.audio_output.unwrap_or(base.audio_output),
        per_minute: o.per_minute.unwrap_or(base.per_minute),
    };
    let source = match (table(model), overrides) {
        (Some((_, page)), false) => page,
        (Some(_), true) => "the tenant's spec.pricing over the table",
        (None, _) => "the tenant's spec.pricing",
    };
    Some((p, source))
}

/// Tokens by price class. Cached tokens are a subset of input tokens: they are charged
/// at the cached rate and not again at the input rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Billed {
    /// Uncached text input.
    pub text_input: u64,
    /// Cached text input.
    pub text_cached_input: u64,
    /// Text output.
    pub text_output: u64,
    /// Uncached audio input.
    pub audio_input: u64,
    /// Cached audio input.
    pub audio_cached_input: u64,
    /// Audio output.
    pub audio_output: u64,
}

impl Billed {
    /// Splits `u` into price classes. When OpenAI did not say how cached tokens divide
    /// between text and audio (`cached_tokens_details` absent), the rest is taken as
    /// audio up to the audio input, then as text: a call's context is mostly audio.
    pub fn from_usage(u: &Usage) -> Self {
        let mut cached_audio = u.cached_audio_tokens.min(u.input_audio_tokens);
        let mut cached_text = u.cached_text_tokens.min(u.input_text_tokens);
        let unexplained = u
            .cached_tokens
            .saturating_sub(cached_audio.saturating_add(cached_text));
        let more_audio = unexplained.min(u.input_audio_tokens - cached_audio);
        cached_audio += more_audio;
        cached_text = cached_text
            .saturating_add(unexplained - more_audio)
            .min(u.input_text_tokens);
        Self {
            text_input: u.input_text_tokens - cached_text,
            text_cached_input: cached_text,
            text_output: u.output_text_tokens,
            audio_input: u.input_audio_tokens - cached_audio,
            audio_cached_input: cached_audio,
            audio_output: u.output_audio_tokens,
        }
    }
}

/// The detail document stored with a cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostDetail {
    /// The model priced.
    pub model: String,
    /// Where the prices come from.
    pub source: &'static str,
    /// Prices used.
    pub prices: Prices,
    /// Tokens by price class.
    pub tokens: Billed,
    /// Call minutes charged at `prices.per_minute`.
    pub minutes: f64,
    /// Tokens, US dollars.
    pub tokens_usd: f64,
    /// Minutes, US dollars.
    pub minutes_usd: f64,
    /// Total, US dollars.
    pub total_usd: f64,
}

/// The cost of a call of `seconds` that used `usage` at `prices`.
pub fn compute(
    model: &str,
    usage: &Usage,
    seconds: f64,
    prices: Prices,
    source: &'static str,
) -> CostDetail {
    let b = Billed::from_usage(usage);
    #[allow(clippy::cast_precision_loss)] // token counts stay far below 2^52
    let m = |n: u64, per_million: f64| n as f64 * per_million / 1_000_000.0;
    let tokens_usd = m(b.text_input, prices.text_input)
        + m(b.text_cached_input, prices.text_cached_input)
        + m(b.text_output, prices.text_output)
        + m(b.audio_input, prices.audio_input)
        + m(b.audio_cached_input, prices.audio_cached_input)
        + m(b.audio_output, prices.audio_output);
    let minutes = seconds.max(0.0) / 60.0;
    let minutes_usd = minutes * prices.per_minute;
    CostDetail {
        model: model.to_string(),
        source,
        prices,
        tokens: b,
        minutes,
        tokens_usd,
        minutes_usd,
        total_usd: tokens_usd + minutes_usd,
    }
}

impl CostDetail {
    /// The stored form: micro-dollars (rounded) and this document as JSON.
    pub fn to_record(&self) -> CallCost {
        #[allow(clippy::cast_possible_truncation)] // a call never costs 9e12 dollars
        let total_micro_usd = (self.total_usd * 1_000_000.0).round() as i64;
        CallCost {
            total_micro_usd,
            detail: serde_json::to_string(self).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage() -> Usage {
        Usage {
            responses: 2,
            total_tokens: 0,
            input_tokens: 11_000,
            output_tokens: 5_500,
            input_audio_tokens: 10_000,
            input_text_tokens: 1_000,
            cached_tokens: 4_000,
            cached_text_tokens: 500,
            cached_audio_tokens: 3_500,
            output_audio_tokens: 5_000,
            output_text_tokens: 500,
        }
    }

    #[test]
    fn cached_tokens_are_charged_once_at_the_cached_rate() {
        let (p, src) = prices_for("gpt-realtime-2.1-mini", None).unwrap();
        assert_eq!(src, PAGE_2_1_MINI);
        let c = compute("gpt-realtime-2.1-mini", &usage(), 120.0, p, src);
        assert_eq!(
            c.tokens,
            Billed {
                text_input: 500,
                text_cached_input: 500,
                text_output: 500,
                audio_input: 6_500,
                audio_cached_input: 3_500,
                audio_output: 5_000,
            }
        );
        // 500*0.6 + 500*0.06 + 500*2.4 + 6500*10 + 3500*0.3 + 5000*20, per million.
        let want = (300.0 + 30.0 + 1_200.0 + 65_000.0 + 1_050.0 + 100_000.0) / 1e6;
        assert!(
            (c.total_usd - want).abs() < 1e-12,
            "{} vs {want}",
            c.total_usd
        );
        assert_eq!(c.to_record().total_micro_usd, 167_580);
        assert!((c.minutes - 2.0).abs() < 1e-12);
    }

    #[test]
    fn cached_split_missing_is_taken_as_audio_first() {
        let mut u = usage();
        u.cached_text_tokens = 0;
        u.cached_audio_tokens = 0;
        u.cached_tokens = 10_500;
        let b = Billed::from_usage(&u);
        assert_eq!(b.audio_cached_input, 10_000);
        assert_eq!(b.audio_input, 0);
        assert_eq!(b.text_cached_input, 500);
        assert_eq!(b.text_input, 500);
    }

    #[test]
    fn hostile_usage_never_underflows() {
        let u = Usage {
            cached_tokens: u64::MAX,
            cached_text_tokens: u64::MAX,
            cached_audio_tokens: u64::MAX,
            input_audio_tokens: 3,
            input_text_tokens: 2,
            ..Usage::default()
        };
        let b = Billed::from_usage(&u);
        assert_eq!(b.audio_cached_input + b.audio_input, 3);
        assert_eq!(b.text_cached_input + b.text_input, 2);
    }

    #[test]
    fn every_model_the_crd_accepts_is_priced_or_explicitly_unknown() {
        // The names the CRD's model pattern accepts without a date.
        let priced = [
            "gpt-realtime",
            "gpt-realtime-1.5",
            "gpt-realtime-2",
            "gpt-realtime-2.1",
            "gpt-realtime-2.1-mini",
            "gpt-4o-realtime-preview",
            "gpt-4o-mini-realtime-preview",
        ];
        let accepted = switchboard_crds::is_realtime_model;
        for m in priced {
            assert!(accepted(m), "{m} is not a model the CRD accepts");
            let (p, src) = prices_for(m, None).unwrap_or_else(|| panic!("{m} unpriced"));
            assert!(p.audio_input > 0.0 && p.audio_output > 0.0, "{m}");
            assert!(src.contains("read 2026-12-07"), "{m}: {src}");
        }
        // No price found: unknown, not guessed.
        for m in [
            "gpt-realtime-mini",
            "gpt-realtime-2025-08-28",
            "gpt-4o-realtime-preview-2024-10-01",
        ] {
            assert!(accepted(m), "{m} is not a model the CRD accepts");
            assert_eq!(prices_for(m, None), None, "{m}");
            assert!(unknown_reason(m).contains(m));
        }
    }

    #[test]
    fn unknown_model_needs_every_token_price() {
        assert_eq!(prices_for("gpt-realtime-mini", None), None);
        let mut o = PricingSpec {
            text_input: Some(1.0),
            text_cached_input: Some(0.1),
            text_output: Some(2.0),
            audio_input: Some(3.0),
            audio_cached_input: Some(0.3),
            audio_output: None,
            per_minute: Some(0.01),
        };
        assert_eq!(prices_for("gpt-realtime-mini", Some(&o)), None);
        o.audio_output = Some(6.0);
        let (p, src) = prices_for("gpt-realtime-mini", Some(&o)).unwrap();
        assert_eq!(src, "the tenant's spec.pricing");
        assert_eq!(p.audio_output, 6.0);
        assert_eq!(p.per_minute, 0.01);
    }

    #[test]
    fn tenant_overrides_one_price_of_a_known_model() {
        let o = PricingSpec {
            audio_output: Some(50.0),
            per_minute: Some(0.0085),
            ..PricingSpec::default()
        };
        let (p, src) = prices_for("gpt-realtime-2", Some(&o)).unwrap();
        assert_eq!(src, "the tenant's spec.pricing over the table");
        assert_eq!(p.audio_output, 50.0);
        assert_eq!(p.audio_input, 32.0);
        assert_eq!(p.text_output, 24.0);
        let c = compute("gpt-realtime-2", &Usage::default(), 90.0, p, src);
        assert!((c.total_usd - 1.5 * 0.0085).abs() < 1e-12);
    }
}
