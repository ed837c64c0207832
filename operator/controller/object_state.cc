#include "operator/controller/object_state.h"

#include "api/training_job.h"
#include "operator/kube/resource.h"

namespace tandem::controller {

bool Finished(const std::string& phase) {
  return phase == api::kPhaseSucceeded || phase == api::kPhaseFailed;
}

bool Placed(const std::string& phase) {
  return phase == api::kPhaseAdmitted || phase == api::kPhaseRunning ||
         phase == api::kPhaseRestarting;
}

std::string PodPhase(const nlohmann::json& pod) {
  const nlohmann::json* p = kube::FieldAt(pod, "status.phase");
  return p != nullptr && p->is_string() ? p->get<std::string>() : "";
}

bool Deleting(const nlohmann::json& object) {
  return kube::FieldAt(object, "metadata.deletionTimestamp") != nullptr;
}

}  // namespace tandem::controller
