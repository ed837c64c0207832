// What the TrainingJob reconciler and the scheduling pass read off cached objects (jobs, pods).
#pragma once

#include <string>

#include "nlohmann/json.hpp"

namespace tandem::controller {

// A job in this phase is done: Succeeded or Failed.
bool Finished(const std::string& phase);
// A job in this phase holds its placement: Admitted, Running or Restarting.
bool Placed(const std::string& phase);
// A pod's status.phase; "" when it has none yet.
std::string PodPhase(const nlohmann::json& pod);
// The object is being deleted (metadata.deletionTimestamp is set).
bool Deleting(const nlohmann::json& object);

}  // namespace tandem::controller
