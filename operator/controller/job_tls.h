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
  JobTls(kube::KubeApi* api, tls::RotationPolicy policy) : api_(api), policy_(policy) {}

  // Before the job's workers are created, once its Secret exists: issues the material when the
  // job has none yet (`config_map`, the cached ConfigMap, may be null or stale). Writes the
  // Secret first, then the ConfigMap, whose ca.crt is the record that the material exists.
  absl::Status EnsureIssued(const api::TrainingJob& job, const nlohmann::json* config_map,
                            absl::Time now);

  // While the workers exist: applies the rotation rule, patching what changed; `changes` gets
  // one line per change. Returns when to look again (InfiniteFuture: the job has no material,
  // e.g. it was started by an operator without TLS). No API call unless something changes.
  absl::StatusOr<absl::Time> Rotate(const api::TrainingJob& job, const nlohmann::json* config_map,
                                    absl::Time now, std::vector<std::string>* changes);

 private:
  struct State {
    std::string uid;
    std::string ca_bundle_pem;
    std::string issued_pem;
    std::optional<tls::KeyAndCertificate> pending;
    absl::Time next_check = absl::InfinitePast();
  };
  // The job's public material: what this process wrote last, else the cached ConfigMap's.
  std::optional<State> Known(const api::TrainingJob& job, const nlohmann::json* config_map)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PatchSecret(const api::TrainingJob& job, const tls::KeyAndCertificate& identity);
  absl::Status PatchConfigMap(const api::TrainingJob& job, const std::string& bundle,
                              const std::string& issued);

  kube::KubeApi* const api_;
  const tls::RotationPolicy policy_;
  absl::Mutex mu_;
  std::map<std::string, State> jobs_ ABSL_GUARDED_BY(mu_);  // by "ns/name"
};

}  // namespace tandem::controller
