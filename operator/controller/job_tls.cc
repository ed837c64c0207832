#include "operator/controller/job_tls.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "operator/controller/worker_builder.h"
#include "operator/kube/resource.h"

namespace tandem::controller {

using nlohmann::json;

tls::TlsFiles PodTlsFiles() {
  return {absl::StrCat(kJobMountPath, "/", tls::kCaBundleFile),
          absl::StrCat(kTlsMountPath, "/", tls::kCertFile),
          absl::StrCat(kTlsMountPath, "/", tls::kKeyFile)};
}

json TlsVolume(const std::string& job_name) {
  return {{"name", kTlsVolume},
          {"secret",
           {{"secretName", TokenSecretName(job_name)},
            {"items", {{{"key", tls::kCertFile}, {"path", tls::kCertFile}},
                       {{"key", tls::kKeyFile}, {"path", tls::kKeyFile}}}},
            {"defaultMode", 0440}}}};
}

json TlsVolumeMount() {
  return {{"name", kTlsVolume}, {"mountPath", kTlsMountPath}, {"readOnly", true}};
}

namespace {

std::string Key(const api::TrainingJob& job) {
  return absl::StrCat(job.metadata.namespace_, "/", job.metadata.name);
}

std::string DataOf(const json* config_map, const char* key) {
  if (config_map == nullptr) return "";
  auto data = config_map->find("data");
  if (data == config_map->end() || !data->is_object()) return "";
  auto it = data->find(key);
  return it != data->end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

std::optional<JobTls::State> JobTls::Known(const api::TrainingJob& job, const json* config_map) {
  auto it = jobs_.find(Key(job));
  if (it != jobs_.end() && it->second.uid == job.metadata.uid) return it->second;
  State s;
  s.uid = job.metadata.uid;
  s.ca_bundle_pem = DataOf(config_map, tls::kCaBundleFile);
  s.issued_pem = DataOf(config_map, kIssuedCertKey);
  if (s.ca_bundle_pem.empty() || s.issued_pem.empty()) return std::nullopt;
  return s;
}

absl::Status JobTls::PatchSecret(const api::TrainingJob& job, const tls::KeyAndCertificate& identity) {
  json patch = {{"data",
                 {{tls::kCertFile, absl::Base64Escape(identity.cert_pem)},
                  {tls::kKeyFile, absl::Base64Escape(identity.key_pem)}}}};
  return api_->Patch(kube::kSecrets, job.metadata.namespace_, TokenSecretName(job.metadata.name),
                     kube::PatchType::kMerge, patch)
      .status();
}

absl::Status JobTls::PatchConfigMap(const api::TrainingJob& job, const std::string& bundle,
                                    const std::string& issued) {
  json patch = {{"data", {{tls::kCaBundleFile, bundle}, {kIssuedCertKey, issued}}}};
  return api_->Patch(kube::kConfigMaps, job.metadata.namespace_, ConfigMapName(job.metadata.name),
                     kube::PatchType::kMerge, patch)
      .status();
}

absl::Status JobTls::EnsureIssued(const api::TrainingJob& job, const json* config_map, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (Known(job, config_map)) return absl::OkStatus();
  absl::StatusOr<tls::JobCertificates> c = tls::CreateJobCertificates(Key(job), now, policy_);
  if (!c.ok()) return c.status();
  if (absl::Status s = PatchSecret(job, {c->key_pem, c->cert_pem}); !s.ok()) return s;
  if (absl::Status s = PatchConfigMap(job, c->ca_bundle_pem, c->cert_pem); !s.ok()) return s;
  State& st = jobs_[Key(job)];
  st = State{job.metadata.uid, c->ca_bundle_pem, c->cert_pem, std::nullopt, absl::InfinitePast()};
  return absl::OkStatus();
}

absl::StatusOr<absl::Time> JobTls::Rotate(const api::TrainingJob& job, const json* config_map,
                                          absl::Time now, std::vector<std::string>* changes) {
  absl::MutexLock lock(&mu_);
  std::optional<State> known = Known(job, config_map);
  if (!known) return absl::InfiniteFuture();
  State st = *std::move(known);
  if (now < st.next_check) return st.next_check;
  absl::StatusOr<tls::RotationStep> step =
      tls::PlanRotation(st.ca_bundle_pem, st.issued_pem, st.pending, Key(job), now, policy_);
  if (!step.ok()) return step.status();
  // The Secret first: once ca.crt or issued.crt say a certificate exists, it does.
  if (step->identity) {
    if (absl::Status s = PatchSecret(job, *step->identity); !s.ok()) return s;
    st.issued_pem = step->identity->cert_pem;
  }
  if (step->ca_bundle_pem) st.ca_bundle_pem = *step->ca_bundle_pem;
  if (step->changed()) {
    if (absl::Status s = PatchConfigMap(job, st.ca_bundle_pem, st.issued_pem); !s.ok()) return s;
  }
  st.pending = step->pending_ca;
  st.next_check = step->next_check;
  for (const std::string& r : step->reasons) changes->push_back(r);
  jobs_[Key(job)] = st;
  return st.next_check;
}

}  // namespace tandem::controller
