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

std::optional<JobTls::State> JobTls::Known(const api::TrainingJob& job) {
  auto it = jobs_.find(Key(job));
  if (it != jobs_.end() && it->second.uid == job.metadata.uid) return it->second;
  kube::Object cached = cache_->Get(
      kube::kConfigMaps, absl::StrCat(job.metadata.namespace_, "/", ConfigMapName(job.metadata.name)));
  const json* config_map = cached.get();
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

absl::Status JobTls::EnsureIssued(const api::TrainingJob& job, double now_s) {
  const absl::Time now = absl::FromUnixSeconds(static_cast<int64_t>(now_s));
  absl::MutexLock lock(&mu_);
  if (Known(job)) return absl::OkStatus();
  absl::StatusOr<tls::JobCertificates> c = tls::CreateJobCertificates(Key(job), now, policy_);
  if (!c.ok()) return c.status();
  if (absl::Status s = PatchSecret(job, {c->key_pem, c->cert_pem}); !s.ok()) return s;
  if (absl::Status s = PatchConfigMap(job, c->ca_bundle_pem, c->cert_pem); !s.ok()) return s;
  State& st = jobs_[Key(job)];
  st = State{job.metadata.uid, c->ca_bundle_pem, c->cert_pem, std::nullopt, absl::InfinitePast()};
  return absl::OkStatus();
}

JobTls::Pass JobTls::Rotate(const api::TrainingJob& job, double now_s) {
  const absl::Time now = absl::FromUnixSeconds(static_cast<int64_t>(now_s));
  Pass pass;
  absl::MutexLock lock(&mu_);
  std::optional<State> known = Known(job);
  if (!known) return pass;
  State st = *std::move(known);
  if (now < st.next_check) {
    pass.requeue_after_s = absl::ToDoubleSeconds(st.next_check - now);
    return pass;
  }
  absl::StatusOr<tls::RotationStep> step =
      tls::PlanRotation(st.ca_bundle_pem, st.issued_pem, st.pending, Key(job), now, policy_);
  if (!step.ok()) {
    pass.error = step.status();
    return pass;
  }
  // The Secret first: once ca.crt or issued.crt say a certificate exists, it does.
  if (step->identity) {
    pass.error = PatchSecret(job, *step->identity);
    if (!pass.error.ok()) return pass;
    st.issued_pem = step->identity->cert_pem;
  }
  if (step->ca_bundle_pem) st.ca_bundle_pem = *step->ca_bundle_pem;
  if (step->changed()) {
    pass.error = PatchConfigMap(job, st.ca_bundle_pem, st.issued_pem);
    if (!pass.error.ok()) return pass;
  }
  st.pending = step->pending_ca;
  st.next_check = step->next_check;
  pass.changes = step->reasons;
  pass.requeue_after_s = absl::ToDoubleSeconds(st.next_check - now);
  jobs_[Key(job)] = st;
  return pass;
}

}  // namespace tandem::controller
