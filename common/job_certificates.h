// A job's TLS material and the one rule that renews it. The operator keeps it in the job's
// Secret (docs/operator.md) and `tandem run` in the run folder; workers read ca.crt, tls.crt and
// tls.key (api/worker_contract.h) and reload them when they change (pserver/tls_credentials.h).
//
//   TANDEM_ASSIGN_OR_RETURN(JobCertificates c, CreateJobCertificates("ml/ctr", absl::Now(), {}));
//   ... later, on every reconcile that reads the Secret back:
//   TANDEM_ASSIGN_OR_RETURN(CertificateRotation r, RotateJobCertificates(c, "ml/ctr", now, {}));
//   if (r.changed) write r.certificates; requeue at r.next_check;
//
// Rotation rule (RotationPolicy; all decisions are pure functions of the material and `now`):
//  1. The job's certificate (tls.crt) is re-issued by the signing CA when less than
//     `renew_fraction` of its lifetime remains, or when it no longer chains to the signing CA.
//     Every peer already trusts that CA, so the new certificate is accepted at once.
//  2. When less than `renew_fraction` of the signing CA's lifetime remains, a next CA is created
//     and added to ca.crt (its key in ca-next.key); nothing signs with it yet.
//  3. Once the next CA has been in ca.crt for `propagation` (long enough for every worker to have
//     reloaded ca.crt: kubelet's Secret refresh plus the workers' reload interval), it becomes
//     the signing CA and tls.crt is re-issued by it (rule 1).
//  4. A CA that has expired leaves ca.crt.
// So a peer never receives a certificate that the other peers do not yet trust, and no
// certificate in use expires while the job runs.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem::tls {

// File names (and the job Secret's keys). Workers are given only the first three.
inline constexpr char kCaBundleFile[] = "ca.crt";   // every CA the job's peers trust
inline constexpr char kCertFile[] = "tls.crt";      // the job's certificate (server and client)
inline constexpr char kKeyFile[] = "tls.key";       // its private key
inline constexpr char kCaKeyFile[] = "ca.key";      // the signing CA's key: never given to workers
inline constexpr char kNextCaKeyFile[] = "ca-next.key";  // during a CA rotation only

// Where a process finds the job's trust bundle, certificate and key (the worker contract's
// TANDEM_TLS_CA, TANDEM_TLS_CERT, TANDEM_TLS_KEY). All three or none: none is plain mode.
struct TlsFiles {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;

  // `dir`/ca.crt, `dir`/tls.crt, `dir`/tls.key.
  static TlsFiles InFolder(const std::string& dir);
  bool enabled() const { return !ca_file.empty() || !cert_file.empty() || !key_file.empty(); }
  bool operator==(const TlsFiles&) const = default;
};

// Every job certificate also names this host (subjectAltName DNS), and clients ask for it (TLS
// SNI) whatever address they dial: peers are identified by the job's CA, not by host names.
inline constexpr char kTlsPeerName[] = "tandem-worker";

struct RotationPolicy {
  absl::Duration ca_lifetime = absl::Hours(24 * 365);
  absl::Duration cert_lifetime = absl::Hours(24 * 30);
  // Renew when less than this share of a certificate's lifetime remains. REQUIRES: in (0, 1).
  double renew_fraction = 1.0 / 3;
  // How long a new CA sits in ca.crt before it signs (see rule 3).
  absl::Duration propagation = absl::Minutes(10);
};

struct JobCertificates {
  std::string ca_bundle_pem;
  std::string ca_key_pem;
  std::string next_ca_key_pem;  // empty unless a CA rotation is under way
  std::string cert_pem;
  std::string key_pem;

  // File name -> content (next_ca_key only when set).
  std::map<std::string, std::string> Files() const;
  // The inverse; errors name the missing file. `where` names the source ("Secret ml/ctr-token").
  static absl::StatusOr<JobCertificates> FromFiles(const std::map<std::string, std::string>& files,
                                                   const std::string& where);
  bool operator==(const JobCertificates&) const = default;
};

// A fresh CA and certificate for job `job` ("namespace/name", or the name alone locally).
absl::StatusOr<JobCertificates> CreateJobCertificates(const std::string& job, absl::Time now,
                                                      const RotationPolicy& policy);

struct CertificateRotation {
  bool changed = false;
  JobCertificates certificates;      // the material to keep (== the input when !changed)
  std::vector<std::string> reasons;  // what changed and why, for events and logs
  absl::Time next_check;             // when the rule next has something to do
};

// Applies the rotation rule at `now`. Errors (material that cannot be read, a signing CA that
// has expired): the caller replaces everything with CreateJobCertificates and says so.
absl::StatusOr<CertificateRotation> RotateJobCertificates(const JobCertificates& current,
                                                          const std::string& job, absl::Time now,
                                                          const RotationPolicy& policy);

}  // namespace tandem::tls
