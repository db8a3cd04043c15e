//! A history checker: replays a server's events (`GET /events`) from the
//! start and names every broken rule of the line: a slot with two holders,
//! a session promoted twice, a promotion out of queue order (beyond the
//! bypasses `--placement batch` announced, each bounded by its
//! `--max-bypass`).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// Every violation in `events` (oldest first, as `/events?replay=` sends
/// them); empty when the history keeps every rule. `max_bypass`: the
/// batch bound, `None` under fifo (no session may be passed at all).
pub fn violations(events: &[Value], max_bypass: Option<u64>) -> Vec<String> {
    let mut found = Vec::new();
    let mut holders: HashMap<u64, String> = HashMap::new();
    let mut promoted: HashSet<String> = HashSet::new();
    // Waiting sessions in join order.
    let mut line: Vec<String> = Vec::new();
    for event in events {
        let session = event["session"].as_str().unwrap_or_default().to_string();
        match event["type"].as_str().unwrap_or_default() {
            "session_joined" => line.push(session),
            "session_promoted" => {
                let slot = event["slot"].as_u64().unwrap_or_default();
                if !promoted.insert(session.clone()) {
                    found.push(format!("event {}: {session} promoted twice", event["id"]));
                }
                if let Some(holder) = holders.insert(slot, session.clone()) {
                    found.push(format!(
                        "event {}: slot {slot} given to {session} while {holder} holds it",
                        event["id"]
                    ));
                }
                match line.iter().position(|waiting| *waiting == session) {
                    Some(0) | None => {}
                    Some(_) if max_bypass.is_some() => {}
                    Some(at) => found.push(format!(
                        "event {}: {session} promoted ahead of {:?}, who waited longer",
                        event["id"],
                        &line[..at]
                    )),
                }
                line.retain(|waiting| *waiting != session);
            }
            "session_bypassed" => {
                let overtaken = event["overtaken"].as_u64().unwrap_or_default();
                match max_bypass {
                    Some(bound) if overtaken <= bound => {}
                    bound => found.push(format!(
                        "event {}: {session} overtaken {overtaken} times (bound {bound:?})",
                        event["id"]
                    )),
                }
            }
            "session_moved" => {
                let (from, to) = (event["from_slot"].as_u64(), event["to_slot"].as_u64());
                if let (Some(from), Some(to)) = (from, to) {
                    holders.remove(&from);
                    if let Some(holder) = holders.insert(to, session.clone()) {
                        found.push(format!(
                            "event {}: {session} moved into slot {to} while {holder} holds it",
                            event["id"]
                        ));
                    }
                }
            }
            "session_ended" => {
                holders.retain(|_, holder| *holder != session);
                line.retain(|waiting| *waiting != session);
            }
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn joined(id: u64, session: &str) -> Value {
        json!({"id": id, "type": "session_joined", "session": session})
    }

    fn promoted(id: u64, session: &str, slot: u64) -> Value {
        json!({"id": id, "type": "session_promoted", "session": session, "slot": slot})
    }

    #[test]
    fn each_broken_rule_is_named() {
        let history = [
            joined(1, "a"),
            joined(2, "b"),
            joined(3, "c"),
            promoted(4, "b", 1),
            promoted(5, "a", 1),
            promoted(6, "a", 2),
        ];
        let found = violations(&history, None);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].contains("ahead of"));
        assert!(found[1].contains("while b holds it"));
        assert!(found[2].contains("promoted twice"));
    }
}
