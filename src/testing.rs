//! Test support that needs no netlab (cargo feature `testing`): an
//! in-memory lab driver and a whole server wired in-process, for tests that
//! drive the router with `tower::ServiceExt::oneshot` under a paused clock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use serde_json::Map;
use tokio_util::sync::CancellationToken;

use crate::app::{App, Blueprint};
use crate::coordinator::placement::Policy;
use crate::coordinator::{Coordinator, Restored};
use crate::lab::lock::LabLock;
use crate::lab::netlab::NetlabError;
use crate::lab::slot_driver::LocalSlotDriver;
use crate::lab::{BoxFuture, Device, Health, LabDriver, LabError, LabSlot, LineSink};
use crate::queue::Timeouts;

/// Topology content markers the [`MemoryDriver`] obeys.
pub mod script {
    /// `up` fails (exit code 1).
    pub const FAIL: &str = "fail-up";
    /// `up` runs until it is cancelled.
    pub const HANG: &str = "hang-up";
    /// `up` takes [`SLOW_UP_TIME`].
    pub const SLOW_UP: &str = "slow-up";
    /// How long a [`SLOW_UP`] bring-up takes (on Tokio's clock).
    pub const SLOW_UP_TIME: std::time::Duration = std::time::Duration::from_secs(20);
    /// The first `down` of this lab fails (the next one works).
    pub const FAIL_DOWN: &str = "fail-down";
    /// `down` of this lab takes [`SLOW_DOWN_TIME`].
    pub const SLOW_DOWN: &str = "slow-down";
    /// How long a [`SLOW_DOWN`] teardown takes (on Tokio's clock).
    pub const SLOW_DOWN_TIME: std::time::Duration = std::time::Duration::from_secs(60);
}

/// A lab driver that keeps labs in memory and records every call as
/// `"up <dir name>"` / `"down <dir name>"`. Each lab has one device, `r1`.
#[derive(Default)]
pub struct MemoryDriver {
    calls: Mutex<Vec<String>>,
    failing_downs: Mutex<Vec<PathBuf>>,
    slow_downs: Mutex<Vec<PathBuf>>,
}

impl MemoryDriver {
    /// Every call so far, oldest first, without the directory names.
    pub fn calls(&self) -> Vec<String> {
        self.lock_calls()
            .iter()
            .map(|call| call.split(' ').next().unwrap_or_default().to_string())
            .collect()
    }

    fn record(&self, verb: &str, dir: &Path) {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        self.lock_calls().push(format!("{verb} {name}"));
    }

    fn lock_calls(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.calls
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl LabDriver for MemoryDriver {
    fn up<'a>(
        &'a self,
        dir: &'a Path,
        topology: &'a Path,
        cancel: &'a CancellationToken,
        _log: Arc<dyn LineSink>,
    ) -> BoxFuture<'a, Result<Vec<Device>, LabError>> {
        Box::pin(async move {
            self.record("up", dir);
            let content = std::fs::read_to_string(topology).map_err(LabError::Io)?;
            if content.contains(script::FAIL_DOWN) {
                self.failing_downs.lock().unwrap().push(dir.to_path_buf());
            }
            if content.contains(script::SLOW_DOWN) {
                self.slow_downs.lock().unwrap().push(dir.to_path_buf());
            }
            if content.contains(script::SLOW_UP) {
                tokio::time::sleep(script::SLOW_UP_TIME).await;
            }
            if content.contains(script::HANG) {
                cancel.cancelled().await;
                return Err(NetlabError::Cancelled {
                    command: "netlab up".into(),
                }
                .into());
            }
            if content.contains(script::FAIL) {
                return Err(LabError::Netlab(NetlabError::Failed {
                    command: "netlab up".into(),
                    code: Some(1),
                    tail: vec!["scripted failure".into()],
                }));
            }
            Ok(vec![Device::from_map("r1".into(), &Map::new())])
        })
    }

    fn down<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, Result<(), LabError>> {
        Box::pin(async move {
            self.record("down", dir);
            let slow = self.slow_downs.lock().unwrap().iter().any(|d| d == dir);
            if slow {
                tokio::time::sleep(script::SLOW_DOWN_TIME).await;
            }
            let mut failing = self.failing_downs.lock().unwrap();
            if let Some(index) = failing.iter().position(|d| d == dir) {
                failing.remove(index);
                return Err(LabError::Netlab(NetlabError::Failed {
                    command: "netlab down".into(),
                    code: Some(1),
                    tail: vec!["scripted teardown failure".into()],
                }));
            }
            Ok(())
        })
    }

    fn status(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async { Some("{}".into()) })
    }

    fn version(&self) -> &str {
        "memory"
    }

    /// Every lab it started and did not tear down is `started`.
    fn check<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, Result<Health, LabError>> {
        Box::pin(async move {
            self.record("check", dir);
            let calls = self.lock_calls();
            let name = dir.file_name().unwrap_or_default().to_string_lossy();
            let last = calls
                .iter()
                .rev()
                .find(|call| call.ends_with(&format!(" {name}")) && !call.starts_with("check"));
            let status = last
                .filter(|call| call.starts_with("up"))
                .map(|_| "started".to_string());
            Ok(Health {
                status,
                version: "memory".into(),
            })
        })
    }

    fn reset<'a>(&'a self, dir: &'a Path, _: &'a [String]) -> BoxFuture<'a, Result<(), LabError>> {
        Box::pin(async move {
            self.record("reset", dir);
            Ok(())
        })
    }
}

/// A server wired in-process: its router, its coordinator (with the
/// deadline timer running) and its in-memory driver. Its lab directories
/// and lock files live in a private folder, removed on drop.
pub struct InProcess {
    pub router: Router,
    pub coordinator: Arc<Coordinator>,
    pub driver: Arc<MemoryDriver>,
    pub stop: CancellationToken,
    root: PathBuf,
}

impl InProcess {
    /// Starts one with `slots` slots. Call inside a Tokio runtime.
    pub fn start(slots: usize, timeouts: Timeouts) -> InProcess {
        InProcess::with_placement(slots, timeouts, Policy::Fifo, Duration::ZERO)
    }

    /// Starts one with `slots` slots, the placement policy `placement`
    /// and labs kept `keep_idle` after their holder left.
    pub fn with_placement(
        slots: usize,
        timeouts: Timeouts,
        placement: Policy,
        keep_idle: Duration,
    ) -> InProcess {
        let root = std::env::temp_dir().join(format!(
            "neops-remote-lab-test-{}-{}",
            std::process::id(),
            crate::session_id::SessionId::new().full()
        ));
        std::fs::create_dir_all(&root).expect("test folder");
        let driver = Arc::new(MemoryDriver::default());
        let stop = CancellationToken::new();
        let blueprint = Blueprint {
            timeouts,
            slots,
            stop: stop.clone(),
            store: Arc::new(crate::store::InMemory),
            declared: crate::lab::declared::DeclaredLabs::new(root.join("declared")),
            keep_idle,
            placement,
            max_upload_bytes: 1024 * 1024,
            upload_timeout: Duration::from_secs(300),
            auth: None,
            make_slot: |number, observer| {
                LabSlot::new(
                    number,
                    Arc::new(LocalSlotDriver::new(
                        number,
                        driver.clone(),
                        root.join("labs"),
                        LabLock::for_slot(&root, number),
                    )),
                    observer,
                )
            },
            agents: None,
        };
        let App {
            coordinator,
            router,
            ..
        } = App::assemble(blueprint, Restored::default());
        InProcess {
            router,
            coordinator,
            driver,
            stop,
            root,
        }
    }

    /// Lab directories that exist now.
    pub fn lab_dirs(&self) -> usize {
        std::fs::read_dir(self.root.join("labs")).map_or(0, |dir| dir.count())
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The contract's default timeouts with a 30 s claim window.
pub fn default_timeouts() -> Timeouts {
    Timeouts {
        active: Duration::from_secs(300),
        waiting: Duration::from_secs(600),
        claim: Duration::from_secs(30),
        max_hold: None,
    }
}
