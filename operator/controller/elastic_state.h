// status.elastic of an elastic TrainingJob (spec.elastic, docs/elastic.md): the rules the
// scheduling pass and the reconciler share for the published membership, its epoch and the
// history of resizes. Pure functions over the status; the callers write it and the ConfigMap
// "<job>-membership" (worker_builder.h) follows it, never the other way round, so the epoch
// the trainers read only ever rises.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "api/training_job.h"

namespace tandem::controller {

// A job admitted with `workers` workers: members are slots 0..workers-1, published at once, in
// an epoch above any the job had before (a readmitted job's trainers may still read the old
// ConfigMap until the kubelet refreshes it).
void StartMembership(api::TrainingJobStatus* st, int workers, const std::string& reason);

// Publishes status.elastic.members as the new membership: workers = members.size(), the epoch
// raised, and one history entry (from, to, reason, message, now, lost_steps), keeping the last
// api::kMaxResizeHistory. REQUIRES: st->elastic.
void PublishMembers(api::TrainingJobStatus* st, int64_t from, const std::string& reason, const std::string& message,
                    const std::string& now, std::optional<int64_t> lost_steps);

// `n` new slots for a grow: the lowest not in `members` and not in `taken` (slots of pods that
// still exist), in increasing order.
std::vector<int64_t> NewSlots(const std::vector<int64_t>& members, const std::set<int>& taken, int n);

// A grow in progress: new members not yet published.
bool GrowPending(const api::TrainingJobStatus& st);

// The job was resized less than `cooldown_s` ago (by its newest history entry's time).
bool CoolingDown(const api::TrainingJobStatus& st, double now, double cooldown_s);

// "grow" or "shrink" (the metric's direction label).
const char* ResizeDirection(int64_t from, int64_t to);

}  // namespace tandem::controller
