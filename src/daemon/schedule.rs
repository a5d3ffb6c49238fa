//! The service's cron jobs: one per stream (each tick starts a run per shop), the daily deep
//! reconcile, and a heartbeat for the watchdog.

use std::sync::Arc;

use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tracing::{info, warn};

use super::service::{ServiceError, Shared};
use crate::app::App;
use crate::store::Stream;

/// The started scheduler for `app`'s config.
pub(super) async fn build(shared: &Arc<Shared>, app: &App) -> Result<JobScheduler, ServiceError> {
    let err = |e: JobSchedulerError| ServiceError::Scheduler(e.to_string());
    let scheduler = JobScheduler::new().await.map_err(err)?;
    // One job per stream, whatever the number of shops: each tick starts a run per shop (with
    // a thousand shops, a job per shop and stream made the scheduler's every tick walk three
    // thousand jobs).
    for stream in Stream::ALL {
        let cfg = app.config.stream(stream);
        if !cfg.enabled {
            continue;
        }
        let shared = shared.clone();
        let job = Job::new_async(cfg.schedule.as_str(), move |_, _| {
            let shared = shared.clone();
            // A tick only starts the runs: a long backfill does not hold the scheduler.
            Box::pin(async move {
                for shop in &shared.app().config.shops {
                    shared.start_poll(&shop.id, stream);
                }
            })
        })
        .map_err(err)?;
        scheduler.add(job).await.map_err(err)?;
    }
    scheduler
        .add(reconcile_job(shared, app)?)
        .await
        .map_err(err)?;
    let liveness = shared.liveness.clone();
    let beat = Job::new_async("*/5 * * * * *", move |_, _| {
        let liveness = liveness.clone();
        Box::pin(async move { liveness.beat("scheduler") })
    })
    .map_err(err)?;
    scheduler.add(beat).await.map_err(err)?;
    scheduler.start().await.map_err(err)?;
    Ok(scheduler)
}

/// The deep reconcile on its schedule: the last days of orders and refunds of every shop.
fn reconcile_job(shared: &Arc<Shared>, app: &App) -> Result<Job, ServiceError> {
    let shared = shared.clone();
    Job::new_async(app.config.sync.reconcile_schedule.as_str(), move |_, _| {
        let shared = shared.clone();
        Box::pin(async move {
            let app = shared.app();
            let cx = app.sync_context();
            for shop in &app.config.shops {
                if let Err(e) = cx
                    .request_reconcile(&shop.id, app.config.sync.reconcile_days)
                    .await
                {
                    warn!(shop = shop.id, error = %e, "cannot request the deep reconcile");
                }
            }
            info!(
                days = app.config.sync.reconcile_days,
                "deep reconcile requested"
            );
            shared.resync_wake.notify_one();
        })
    })
    .map_err(|e| ServiceError::Scheduler(e.to_string()))
}
