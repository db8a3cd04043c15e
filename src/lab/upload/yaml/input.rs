//! The text as the YAML parser reads it: character by character, through
//! checks the parser itself cannot make.
//!
//! The parser pulls characters from [`Metered`], which stops the read (the
//! parser then sees the text end) when the check has run out of time, its
//! request has ended, the parser reads too many flow entries ahead of its
//! last event, or a character PyYAML refuses comes. Why it stopped is kept in a [`Stop`]
//! the caller reports instead of the parser's own error.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Longest time one topology check may take. A 10 MB topology of plain
/// YAML takes well under a second in a release build.
pub const CHECK_TIME_LIMIT: Duration = Duration::from_secs(10);

/// Most flow entries the parser may read past its last event, counted as
/// the `[`, `{` and `,` it reads. The parser reads a whole flow collection
/// (`[…]`, `{…}`) that starts where a key may (a line's start, after `- `)
/// before it tells whether the collection is a mapping key, holding every
/// token of it in memory; netlab topologies write far shorter ones. Long
/// scalars and comments cost no tokens: only their own `[`, `{` and `,`
/// count (when the parser reads them ahead).
pub const MAX_FLOW_ENTRIES_AHEAD: usize = 65_536;

/// How often (in characters) the clock and the cancellation flag are read.
const CHECK_EVERY: usize = 4096;

/// The time and the request a check may use up.
#[derive(Debug, Clone)]
pub struct Budget {
    deadline: Instant,
    cancelled: Arc<AtomicBool>,
}

impl Budget {
    /// [`CHECK_TIME_LIMIT`] from now, stopped early when `cancelled` is set
    /// (its request ended).
    pub fn new(cancelled: Arc<AtomicBool>) -> Budget {
        Budget::until(Instant::now() + CHECK_TIME_LIMIT, cancelled)
    }

    /// Until `deadline`, stopped early when `cancelled` is set.
    pub fn until(deadline: Instant, cancelled: Arc<AtomicBool>) -> Budget {
        Budget {
            deadline,
            cancelled,
        }
    }

    fn spent(&self) -> Option<Stop> {
        if self.cancelled.load(Ordering::Relaxed) {
            Some(Stop::Cancelled)
        } else if Instant::now() >= self.deadline {
            Some(Stop::OutOfTime)
        } else {
            None
        }
    }
}

/// Why [`Metered`] stopped the read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    Cancelled,
    OutOfTime,
    /// The parser read more than [`MAX_FLOW_ENTRIES_AHEAD`] flow entries
    /// ahead, at this 1-based line.
    LookedTooFarAhead {
        line: usize,
    },
    /// A character PyYAML's reader refuses, at this 1-based line.
    Unprintable {
        character: char,
        line: usize,
    },
}

/// What the parser's caller and [`Metered`] share: where the last event
/// ended, and why the read stopped.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// Index (in characters) just past the last event.
    pub event_end: Cell<usize>,
    pub stop: Cell<Option<Stop>>,
}

/// The characters of a text, metered; see the module's doc.
pub(super) struct Metered<'a> {
    chars: std::str::Chars<'a>,
    read: usize,
    line: usize,
    /// Where the flow entries read past the last event start.
    flow_entries_ahead: VecDeque<usize>,
    budget: Budget,
    progress: Rc<Progress>,
}

impl<'a> Metered<'a> {
    pub(super) fn new(text: &'a str, budget: Budget, progress: Rc<Progress>) -> Self {
        Metered {
            chars: text.chars(),
            read: 0,
            line: 1,
            flow_entries_ahead: VecDeque::new(),
            budget,
            progress,
        }
    }

    /// Counts a flow entry at the current character: whether that makes
    /// too many past the last event.
    fn too_far_ahead(&mut self) -> bool {
        let event_end = self.progress.event_end.get();
        while self
            .flow_entries_ahead
            .front()
            .is_some_and(|&at| at < event_end)
        {
            self.flow_entries_ahead.pop_front();
        }
        self.flow_entries_ahead.push_back(self.read);
        self.flow_entries_ahead.len() > MAX_FLOW_ENTRIES_AHEAD
    }

    fn stop(&self, why: Stop) -> Option<char> {
        self.progress.stop.set(Some(why));
        None
    }
}

impl Iterator for Metered<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        if self.progress.stop.get().is_some() {
            return None;
        }
        if self.read.is_multiple_of(CHECK_EVERY)
            && let Some(why) = self.budget.spent()
        {
            return self.stop(why);
        }
        let character = self.chars.next()?;
        if !printable(character) {
            return self.stop(Stop::Unprintable {
                character,
                line: self.line,
            });
        }
        if matches!(character, '[' | '{' | ',') && self.too_far_ahead() {
            return self.stop(Stop::LookedTooFarAhead { line: self.line });
        }
        self.read += 1;
        if character == '\n' {
            self.line += 1;
        }
        Some(character)
    }
}

/// What PyYAML's reader accepts (`yaml/reader.py`, `NON_PRINTABLE`): tab,
/// line breaks, printable ASCII, NEL and the rest of Unicode but
/// surrogates, U+FFFE and U+FFFF.
fn printable(character: char) -> bool {
    matches!(character,
        '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}'
        | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}
