//! What the leader does with runs of pod sets that complete (Jobs): it
//! tells the planner which runs are recorded as finished (read from the
//! notes, again whenever the notes ref moves), and writes the record of a
//! run the plan found finished, with the last log lines of a failed pod,
//! in the note of the commit that declared the run's revision. Whether a
//! run finished, and how, is decided by the planner; this carries it out.

use super::*;
use crate::plan::{FinishedRun, RunState, RunStatus};
use crate::reconcile::run_record::RunRecord;

impl<N: NodeOps, P: Planner> Leader<N, P> {
    /// The finished runs as the notes record them. A repository whose
    /// notes cannot be read gives `Unknown`: no run is started or stopped
    /// on a guess.
    pub(super) fn recorded_runs(&mut self) -> crate::plan::Runs {
        let read =
            || -> Result<(Option<git2::Oid>, Option<crate::plan::Runs>), crate::repo::RepoError> {
                let repo = crate::repo::open(&self.repo_path)?;
                let tip = crate::repo::notes_tip(&repo);
                if let Some((cached_tip, _)) = &self.runs {
                    if *cached_tip == tip {
                        return Ok((tip, None));
                    }
                }
                Ok((tip, Some(crate::repo::runs_for_planning(&repo)?)))
            };
        match read() {
            Ok((_, None)) => self
                .runs
                .as_ref()
                .map(|(_, r)| r.clone())
                .unwrap_or_default(),
            Ok((tip, Some(runs))) => {
                self.runs = Some((tip, runs.clone()));
                runs
            }
            Err(error) => {
                tracing::error!(%error, "reading the run records from the notes");
                self.runs = None;
                crate::plan::Runs::Unknown(format!("the run records cannot be read: {error}"))
            }
        }
    }

    /// Writes the record of every run `plan` found finished, unless its
    /// note has it already. Returns whether one was written: the next plan
    /// then acts on it (stops what still runs).
    pub(super) async fn record_finished_runs(
        &mut self,
        plan: Option<&crate::plan::Plan>,
        desired: &DesiredState,
        tip: &str,
    ) -> bool {
        let Some(plan) = plan else { return false };
        let mut written = false;
        for object in &plan.objects {
            let Some(
                run @ RunStatus {
                    state: RunState::Finished(finished),
                    ..
                },
            ) = &object.run
            else {
                continue;
            };
            let reason = self.run_reason(finished, desired).await;
            let record = RunRecord {
                kind: object.key.kind.as_str().to_string(),
                namespace: object.key.namespace.clone(),
                name: object.key.name.clone(),
                revision: run.revision.clone(),
                outcome: finished.outcome,
                reason,
                started_at: finished.started_at,
                finished_at: finished.finished_at,
                succeeded: run.succeeded,
                completions: run.completions,
                failed: run.failed,
            };
            match self.append_run_record(&record, &finished.commit, tip) {
                Ok(true) => {
                    written = true;
                    tracing::info!(object = %object.key, revision = %run.revision, outcome = %record.outcome, reason = record.reason_code().unwrap_or(""), "run finished; recorded in its commit's note");
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(object = %object.key, %error, "recording the finished run")
                }
            }
        }
        written
    }

    /// The record's reason: Kubernetes' reason word, then the last log
    /// lines of the failed container (bounded, escaped, Secret values
    /// hidden), as a failed rollout's evidence.
    async fn run_reason(&self, finished: &FinishedRun, desired: &DesiredState) -> Option<String> {
        let text = finished.reason.clone()?;
        Some(
            self.with_logs(text, finished.failing.as_slice(), desired)
                .await,
        )
    }

    /// Appends `record` to the note of `commit` (the tip's when that commit
    /// is not in the repository), unless a record of the same run is there.
    fn append_run_record(
        &self,
        record: &RunRecord,
        commit: &str,
        tip: &str,
    ) -> Result<bool, RolloutRecordError> {
        let repo = crate::repo::open(&self.repo_path)?;
        let oid = git2::Oid::from_str(commit)
            .ok()
            .filter(|oid| repo.find_commit(*oid).is_ok())
            .map_or_else(|| git2::Oid::from_str(tip), Ok)?;
        let already = crate::repo::read_note(&repo, oid)?.is_some_and(|note| {
            RunRecord::parse_all(&note).iter().any(|r| {
                r.is(
                    &record.kind,
                    &record.namespace,
                    &record.name,
                    &record.revision,
                )
            })
        });
        if already {
            return Ok(false);
        }
        crate::repo::append_note(&repo, oid, &record.render())?;
        Ok(true)
    }
}
