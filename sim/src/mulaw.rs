//! G.711 µ-law (PCMU, 8 kHz) coding and synthetic audio.

/// µ-law code of digital silence (0 linear). Twilio and OpenAI both pad with it.
pub const SILENCE: u8 = 0xFF;
/// Samples per millisecond at 8 kHz; one µ-law byte is one sample.
pub const BYTES_PER_MS: usize = 8;
/// One Twilio media frame: 20 ms.
pub const FRAME_BYTES: usize = 160;

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

/// Encodes one 16-bit linear sample to µ-law (ITU-T G.711).
pub fn encode(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    // Bit patterns fit in a byte by construction.
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Decodes one µ-law byte to a 16-bit linear sample.
pub fn decode(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    // |magnitude| <= 32124 so the cast cannot truncate.
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// Root-mean-square level of a µ-law buffer, in linear units (0 for digital silence).
pub fn rms(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let sum: f64 = bytes
        .iter()
        .map(|&b| {
            let x = f64::from(decode(b));
            x * x
        })
        .sum();
    (sum / bytes.len() as f64).sqrt()
}

/// `ms` milliseconds of µ-law silence.
pub fn silence(ms: usize) -> Vec<u8> {
    vec![SILENCE; ms * BYTES_PER_MS]
}

/// `ms` milliseconds of a voiced, speech-like signal (a 140 Hz fundamental with formant-ish
/// harmonics under a syllable-rate envelope), loud enough for any energy VAD.
/// `seed` varies the pitch so different speakers are distinguishable.
pub fn speech(ms: usize, seed: u32) -> Vec<u8> {
    let n = ms * BYTES_PER_MS;
    let f0 = 120.0 + f64::from(seed % 7) * 12.0;
    (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            // 4 Hz syllable envelope that never falls to silence.
            let env = 0.55 + 0.45 * (2.0 * std::f64::consts::PI * 4.0 * t).sin().abs();
            let mut v = 0.0;
            for (h, amp) in [(1.0, 1.0), (2.0, 0.6), (3.0, 0.45), (5.0, 0.3), (8.0, 0.2)] {
                v += amp * (2.0 * std::f64::consts::PI * f0 * h * t).sin();
            }
            let sample = (v / 2.55 * env * 9000.0).clamp(-32000.0, 32000.0);
            encode(sample as i16)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_byte_decodes_to_zero() {
        assert_eq!(decode(SILENCE), 0);
        assert_eq!(encode(0), SILENCE);
    }

    #[test]
    fn round_trip_is_within_quantisation_error() {
        for s in [-32000i16, -1000, -100, -1, 1, 100, 1000, 8000, 32000] {
            let back = decode(encode(s));
            let err = (i32::from(back) - i32::from(s)).abs();
            assert!(err <= i32::from(s).abs() / 16 + 8, "{s} -> {back}");
        }
    }

    #[test]
    fn speech_is_much_louder_than_silence() {
        assert!(rms(&speech(200, 1)) > 2000.0);
        assert_eq!(rms(&silence(200)), 0.0);
    }
}
