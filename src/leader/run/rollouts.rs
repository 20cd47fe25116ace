//! What the leader does with rollout outcomes: a failure's evidence, revert
//! commit and note, a completion's note and the pruning of old images, and
//! a restarted leader's holds. What to do is decided in
//! [`crate::reconcile::decide`]; this carries it out against Git and nodes.

use super::*;

/// A failed rollout, as handed to [`Leader::fail_rollout`].
#[derive(Clone, Copy)]
struct FailedRollout<'a> {
    key: &'a ObjectKey,
    revision: &'a str,
    /// The branch tip when the rollout was first seen.
    rollout_commit: &'a str,
    tip: &'a str,
    evidence: &'a str,
    auto: bool,
    duration: Duration,
}

impl<N: NodeOps, P: Planner> Leader<N, P> {
    /// Records completed rollouts' times; for a failed one, gathers the
    /// evidence, reverts the commit that introduced the revision (unless the
    /// workload opts out) and notes the outcome on that commit. Returns
    /// the revert commits written.
    pub(super) async fn handle_rollout_events(
        &mut self,
        events: Vec<RolloutEvent>,
        desired: &DesiredState,
        commit: &str,
        observed: &ObservedCluster,
        now: SystemTime,
    ) -> Vec<String> {
        let mut reverted = Vec::new();
        for event in events {
            match event {
                RolloutEvent::Started { key, revision } => {
                    tracing::info!(object = %key, %revision, "rollout started");
                }
                RolloutEvent::Completed {
                    key,
                    revision,
                    duration,
                } => {
                    tracing::info!(object = %key, %revision, seconds = duration.as_secs_f64(), "rollout complete");
                    self.api.metrics.rollout_finished("succeeded");
                    let longest = match &self.rollout_time {
                        Some((c, d)) if c == commit => (*d).max(duration),
                        _ => duration,
                    };
                    self.rollout_time = Some((commit.to_string(), longest));
                    self.prune_images(&key, desired, commit, observed).await;
                }
                RolloutEvent::Failed {
                    key,
                    revision,
                    commit: rollout_commit,
                    failure,
                } => {
                    let secrets = crate::manifest::redact::opened_values(desired);
                    let reason = crate::manifest::redact::hide_values(&failure.reason, secrets);
                    tracing::error!(object = %key, %revision, %reason, "rollout failed");
                    self.api.metrics.rollout_finished("failed");
                    let evidence = self.evidence(&failure, desired).await;
                    let auto = decide::auto_rollback(desired, &key);
                    let duration = self
                        .rollouts
                        .get(&key)
                        .and_then(|r| now.duration_since(r.started).ok())
                        .unwrap_or_default();
                    let outcome = FailedRollout {
                        key: &key,
                        revision: &revision,
                        rollout_commit: &rollout_commit,
                        tip: commit,
                        evidence: &evidence,
                        auto,
                        duration,
                    };
                    match self.fail_rollout(&outcome, desired, observed, now) {
                        Ok(Some(revert)) => reverted.push(revert),
                        Ok(None) => {}
                        Err(error) => {
                            tracing::error!(object = %key, %error, "recording the failed rollout")
                        }
                    }
                }
            }
        }
        reverted
    }

    /// After `key`'s rollout to `tip` completed: the images of its revision
    /// that fell out of `revisionHistoryLimit` are removed from every
    /// reachable node, unless a kept revision of it or the desired state
    /// still names them. Docker keeps an image any container still uses.
    async fn prune_images(
        &self,
        key: &ObjectKey,
        desired: &DesiredState,
        tip: &str,
        observed: &ObservedCluster,
    ) {
        let candidates = match self.images_beyond_history(key, desired, tip) {
            Ok(candidates) => candidates,
            Err(error) => {
                tracing::warn!(object = %key, %error, "reading the revision history to prune images");
                return;
            }
        };
        if candidates.is_empty() {
            return;
        }
        let nodes = observed
            .nodes
            .values()
            .filter(|n| n.reachability.is_reachable());
        for node in nodes {
            for image in &candidates {
                match self.nodes.remove_image(&node.name, image).await {
                    Ok(true) => {
                        tracing::info!(object = %key, node = %node.name, %image, "removed the image of a revision beyond revisionHistoryLimit")
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(node = %node.name, %image, %error, "removing an old image")
                    }
                }
            }
        }
    }

    /// The images of the revisions of `key` beyond its `revisionHistoryLimit`
    /// (up to [`PRUNE_SCAN`] of them: the one that left the kept history
    /// with this rollout, and any left behind by a lowered limit or while no
    /// leader ran), less those a kept revision or the desired state names.
    fn images_beyond_history(
        &self,
        key: &ObjectKey,
        desired: &DesiredState,
        tip: &str,
    ) -> Result<BTreeSet<String>, RolloutRecordError> {
        let Some(d) = desired.workload(key) else {
            return Ok(BTreeSet::new());
        };
        let limit = d.spec.revision_history_limit as usize;
        let repo = crate::repo::open(&self.repo_path)?;
        let revisions = crate::repo::HistoryReader::new(&repo).revisions(
            git2::Oid::from_str(tip)?,
            Some(key),
            Some(limit + 1 + PRUNE_SCAN),
        )?;
        let dropped: Vec<_> = revisions
            .get(limit + 1..)
            .unwrap_or_default()
            .iter()
            .filter(|r| r.present())
            .collect();
        if dropped.is_empty() {
            return Ok(BTreeSet::new());
        }
        let images_at = |commit: git2::Oid| -> Result<BTreeSet<String>, RolloutRecordError> {
            let snapshot = crate::repo::read_revision(&repo, &commit.to_string())?;
            let (state, _) = (self.loader)(&snapshot.files);
            Ok(state
                .workload(key)
                .map(|d| {
                    d.spec
                        .template
                        .spec
                        .containers
                        .iter()
                        .map(|c| c.image.clone())
                        .collect()
                })
                .unwrap_or_default())
        };
        let dropped = dropped
            .iter()
            .map(|r| images_at(r.commit))
            .collect::<Result<Vec<_>, _>>()?;
        let kept = revisions[..=limit]
            .iter()
            .filter(|r| r.present())
            .map(|r| images_at(r.commit))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(decide::images_to_prune(&dropped, &kept, desired))
    }

    /// The failure's reason, the replicas not ready, and the last log lines
    /// of the containers that failed: what is committed into the revert
    /// message and the note, bounded and with every control character
    /// escaped (node errors and logs are anyone's text), and every opened
    /// Secret value of `desired` hidden (a container may print its own).
    async fn evidence(&self, failure: &Failure, desired: &DesiredState) -> String {
        let mut text = failure.reason.clone();
        for line in &failure.replicas {
            text.push('\n');
            text.push_str(line);
        }
        self.with_logs(text, &failure.failing, desired).await
    }

    /// `text`, then the last log lines of each of `failing` (node,
    /// container), as committed into a revert message or a note: bounded,
    /// every control character escaped (node errors and logs are anyone's
    /// text), and every opened Secret value of `desired` hidden (a
    /// container may print its own).
    pub(super) async fn with_logs(
        &self,
        mut text: String,
        failing: &[(String, String)],
        desired: &DesiredState,
    ) -> String {
        for (node, container) in failing {
            let logs =
                tokio::time::timeout(LOG_TIMEOUT, self.nodes.logs(node, container, LOG_LINES));
            match logs.await {
                Ok(Ok(logs)) if !logs.trim().is_empty() => {
                    text.push_str(&format!("\nlast log lines of {container} on {node}:"));
                    for line in crate::reconcile::record::log_excerpt(&logs) {
                        text.push_str("\n    ");
                        text.push_str(&line);
                    }
                }
                Ok(Ok(_)) => text.push_str(&format!("\n{container} on {node} printed nothing")),
                Ok(Err(error)) => text.push_str(&format!("\nno logs of {container}: {error}")),
                Err(_) => text.push_str(&format!(
                    "\nno logs of {container}: no answer from {node} within {}s",
                    LOG_TIMEOUT.as_secs()
                )),
            }
        }
        let text = crate::manifest::redact::hide_values(
            &text,
            crate::manifest::redact::opened_values(desired),
        );
        crate::repo::printable_text(&text).into_owned()
    }

    /// Reverts the commit that introduced `revision` of `key` (when `auto`
    /// and that commit is not itself an automatic revert) and appends the
    /// failure to its note, unless already noted.
    fn fail_rollout(
        &mut self,
        failed: &FailedRollout<'_>,
        desired: &DesiredState,
        observed: &ObservedCluster,
        now: SystemTime,
    ) -> Result<Option<String>, RolloutRecordError> {
        let FailedRollout {
            key,
            revision,
            rollout_commit,
            tip,
            evidence,
            auto,
            duration,
        } = *failed;
        let repo = crate::repo::open(&self.repo_path)?;
        // The commit to revert, when it can be told for sure; the note goes
        // on it, else on the tip the rollout was first seen at.
        let found = self.introducing_commit(&repo, key, revision, tip);
        let introduced = found.clone().unwrap_or_else(|| rollout_commit.to_string());
        let oid = git2::Oid::from_str(&introduced)?;
        let records = crate::repo::read_note(&repo, oid)?
            .map(|note| RolloutRecord::parse_all(&note))
            .unwrap_or_default();
        if decide::recorded_failure(&records, key, revision).is_some() {
            tracing::info!(object = %key, commit = %short(&introduced), "failure already recorded; holding the rollout");
            return Ok(None);
        }
        let message = repo.find_commit(oid)?.message().unwrap_or("").to_string();
        let mut revert = None;
        let decision = decide::revert_decision(FailureFacts {
            auto,
            introduced_by: found.as_deref(),
            message: &message,
            already_reverted: self.reverts.get(&introduced).map(String::as_str),
        });
        if let RevertDecision::Hold(why) = decision {
            tracing::warn!(object = %key, revision, commit = %short(&introduced), "{why}: not reverting; holding the rollout where it is");
        } else if let RevertDecision::Reverted(done) = decision {
            revert = Some(done);
        } else {
            let body = format!("{evidence}\n\n{AUTO_REVERT_TRAILER}");
            let mut attempt = crate::repo::revert_on_branch(&repo, &self.branch, oid, &body);
            if let Err(crate::repo::RevertError::BranchMoved { .. }) = attempt {
                // A push landed meanwhile: revert on top of it.
                attempt = crate::repo::revert_on_branch(&repo, &self.branch, oid, &body);
            }
            match attempt {
                Ok(new) => {
                    tracing::warn!(object = %key, reverted = %short(&introduced), revert = %short(&new.to_string()), "rolled back by a revert commit");
                    self.reverts.insert(introduced.clone(), new.to_string());
                    revert = Some(new.to_string());
                }
                Err(error) => {
                    tracing::error!(object = %key, %error, "cannot revert the failed commit; holding the rollout")
                }
            }
        }
        let record = decide::failure_record(
            desired,
            key,
            evidence,
            revert.clone(),
            duration,
            observed,
            now,
        );
        crate::repo::append_note(&repo, oid, &record.render())?;
        Ok(revert)
    }

    /// A restarted leader holds again the rollouts a previous one held: a
    /// workload whose current revision has a failure in the note of the
    /// commit that introduced it (else of the tip), and no revert, is failed
    /// and held, not rolled out afresh.
    pub(super) fn restore_held_failures(
        &mut self,
        desired: &DesiredState,
        tip: &str,
        now: SystemTime,
    ) {
        let Ok(repo) = crate::repo::open(&self.repo_path) else {
            return;
        };
        for d in &desired.workloads {
            let key = d.key();
            let revision = crate::manifest::template_hash(&d.spec.template);
            let noted_on = self
                .introducing_commit(&repo, &key, &revision, tip)
                .unwrap_or_else(|| tip.to_string());
            let note = git2::Oid::from_str(&noted_on)
                .ok()
                .and_then(|oid| crate::repo::read_note(&repo, oid).ok().flatten());
            let Some(note) = note else { continue };
            let records = RolloutRecord::parse_all(&note);
            let held = decide::recorded_failure(&records, &key, &revision);
            let Some(record) = held.filter(|r| r.reverted_by.is_none()) else {
                continue;
            };
            let reason = record
                .reason
                .as_deref()
                .and_then(|r| r.lines().next())
                .unwrap_or("failed before the leader restarted")
                .to_string();
            tracing::warn!(object = %key, %revision, commit = %short(&noted_on), "holding a rollout that failed before the leader restarted");
            self.rollouts.mark_failed(
                key,
                &revision,
                &noted_on,
                Failure {
                    reason,
                    replicas: Vec::new(),
                    failing: Vec::new(),
                },
                now,
            );
        }
    }

    /// The commit that introduced revision `revision` of `key`: the oldest
    /// of the unbroken run, back from `tip` on the branch's first parents,
    /// that declares it, when its parent declares another (or no) revision.
    /// `None` when that cannot be told (history too long, unreadable, or the
    /// repository's first commit).
    fn introducing_commit(
        &self,
        repo: &git2::Repository,
        key: &ObjectKey,
        revision: &str,
        tip: &str,
    ) -> Option<String> {
        crate::repo::introducing_commit(repo, tip, INTRODUCING_COMMIT_SEARCH, |commit| {
            let snapshot = crate::repo::read_revision(repo, commit).ok()?;
            let (state, _) = (self.loader)(&snapshot.files);
            Some(
                state
                    .workload(key)
                    .is_some_and(|d| crate::manifest::template_hash(&d.spec.template) == revision),
            )
        })
    }

    /// Once every object of `commit` is rolled out, says so in the commit's
    /// note (`git log --notes=flotilla`), once per commit.
    pub(super) fn record_rollout(
        &mut self,
        commit: &str,
        desired: &DesiredState,
        status: &StatusReport,
        observed: &ObservedCluster,
        now: SystemTime,
    ) {
        if self.recorded.as_deref() == Some(commit)
            || status.objects.iter().any(|o| o.rollout != "complete")
        {
            return;
        }
        // A rollout whose last step (removing the old replicas) was this
        // reconcile's is still in progress in the tracker, which observed
        // before the step: its duration runs from its start to now.
        let in_progress = desired
            .workloads
            .iter()
            .filter_map(|d| {
                let rollout = self.rollouts.get(&d.key())?;
                (rollout.state == RolloutState::Progressing
                    && rollout.revision == crate::manifest::template_hash(&d.spec.template))
                .then(|| now.duration_since(rollout.started).ok())
                .flatten()
            })
            .max()
            .unwrap_or_default();
        let duration = match &self.rollout_time {
            Some((c, d)) if c == commit => (*d).max(in_progress),
            _ => in_progress,
        };
        let result = (|| -> Result<(), RolloutRecordError> {
            let repo = crate::repo::open(&self.repo_path)?;
            let oid = git2::Oid::from_str(commit)?;
            let already = crate::repo::read_note(&repo, oid)?.is_some_and(|note| {
                RolloutRecord::parse_all(&note)
                    .iter()
                    .any(|r| r.outcome == Outcome::Succeeded)
            });
            if !already {
                let record = decide::success_record(desired, duration, observed, now);
                crate::repo::append_note(&repo, oid, &record.render())?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => self.recorded = Some(commit.to_string()),
            Err(error) => {
                tracing::warn!(%error, commit = %short(commit), "recording the rollout in git notes")
            }
        }
    }
}
