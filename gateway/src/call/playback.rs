//! What the caller has heard of the agent: the barge-in recipe of voice-protocols.md A3.
//!
//! Every forwarded audio chunk is followed by a unique Twilio mark. Twilio echoes a mark
//! when the audio before it has played (or was flushed by `clear`), so the echoes are a
//! playout clock: `played_ms` of an item is the position of its last echoed mark. On
//! barge-in the item is truncated at `min(sent_ms, played_ms + 50)`; marks still pending
//! at the clear are remembered as cleared so their echoes are not taken for playback, and
//! the interrupted response is discarded so its late deltas never reach the caller.

use std::collections::{HashMap, HashSet};

/// µ-law at 8 kHz: 8 bytes per millisecond.
const BYTES_PER_MS: u64 = 8;
/// Slack added to what was heard: the mark lags actual playout by up to one chunk.
pub const TRUNCATE_SLACK_MS: u64 = 50;

#[derive(Debug)]
struct Item {
    item_id: String,
    /// `item_id` as it appears in mark names (computed once, not per chunk).
    mark_prefix: String,
    response_id: String,
    content_index: u32,
    sent_bytes: u64,
    played_bytes: u64,
    audio_done: bool,
}

#[derive(Debug)]
enum Pending {
    Chunk { item_id: String, sent_bytes: u64 },
    Done { item_id: String },
}

/// A truncation to send: `conversation.item.truncate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// Assistant item.
    pub item_id: String,
    /// Content part.
    pub content_index: u32,
    /// Cut point, ms of the item's audio.
    pub audio_end_ms: u64,
    /// What the playout clock says the caller heard, ms.
    pub played_ms: u64,
}

/// Result of an echoed mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkEcho {
    /// A chunk of `item_id` has played.
    Played {
        /// The item.
        item_id: String,
    },
    /// All of `item_id`'s audio has played.
    ItemFinished {
        /// The item.
        item_id: String,
    },
    /// The echo of a mark flushed by `clear`: nothing was played.
    Cleared,
    /// A name we never sent (or already saw).
    Unknown,
}

/// Playback bookkeeping for one call.
#[derive(Debug, Default)]
pub struct Playback {
    generation: u32,
    seq: u64,
    items: Vec<Item>,
    pending: HashMap<String, Pending>,
    cleared: HashSet<String>,
    discarded: HashSet<String>,
}

fn sanitize(id: &str) -> String {
    id.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Appends the decimal digits of `n`.
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

impl Playback {
    /// Forgets everything (a new `start`).
    pub fn reset(&mut self) {
        let generation = self.generation + 1;
        *self = Self::default();
        self.generation = generation;
    }

    /// Whether deltas of `response_id` must be dropped.
    pub fn is_discarded(&self, response_id: &str) -> bool {
        // Checked for every delta; usually nothing was ever discarded, so skip the hash.
        !self.discarded.is_empty() && self.discarded.contains(response_id)
    }

    /// Marks a response as cancelled: its late deltas are dropped.
    pub fn discard(&mut self, response_id: &str) {
        self.discarded.insert(response_id.to_string());
    }

    /// Records `bytes` of `item_id` forwarded to Twilio and returns the mark name to send
    /// after it. The caller must check [`Self::is_discarded`] first.
    pub fn on_chunk_sent(
        &mut self,
        response_id: &str,
        item_id: &str,
        content_index: u32,
        bytes: u64,
    ) -> String {
        let idx = match self.items.iter().position(|i| i.item_id == item_id) {
            Some(i) => i,
            None => {
                self.items.push(Item {
                    item_id: item_id.to_string(),
                    mark_prefix: sanitize(item_id),
                    response_id: response_id.to_string(),
                    content_index,
                    sent_bytes: 0,
                    played_bytes: 0,
                    audio_done: false,
                });
                self.items.len() - 1
            }
        };
        let item = &mut self.items[idx];
        item.sent_bytes += bytes;
        self.seq += 1;
        // `{item}:{sent ms}:g{generation}:m{seq}`, built without `format!` (per chunk).
        let mut name = String::with_capacity(item.mark_prefix.len() + 48);
        name.push_str(&item.mark_prefix);
        name.push(':');
        push_u64(&mut name, item.sent_bytes / BYTES_PER_MS);
        name.push_str(":g");
        push_u64(&mut name, u64::from(self.generation));
        name.push_str(":m");
        push_u64(&mut name, self.seq);
        self.pending.insert(
            name.clone(),
            Pending::Chunk {
                item_id: item_id.to_string(),
                sent_bytes: item.sent_bytes,
            },
        );
        name
    }

    /// `response.output_audio.done` for `item_id`: returns the done-mark to send, if the
    /// item had audio.
    pub fn on_audio_done(&mut self, item_id: &str) -> Option<String> {
        let item = self.items.iter_mut().find(|i| i.item_id == item_id)?;
        item.audio_done = true;
        self.seq += 1;
        let name = format!(
            "done:{}:g{}:m{}",
            sanitize(item_id),
            self.generation,
            self.seq
        );
        self.pending.insert(
            name.clone(),
            Pending::Done {
                item_id: item_id.to_string(),
            },
        );
        Some(name)
    }

    /// Twilio echoed mark `name`.
    pub fn on_mark(&mut self, name: &str) -> MarkEcho {
        if !self.cleared.is_empty() && self.cleared.remove(name) {
            return MarkEcho::Cleared;
        }
        match self.pending.remove(name) {
            Some(Pending::Chunk {
                item_id,
                sent_bytes,
            }) => {
                if let Some(item) = self.items.iter_mut().find(|i| i.item_id == item_id) {
                    item.played_bytes = item.played_bytes.max(sent_bytes);
                }
                MarkEcho::Played { item_id }
            }
            Some(Pending::Done { item_id }) => {
                self.items.retain(|i| i.item_id != item_id);
                MarkEcho::ItemFinished { item_id }
            }
            None => MarkEcho::Unknown,
        }
    }

    /// Whether audio was sent that the caller has not finished hearing.
    pub fn is_playing(&self) -> bool {
        !self.items.is_empty()
    }

    /// How much of `item_id` the caller has heard, in ms.
    pub fn played_ms(&self, item_id: &str) -> Option<u64> {
        self.items
            .iter()
            .find(|i| i.item_id == item_id)
            .map(|i| i.played_bytes / BYTES_PER_MS)
    }

    /// Ids of responses whose audio is still playing.
    pub fn playing_responses(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.items.iter().map(|i| i.response_id.clone()).collect();
        ids.dedup();
        ids
    }

    /// Barge-in: returns the truncations to send (after a Twilio `clear`), remembers
    /// pending marks as cleared, discards the playing responses, and starts a new
    /// generation. Empty when nothing was playing.
    pub fn interrupt(&mut self) -> Vec<Truncation> {
        let mut out = Vec::new();
        for (n, item) in self.items.iter().enumerate() {
            let sent_ms = item.sent_bytes / BYTES_PER_MS;
            let played_ms = item.played_bytes / BYTES_PER_MS;
            if item.audio_done && item.played_bytes >= item.sent_bytes {
                continue; // fully heard; its done-mark just has not come back yet
            }
            let audio_end_ms = if n == 0 || played_ms > 0 {
                sent_ms.min(played_ms + TRUNCATE_SLACK_MS)
            } else {
                0
            };
            out.push(Truncation {
                item_id: item.item_id.clone(),
                content_index: item.content_index,
                audio_end_ms,
                played_ms,
            });
        }
        for item in &self.items {
            self.discarded.insert(item.response_id.clone());
        }
        self.cleared.extend(self.pending.drain().map(|(k, _)| k));
        self.items.clear();
        self.generation += 1;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_unique_and_advance_played() {
        let mut p = Playback::default();
        let m1 = p.on_chunk_sent("r1", "item_a", 0, 800);
        let m2 = p.on_chunk_sent("r1", "item_a", 0, 800);
        assert_ne!(m1, m2);
        assert_eq!(
            p.on_mark(&m1),
            MarkEcho::Played {
                item_id: "item_a".into()
            }
        );
        assert_eq!(p.played_ms("item_a"), Some(100));
        // barge-in: 200 ms sent, 100 ms played => cut at 150 ms
        let t = p.interrupt();
        assert_eq!(
            t,
            vec![Truncation {
                item_id: "item_a".into(),
                content_index: 0,
                audio_end_ms: 150,
                played_ms: 100
            }]
        );
        // the echo of m2 after the clear is not playback
        assert_eq!(p.on_mark(&m2), MarkEcho::Cleared);
        assert!(p.is_discarded("r1"));
        assert!(!p.is_playing());
    }

    #[test]
    fn mark_names_carry_item_position_generation_and_sequence() {
        let mut p = Playback::default();
        assert_eq!(p.on_chunk_sent("r", "item 1", 0, 160), "item_1:20:g0:m1");
        assert_eq!(
            p.on_chunk_sent("r", "item 1", 0, 80_000),
            "item_1:10020:g0:m2"
        );
        p.interrupt();
        assert_eq!(p.on_chunk_sent("r2", "i", 0, 8), "i:1:g1:m3");
        let mut s = String::new();
        push_u64(&mut s, u64::MAX);
        assert_eq!(s, u64::MAX.to_string());
    }

    #[test]
    fn truncation_is_clamped_to_what_was_sent() {
        let mut p = Playback::default();
        let m = p.on_chunk_sent("r1", "i", 0, 160);
        p.on_mark(&m);
        let t = p.interrupt();
        assert_eq!(t[0].audio_end_ms, 20);
    }

    #[test]
    fn barge_in_before_any_echo_truncates_at_slack() {
        let mut p = Playback::default();
        p.on_chunk_sent("r1", "i", 0, 8000);
        assert_eq!(p.interrupt()[0].audio_end_ms, TRUNCATE_SLACK_MS);
    }

    #[test]
    fn second_unplayed_item_truncates_at_zero_and_finished_items_are_skipped() {
        let mut p = Playback::default();
        let a = p.on_chunk_sent("r1", "a", 0, 800);
        let done = p.on_audio_done("a").unwrap();
        p.on_mark(&a);
        p.on_chunk_sent("r1", "b", 0, 800);
        let c = p.on_chunk_sent("r2", "c", 0, 800);
        let _ = c;
        let t = p.interrupt();
        assert_eq!(
            t.iter()
                .map(|t| (t.item_id.as_str(), t.audio_end_ms))
                .collect::<Vec<_>>(),
            vec![("b", 0), ("c", 0)]
        );
        assert_eq!(p.on_mark(&done), MarkEcho::Cleared);
    }

    #[test]
    fn done_mark_finishes_item() {
        let mut p = Playback::default();
        let m = p.on_chunk_sent("r", "i", 0, 80);
        let d = p.on_audio_done("i").unwrap();
        p.on_mark(&m);
        assert!(p.is_playing());
        assert_eq!(
            p.on_mark(&d),
            MarkEcho::ItemFinished {
                item_id: "i".into()
            }
        );
        assert!(!p.is_playing());
        assert!(p.interrupt().is_empty());
        assert_eq!(p.on_mark("bogus"), MarkEcho::Unknown);
    }
}
