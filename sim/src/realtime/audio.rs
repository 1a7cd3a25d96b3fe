//! The assistant's voice: a loop of synthetic speech, pre-cut into base64 deltas once per
//! server so that streaming a response costs no synthesis or encoding.

use super::codec::{self, AudioFormat};
use crate::mulaw;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::sync::OnceLock;

/// Length of the speech loop responses cycle through.
const LOOP_MS: u32 = 6000;
/// Pitch seed of the assistant's voice (callers use other seeds).
const AGENT_SEED: u32 = 3;

/// Base64 delta payloads, one per `delta_ms` of speech, per output format.
#[derive(Debug)]
pub struct AudioBank {
    delta_ms: u32,
    ulaw: Vec<u8>,
    pcmu: OnceLock<Vec<String>>,
    pcma: OnceLock<Vec<String>>,
    pcm: OnceLock<Vec<String>>,
}

impl AudioBank {
    /// Synthesises the loop; chunks are encoded lazily per format.
    pub fn new(delta_ms: u32) -> Self {
        let delta_ms = delta_ms.max(1);
        let chunks = LOOP_MS.div_ceil(delta_ms);
        Self {
            delta_ms,
            ulaw: mulaw::speech((chunks * delta_ms) as usize, AGENT_SEED),
            pcmu: OnceLock::new(),
            pcma: OnceLock::new(),
            pcm: OnceLock::new(),
        }
    }

    /// Milliseconds per chunk.
    pub fn delta_ms(&self) -> u32 {
        self.delta_ms
    }

    /// The `k`-th delta payload of a response in `format` (the loop repeats).
    pub fn chunk(&self, format: AudioFormat, k: u64) -> &str {
        let cell = match format {
            AudioFormat::Pcmu => &self.pcmu,
            AudioFormat::Pcma => &self.pcma,
            AudioFormat::Pcm => &self.pcm,
        };
        let chunks = cell.get_or_init(|| self.encode(format));
        // `encode` never returns an empty list: the loop is at least one chunk long.
        let i = (k % chunks.len().max(1) as u64) as usize;
        chunks.get(i).map_or("", String::as_str)
    }

    fn encode(&self, format: AudioFormat) -> Vec<String> {
        let step = self.delta_ms as usize * mulaw::BYTES_PER_MS;
        self.ulaw
            .chunks(step)
            .map(|c| STANDARD.encode(codec::from_mulaw(c, format)))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chunks_decode_to_delta_sized_speech() {
        let bank = AudioBank::new(40);
        let bytes = STANDARD.decode(bank.chunk(AudioFormat::Pcmu, 0)).unwrap();
        assert_eq!(bytes.len(), 320);
        assert!(mulaw::rms(&bytes) > 1000.0);
        let pcm = STANDARD.decode(bank.chunk(AudioFormat::Pcm, 7)).unwrap();
        assert_eq!(pcm.len(), 40 * 48);
        // The loop wraps instead of running out.
        assert_eq!(
            bank.chunk(AudioFormat::Pcmu, 0),
            bank.chunk(AudioFormat::Pcmu, 150)
        );
    }
}
