// The default Queue: created by the operator at start, from a manifest file, if no Queue of its
// name exists. Never updated: once it exists it is the admins' to edit, and a restart or an
// upgrade leaves their edits alone.
//
// Why the operator and not the Helm chart: the chart ships the CRDs as templates (so that
// `helm upgrade` upgrades them), and a Queue rendered by the same release (even as a post-install
// hook) races the Queue CRD becoming established and Helm's cached discovery; it failed installs
// under load. The operator runs after the CRDs exist on every install path (Helm, deploy/).
#pragma once

#include <functional>

#include "absl/status/status.h"
#include "api/queue.h"
#include "operator/kube/kube_api.h"

namespace tandem::controller {

struct DefaultQueueOptions {
  double initial_backoff_s = 0.5;
  double max_backoff_s = 10;
};

// Creates `queue` unless a Queue of its name exists. Retries while the API server is unreachable
// or does not serve Queues yet (404: the CRD is not established), until `stopping()` is true
// (then Cancelled). Any other refusal (403: RBAC; 422: the API server's schema) is returned.
absl::Status EnsureDefaultQueue(kube::KubeApi* api, const api::Queue& queue,
                                const std::function<bool()>& stopping,
                                const DefaultQueueOptions& options = {});

}  // namespace tandem::controller
