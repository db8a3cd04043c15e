//! A slot's bring-up log: the output lines of its current (or last)
//! bring-up, kept from the first line so a reader that comes late still
//! reads it whole, and followed live while the bring-up runs.
//!
//! Bounded: past [`MAX_LINES`] the oldest lines go, and a reader that had
//! not read them yet is told how many it missed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::process::LineSink;

/// Lines kept per bring-up.
pub const MAX_LINES: usize = 10_000;

#[derive(Debug, Default)]
struct Lines {
    /// Counts bring-ups; a reader follows one.
    run: u64,
    /// Number (from 0 in this run) of the first kept line.
    first: u64,
    kept: VecDeque<String>,
    running: bool,
}

/// One slot's bring-up log. See the module documentation.
#[derive(Debug)]
pub struct BringUpLog {
    lines: Mutex<Lines>,
    /// Bumped on every change, to wake readers.
    changed: watch::Sender<u64>,
}

impl Default for BringUpLog {
    fn default() -> Self {
        BringUpLog {
            lines: Mutex::default(),
            changed: watch::Sender::new(0),
        }
    }
}

impl BringUpLog {
    /// A new bring-up starts: the previous one's lines go.
    pub fn begin(&self) {
        let mut lines = self.lock();
        *lines = Lines {
            run: lines.run + 1,
            running: true,
            ..Lines::default()
        };
        drop(lines);
        self.notify();
    }

    /// The bring-up has ended; readers stop after its last line.
    pub fn end(&self) {
        self.lock().running = false;
        self.notify();
    }

    /// A reader from this bring-up's first kept line. It also stops when
    /// `stop` is cancelled (its session ended).
    pub fn reader(self: &Arc<Self>, stop: CancellationToken) -> LogReader {
        let lines = self.lock();
        LogReader {
            run: lines.run,
            next: lines.first,
            log: Arc::clone(self),
            changes: self.changed.subscribe(),
            stop,
        }
    }

    fn notify(&self) {
        self.changed.send_modify(|version| *version += 1);
    }

    fn lock(&self) -> MutexGuard<'_, Lines> {
        self.lines
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl LineSink for BringUpLog {
    fn line(&self, line: &str) {
        let mut lines = self.lock();
        if lines.kept.len() == MAX_LINES {
            lines.kept.pop_front();
            lines.first += 1;
        }
        lines.kept.push_back(line.to_string());
        drop(lines);
        self.notify();
    }
}

/// Follows one bring-up's lines (see [`BringUpLog::reader`]).
#[derive(Debug)]
pub struct LogReader {
    log: Arc<BringUpLog>,
    run: u64,
    /// Number of the next line to hand out.
    next: u64,
    changes: watch::Receiver<u64>,
    stop: CancellationToken,
}

impl LogReader {
    /// The lines that arrived since the last call, waiting for at least
    /// one. A line `… N lines dropped` stands for lines the bound removed
    /// before they were read. `None` once the bring-up has ended and all
    /// its lines were read, when a newer bring-up has begun, or when the
    /// reader's session ended.
    pub async fn next_lines(&mut self) -> Option<Vec<String>> {
        loop {
            self.changes.borrow_and_update();
            {
                let lines = self.log.lock();
                if lines.run != self.run {
                    return None;
                }
                let end = lines.first + lines.kept.len() as u64;
                if self.next < end {
                    let mut batch = Vec::new();
                    if self.next < lines.first {
                        batch.push(format!("… {} lines dropped", lines.first - self.next));
                        self.next = lines.first;
                    }
                    let skip = usize::try_from(self.next - lines.first).unwrap_or(usize::MAX);
                    batch.extend(lines.kept.iter().skip(skip).cloned());
                    self.next = end;
                    return Some(batch);
                }
                if !lines.running {
                    return None;
                }
            }
            tokio::select! {
                changed = self.changes.changed() => changed.ok()?,
                () = self.stop.cancelled() => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_late_reader_gets_every_line_then_follows_until_the_end() {
        let log = Arc::new(BringUpLog::default());
        log.begin();
        log.line("one");
        log.line("two");
        let mut reader = log.reader(CancellationToken::new());
        assert_eq!(reader.next_lines().await.unwrap(), ["one", "two"]);
        let follow = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(batch) = reader.next_lines().await {
                seen.extend(batch);
            }
            seen
        });
        log.line("three");
        log.end();
        assert_eq!(follow.await.unwrap(), ["three"]);
    }

    #[tokio::test]
    async fn a_new_bring_up_or_a_stop_ends_the_reader() {
        let log = Arc::new(BringUpLog::default());
        assert!(
            log.reader(CancellationToken::new())
                .next_lines()
                .await
                .is_none()
        );
        log.begin();
        let mut old = log.reader(CancellationToken::new());
        log.begin();
        assert!(old.next_lines().await.is_none());
        let stop = CancellationToken::new();
        let mut reader = log.reader(stop.clone());
        stop.cancel();
        assert!(reader.next_lines().await.is_none());
    }

    #[tokio::test]
    async fn lines_past_the_bound_are_reported_as_dropped() {
        let log = Arc::new(BringUpLog::default());
        log.begin();
        let mut reader = log.reader(CancellationToken::new());
        for number in 0..MAX_LINES + 3 {
            log.line(&number.to_string());
        }
        let batch = reader.next_lines().await.unwrap();
        assert_eq!(batch[0], "… 3 lines dropped");
        assert_eq!(batch[1], "3");
        assert_eq!(batch.len(), MAX_LINES + 1);
    }
}
