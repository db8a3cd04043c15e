//! The lab rules, driven through an in-memory driver that records calls.

use super::*;
use crate::testing::MemoryDriver;

struct Fixture {
    driver: Arc<MemoryDriver>,
    manager: LabSlot,
    root: tempfile::TempDir,
    /// The session that acts, unless a test names another.
    holder: Holder,
}

fn holder() -> Holder {
    Holder {
        session: SessionId::new(),
        token: CancellationToken::new(),
    }
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let driver = Arc::new(MemoryDriver::default());
    let manager = LabSlot::new(
        1,
        Arc::new(slot_driver::LocalSlotDriver::new(
            1,
            driver.clone(),
            root.path().join("labs"),
            lock::LabLock::for_slot(root.path(), 1),
        )),
        Arc::new(Changes::default()),
    );
    Fixture {
        driver,
        manager,
        root,
        holder: holder(),
    }
}

impl Fixture {
    async fn try_take(&self, name: &str, content: &str, reuse: bool) -> Result<Acquired, LabError> {
        self.manager
            .acquire(&upload(name, content, reuse), &self.holder)
            .await
    }

    async fn take(&self, name: &str, content: &str, reuse: bool) -> Acquired {
        self.try_take(name, content, reuse).await.expect("acquire")
    }

    fn lab_dirs(&self) -> usize {
        std::fs::read_dir(self.root.path().join("labs")).map_or(0, |dir| dir.count())
    }
}

/// Collects the reported changes.
#[derive(Default)]
struct Changes(std::sync::Mutex<Vec<LabChange>>);

impl LabObserver for Changes {
    fn lab_changed(&self, _: usize, change: LabChange) {
        self.0.lock().unwrap().push(change);
    }
}

fn upload(name: &str, content: &str, reuse: bool) -> Upload {
    upload::tests_support::upload(name, content, reuse)
}

#[test]
fn plan_follows_the_contract_table() {
    let (a, b) = (Identity::of(b"a"), Identity::of(b"b"));
    assert_eq!(plan(None, &a, true).unwrap(), Plan::Start);
    assert_eq!(plan(Some((&a, 2)), &a, true).unwrap(), Plan::Attach);
    assert_eq!(plan(Some((&a, 0)), &a, true).unwrap(), Plan::Attach);
    assert_eq!(plan(Some((&a, 0)), &a, false).unwrap(), Plan::Replace);
    assert_eq!(plan(Some((&a, 0)), &b, true).unwrap(), Plan::Replace);
    assert!(matches!(
        plan(Some((&a, 1)), &a, false),
        Err(LabError::Busy)
    ));
    assert!(matches!(plan(Some((&a, 1)), &b, true), Err(LabError::Busy)));
}

#[tokio::test]
async fn same_content_under_another_name_attaches_without_running_netlab() {
    let f = fixture();
    let first = f.take("a.yml", "nodes: [r1]", true).await;
    assert!(!first.reused);
    let second = f.take("b.yaml", "nodes: [r1]", true).await;
    assert!(second.reused);
    assert_eq!(f.driver.calls(), ["up"]);
    assert_eq!(f.manager.view().ref_count, 2);
    assert_eq!(f.lab_dirs(), 1, "attaching writes no directory");
}

#[tokio::test]
async fn reattaching_to_an_idle_lab_reports_reused() {
    let f = fixture();
    f.take("a.yml", "nodes: [r1]", true).await;
    f.manager.release(&f.holder).await.unwrap();
    let again = f.take("a.yml", "nodes: [r1]", true).await;
    assert!(again.reused);
    assert_eq!(f.manager.view().ref_count, 1);
}

#[tokio::test]
async fn release_floors_at_zero_and_keeps_the_lab_running() {
    let f = fixture();
    f.take("a.yml", "nodes: [r1]", true).await;
    f.manager.release(&f.holder).await.unwrap();
    f.manager.release(&f.holder).await.unwrap();
    let view = f.manager.view();
    assert!(view.running());
    assert_eq!(view.ref_count, 0);
}

#[tokio::test]
async fn release_without_lab_is_not_running() {
    let f = fixture();
    assert!(matches!(
        f.manager.release(&f.holder).await,
        Err(LabError::NotRunning)
    ));
}

#[tokio::test]
async fn idle_lab_is_replaced_by_other_content() {
    let f = fixture();
    f.take("a.yml", "nodes: [r1]", true).await;
    f.manager.release(&f.holder).await.unwrap();
    let switched = f.take("b.yml", "nodes: [r2]", true).await;
    assert!(!switched.reused);
    assert_eq!(f.driver.calls(), ["up", "down", "up"]);
    assert_eq!(f.manager.view().topology.as_deref(), Some("b.yml"));
    assert_eq!(f.lab_dirs(), 1, "the old lab's directory is gone");
}

#[tokio::test]
async fn held_lab_refuses_other_content_and_exclusive_restart() {
    let f = fixture();
    f.take("a.yml", "nodes: [r1]", true).await;
    assert!(matches!(
        f.try_take("b.yml", "nodes: [r2]", true).await,
        Err(LabError::Busy)
    ));
    assert!(matches!(
        f.try_take("a.yml", "nodes: [r1]", false).await,
        Err(LabError::Busy)
    ));
    assert_eq!(f.driver.calls(), ["up"]);
    assert_eq!(f.lab_dirs(), 1, "a refused request writes nothing");
}

#[tokio::test]
async fn exclusive_restart_of_an_idle_lab_starts_it_again() {
    let f = fixture();
    f.take("a.yml", "nodes: [r1]", true).await;
    f.manager.release(&f.holder).await.unwrap();
    let fresh = f.take("a.yml", "nodes: [r1]", false).await;
    assert!(!fresh.reused);
    assert_eq!(f.driver.calls(), ["up", "down", "up"]);
}

#[tokio::test]
async fn failed_bring_up_cleans_up_and_leaves_no_lab() {
    let f = fixture();
    let result = f.try_take("a.yml", "nodes: [fail-up]", true).await;
    assert!(matches!(result, Err(LabError::Netlab(_))));
    assert_eq!(f.driver.calls(), ["up", "down"]);
    assert!(!f.manager.view().running());
    assert_eq!(f.lab_dirs(), 0);
    f.take("a.yml", "nodes: [r1]", true).await;
}

#[tokio::test]
async fn destroy_respects_force_and_reports_whether_a_lab_ran() {
    let f = fixture();
    assert!(!f.manager.destroy(true, None).await.unwrap());
    f.take("a.yml", "nodes: [r1]", true).await;
    assert!(matches!(
        f.manager.destroy(false, Some(&f.holder)).await,
        Err(LabError::InUse)
    ));
    assert!(f.manager.destroy(true, None).await.unwrap());
    assert!(!f.manager.view().running());
    assert_eq!(f.lab_dirs(), 0);
}

#[tokio::test]
async fn stale_directories_of_a_crashed_run_are_removed() {
    let f = fixture();
    let labs = f.root.path().join("labs");
    std::fs::create_dir_all(labs.join("lab-old-1/configs")).unwrap();
    std::fs::create_dir_all(labs.join("keep-me")).unwrap();
    assert_eq!(remove_stale_dirs(&labs, &[]).await.unwrap(), 1);
    assert!(labs.join("keep-me").exists());
}

/// A slot whose kept labs are reset (`--warm-reset`) for another session.
fn fixture_with_reset() -> Fixture {
    let f = fixture();
    Fixture {
        manager: f.manager.with_warm_reset(vec!["initial".into()]),
        ..f
    }
}

#[tokio::test]
async fn a_kept_lab_goes_warm_to_the_next_session_and_then_cannot_expire() {
    let mut f = fixture();
    f.take("a.yml", "nodes: [r1]", true).await;
    let keep = f.manager.keep(Duration::from_secs(60)).await.unwrap();
    assert!(f.manager.view().kept_until.is_some());
    f.holder = holder();
    let warm = f.take("a.yml", "nodes: [r1]", true).await;
    assert!(warm.reused);
    assert!(!f.manager.expire(keep).await, "the attach won");
    let view = f.manager.view();
    assert!(view.running() && view.kept_until.is_none());
    assert_eq!(view.ref_count, 1);
    assert_eq!(f.driver.calls(), ["up", "check"]);
}

#[tokio::test]
async fn an_expired_lab_is_torn_down_and_the_next_acquire_starts_it() {
    let mut f = fixture();
    f.take("a.yml", "nodes: [r1]", true).await;
    let keep = f.manager.keep(Duration::from_secs(60)).await.unwrap();
    assert!(f.manager.expire(keep).await);
    assert!(!f.manager.view().running());
    assert_eq!(f.lab_dirs(), 0);
    f.holder = holder();
    assert!(!f.take("a.yml", "nodes: [r1]", true).await.reused);
    assert_eq!(f.driver.calls(), ["up", "down", "up"]);
}

#[tokio::test]
async fn a_kept_lab_the_tool_no_longer_runs_is_started_afresh() {
    let mut f = fixture();
    f.take("a.yml", "nodes: [r1]", true).await;
    f.manager.keep(Duration::from_secs(60)).await.unwrap();
    // Torn down behind the server's back.
    let dir = f
        .manager
        .lab
        .lock()
        .await
        .running
        .as_ref()
        .unwrap()
        .files
        .netlab_dir
        .clone();
    f.driver.down(&dir).await.unwrap();
    f.holder = holder();
    assert!(!f.take("a.yml", "nodes: [r1]", true).await.reused);
    assert_eq!(f.driver.calls(), ["up", "down", "check", "up"]);
    assert_eq!(f.lab_dirs(), 1);
}

#[tokio::test]
async fn the_warm_reset_runs_only_for_another_session() {
    let mut f = fixture_with_reset();
    f.take("a.yml", "nodes: [r1]", true).await;
    f.manager.keep(Duration::from_secs(60)).await.unwrap();
    assert!(f.take("a.yml", "nodes: [r1]", true).await.reused);
    assert_eq!(f.driver.calls(), ["up", "check"]);
    f.manager.keep(Duration::from_secs(60)).await.unwrap();
    f.holder = holder();
    assert!(f.take("a.yml", "nodes: [r1]", true).await.reused);
    assert_eq!(f.driver.calls(), ["up", "check", "check", "reset"]);
}

#[tokio::test]
async fn a_kept_lab_is_replaced_by_another_lab_and_reuse_false_starts_afresh() {
    let mut f = fixture();
    f.take("a.yml", "nodes: [r1]", true).await;
    f.manager.keep(Duration::from_secs(60)).await.unwrap();
    f.holder = holder();
    assert!(!f.take("a.yml", "nodes: [r1]", false).await.reused);
    f.manager.keep(Duration::from_secs(60)).await.unwrap();
    assert!(!f.take("b.yml", "nodes: [r2]", true).await.reused);
    assert_eq!(f.driver.calls(), ["up", "down", "up", "down", "up"]);
}

#[tokio::test]
async fn a_departed_holder_can_neither_release_nor_destroy() {
    let f = fixture();
    f.take("a.yml", "nodes: [r1]", true).await;
    f.holder.token.cancel();
    assert!(matches!(
        f.manager.release(&f.holder).await,
        Err(LabError::Cancelled)
    ));
    assert!(matches!(
        f.manager.destroy(true, Some(&f.holder)).await,
        Err(LabError::Cancelled)
    ));
    assert_eq!(f.manager.view().ref_count, 1);
}
