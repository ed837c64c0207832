#include "operator/controller/elastic_state.h"

#include <algorithm>

#include "operator/kube/resource.h"

namespace tandem::controller {

void StartMembership(api::TrainingJobStatus* st, int workers, const std::string& reason) {
  api::ElasticStatus e = st->elastic.value_or(api::ElasticStatus{});
  // Epoch 0 only for a job's first membership; any later one is newer than all before it.
  e.epoch = st->elastic.has_value() ? e.epoch + 1 : 0;
  e.members.clear();
  for (int i = 0; i < workers; ++i) e.members.push_back(i);
  e.workers = workers;
  e.reason = reason;
  st->elastic = std::move(e);
}

void PublishMembers(api::TrainingJobStatus* st, int64_t from, const std::string& reason, const std::string& message,
                    const std::string& now, std::optional<int64_t> lost_steps) {
  api::ElasticStatus& e = *st->elastic;
  e.workers = static_cast<int64_t>(e.members.size());
  e.epoch++;
  e.reason = message;
  e.resizes.push_back({.from = from, .to = e.workers, .reason = reason, .message = message, .time = now,
                       .epoch = e.epoch, .lost_steps = lost_steps});
  if (e.resizes.size() > api::kMaxResizeHistory)
    e.resizes.erase(e.resizes.begin(), e.resizes.end() - static_cast<long>(api::kMaxResizeHistory));
}

std::vector<int64_t> NewSlots(const std::vector<int64_t>& members, const std::set<int>& taken, int n) {
  std::vector<int64_t> out;
  for (int64_t slot = 0; static_cast<int>(out.size()) < n; ++slot) {
    if (std::find(members.begin(), members.end(), slot) != members.end()) continue;
    if (taken.count(static_cast<int>(slot)) != 0) continue;
    out.push_back(slot);
  }
  return out;
}

bool GrowPending(const api::TrainingJobStatus& st) {
  return st.elastic.has_value() && static_cast<int64_t>(st.elastic->members.size()) > st.elastic->workers;
}

bool CoolingDown(const api::TrainingJobStatus& st, double now, double cooldown_s) {
  if (!st.elastic || st.elastic->resizes.empty()) return false;
  auto at = kube::ParseRfc3339(st.elastic->resizes.back().time);
  return at.ok() && now - *at < cooldown_s;
}

const char* ResizeDirection(int64_t from, int64_t to) { return to > from ? "grow" : "shrink"; }

}  // namespace tandem::controller
