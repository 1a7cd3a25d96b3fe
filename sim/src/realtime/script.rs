//! What the simulated model says: choosing a response's output from the conversation and
//! the script, and splitting text into transcript deltas.

use super::answer;
use super::config::Turn;

/// Said when a caller turn arrives after the script is exhausted.
pub const UNSCRIPTED_REPLY: &str = "I'm sorry, I didn't catch that. Could you say it again?";
/// Said when a response is asked for with nothing new to answer.
pub const GENERIC_REPLY: &str = "Hello! How can I help you today?";
/// Said when the idle timeout prompts the caller.
pub const IDLE_REPLY: &str = "Are you still there?";
/// Said instead of a scripted answer naming the caller when nobody said their name.
pub const NO_NAME_REPLY: &str = "I'm sorry, I don't know your name.";
/// Said when the script wants a tool the session does not offer.
pub const NO_TOOL_REPLY: &str = "I'm sorry, I can't look that up right now.";
/// Template when a function output arrives for a call the script did not make.
const DEFAULT_TEMPLATE: &str = "Here is what I found: {output}";
/// Longest function output spoken verbatim when it is not the knowledge tool's passages
/// (those are answered with a sentence, see [`answer`]).
const MAX_SPOKEN_OUTPUT: usize = 300;
/// Longest client-supplied text spoken, so a huge instruction cannot stream for hours.
const MAX_SPOKEN_TEXT: usize = 1000;

/// One output item of a response.
#[derive(Debug, Clone, PartialEq)]
pub enum OutPlan {
    /// An assistant message speaking (or writing) this text.
    Speak(String),
    /// A function call.
    Call {
        /// Function name.
        name: String,
        /// JSON-encoded arguments.
        arguments: String,
        /// What to say once the output arrives.
        template: Option<String>,
    },
}

/// The conversation state a response answers.
#[derive(Debug, Clone, Copy)]
pub enum Prompt<'a> {
    /// The last item is caller audio, with the scripted turn it consumed (if any was left).
    CallerAudio(Option<&'a Turn>),
    /// The idle timeout fired.
    Idle,
    /// The last item is user text (how DTMF digits and injected context arrive).
    UserText(&'a str),
    /// The last item is a function output.
    FunctionOutput {
        /// The scripted template of the call, if the script made it.
        template: Option<&'a str>,
        /// The output string.
        output: &'a str,
    },
    /// Nothing new to answer.
    Nothing,
}

/// Chooses the output items of a response.
pub fn plan(
    instructions: Option<&str>,
    prompt: Prompt<'_>,
    tool_available: impl Fn(&str) -> bool,
) -> Vec<OutPlan> {
    if let Some(text) = instructions.and_then(said_text) {
        return vec![OutPlan::Speak(clip(&text, MAX_SPOKEN_TEXT).to_owned())];
    }
    match prompt {
        Prompt::CallerAudio(Some(turn)) => {
            let mut out = Vec::new();
            if let Some(agent) = &turn.agent {
                out.push(OutPlan::Speak(agent.clone()));
            }
            if let Some(tool) = &turn.tool {
                if tool_available(&tool.name) {
                    out.push(OutPlan::Call {
                        name: tool.name.clone(),
                        arguments: tool.arguments_string(),
                        template: turn.agent_template.clone(),
                    });
                } else {
                    out.push(OutPlan::Speak(NO_TOOL_REPLY.to_owned()));
                }
            }
            if out.is_empty() {
                out.push(OutPlan::Speak(UNSCRIPTED_REPLY.to_owned()));
            }
            out
        }
        Prompt::CallerAudio(None) => vec![OutPlan::Speak(UNSCRIPTED_REPLY.to_owned())],
        Prompt::Idle => vec![OutPlan::Speak(IDLE_REPLY.to_owned())],
        // The gateway's note of a key press quotes the key; it is not text to say.
        Prompt::UserText(text) if answer::pressed_key(text).is_some() => {
            let key = answer::pressed_key(text).unwrap_or_default();
            vec![OutPlan::Speak(answer::key_press_reply(key))]
        }
        // A user message can carry a greeting to say ("Greet the caller: '…'").
        Prompt::UserText(text) if said_text(text).is_some() => {
            let said = said_text(text).unwrap_or_default();
            vec![OutPlan::Speak(clip(&said, MAX_SPOKEN_TEXT).to_owned())]
        }
        Prompt::UserText(text) => {
            let text = clip(text.trim(), MAX_SPOKEN_OUTPUT).trim_end_matches(['.', '!', '?']);
            vec![OutPlan::Speak(format!("You entered {text}."))]
        }
        Prompt::FunctionOutput { template, output } => {
            let template = template.unwrap_or(DEFAULT_TEMPLATE);
            let said = answer::from_passages(output)
                .unwrap_or_else(|| clip(output.trim(), MAX_SPOKEN_OUTPUT).to_owned());
            vec![OutPlan::Speak(template.replace("{output}", &said))]
        }
        Prompt::Nothing => vec![OutPlan::Speak(GENERIC_REPLY.to_owned())],
    }
}

/// The name in "… my name is Ana …" (the word after the phrase, without punctuation).
pub fn name_in(text: &str) -> Option<String> {
    const PHRASE: &str = "my name is ";
    let lower = text.to_ascii_lowercase();
    let at = lower.find(PHRASE)? + PHRASE.len();
    let word: String = text[at..]
        .chars()
        .take_while(|c| c.is_alphabetic() || *c == '-' || *c == '\'')
        .collect();
    (!word.is_empty()).then_some(word)
}

/// The text response instructions ask to be said verbatim: whatever follows
/// `Say exactly:`, or else a quoted passage.
pub fn said_text(instructions: &str) -> Option<String> {
    const MARKER: &str = "say exactly:";
    // ASCII lowercasing keeps byte offsets valid for slicing the original.
    let lower = instructions.to_ascii_lowercase();
    if let Some(i) = lower.find(MARKER) {
        let rest = instructions[i + MARKER.len()..].trim();
        let rest = quoted(rest).unwrap_or(rest).trim();
        if !rest.is_empty() {
            return Some(rest.to_owned());
        }
    }
    quoted(instructions)
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned)
}

fn quoted(s: &str) -> Option<&str> {
    for (open, close) in [('"', '"'), ('\u{201c}', '\u{201d}')] {
        if let (Some(a), Some(b)) = (s.find(open), s.rfind(close)) {
            let start = a + open.len_utf8();
            if b > start {
                return Some(&s[start..b]);
            }
        }
    }
    // Single quotes double as apostrophes, so only `: '…'` or a fully quoted string counts.
    let start = if s.starts_with('\'') {
        1
    } else {
        s.find(": '")? + 3
    };
    let end = s.rfind('\'')?;
    (end > start).then(|| &s[start..end])
}

fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Byte offsets where each word of `text` ends, trailing whitespace included, so that
/// concatenated deltas reproduce the text exactly.
pub fn word_ends(text: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut in_space = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_space = true;
        } else if in_space {
            ends.push(i);
            in_space = false;
        }
    }
    if !text.is_empty() {
        ends.push(text.len());
    }
    ends
}

/// The first `keep` of `total` parts of `text`, cut at a word boundary.
pub fn cut_transcript(text: &str, keep: u64, total: u64) -> String {
    if total == 0 || keep >= total {
        return text.to_owned();
    }
    let ends = word_ends(text);
    let words = ((ends.len() as u64 * keep) as f64 / total as f64).round() as usize;
    match words.checked_sub(1).and_then(|w| ends.get(w)) {
        Some(&end) => text[..end].trim_end().to_owned(),
        None => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn say_exactly_wins() {
        assert_eq!(
            said_text("Say exactly: Thanks for calling Acme, how can I help?").as_deref(),
            Some("Thanks for calling Acme, how can I help?")
        );
        assert_eq!(
            said_text("Greet warmly. SAY EXACTLY: \"Hi there.\"").as_deref(),
            Some("Hi there.")
        );
        assert_eq!(
            said_text("Greet the caller: 'Thanks for calling Acme.'").as_deref(),
            Some("Thanks for calling Acme.")
        );
        assert_eq!(said_text("Don't be rude, it's important."), None);
        let plans = plan(Some("Say exactly: Hello."), Prompt::Nothing, |_| true);
        assert_eq!(plans, vec![OutPlan::Speak("Hello.".into())]);
    }

    #[test]
    fn scripted_turns_speak_or_call() {
        let say = Turn::say("open?", "Yes.");
        assert_eq!(
            plan(None, Prompt::CallerAudio(Some(&say)), |_| true),
            vec![OutPlan::Speak("Yes.".into())]
        );
        let call = Turn::call("hours?", "kb", json!({"q": "hours"}), "We open {output}.");
        let p = plan(None, Prompt::CallerAudio(Some(&call)), |n| n == "kb");
        assert_eq!(
            p,
            vec![OutPlan::Call {
                name: "kb".into(),
                arguments: r#"{"q":"hours"}"#.into(),
                template: Some("We open {output}.".into())
            }]
        );
        let p = plan(None, Prompt::CallerAudio(Some(&call)), |_| false);
        assert_eq!(p, vec![OutPlan::Speak(NO_TOOL_REPLY.into())]);
    }

    #[test]
    fn text_and_tool_outputs_are_answered() {
        assert_eq!(
            plan(None, Prompt::UserText("1"), |_| true),
            vec![OutPlan::Speak("You entered 1.".into())]
        );
        assert_eq!(
            plan(
                None,
                Prompt::UserText("Greet the caller: 'Thanks for calling Acme.'"),
                |_| true
            ),
            vec![OutPlan::Speak("Thanks for calling Acme.".into())]
        );
        assert_eq!(
            plan(
                None,
                Prompt::FunctionOutput {
                    template: Some("We open at {output}."),
                    output: "nine"
                },
                |_| true
            ),
            vec![OutPlan::Speak("We open at nine.".into())]
        );
    }

    #[test]
    fn knowledge_passages_and_key_presses_are_answered_in_sentences() {
        let output = r#"{"passages":[{"score":0.694,"text":"We are in network with most PPO dental plans, including Delta Dental PPO, MetLife, Cigna, Aetna, Guardian and United Concordia. We do not take HMO plans."}]}"#;
        let [OutPlan::Speak(said)] = &plan(
            None,
            Prompt::FunctionOutput {
                template: Some("Here is what I found: {output}"),
                output,
            },
            |_| true,
        )[..] else {
            panic!("not one spoken item");
        };
        assert_eq!(
            said,
            "Here is what I found: We are in network with most PPO dental plans, including Delta Dental PPO, MetLife, Cigna, Aetna, Guardian and United Concordia."
        );
        assert!(!said.contains('{') && !said.contains("score"), "{said}");
        let [OutPlan::Speak(reply)] = &plan(
            None,
            Prompt::UserText("[The caller pressed the key \"5\" on their phone keypad.]"),
            |_| true,
        )[..] else {
            panic!("not one spoken item");
        };
        assert!(reply.starts_with("You pressed 5, but"), "{reply}");
        assert!(!reply.contains('['), "{reply}");
    }

    #[test]
    fn word_ends_rebuild_the_text() {
        let t = "Yes, we  are open.";
        let ends = word_ends(t);
        assert_eq!(ends, vec![5, 9, 13, 18]);
        assert_eq!(&t[..ends[1]], "Yes, we  ");
        assert!(word_ends("").is_empty());
    }

    #[test]
    fn transcripts_are_cut_proportionally() {
        let t = "one two three four";
        assert_eq!(cut_transcript(t, 500, 1000), "one two");
        assert_eq!(cut_transcript(t, 0, 1000), "");
        assert_eq!(cut_transcript(t, 1000, 1000), t);
    }
}
