//! Runs one external command the way a lab tool must be run: stdin closed,
//! in its own process group, output streamed into the log line by line, and
//! the whole group stopped when the time limit passes or the run is
//! cancelled (SIGTERM, a grace period, then SIGKILL), and killed at once
//! when the caller drops the run. A run given a [`LineSink`] also sends its
//! lines there (a slot's bring-up log).

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Receives every output line (stdout and stderr, as they arrive) of the
/// runs it is given to ([`Run::sink`]). Called from the pipe readers; must
/// not block.
pub trait LineSink: Send + Sync {
    fn line(&self, line: &str);
}

/// How many of the last output lines are kept for error replies.
const TAIL_LINES: usize = 20;

/// How long to wait for the output pipes to close once the process is gone;
/// a daemon that inherited them must not hold the caller forever.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// What a finished command left behind.
#[derive(Debug)]
pub struct Finished {
    /// Exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    /// The last lines of stdout and stderr, interleaved as they arrived.
    pub tail: Vec<String>,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Why a command did not finish by itself.
#[derive(Debug)]
pub enum Interrupted {
    Spawn(std::io::Error),
    TimedOut { tail: Vec<String> },
    Cancelled,
}

/// One command to run.
pub struct Run<'a> {
    pub program: &'a Path,
    pub args: Vec<String>,
    pub cwd: Option<&'a Path>,
    pub limit: Duration,
    /// When set, the command is stopped as soon as this is cancelled.
    pub cancel: Option<&'a CancellationToken>,
    /// How long the group has between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// The server's owner tag, put into the command's environment so that
    /// a later start finds what it left behind (see [`super::orphans`]).
    pub owner: Option<&'a str>,
    /// Its output is data (JSON to parse), not progress: it goes neither to
    /// the debug log nor to the line sink, only to the caller (a large
    /// lab's device data is megabytes).
    pub data: bool,
    /// Where its output lines also go, as they arrive.
    pub sink: Option<Arc<dyn LineSink>>,
}

impl Run<'_> {
    pub async fn execute(self) -> Result<Finished, Interrupted> {
        let mut command = Command::new(self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so a kill reaches the helpers it starts too.
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = self.cwd {
            command.current_dir(dir);
        }
        if let Some(owner) = self.owner {
            command.env(super::orphans::OWNER_VAR, owner);
        }
        // SAFETY: between fork and exec only prctl runs, which is
        // async-signal-safe. It makes the kernel SIGKILL the command when the
        // server dies, even by SIGKILL (its helpers are found at the next
        // start instead).
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(Interrupted::Spawn)?;
        let group = GroupKiller(child.id());

        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let sink = self.sink.clone().filter(|_| !self.data);
        let echo = !self.data;
        let stdout = child.stdout.take().map(|out| match self.data {
            true => read_data(out),
            false => stream(out, &tail, sink.clone(), echo, true),
        });
        let stderr = child
            .stderr
            .take()
            .map(|err| stream(err, &tail, sink, echo, false));

        let never = CancellationToken::new();
        let cancel = self.cancel.unwrap_or(&never);
        let outcome = tokio::select! {
            status = child.wait() => Ok(status),
            _ = tokio::time::sleep(self.limit) => Err(true),
            _ = cancel.cancelled() => Err(false),
        };

        let code = match outcome {
            Ok(status) => {
                // A normal exit: anything it left running on purpose stays.
                group.disarm();
                status.ok().and_then(|status| status.code())
            }
            Err(timed_out) => {
                group.signal(libc::SIGTERM);
                if tokio::time::timeout(self.kill_grace, child.wait())
                    .await
                    .is_err()
                {
                    let command = display(self.program, &self.args);
                    tracing::warn!(%command, grace = self.kill_grace.as_secs_f64(), "still running after SIGTERM; sending SIGKILL");
                }
                // Also reaches helpers that outlived the leader in its group.
                drop(group);
                let _ = child.wait().await;
                drain(stdout).await;
                drain(stderr).await;
                return Err(if timed_out {
                    Interrupted::TimedOut {
                        tail: snapshot(&tail),
                    }
                } else {
                    Interrupted::Cancelled
                });
            }
        };
        let stdout = drain(stdout).await;
        drain(stderr).await;
        // No copy for UTF-8 text (the JSON netlab prints always is).
        let stdout = String::from_utf8(stdout)
            .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned());
        Ok(Finished {
            code,
            stdout,
            tail: snapshot(&tail),
        })
    }
}

type Tail = Arc<Mutex<VecDeque<String>>>;

/// A pipe being read in the background, and what it collected so far.
struct PipeReader {
    task: JoinHandle<()>,
    collected: Arc<Mutex<Vec<u8>>>,
}

/// Reads a pipe line by line into the shared tail, and into the debug log
/// when asked to `echo` it, and the sink when there is one; collects the
/// whole text when asked (stdout carries the JSON we parse).
fn stream(
    pipe: impl AsyncRead + Unpin + Send + 'static,
    tail: &Tail,
    sink: Option<Arc<dyn LineSink>>,
    echo: bool,
    collect: bool,
) -> PipeReader {
    let tail = Arc::clone(tail);
    let collected = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&collected);
    let task = tokio::spawn(async move {
        let mut reader = BufReader::new(pipe);
        let mut buffer = Vec::new();
        // Read to EOF whatever the bytes are: a reader that stopped at a
        // non-UTF-8 line would close the pipe and kill the writer (SIGPIPE).
        while reader
            .read_until(b'\n', &mut buffer)
            .await
            .is_ok_and(|read| read > 0)
        {
            let text = String::from_utf8_lossy(&buffer);
            let line = text.trim_end_matches(['\n', '\r']).to_string();
            buffer.clear();
            if echo {
                tracing::debug!(target: "netlab", "{line}");
            }
            if let Some(sink) = &sink {
                sink.line(&line);
            }
            if collect {
                let mut into = into.lock().unwrap_or_else(|poison| poison.into_inner());
                into.extend_from_slice(line.as_bytes());
                into.push(b'\n');
            }
            let mut tail = tail.lock().unwrap_or_else(|poison| poison.into_inner());
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    });
    PipeReader { task, collected }
}

/// Reads a pipe of data to its end, as it comes: no lines, no copies.
fn read_data(mut pipe: impl AsyncRead + Unpin + Send + 'static) -> PipeReader {
    let collected = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&collected);
    let task = tokio::spawn(async move {
        let mut chunk = vec![0; 64 * 1024];
        while let Ok(read @ 1..) = pipe.read(&mut chunk).await {
            let mut into = into.lock().unwrap_or_else(|poison| poison.into_inner());
            into.extend_from_slice(&chunk[..read]);
        }
    });
    PipeReader { task, collected }
}

/// What the pipe gave, once it closes. A process the command started (a
/// daemon) may keep the pipe open after the command exited: after
/// [`PIPE_GRACE`] reading stops, and what was read so far is kept.
async fn drain(reader: Option<PipeReader>) -> Vec<u8> {
    let Some(mut reader) = reader else {
        return Vec::new();
    };
    if tokio::time::timeout(PIPE_GRACE, &mut reader.task)
        .await
        .is_err()
    {
        reader.task.abort();
        tracing::warn!(
            grace = PIPE_GRACE.as_secs(),
            "a process netlab started still holds its output pipe open; keeping the output read so far"
        );
    }
    // Taken, not copied: the reader is done (or stopped) with it.
    std::mem::take(
        &mut *reader
            .collected
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()),
    )
}

fn snapshot(tail: &Tail) -> Vec<String> {
    let tail = tail.lock().unwrap_or_else(|poison| poison.into_inner());
    tail.iter().cloned().collect()
}

/// Kills the whole process group when dropped, unless disarmed. Dropping a
/// future that runs a command therefore never leaves the command running.
struct GroupKiller(Option<u32>);

impl GroupKiller {
    fn disarm(mut self) {
        self.0 = None;
    }

    fn signal(&self, signal: i32) {
        if let Some(pid) = self.0.and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: killpg only sends a signal; the group id is the pid of a
            // child we spawned with process_group(0), so it names our group.
            unsafe {
                libc::killpg(pid, signal);
            }
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// Joins a command line for log and error messages.
pub fn display(program: &Path, args: &[impl AsRef<OsStr>]) -> String {
    let mut text = program.display().to_string();
    for arg in args {
        text.push(' ');
        text.push_str(&arg.as_ref().to_string_lossy());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, limit: Duration) -> Run<'static> {
        Run {
            program: Path::new("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            cwd: None,
            limit,
            cancel: None,
            kill_grace: Duration::from_secs(5),
            owner: None,
            data: false,
            sink: None,
        }
    }

    #[tokio::test]
    async fn collects_stdout_and_keeps_the_last_lines_of_both_streams() {
        let script = "for i in $(seq 1 30); do echo out$i; done; echo err >&2; exit 3";
        let finished = sh(script, Duration::from_secs(10)).execute().await.unwrap();
        assert_eq!(finished.code, Some(3));
        assert!(finished.stdout.starts_with("out1\nout2\n"));
        assert_eq!(finished.tail.len(), TAIL_LINES);
        assert!(finished.tail.contains(&"err".to_string()));
        assert!(finished.tail.contains(&"out30".to_string()));
    }

    #[tokio::test]
    async fn output_that_is_not_utf8_is_read_to_the_end() {
        // A writer whose reader gave up would die of SIGPIPE (exit 141).
        let script = "printf 'caf\\351\\n'; for i in $(seq 1 2000); do echo line$i; done; exit 0";
        let finished = sh(script, Duration::from_secs(10)).execute().await.unwrap();
        assert_eq!(finished.code, Some(0));
        assert!(finished.stdout.starts_with("caf\u{fffd}\nline1\n"));
        assert!(finished.stdout.ends_with("line2000\n"));
    }

    #[tokio::test]
    async fn every_line_reaches_the_runs_sink() {
        #[derive(Default)]
        struct Collect(Mutex<Vec<String>>);
        impl LineSink for Collect {
            fn line(&self, line: &str) {
                self.0.lock().unwrap().push(line.to_string());
            }
        }
        let sink = Arc::new(Collect::default());
        let run = Run {
            sink: Some(sink.clone()),
            ..sh("echo out; echo err >&2", Duration::from_secs(10))
        };
        run.execute().await.unwrap();
        let mut lines = sink.0.lock().unwrap().clone();
        lines.sort();
        assert_eq!(lines, ["err", "out"]);
        // A data run's output is the caller's alone.
        let data = Run {
            sink: Some(sink.clone()),
            data: true,
            ..sh("echo later", Duration::from_secs(10))
        };
        data.execute().await.unwrap();
        assert_eq!(sink.0.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn output_read_before_a_daemon_kept_the_pipe_is_kept() {
        // The command exits, but the process it left behind holds stdout.
        let script = "echo '{\"r1\": {}}'; (sleep 5 &) ; exit 0";
        let finished = sh(script, Duration::from_secs(10)).execute().await.unwrap();
        assert_eq!(finished.code, Some(0));
        assert_eq!(finished.stdout, "{\"r1\": {}}\n");
    }

    #[tokio::test]
    async fn stdin_is_closed() {
        let finished = sh("cat; echo done", Duration::from_secs(10))
            .execute()
            .await
            .unwrap();
        assert_eq!(finished.stdout, "done\n");
    }

    #[tokio::test]
    async fn time_limit_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child.pid");
        // The child starts a grandchild that would outlive a plain kill.
        let script = format!("sleep 300 & echo $! > {}; wait", marker.display());
        let result = sh(&script, Duration::from_millis(500)).execute().await;
        assert!(matches!(result, Err(Interrupted::TimedOut { .. })));
        let pid: i32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!process_alive(pid), "grandchild {pid} survived the kill");
    }

    #[tokio::test]
    async fn cancel_kills_the_command() {
        let cancel = CancellationToken::new();
        let run = Run {
            cancel: Some(&cancel),
            ..sh("sleep 300", Duration::from_secs(600))
        };
        let (result, ()) = tokio::join!(run.execute(), async { cancel.cancel() });
        assert!(matches!(result, Err(Interrupted::Cancelled)));
    }

    #[tokio::test]
    async fn cancel_asks_politely_first() {
        let dir = tempfile::tempdir().unwrap();
        let (ready, marker) = (dir.path().join("ready"), dir.path().join("terminated"));
        // The command cleans up on SIGTERM, which a SIGKILL would not allow.
        let script = format!(
            "trap 'echo bye > {}; exit 0' TERM; touch {}; while :; do sleep 0.05; done",
            marker.display(),
            ready.display()
        );
        let cancel = CancellationToken::new();
        let run = Run {
            cancel: Some(&cancel),
            ..sh(&script, Duration::from_secs(600))
        };
        let (result, ()) = tokio::join!(run.execute(), async {
            while !ready.exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            cancel.cancel()
        });
        assert!(matches!(result, Err(Interrupted::Cancelled)));
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "bye\n");
    }

    #[tokio::test]
    async fn a_group_that_ignores_sigterm_is_killed_after_the_grace_period() {
        let cancel = CancellationToken::new();
        let run = Run {
            cancel: Some(&cancel),
            kill_grace: Duration::from_millis(200),
            ..sh("trap '' TERM; sleep 300", Duration::from_secs(600))
        };
        let (result, ()) = tokio::join!(run.execute(), async { cancel.cancel() });
        assert!(matches!(result, Err(Interrupted::Cancelled)));
    }

    fn process_alive(pid: i32) -> bool {
        // A killed grandchild is reparented and reaped by init; give it a moment.
        for _ in 0..50 {
            let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = status.rsplit(')').next().unwrap_or("").trim_start();
            if status.is_empty() || state.starts_with('Z') {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}
