//! The topology's YAML pre-check, held to netlab's own loader: refuse only
//! what netlab would refuse, with the real cause, before netlab runs; and
//! bound what any YAML may cost to check.
//!
//! netlab (networklab 26.10, `netsim/utils/read.py`) reads a topology as
//! UTF-8 text into PyYAML's `SafeLoader` with a duplicate-key check
//! (`UniqueKeyLoader`). What it accepts and refuses, measured by running
//! `netlab up` with the external provider on each variant, is the table in
//! this module's tests.
//!
//! The text is read as a stream of parser events (saphyr-parser), never
//! built into a tree, so the check stops at the first event past a limit:
//! nesting ([`MAX_NESTING`]), what aliases stand for ([`MAX_ALIAS_NODES`]),
//! how many flow entries the parser reads ahead, and the time the check may take
//! ([`Budget`], also stopped when its request ends). Anchors, tags and
//! flow or block style change nothing: every collection is one start and
//! one end event. Parsing is CPU work: callers run it off the async threads
//! ([`super::Upload::check`]).

mod input;
mod keys;

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

pub use input::{Budget, CHECK_TIME_LIMIT, MAX_FLOW_ENTRIES_AHEAD};
use input::{Metered, Progress, Stop};
use keys::Key;

use super::UploadError;

/// Deepest accepted nesting: collections open at once, the root mapping
/// included. The one limit where the pre-check is stricter than netlab for
/// a topology it could read: netlab's loader reads 65 to 400 levels (its
/// validation then refuses the unknown attribute that held them) and fails
/// at 1000 ("maximum recursion depth exceeded"), measured on networklab
/// 26.10; netlab topologies nest fewer than ten levels.
pub const MAX_NESTING: usize = 64;

/// Most nodes the aliases of a topology may stand for, each `*alias`
/// counting every node of its anchor (and of the aliases in it). PyYAML
/// shares an anchor's node, but netlab copies the topology as it works on
/// it: ten anchors of ten aliases each stand for 10^10 nodes ("billion
/// laughs"). netlab topologies alias a few device defaults.
pub const MAX_ALIAS_NODES: usize = 100_000;

const BOM: char = '\u{feff}';

fn invalid<T>(why: impl Into<String>) -> Result<T, UploadError> {
    Err(UploadError::Invalid(why.into()))
}

/// Checks that `bytes` is a topology netlab can read: UTF-8, one YAML
/// document whose root is a mapping without duplicate keys, within the
/// limits above and `budget`. A leading UTF-8 byte-order mark is skipped,
/// as PyYAML does.
pub(super) fn check_topology(bytes: &[u8], budget: Budget) -> Result<(), UploadError> {
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
    let progress = Rc::new(Progress::default());
    let mut parser = Parser::new_from_iter(Metered::new(text, budget, Rc::clone(&progress)));
    let mut walk = Walk::default();
    let parsed = loop {
        match parser.next_event() {
            None | Some(Ok((Event::StreamEnd, _))) => break Ok(()),
            // The scanner refuses a 256th open flow collection itself, before
            // the first event of a line of brackets comes out.
            Some(Err(error)) if error.info() == "recursion limit exceeded" => {
                break invalid(too_deep(error.marker().line()));
            }
            Some(Err(error)) => break invalid(format!("Topology is not valid YAML: {error}")),
            Some(Ok((event, span))) => {
                progress.event_end.set(span.end.index());
                if let Err(refused) = walk.event(event, span) {
                    break Err(refused);
                }
            }
        }
    };
    // A stopped read looks like the end of the text to the parser: the
    // reason it stopped comes first.
    if let Some(stop) = progress.stop.get() {
        return invalid(stopped(stop));
    }
    parsed?;
    walk.verdict()
}

fn too_deep(line: usize) -> String {
    format!(
        "Topology nests more than {MAX_NESTING} levels deep (line {line}); \
         at most {MAX_NESTING} are accepted"
    )
}

fn stopped(why: Stop) -> String {
    match why {
        Stop::Cancelled => "Topology check stopped: the request ended".to_string(),
        Stop::OutOfTime => format!(
            "Topology took longer than {} s to check",
            CHECK_TIME_LIMIT.as_secs()
        ),
        Stop::LookedTooFarAhead { line } => format!(
            "Topology has a flow collection ([…] or {{…}}) of more than \
             {MAX_FLOW_ENTRIES_AHEAD} entries (each `[`, `{{` and `,`, comments between \
             included) where a mapping key may start (line {line}); write it in block style \
             (one `- item` or `key: value` per line)"
        ),
        Stop::Unprintable { character, line } => format!(
            "Topology is not valid YAML: unacceptable character #x{:04x} at line {line}",
            u32::from(character)
        ),
    }
}

/// What the document's root is.
#[derive(Debug, Default, PartialEq, Eq)]
enum Root {
    #[default]
    None,
    Mapping,
    Null,
    Other,
}

/// An open collection.
struct Open {
    /// Its anchor id (0: none).
    anchor: usize,
    /// [`Walk::nodes`] when it started, itself counted.
    nodes_before: usize,
    /// For a mapping: its keys so far, and whether a key comes next.
    mapping: Option<(HashSet<Key>, bool)>,
}

/// The state of a walk over the parser's events.
#[derive(Default)]
struct Walk {
    documents: usize,
    root: Root,
    open: Vec<Open>,
    /// Nodes so far, an alias counting the nodes of its anchor.
    nodes: usize,
    /// Nodes the aliases so far stand for.
    alias_nodes: usize,
    /// Anchor id → the nodes of its anchored node.
    anchors: HashMap<usize, usize>,
}

impl Walk {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), UploadError> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return invalid(format!(
                        "Topology has more than one document (a second one starts at line {}); \
                         netlab reads exactly one",
                        span.start.line()
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.nodes += 1;
                if self.open.is_empty() {
                    let null = tag.is_none() && Key::of(&text, style, None) == Key::Null;
                    self.root = if null { Root::Null } else { Root::Other };
                }
                self.key(&text, style, tag.as_deref(), span)?;
                if anchor != 0 {
                    self.anchors.insert(anchor, 1);
                }
                self.node_ends();
            }
            Event::Alias(anchor) => {
                self.nodes += 1;
                let stands_for = self.anchors.get(&anchor).copied().unwrap_or(1);
                // The alias itself was counted as one node.
                self.nodes += stands_for - 1;
                self.alias_nodes += stands_for;
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return invalid(format!(
                        "Topology's aliases stand for more than {MAX_ALIAS_NODES} nodes \
                         (each *alias counts every node of its anchor; line {})",
                        span.start.line()
                    ));
                }
                self.node_ends();
            }
            Event::SequenceStart(anchor, _) => self.collection_starts(anchor, false, span)?,
            Event::MappingStart(anchor, _) => self.collection_starts(anchor, true, span)?,
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(closed) = self.open.pop()
                    && closed.anchor != 0
                {
                    let nodes = self.nodes - closed.nodes_before + 1;
                    self.anchors.insert(closed.anchor, nodes);
                }
                self.node_ends();
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn collection_starts(
        &mut self,
        anchor: usize,
        mapping: bool,
        span: Span,
    ) -> Result<(), UploadError> {
        self.nodes += 1;
        if self.open.is_empty() {
            self.root = if mapping { Root::Mapping } else { Root::Other };
        }
        if self.open.len() == MAX_NESTING {
            return invalid(too_deep(span.start.line()));
        }
        self.open.push(Open {
            anchor,
            nodes_before: self.nodes,
            mapping: mapping.then(|| (HashSet::new(), true)),
        });
        Ok(())
    }

    /// A scalar in a mapping's key position: refused when the mapping has
    /// that key already.
    fn key(
        &mut self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&Tag>,
        span: Span,
    ) -> Result<(), UploadError> {
        let Some(Open {
            mapping: Some((keys, true)),
            ..
        }) = self.open.last_mut()
        else {
            return Ok(());
        };
        if !keys.insert(Key::of(text, style, tag)) {
            return invalid(format!(
                "Topology is not valid YAML: duplicate entry with key {text:?} at line {}",
                span.start.line()
            ));
        }
        Ok(())
    }

    /// A node ended: in a mapping, keys and values take turns.
    fn node_ends(&mut self) {
        if let Some(Open {
            mapping: Some((_, key_next)),
            ..
        }) = self.open.last_mut()
        {
            *key_next = !*key_next;
        }
    }

    fn verdict(self) -> Result<(), UploadError> {
        match self.root {
            Root::Mapping => Ok(()),
            Root::None | Root::Null => invalid("Topology is empty"),
            Root::Other => invalid("Topology must be a YAML mapping (nodes:, links:, …)"),
        }
    }
}
