//! The three GA audio formats: sizes, sample decoding for the VAD, and conversion of the
//! simulator's µ-law speech into whatever output format the session asked for.

use crate::mulaw;
use serde_json::{Value, json};

/// A GA `audio.*.format` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    /// `{"type":"audio/pcm","rate":24000}`: 16-bit little-endian PCM, 24 kHz mono.
    Pcm,
    /// `{"type":"audio/pcmu"}`: G.711 µ-law, 8 kHz.
    Pcmu,
    /// `{"type":"audio/pcma"}`: G.711 A-law, 8 kHz.
    Pcma,
}

impl AudioFormat {
    /// Parses a format object; `None` when the type is not one of the GA formats or a PCM
    /// rate other than 24000 is asked for.
    pub fn from_json(v: &Value) -> Option<Self> {
        let (format, native_rate) = match v.get("type")?.as_str()? {
            "audio/pcm" => (Self::Pcm, 24_000),
            // G.711 is 8 kHz by definition; a rate, if given, must say so.
            "audio/pcmu" => (Self::Pcmu, 8_000),
            "audio/pcma" => (Self::Pcma, 8_000),
            _ => return None,
        };
        let rate_ok = match v.get("rate") {
            None | Some(Value::Null) => true,
            Some(r) => r.as_u64() == Some(native_rate),
        };
        rate_ok.then_some(format)
    }

    /// The format object as the server reports it.
    pub fn to_json(self) -> Value {
        match self {
            Self::Pcm => json!({"type": "audio/pcm", "rate": 24000}),
            Self::Pcmu => json!({"type": "audio/pcmu"}),
            Self::Pcma => json!({"type": "audio/pcma"}),
        }
    }

    /// Bytes per millisecond of audio.
    pub fn bytes_per_ms(self) -> u64 {
        match self {
            Self::Pcm => 48,
            Self::Pcmu | Self::Pcma => 8,
        }
    }
}

/// Decodes one G.711 A-law byte to a linear sample.
pub fn alaw_decode(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mut t = i32::from(a & 0x0F) << 4;
    let seg = i32::from((a & 0x70) >> 4);
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    // |t| <= 32256, so the cast cannot truncate.
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// Encodes one linear sample to G.711 A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut pcm = i32::from(sample) >> 3;
    let mask: i32 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = SEG_END.iter().position(|&end| pcm <= end).unwrap_or(8) as i32;
    let aval = if seg >= 8 {
        0x7F
    } else {
        let mantissa = if seg < 2 { pcm >> 1 } else { pcm >> seg };
        (seg << 4) | (mantissa & 0x0F)
    };
    // Only the low byte carries the code word.
    ((aval ^ mask) & 0xFF) as u8
}

/// Running sum of squares over the linear samples of a byte stream in one format; keeps an
/// odd trailing PCM byte across calls so appends may split samples anywhere.
#[derive(Debug, Default, Clone)]
pub struct SampleReader {
    pending_low: Option<u8>,
}

impl SampleReader {
    /// Calls `f` with every complete linear sample in `bytes`.
    pub fn for_each_sample(&mut self, format: AudioFormat, bytes: &[u8], mut f: impl FnMut(i16)) {
        match format {
            AudioFormat::Pcmu => bytes.iter().for_each(|&b| f(mulaw::decode(b))),
            AudioFormat::Pcma => bytes.iter().for_each(|&b| f(alaw_decode(b))),
            AudioFormat::Pcm => {
                for &b in bytes {
                    match self.pending_low.take() {
                        Some(lo) => f(i16::from_le_bytes([lo, b])),
                        None => self.pending_low = Some(b),
                    }
                }
            }
        }
    }

    /// Samples per millisecond in `format`.
    pub fn samples_per_ms(format: AudioFormat) -> u64 {
        match format {
            AudioFormat::Pcm => 24,
            AudioFormat::Pcmu | AudioFormat::Pcma => 8,
        }
    }
}

/// Converts µ-law 8 kHz audio into `format`.
pub fn from_mulaw(ulaw: &[u8], format: AudioFormat) -> Vec<u8> {
    match format {
        AudioFormat::Pcmu => ulaw.to_vec(),
        AudioFormat::Pcma => ulaw
            .iter()
            .map(|&b| alaw_encode(mulaw::decode(b)))
            .collect(),
        AudioFormat::Pcm => {
            // Sample-and-hold upsampling 8 kHz -> 24 kHz: crude, but it is only test audio.
            let mut out = Vec::with_capacity(ulaw.len() * 6);
            for &b in ulaw {
                let s = mulaw::decode(b).to_le_bytes();
                for _ in 0..3 {
                    out.extend_from_slice(&s);
                }
            }
            out
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn alaw_round_trip_is_within_quantisation_error() {
        for s in [-32000i16, -1000, -100, -1, 0, 1, 100, 1000, 8000, 32000] {
            let back = alaw_decode(alaw_encode(s));
            let err = (i32::from(back) - i32::from(s)).abs();
            assert!(err <= i32::from(s).abs() / 16 + 16, "{s} -> {back}");
        }
    }

    #[test]
    fn format_json_round_trips() {
        for f in [AudioFormat::Pcm, AudioFormat::Pcmu, AudioFormat::Pcma] {
            assert_eq!(AudioFormat::from_json(&f.to_json()), Some(f));
        }
        assert_eq!(AudioFormat::from_json(&json!({"type": "g711_ulaw"})), None);
        assert_eq!(
            AudioFormat::from_json(&json!({"type": "audio/pcm", "rate": 16000})),
            None
        );
        assert_eq!(
            AudioFormat::from_json(&json!({"type": "audio/pcmu", "rate": 8000})),
            Some(AudioFormat::Pcmu)
        );
        assert_eq!(
            AudioFormat::from_json(&json!({"type": "audio/pcma", "rate": 24000})),
            None
        );
    }

    #[test]
    fn pcm_samples_survive_arbitrary_splits() {
        let samples: Vec<i16> = vec![1, -2, 300, -32000];
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut r = SampleReader::default();
        let mut got = Vec::new();
        r.for_each_sample(AudioFormat::Pcm, &bytes[..3], |s| got.push(s));
        r.for_each_sample(AudioFormat::Pcm, &bytes[3..], |s| got.push(s));
        assert_eq!(got, samples);
    }

    #[test]
    fn conversion_sizes_match_format_rates() {
        let ulaw = mulaw::speech(20, 1);
        assert_eq!(from_mulaw(&ulaw, AudioFormat::Pcmu).len(), 160);
        assert_eq!(from_mulaw(&ulaw, AudioFormat::Pcma).len(), 160);
        assert_eq!(from_mulaw(&ulaw, AudioFormat::Pcm).len(), 960);
    }
}
