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

/// The deepest nesting of `text`: block levels from the indentation of
/// each content line, flow levels from `[` and `{` where YAML reads them as
/// brackets (where a value starts, or inside a flow collection). Text is
/// not nesting: quoted scalars, block scalars (`|`, `>`), plain scalars
/// (`a[b`) and comments are skipped, so a topology netlab accepts is not
/// refused for the brackets in its strings.
fn nesting(text: &str) -> usize {
    let mut scan = Scan::default();
    for line in text.lines() {
        scan.line(line);
    }
    scan.deepest
}

/// The state of [`nesting`]'s scan, line by line.
#[derive(Default)]
struct Scan {
    deepest: usize,
    /// Open flow collections (`[`, `{`).
    flow: usize,
    /// Indentations of the open block levels.
    indents: Vec<usize>,
    /// Inside a block scalar whose indicator stood on a line of this indent.
    block_scalar: Option<usize>,
    /// Inside a quoted scalar that goes on past the line's end.
    quote: Option<u8>,
}

impl Scan {
    fn line(&mut self, line: &str) {
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        if let Some(parent) = self.block_scalar {
            if content.trim().is_empty() || indent > parent {
                return;
            }
            self.block_scalar = None;
        }
        let starts_in_quote = self.quote.is_some();
        let code = &content[..self.scan_flow(content)];
        if !starts_in_quote && self.flow == 0 && !code.trim().is_empty() {
            self.block_level(indent, code);
        }
        if self.quote.is_none() && self.flow == 0 && ends_with_block_indicator(code) {
            self.block_scalar = Some(indent);
        }
    }

    /// Counts a content line's block level (its indentation, plus one per
    /// leading `- `).
    fn block_level(&mut self, indent: usize, code: &str) {
        while self.indents.last().is_some_and(|&last| last > indent) {
            self.indents.pop();
        }
        if self.indents.last().is_none_or(|&last| last < indent) {
            self.indents.push(indent);
        }
        let dashes = code
            .split_inclusive(' ')
            .take_while(|word| word.trim() == "-")
            .count();
        self.deepest = self.deepest.max(self.indents.len() + dashes);
    }

    /// Scans `content` for flow brackets and quotes; returns where its
    /// comment starts (its length when it has none).
    fn scan_flow(&mut self, content: &str) -> usize {
        let bytes = content.as_bytes();
        // At the start of a line a key or a value may start.
        let mut value_start = self.quote.is_none();
        let mut at = 0;
        while at < bytes.len() {
            let byte = bytes[at];
            if let Some(quote) = self.quote {
                match byte {
                    b'\\' if quote == b'"' => at += 1,
                    b'\'' if quote == b'\'' && bytes.get(at + 1) == Some(&b'\'') => at += 1,
                    _ if byte == quote => self.quote = None,
                    _ => {}
                }
                at += 1;
                continue;
            }
            let before_space = bytes.get(at + 1).is_none_or(|next| *next == b' ');
            match byte {
                b'#' if at == 0 || bytes[at - 1] == b' ' => return at,
                b' ' | b'\t' => {}
                b'\'' | b'"' if value_start => self.quote = Some(byte),
                b'[' | b'{' if value_start || self.flow > 0 => {
                    self.flow += 1;
                    self.deepest = self.deepest.max(self.flow);
                    value_start = true;
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    value_start = false;
                }
                b',' if self.flow > 0 => value_start = true,
                b':' | b'-' | b'?' if before_space => value_start = true,
                _ => value_start = false,
            }
            at += 1;
        }
        bytes.len()
    }
}

/// Whether a line ends with a block scalar's indicator (`key: |`, `- >-`,
/// `|2+`), after which the more indented lines are text.
fn ends_with_block_indicator(code: &str) -> bool {
    let code = code.trim_end();
    let head = code.trim_end_matches(|c: char| c == '-' || c == '+' || c.is_ascii_digit());
    (head.ends_with('|') || head.ends_with('>'))
        && head[..head.len() - 1]
            .chars()
            .last()
            .is_none_or(|before| before == ' ')
}
