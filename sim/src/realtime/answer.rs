//! What the simulated model says about a function output or a key press: a short spoken
//! sentence, the way a real model answers, never the raw JSON it was given.
//!
//! A real model reads the knowledge tool's passages and says one or two sentences built
//! from the best one. The simulator does the deterministic version of that: the opening
//! sentence of the top passage (two when the first is very short), kept short. The raw
//! output stays where it was (the session log's `function_outputs`, the gateway's record).

use serde_json::Value;

/// Longest spoken answer built from a passage, in characters.
const MAX_ANSWER: usize = 220;
/// A first sentence shorter than this is followed by the next one.
const SHORT_SENTENCE: usize = 60;
/// Said when the knowledge tool found nothing.
pub const NOTHING_FOUND: &str =
    "I'm sorry, I couldn't find that in our information. I can take a message for the team.";

/// The spoken form of a knowledge tool's output (`{"passages":[{"text":…},…]}`), or `None`
/// when the output has no passages array (it is then spoken as it is).
pub fn from_passages(output: &str) -> Option<String> {
    let v: Value = serde_json::from_str(output).ok()?;
    let passages = v.get("passages")?.as_array()?;
    let Some(text) = passages
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .find(|t| !t.trim().is_empty())
    else {
        return Some(NOTHING_FOUND.to_owned());
    };
    Some(opening_sentences(text))
}

/// The first sentence of `text` (and the second when the first is short), whitespace
/// collapsed, cut at a word boundary if still too long.
fn opening_sentences(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = String::new();
    let mut sentences = 0;
    for word in words {
        if out.chars().count() + word.chars().count() + 1 > MAX_ANSWER {
            let cut = out.trim_end_matches([',', ';', ':']).to_owned();
            return format!("{cut}.");
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        if word.ends_with(['.', '?', '!']) {
            sentences += 1;
            if sentences == 2 || out.chars().count() >= SHORT_SENTENCE {
                return out;
            }
        }
    }
    if !out.is_empty() && !out.ends_with(['.', '?', '!']) {
        out.push('.');
    }
    out
}

/// The key in the gateway's note of a key press (`[The caller pressed the key "5" on
/// their phone keypad.]`), if `text` is one.
pub fn pressed_key(text: &str) -> Option<char> {
    let rest = &text[text.find("pressed the key \"")? + "pressed the key \"".len()..];
    let mut chars = rest.chars();
    match (chars.next(), chars.next()) {
        (Some(key), Some('"')) => Some(key),
        _ => None,
    }
}

/// What a receptionist says to a key press on a line that has no keypad menu.
pub fn key_press_reply(key: char) -> String {
    format!(
        "You pressed {key}, but there is no keypad menu on this line. Just tell me what you need, for example to book a check-up."
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_the_top_passages_opening_sentence_not_json() {
        let output = r#"{"query":"opening hours on Saturday","passages":[
            {"source":"demo-faq/inline/opening-hours#0","title":"Opening hours","score":0.694,
             "text":"Demo Dental is open Monday to Friday from 8am to 6pm and on Saturday from\n9am to 1pm. We are closed on Sunday and on public holidays."},
            {"source":"demo-faq/inline/x#0","title":"X","score":0.5,"text":"Other."}]}"#;
        assert_eq!(
            from_passages(output).unwrap(),
            "Demo Dental is open Monday to Friday from 8am to 6pm and on Saturday from 9am to 1pm."
        );
    }

    #[test]
    fn a_short_first_sentence_takes_the_next_and_long_text_is_cut_at_a_word() {
        let two = r#"{"passages":[{"text":"Yes. We take Delta Dental. Ask us about others."}]}"#;
        assert_eq!(from_passages(two).unwrap(), "Yes. We take Delta Dental.");
        let long = format!(r#"{{"passages":[{{"text":"{}"}}]}}"#, "word ".repeat(100));
        let said = from_passages(&long).unwrap();
        assert!(said.chars().count() <= MAX_ANSWER + 1, "{said}");
        assert!(said.ends_with("word."), "{said}");
    }

    #[test]
    fn no_passages_is_said_so_and_other_outputs_are_left_alone() {
        assert_eq!(
            from_passages(r#"{"passages":[]}"#).as_deref(),
            Some(NOTHING_FOUND)
        );
        assert_eq!(from_passages("30 days with receipt."), None);
        assert_eq!(from_passages(r#"{"error":"timeout"}"#), None);
    }

    #[test]
    fn key_presses_are_recognised_in_the_gateways_note() {
        assert_eq!(
            pressed_key("[The caller pressed the key \"5\" on their phone keypad.]"),
            Some('5')
        );
        assert_eq!(pressed_key("5"), None);
        assert_eq!(pressed_key("pressed the key \"\""), None);
        let reply = key_press_reply('5');
        assert!(reply.starts_with("You pressed 5, "), "{reply}");
    }
}
