//! The service assembled in one place, for the server and for the tests
//! alike: the coordinator with its policies and the state a previous run
//! left, its background tasks (the deadline timer, pre-boots, metrics) and
//! the HTTP router in front of it. What differs between the two is only
//! what goes in: the store, the lab slots' driver, the limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent::pool::{Liveness, Pool};
use crate::api::agent::AgentSecret;
use crate::api::{self, AppState};
use crate::auth::Auth;
use crate::coordinator::placement::Policy;
use crate::coordinator::{Coordinator, Restored};
use crate::lab::declared::DeclaredLabs;
use crate::lab::{LabObserver, LabSlot};
use crate::metrics;
use crate::queue::Timeouts;
use crate::store::Store;

/// What the service is made of.
pub struct Blueprint<MakeSlot> {
    pub timeouts: Timeouts,
    pub slots: usize,
    /// Cancelled when the server stops.
    pub stop: CancellationToken,
    pub store: Arc<dyn Store>,
    /// Where the sessions' declared labs are kept.
    pub declared: DeclaredLabs,
    /// `--keep-idle-lab`; zero: labs are torn down as their holder leaves.
    pub keep_idle: Duration,
    pub placement: Policy,
    /// The largest upload, in bytes, and the longest one may take.
    pub max_upload_bytes: u64,
    pub upload_timeout: Duration,
    /// The tokens in force; `None`: auth off.
    pub auth: Option<Arc<Auth>>,
    /// Builds slot `n` (from 1), which reports to the given observer.
    pub make_slot: MakeSlot,
    /// Lab agents may join with this secret; `None`: no agents.
    pub agents: Option<AgentPool>,
}

/// The pool's agent settings.
pub struct AgentPool {
    pub secret: AgentSecret,
    pub liveness: Liveness,
}

/// The assembled service.
pub struct App {
    pub coordinator: Arc<Coordinator>,
    /// The lab agents' hosts, when agents may join.
    pub pool: Option<Arc<Pool>>,
    pub router: Router,
    /// The deadline timer: nobody is evicted without it, so a server whose
    /// timer ends before shutdown must stop.
    pub deadlines: JoinHandle<()>,
}

impl App {
    /// Builds the coordinator, puts `restored` back, starts the background
    /// tasks and the router. Call inside a Tokio runtime, before serving.
    pub fn assemble<MakeSlot>(blueprint: Blueprint<MakeSlot>, restored: Restored) -> App
    where
        MakeSlot: Fn(usize, Arc<dyn LabObserver>) -> LabSlot,
    {
        if matches!(blueprint.placement, Policy::Batch { .. }) && blueprint.keep_idle.is_zero() {
            tracing::warn!(
                "--placement batch changes nothing without --keep-idle-lab: a lab is torn down as its holder leaves, so no free slot keeps one to batch on"
            );
        }
        let stop = blueprint.stop.clone();
        let coordinator = Arc::new(
            Coordinator::new(
                blueprint.timeouts,
                blueprint.slots,
                blueprint.stop,
                blueprint.store,
                blueprint.declared,
                blueprint.make_slot,
            )
            .keep_idle_labs(blueprint.keep_idle)
            .placement(blueprint.placement),
        );
        // A previous run's lab hosts come back first: their slots must
        // exist for their holders and labs to be put back.
        let pool = blueprint.agents.map(|agents| {
            let pool = Arc::new(Pool::new(Arc::clone(&coordinator), agents.liveness));
            pool.restore(&restored.hosts, &restored.labs);
            (pool, agents.secret)
        });
        coordinator.restore(restored);
        let deadlines = tokio::spawn({
            let coordinator = Arc::clone(&coordinator);
            async move { coordinator.run_deadlines().await }
        });
        tokio::spawn({
            let coordinator = Arc::clone(&coordinator);
            async move { coordinator.run_preboots().await }
        });
        tokio::spawn(metrics::record_events(Arc::clone(&coordinator)));
        let mut router = api::router(AppState {
            coordinator: Arc::clone(&coordinator),
            started: Instant::now(),
            max_upload_bytes: blueprint.max_upload_bytes,
            upload_timeout: blueprint.upload_timeout,
            declare_permits: Arc::new(tokio::sync::Semaphore::new(api::DECLARE_BODIES_AT_ONCE)),
            metrics: metrics::recorder(),
            auth: blueprint.auth,
        });
        let pool = pool.map(|(pool, secret)| {
            tokio::spawn(Arc::clone(&pool).watch_liveness(stop));
            router = router
                .clone()
                .merge(api::agent::routes(Arc::clone(&pool), secret));
            pool
        });
        App {
            coordinator,
            pool,
            router,
            deadlines,
        }
    }
}
