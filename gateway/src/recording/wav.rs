//! The recording's file formats: the two track files written during a call, and the
//! WAV they become at hang-up.
//!
//! The WAV is 16-bit PCM, 8 kHz, 2 channels (caller left, agent right). µ-law would keep
//! the bytes exactly as Twilio sent them at half the size, but browsers' `<audio>`
//! (Chrome, Firefox) play only PCM WAV, and the console plays recordings in the browser.
//! Nothing is lost either way: G.711 µ-law expands to 16-bit exactly, each of its 256
//! codes to one PCM value.
//!
//! During the call each channel is its own file of µ-law bytes at their sample
//! positions, stored inverted (`byte ^ 0xFF`) so that µ-law silence (0xFF) is a zero
//! byte: a gap (packet loss, the agent not speaking) is a hole in a sparse file, written
//! by nobody, and reads back as silence.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// Sample rate.
pub const SAMPLE_RATE: u32 = 8000;
/// Channels: caller, agent.
pub const CHANNELS: u16 = 2;
/// Bytes per sample per channel.
const BYTES_PER_SAMPLE: u16 = 2;
/// Size of the canonical WAV header.
pub const HEADER_BYTES: u64 = 44;
/// Samples read per step of [`finalise`] (bounded memory however long the call).
const BLOCK: usize = 4096;

/// The PCM value of each µ-law code (ITU-T G.711).
static ULAW_TO_PCM: [i16; 256] = ulaw_table();

const fn ulaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        let u = !(i as u8);
        let sign = u & 0x80;
        let exponent = ((u >> 4) & 0x07) as i32;
        let mantissa = (u & 0x0F) as i32;
        let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
        table[i] = if sign != 0 {
            -(magnitude as i16)
        } else {
            magnitude as i16
        };
        i += 1;
    }
    table
}

/// The PCM sample of a µ-law byte.
pub fn ulaw_to_pcm(b: u8) -> i16 {
    ULAW_TO_PCM[usize::from(b)]
}

/// A µ-law byte as stored in a track file.
pub fn to_track(b: u8) -> u8 {
    b ^ 0xFF
}

/// The 44-byte header of a 16-bit PCM WAV with `samples` frames of [`CHANNELS`].
pub fn header(samples: u64) -> [u8; 44] {
    let block_align = CHANNELS * BYTES_PER_SAMPLE;
    let data = u32::try_from(samples * u64::from(block_align)).unwrap_or(u32::MAX - 36);
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&CHANNELS.to_le_bytes());
    h[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(SAMPLE_RATE * u32::from(block_align)).to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&(BYTES_PER_SAMPLE * 8).to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

/// Size of the WAV of `samples` frames, bytes.
pub fn wav_bytes(samples: u64) -> u64 {
    HEADER_BYTES + samples * u64::from(CHANNELS * BYTES_PER_SAMPLE)
}

/// Reads up to `buf.len()` bytes; fewer only at the end of the file.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes the WAV of the two track files (each may be shorter than the call, or
/// missing: silence) with exactly `samples` frames to `out`, and syncs it to disk.
/// Returns its size in bytes.
pub fn finalise(caller: &Path, agent: &Path, out: &Path, samples: u64) -> io::Result<u64> {
    let open = |p: &Path| match File::open(p) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    };
    let mut tracks = [open(caller)?, open(agent)?];
    // Written in blocks of `frame` without a `BufWriter`: each write is already 16 KiB.
    let mut w = File::create(out)?;
    w.write_all(&header(samples))?;
    let mut bufs = [[0u8; BLOCK], [0u8; BLOCK]];
    let mut frame = [0u8; BLOCK * 4];
    let mut left = samples;
    while left > 0 {
        let n = usize::try_from(left.min(BLOCK as u64)).unwrap_or(BLOCK);
        for (track, buf) in tracks.iter_mut().zip(bufs.iter_mut()) {
            let got = match track {
                Some(f) => read_full(f, &mut buf[..n])?,
                None => 0,
            };
            buf[got..n].fill(0);
        }
        for i in 0..n {
            let l = ulaw_to_pcm(bufs[0][i] ^ 0xFF).to_le_bytes();
            let r = ulaw_to_pcm(bufs[1][i] ^ 0xFF).to_le_bytes();
            frame[i * 4..i * 4 + 4].copy_from_slice(&[l[0], l[1], r[0], r[1]]);
        }
        w.write_all(&frame[..n * 4])?;
        left -= n as u64;
    }
    w.sync_all()?;
    Ok(wav_bytes(samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_expands_as_g711() {
        assert_eq!(ulaw_to_pcm(0xFF), 0);
        assert_eq!(ulaw_to_pcm(0x7F), 0);
        assert_eq!(ulaw_to_pcm(0x00), -32124);
        assert_eq!(ulaw_to_pcm(0x80), 32124);
        assert_eq!(ulaw_to_pcm(0xF0), 120);
        // 256 codes, 255 distinct values (+0 and -0 are both 0): nothing else collides.
        let mut v: Vec<i16> = (0..=255u8).map(ulaw_to_pcm).collect();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), 255);
    }

    #[test]
    fn finalise_interleaves_pads_and_truncates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let caller = dir.path().join("c");
        let agent = dir.path().join("a");
        // Caller: 3 samples of code 0x80; agent: a hole (silence) then 0x00, and longer
        // than the call (cut).
        std::fs::write(&caller, [to_track(0x80); 3]).expect("write");
        std::fs::write(&agent, [0, 0, to_track(0x00), 0, 0, 0, 0]).expect("write");
        let out = dir.path().join("w.wav");
        let bytes = finalise(&caller, &agent, &out, 5).expect("finalise");
        let wav = std::fs::read(&out).expect("read");
        assert_eq!(wav.len() as u64, bytes);
        assert_eq!(bytes, 44 + 5 * 4);
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes([wav[40], wav[41], wav[42], wav[43]]), 20);
        let s = |i: usize| i16::from_le_bytes([wav[44 + i * 2], wav[45 + i * 2]]);
        let frames: Vec<(i16, i16)> = (0..5).map(|f| (s(2 * f), s(2 * f + 1))).collect();
        assert_eq!(
            frames,
            [(32124, 0), (32124, 0), (32124, -32124), (0, 0), (0, 0)]
        );
        // A missing track is silence.
        let bytes = finalise(&dir.path().join("none"), &agent, &out, 2).expect("finalise");
        assert_eq!(bytes, 44 + 8);
    }
}
