// The job's mutual-TLS material in its children, issued and rotated by the operator
// (common/job_certificates.h has the rule):
//   ConfigMap "<job>-config"  ca.crt      the trust bundle (public), mounted at /etc/tandem/ca.crt
//                             issued.crt  the certificate last issued (public): what the
//                                         operator renews from
//   Secret "<job>-token"      tls.crt, tls.key  projected alone (not the token) at
//                                         /etc/tandem/tls/, mode 0440, group = the pod's fsGroup
// The operator only creates and patches these: it never reads a Secret (deploy/rbac.yaml), and
// no CA key exists outside its memory, and there only between adding a CA and signing with it.
// After an operator restart the public half comes from the informer cache.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "api/training_job.h"
#include "common/job_certificates.h"
#include "nlohmann/json.hpp"
#include "operator/controller/cluster_cache.h"
#include "operator/kube/kube_api.h"

namespace tandem::controller {

inline constexpr char kTlsVolume[] = "tls";
inline constexpr char kTlsMountPath[] = "/etc/tandem/tls";
inline constexpr char kIssuedCertKey[] = "issued.crt";

// The worker contract's TLS files in a pod.
tls::TlsFiles PodTlsFiles();
// The Secret volume that projects tls.crt and tls.key, and its mount (both containers).
nlohmann::json TlsVolume(const std::string& job_name);
nlohmann::json TlsVolumeMount();

class JobTls {
 public:
  // `cache`: the informer cache (the job's ConfigMap is read from it, never from the API).
  JobTls(kube::KubeApi* api, const ClusterCache* cache, tls::RotationPolicy policy)
      : api_(api), cache_(cache), policy_(policy) {}

  // Before the job's workers are created, once its Secret exists: issues the material when the
  // job has none yet (the cached ConfigMap may be absent or stale). Writes the Secret first,
  // then the ConfigMap, whose ca.crt is the record that the material exists. `now_s`: seconds
  // since the epoch.
  absl::Status EnsureIssued(const api::TrainingJob& job, double now_s);

  struct Pass {
    absl::Status error;
    std::vector<std::string> changes;  // one line per change, for an Event
    double requeue_after_s = 0;        // > 0: when the rule next has work
  };
  // While the workers exist: applies the rotation rule, patching what changed. Nothing to do
  // (and no requeue) for a job without material, e.g. one started by an operator without TLS.
  // No API call unless something changes.
  Pass Rotate(const api::TrainingJob& job, double now_s);

 private:
  struct State {
    std::string uid;
    std::string ca_bundle_pem;
    std::string issued_pem;
    std::optional<tls::KeyAndCertificate> pending;
    absl::Time next_check = absl::InfinitePast();
  };
  // The job's public material: what this process wrote last, else the cached ConfigMap's.
  std::optional<State> Known(const api::TrainingJob& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PatchSecret(const api::TrainingJob& job, const tls::KeyAndCertificate& identity);
  absl::Status PatchConfigMap(const api::TrainingJob& job, const std::string& bundle,
                              const std::string& issued);

  kube::KubeApi* const api_;
  const ClusterCache* const cache_;
  const tls::RotationPolicy policy_;
  absl::Mutex mu_;
  std::map<std::string, State> jobs_ ABSL_GUARDED_BY(mu_);  // by "ns/name"
};

}  // namespace tandem::controller
