//! The netlab connector: the only code in the project that runs netlab.
//!
//! Every invocation costs a Python start-up (~0.5–0.9 s), so a bring-up runs
//! exactly two: `netlab up`, then one `netlab inspect` that returns the
//! Ansible host view of every node at once. Device data is always read as
//! JSON; netlab's YAML output is cut at the terminal width.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::process::{self, Finished, Interrupted, LineSink, Run};
use super::{BoxFuture, Device, Health, LabDriver, LabError};
use tokio_util::sync::CancellationToken;

/// `inspect` evaluates this in the topology's namespace and prints the host
/// view of every node, the same data `inspect --node X` gives for one node,
/// as a JSON list of `[name, host view]` pairs in netlab's node order (the
/// topology's order). A list because `--format json` prints a `Box` with its
/// keys sorted, and anything that is not a `Box` or `BoxList` as a Python
/// repr (networklab 26.10, `netsim/cli/inspect.py`). netlab splits the
/// parameter on `:` and `=`, hence no dict literal and no keyword arguments.
/// It calls a netlab-internal function, so it can break on an upgrade:
/// [`Netlab::devices`] then falls back to the public per-node form.
const ALL_HOSTS_EXPRESSION: &str = "__import__('box').BoxList([n, \
    __import__('netsim.outputs.common', None, None, ['x']).adjust_inventory_host(\
    nodes[n], defaults, None, None, True)] for n in nodes)";

/// The node names in netlab's node order, as a JSON list (see
/// [`ALL_HOSTS_EXPRESSION`] for why a `BoxList`).
const NODE_NAMES_EXPRESSION: &str = "__import__('box').BoxList(nodes)";

/// The key `inspect --node X --format json` adds to each host view.
const VERSION_KEY: &str = "_netlab_version";

/// How to run netlab on this host.
#[derive(Debug, Clone)]
pub struct NetlabConfig {
    pub program: PathBuf,
    /// Appended to every `netlab up` (e.g. `-p external` where no
    /// containerlab exists).
    pub up_args: Vec<String>,
    pub up_timeout: Duration,
    pub command_timeout: Duration,
    /// Between SIGTERM and SIGKILL when a command is stopped.
    pub kill_grace: Duration,
    /// Put into every command's environment (see [`super::orphans`]).
    pub owner: Option<String>,
}

/// Why a netlab command failed.
#[derive(Debug)]
pub enum NetlabError {
    /// It could not be started at all (missing executable, bad permissions).
    Spawn { command: String, error: String },
    /// It ran and exited non-zero.
    Failed {
        command: String,
        code: Option<i32>,
        tail: Vec<String>,
    },
    /// It ran past its time limit and was killed.
    TimedOut {
        command: String,
        limit: Duration,
        tail: Vec<String>,
    },
    /// Its holder's session ended, or the server is stopping: it was stopped.
    Cancelled { command: String },
    /// It succeeded but printed something we cannot use.
    BadOutput { command: String, problem: String },
}

impl std::fmt::Display for NetlabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetlabError::Spawn { command, error } => {
                write!(f, "could not run `{command}`: {error}")
            }
            NetlabError::Failed {
                command,
                code,
                tail,
            } => {
                let code = code.map_or("killed by a signal".to_string(), |c| {
                    format!("exit code {c}")
                });
                write!(f, "`{command}` failed ({code})")?;
                write_tail(f, tail)
            }
            NetlabError::TimedOut {
                command,
                limit,
                tail,
            } => {
                write!(
                    f,
                    "`{command}` did not finish within {} s and was killed",
                    limit.as_secs()
                )?;
                write_tail(f, tail)
            }
            NetlabError::Cancelled { command } => {
                write!(
                    f,
                    "`{command}` was stopped: its session ended or the server is stopping"
                )
            }
            NetlabError::BadOutput { command, problem } => {
                write!(f, "`{command}` printed unusable output: {problem}")
            }
        }
    }
}

fn write_tail(f: &mut std::fmt::Formatter<'_>, tail: &[String]) -> std::fmt::Result {
    if tail.is_empty() {
        return Ok(());
    }
    write!(f, "; last output:\n{}", tail.join("\n"))
}

/// A lab instance netlab has registered (`netlab status --all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub id: String,
    /// The directory `netlab up` ran in.
    pub dir: PathBuf,
    /// netlab's word for it: `started` when it runs (else e.g. `failed`,
    /// or half torn down).
    pub status: String,
}

/// Runs netlab commands for one lab slot. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Netlab {
    config: NetlabConfig,
    /// The installed netlab's version, as `inspect --node` reports it.
    version: String,
    /// The netlab instance (multilab id) of this slot.
    instance: String,
    /// The last `netlab status --all` report, shared by every slot.
    status_cache: Arc<tokio::sync::Mutex<Option<(Instant, String)>>>,
}

/// How long a `netlab status --all` report answers `GET /lab` callers: one
/// netlab run serves a crowd of watchers (each run costs a Python start-up).
const STATUS_FRESH_FOR: Duration = Duration::from_secs(2);

/// The multilab instance id of slot `slot`: slot 1 keeps netlab's (and the
/// original server's) `default`; slot `k > 1` is instance `k`. netlab's
/// `external` provider accepts `-s defaults.multilab.id=k` (checked on
/// netlab 26.10: `netlab status --all` lists the lab under `"k"`).
fn instance_of(slot: usize) -> String {
    if slot == 1 {
        "default".into()
    } else {
        slot.to_string()
    }
}

impl Netlab {
    /// Checks that netlab runs (`netlab version`) and remembers its version.
    pub async fn connect(config: NetlabConfig) -> Result<Netlab, NetlabError> {
        let probe = Netlab {
            config,
            version: String::new(),
            instance: instance_of(1),
            status_cache: Arc::default(),
        };
        let finished = probe.run(vec!["version".into()], None, None).await?;
        let version = parse_version(&finished.stdout).ok_or_else(|| NetlabError::BadOutput {
            command: probe.display(&["version"]),
            problem: "no `netlab version X` line".into(),
        })?;
        Ok(Netlab { version, ..probe })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Drops the cached status report after a lab changed. Waits for a
    /// status run in flight (it holds the lock), so its stale report goes too.
    async fn forget_status(&self) {
        *self.status_cache.lock().await = None;
    }

    /// The same netlab, driving the instance of lab slot `slot` (from 1).
    pub fn for_slot(&self, slot: usize) -> Netlab {
        Netlab {
            instance: instance_of(slot),
            ..self.clone()
        }
    }

    /// `netlab up <topology> <up_args…>` in the lab's directory. Slots
    /// after the first add netlab's `multilab` plugin with their instance
    /// id, last, so it wins: the plugin is what gives each lab its own
    /// management subnet (`192.168.<id>.0/24`), network (`nl_mgmt_<id>`)
    /// and name (`ml-<id>`), as netlab isolates labs on one host
    /// (networklab 26.10, `netsim/extra/multilab`, `defaults/multilab.yml`).
    /// Slot 1 stays netlab's `default` instance, as the original used it.
    pub async fn up(
        &self,
        dir: &Path,
        topology: &Path,
        cancel: &CancellationToken,
        log: Arc<dyn LineSink>,
    ) -> Result<(), NetlabError> {
        let mut args = vec!["up".to_string(), topology.to_string_lossy().into_owned()];
        args.extend(self.config.up_args.iter().cloned());
        if self.instance != instance_of(1) {
            args.extend([
                "--plugin".into(),
                "multilab".into(),
                "-s".into(),
                format!("defaults.multilab.id={}", self.instance),
            ]);
        }
        let run = Run {
            sink: Some(log),
            ..self.spawn(args, Some(dir), Some(cancel))
        };
        self.complete(run).await.map(drop)
    }

    /// The Ansible host view of every node of the lab started in `dir`.
    pub async fn devices(&self, dir: &Path) -> Result<Vec<Device>, NetlabError> {
        match self.host_views_in_one_call(dir).await {
            Ok(devices) => Ok(devices),
            Err(error) => {
                tracing::warn!(%error, "one-call inspect failed; asking netlab node by node");
                self.devices_node_by_node(dir).await
            }
        }
    }

    /// `netlab down --cleanup` in the lab's directory: stops the lab and
    /// removes the files netlab created there.
    pub async fn down(&self, dir: &Path) -> Result<(), NetlabError> {
        let args = vec!["down".to_string(), "--cleanup".to_string()];
        // netlab must change into the directory to take a lab down; one
        // deleted behind its back can only be dropped from its registry.
        if !dir.exists() {
            return match super::status_file::forget_gone(&self.instance, dir.to_path_buf()).await {
                true => Ok(()),
                false => Err(NetlabError::Spawn {
                    command: self.display(&args),
                    error: "the lab's directory is gone and netlab's status file could not be \
                            changed; run `netlab status --reset`"
                        .into(),
                }),
            };
        }
        self.run(args, Some(dir), None).await.map(drop)
    }

    /// This slot's netlab instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// `netlab down --instance <id> --cleanup`: clears a lab a crashed
    /// earlier server left registered. "Nothing there" is not an error.
    pub async fn down_instance(&self, id: &str) -> Result<bool, NetlabError> {
        let args = ["down", "--instance", id, "--cleanup"];
        match self
            .run(args.iter().map(|a| a.to_string()).collect(), None, None)
            .await
        {
            Ok(_) => Ok(true),
            Err(NetlabError::Failed { tail, .. })
                if tail.iter().any(|line| line.contains("Unknown instance")) =>
            {
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    /// `netlab status --all --format json`, as netlab printed it.
    pub async fn status(&self) -> Result<String, NetlabError> {
        let args = ["status", "--all", "--format", "json"];
        let command = self.display(&args);
        tracing::debug!(%command, "running netlab");
        let run = self.spawn(args.iter().map(|a| a.to_string()).collect(), None, None);
        let finished = finish(run.execute().await, command, self.config.command_timeout)?;
        // rc 1 with a warning object means "no labs": still a valid answer.
        Ok(finished.stdout)
    }

    /// The instances netlab has registered for this user, from `netlab
    /// status --all --format json` (an object of instance id → `{"dir": …,
    /// "status": "started", …}`; `{"warning": …}` when there are none,
    /// `{"error": …}` when netlab failed; see netlab-notes).
    pub async fn registered(&self) -> Result<Vec<Registered>, NetlabError> {
        let command = self.display(&["status", "--all", "--format", "json"]);
        let report: Map<String, Value> =
            parse_json(&self.status().await?, &command, "a JSON object")?;
        if let Some(error) = report.get("error") {
            return Err(NetlabError::BadOutput {
                command,
                problem: error.to_string(),
            });
        }
        Ok(report
            .iter()
            .filter_map(|(id, lab)| {
                Some(Registered {
                    id: id.clone(),
                    dir: PathBuf::from(lab.get("dir")?.as_str()?),
                    status: lab
                        .get("status")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                })
            })
            .collect())
    }

    /// Every node's host view from a single `netlab inspect` (see
    /// [`ALL_HOSTS_EXPRESSION`]), in netlab's node order.
    pub async fn host_views_in_one_call(&self, dir: &Path) -> Result<Vec<Device>, NetlabError> {
        let args = inspect_args(&[ALL_HOSTS_EXPRESSION]);
        let command = self.display(&["inspect", "…all hosts…"]);
        let finished = self.run(args, Some(dir), None).await?;
        // Borrowed from netlab's output; each host view is copied once, compact.
        let pairs: Vec<(String, &RawValue)> =
            serde_json::from_str(&finished.stdout).map_err(|error| NetlabError::BadOutput {
                command: command.clone(),
                problem: format!("expected a JSON list of [name, host] pairs: {error}"),
            })?;
        pairs
            .into_iter()
            .map(|(name, raw)| self.device(name, raw, &command))
            .collect()
    }

    /// The public per-node form for every node, in netlab's node order: one
    /// `inspect` for the names, then one per node, run concurrently.
    pub async fn devices_node_by_node(&self, dir: &Path) -> Result<Vec<Device>, NetlabError> {
        let args = inspect_args(&[NODE_NAMES_EXPRESSION]);
        let command = self.display(&args);
        let names: Vec<String> = parse_json(
            &self.run(args, Some(dir), None).await?.stdout,
            &command,
            "a JSON list of node names",
        )?;
        // One start-up per node, but concurrently: the wait stays one start-up long.
        let mut lookups = tokio::task::JoinSet::new();
        for (index, name) in names.iter().enumerate() {
            let (netlab, dir, name) = (self.clone(), dir.to_path_buf(), name.clone());
            lookups.spawn(async move { (index, netlab.host_view(&dir, &name).await) });
        }
        let mut devices = Vec::with_capacity(names.len());
        while let Some(joined) = lookups.join_next().await {
            let (index, device) = joined.map_err(|error| NetlabError::BadOutput {
                command: command.clone(),
                problem: error.to_string(),
            })?;
            devices.push((index, device?));
        }
        devices.sort_by_key(|(index, _)| *index);
        Ok(devices.into_iter().map(|(_, device)| device).collect())
    }

    /// The public per-node form: `netlab inspect --node <name> --format json`.
    pub async fn host_view(&self, dir: &Path, name: &str) -> Result<Device, NetlabError> {
        let args: Vec<String> = ["inspect", "-q", "--node", name, "--format", "json"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        let command = self.display(&args);
        let stdout = self.run(args, Some(dir), None).await?.stdout;
        let raw: Map<String, Value> = parse_json(&stdout, &command, "a JSON object")?;
        Ok(Device::from_map(name.to_string(), &raw))
    }

    /// A device of the one-call view, made equal to the per-node view key
    /// for key (the per-node form adds netlab's version), kept compact: one
    /// node's host view is parsed at a time.
    fn device(&self, name: String, raw: &RawValue, command: &str) -> Result<Device, NetlabError> {
        let mut raw = match parse_json::<Value>(raw.get(), command, "a host view")? {
            Value::Object(map) => map,
            other => Map::from_iter([("value".to_string(), other)]),
        };
        raw.insert(VERSION_KEY.into(), Value::String(self.version.clone()));
        Ok(Device::from_map(name, &raw))
    }

    async fn run(
        &self,
        args: Vec<String>,
        cwd: Option<&Path>,
        cancel: Option<&CancellationToken>,
    ) -> Result<Finished, NetlabError> {
        self.complete(self.spawn(args, cwd, cancel)).await
    }

    /// Runs `run` to its end; a non-zero exit is [`NetlabError::Failed`].
    async fn complete(&self, run: Run<'_>) -> Result<Finished, NetlabError> {
        let command = self.display(&run.args);
        tracing::debug!(%command, cwd = ?run.cwd, "running netlab");
        let limit = run.limit;
        let finished = finish(run.execute().await, command.clone(), limit)?;
        if finished.success() {
            Ok(finished)
        } else {
            Err(NetlabError::Failed {
                command,
                code: finished.code,
                tail: finished.tail,
            })
        }
    }

    fn spawn<'a>(
        &'a self,
        args: Vec<String>,
        cwd: Option<&'a Path>,
        cancel: Option<&'a CancellationToken>,
    ) -> Run<'a> {
        let verb = args.first().map_or("", String::as_str);
        let limit = if verb == "up" {
            self.config.up_timeout
        } else {
            self.config.command_timeout
        };
        // What `inspect` and `status` print is read, not followed.
        let data = matches!(verb, "inspect" | "status");
        Run {
            program: &self.config.program,
            args,
            cwd,
            limit,
            cancel,
            kill_grace: self.config.kill_grace,
            owner: self.config.owner.as_deref(),
            data,
            sink: None,
        }
    }

    fn display(&self, args: &[impl AsRef<std::ffi::OsStr>]) -> String {
        process::display(&self.config.program, args)
    }
}

/// Turns an interrupted run into the matching error.
fn finish(
    outcome: Result<Finished, Interrupted>,
    command: String,
    limit: Duration,
) -> Result<Finished, NetlabError> {
    outcome.map_err(|interrupted| match interrupted {
        Interrupted::Spawn(error) => NetlabError::Spawn {
            command,
            error: error.to_string(),
        },
        Interrupted::TimedOut { tail } => NetlabError::TimedOut {
            command,
            limit,
            tail,
        },
        Interrupted::Cancelled => NetlabError::Cancelled { command },
    })
}

fn inspect_args(rest: &[&str]) -> Vec<String> {
    ["inspect", "-q", "--format", "json"]
        .iter()
        .chain(rest)
        .map(|a| a.to_string())
        .collect()
}

/// Parses netlab's JSON output; `expected` names the shape for the error.
fn parse_json<T: serde::de::DeserializeOwned>(
    stdout: &str,
    command: &str,
    expected: &str,
) -> Result<T, NetlabError> {
    serde_json::from_str(stdout).map_err(|error| NetlabError::BadOutput {
        command: command.to_string(),
        problem: format!("expected {expected}: {error}"),
    })
}

/// Whether two paths name the same directory (symbolic links resolved).
pub fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `netlab version 26.10` → `26.10`.
fn parse_version(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("netlab version "))
        .map(|version| version.trim().to_string())
}

impl LabDriver for Netlab {
    fn up<'a>(
        &'a self,
        dir: &'a Path,
        topology: &'a Path,
        cancel: &'a CancellationToken,
        log: Arc<dyn LineSink>,
    ) -> BoxFuture<'a, Result<Vec<Device>, LabError>> {
        Box::pin(async move {
            let started = Netlab::up(self, dir, topology, cancel, log).await;
            self.forget_status().await;
            started?;
            Ok(self.devices(dir).await?)
        })
    }

    fn down<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, Result<(), LabError>> {
        Box::pin(async move {
            let stopped = Netlab::down(self, dir).await;
            self.forget_status().await;
            Ok(stopped?)
        })
    }

    fn version(&self) -> &str {
        &self.version
    }

    /// `netlab status --all` (afresh, not the cached report) and `netlab
    /// version`, run at once: one Python start-up of wait.
    fn check<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, Result<Health, LabError>> {
        Box::pin(async move {
            let (registered, version) = tokio::join!(
                self.registered(),
                self.run(vec!["version".into()], None, None)
            );
            let version =
                parse_version(&version?.stdout).ok_or_else(|| NetlabError::BadOutput {
                    command: self.display(&["version"]),
                    problem: "no `netlab version X` line".into(),
                })?;
            let status = registered?
                .into_iter()
                .find(|lab| lab.id == self.instance && same_dir(&lab.dir, dir))
                .map(|lab| lab.status);
            Ok(Health { status, version })
        })
    }

    /// `netlab <args…>` in the lab's directory, with the time limit of
    /// `netlab up` (netlab's `initial` configures every device).
    fn reset<'a>(
        &'a self,
        dir: &'a Path,
        args: &'a [String],
    ) -> BoxFuture<'a, Result<(), LabError>> {
        Box::pin(async move {
            let mut run = self.spawn(args.to_vec(), Some(dir), None);
            run.limit = self.config.up_timeout;
            self.complete(run).await?;
            Ok(())
        })
    }

    /// Concurrent callers share one run: they queue on the cache's lock
    /// and find the report the first one fetched.
    fn status(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            let mut cache = self.status_cache.lock().await;
            if let Some((at, report)) = cache.as_ref()
                && at.elapsed() < STATUS_FRESH_FOR
            {
                return Some(report.clone());
            }
            match Netlab::status(self).await {
                Ok(report) => {
                    *cache = Some((Instant::now(), report.clone()));
                    Some(report)
                }
                Err(error) => {
                    tracing::warn!(%error, "netlab status failed");
                    None
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_read_from_the_first_matching_line() {
        let out = "netlab version 26.10\n  executable location: /x\n";
        assert_eq!(parse_version(out).as_deref(), Some("26.10"));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn the_all_hosts_expression_avoids_what_netlab_splits_on() {
        for expression in [ALL_HOSTS_EXPRESSION, NODE_NAMES_EXPRESSION] {
            assert!(!expression.contains(':') && !expression.contains('='));
        }
    }

    #[test]
    fn failure_message_names_exit_code_and_last_lines() {
        let error = NetlabError::Failed {
            command: "netlab up t.yml".into(),
            code: Some(3),
            tail: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            error.to_string(),
            "`netlab up t.yml` failed (exit code 3); last output:\na\nb"
        );
    }
}
