// What the controller's informers keep of each object: only the fields the controller reads
// (operator/controller/*.cc), so that a cache of 10,000 jobs, their pods, Services, ConfigMaps
// and 1,000 nodes stays small. Every informer also drops managedFields and kubectl's
// last-applied-configuration (kube::DropServerBookkeeping).
//
//   Pods:   metadata; spec.nodeName; spec.containers[].name, .resources and the env entry
//           TANDEM_METRICS_PORT; status.phase, podIP, conditions[].type/status,
//           containerStatuses[].name/state.
//   Nodes:  metadata; spec.unschedulable, taints; status.allocatable, capacity,
//           conditions[].type/status (a real node's status also lists every image it holds).
//   Services, NetworkPolicies: metadata only (the controller checks that they exist).
//   ConfigMaps: metadata, the job's TLS trust bundle and issued certificate (job_tls.h) and an
//           elastic job's membership.json (worker_builder.h), not the copy of the whole manifest.
//   TrainingJobs, Queues, PersistentVolumeClaims: whole (status is written back from them).
//
// A reader of another field must add it here; `controller_cache_transform_test` runs the
// reconciler's inputs through these transforms.
#pragma once

#include <functional>

#include "nlohmann/json.hpp"
#include "operator/kube/resource.h"

namespace tandem::controller {

std::function<void(nlohmann::json&)> CacheTransformFor(const kube::Resource& r);

}  // namespace tandem::controller
