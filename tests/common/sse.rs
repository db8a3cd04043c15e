//! Reading a Server-Sent Events answer: frames end with a blank line, the
//! `data:` lines carry JSON, comment lines (keep-alives) carry nothing.

use serde_json::Value;

/// Takes the first complete message with data out of `buffer` and parses
/// it; `None` while no such message is complete (read more, then ask again).
pub fn take_message(buffer: &mut String) -> Option<Value> {
    while let Some(end) = buffer.find("\n\n") {
        let frame: String = buffer.drain(..end + 2).collect();
        let data: String = frame
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .collect();
        if !data.is_empty() {
            return Some(serde_json::from_str(&data).expect("event data is JSON"));
        }
    }
    None
}
