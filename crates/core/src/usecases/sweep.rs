//! The scheduled sweep: the safety net under the state-change events.

use super::runs::{complete_if_terminal, refresh, retry_busy_start};
use super::RunPorts;
use crate::error::TaskError;
use crate::tasks::SweepResponse;

/// The scheduled sweep: polls every waiting run and completes the tokens of finished ones, so
/// a lost state-change event costs minutes, not the release.
pub async fn sweep(ports: &RunPorts<'_>) -> Result<SweepResponse, TaskError> {
    let mut out = SweepResponse::default();
    for run in ports.store.waiting_runs().await? {
        out.polled += 1;
        let name = run.spec.name.clone();
        let result = async {
            let run = retry_busy_start(run, ports).await?;
            let run = refresh(run, ports).await?;
            complete_if_terminal(&run, ports).await
        }
        .await;
        match result {
            Ok(true) => out.completed += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(pipeline = %name, error = %e, "sweep could not poll a waiting run");
                out.errors += 1;
            }
        }
    }
    Ok(out)
}
