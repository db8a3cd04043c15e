//! The topology's YAML pre-check, held to netlab's own loader: refuse only
//! what netlab would refuse, with the real cause, before netlab runs.
//!
//! netlab (networklab 26.10, `netsim/utils/read.py`) reads a topology as
//! UTF-8 text into PyYAML's `SafeLoader` with a duplicate-key check
//! (`UniqueKeyLoader`). What it accepts and refuses, measured by running
//! `netlab up` with the external provider on each variant, is the table in
//! this module's tests. Parsing is CPU work: callers run it off the async
//! threads ([`super::Upload::check`]), and nesting is bounded before the
//! parser ever sees the text.

use super::UploadError;

/// Deepest accepted nesting, counted both as open flow brackets (`[`, `{`)
/// and as block levels (indentation steps plus `- ` on one line). The
/// parser's cost grows with the square of the depth (a 160 KB file of
/// brackets took seconds); netlab topologies nest fewer than ten levels.
/// The one place the pre-check is stricter than netlab: netlab's loader
/// reads 65 to 400 levels (its validation then refuses the unknown
/// attribute that held them) and fails at 1000 ("maximum recursion depth
/// exceeded"), measured on networklab 26.10.
pub const MAX_NESTING: usize = 64;

const BOM: char = '\u{feff}';

fn invalid<T>(why: impl Into<String>) -> Result<T, UploadError> {
    Err(UploadError::Invalid(why.into()))
}

/// Checks that `bytes` is a topology netlab can read: UTF-8, at most
/// [`MAX_NESTING`] deep, one YAML document whose root is a mapping. A
/// leading UTF-8 byte-order mark is skipped, as PyYAML does.
pub(super) fn check_topology(bytes: &[u8]) -> Result<(), UploadError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            return invalid(format!(
                "Topology is not UTF-8 text (netlab reads it as UTF-8): invalid byte at offset {}",
                error.valid_up_to()
            ));
        }
    };
    let text = text.strip_prefix(BOM).unwrap_or(text);
    let depth = nesting(text);
    if depth > MAX_NESTING {
        return invalid(format!(
            "Topology nests {depth} levels deep; at most {MAX_NESTING} are accepted"
        ));
    }
    match yaml_serde::from_str::<yaml_serde::Value>(text) {
        Err(error) => invalid(format!("Topology is not valid YAML: {error}")),
        Ok(yaml_serde::Value::Null) => invalid("Topology is empty"),
        Ok(yaml_serde::Value::Mapping(_)) => Ok(()),
        Ok(_) => invalid("Topology must be a YAML mapping (nodes:, links:, …)"),
    }
}

/// The deepest nesting of `text`, over-estimated rather than under: flow
/// brackets are counted everywhere except after a comment's `#`, block
/// levels from the indentation of each content line.
fn nesting(text: &str) -> usize {
    let mut deepest = 0;
    let mut flow: usize = 0;
    let mut indents: Vec<usize> = Vec::new();
    for line in text.lines() {
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        let code = match content.find(" #") {
            _ if content.starts_with('#') => "",
            Some(at) => &content[..at],
            None => content,
        };
        if !code.trim().is_empty() {
            while indents.last().is_some_and(|&last| last > indent) {
                indents.pop();
            }
            if indents.last().is_none_or(|&last| last < indent) {
                indents.push(indent);
            }
            let dashes = code
                .split_inclusive(' ')
                .take_while(|word| word.trim() == "-")
                .count();
            deepest = deepest.max(indents.len() + dashes);
        }
        for byte in code.bytes() {
            match byte {
                b'[' | b'{' => flow += 1,
                b']' | b'}' => flow = flow.saturating_sub(1),
                _ => continue,
            }
            deepest = deepest.max(flow);
        }
    }
    deepest
}
