// A job's TLS material and the one rule that renews it. Workers read ca.crt, tls.crt and
// tls.key (api/worker_contract.h) and reload them when they change (pserver/tls_credentials.h);
// the operator keeps ca.crt in the job's ConfigMap and tls.crt/tls.key in its Secret
// (docs/operator.md), `tandem run` writes all three into the run folder.
//
//   TANDEM_ASSIGN_OR_RETURN(JobCertificates c, CreateJobCertificates("ml/ctr", absl::Now(), {}));
//   ... later, from the public half (the bundle and the certificate last issued):
//   TANDEM_ASSIGN_OR_RETURN(RotationStep s, PlanRotation(bundle, cert, pending, "ml/ctr", now, {}));
//
// No CA key is ever stored: a CA signs one certificate and its key is dropped. The operator
// therefore needs no read access to Secrets, and a leaked Secret cannot mint certificates.
// Rotation rule (RotationPolicy; a pure function of the public material, the one pending CA
// held in memory, and `now`):
//  1. When less than `renew_fraction` of the job certificate's lifetime remains (or it does not
//     chain to the bundle), a new CA is made and added to ca.crt; its key is held in memory
//     (the pending CA) and nothing is signed with it yet.
//  2. Once the pending CA has been in ca.crt for `propagation` (long enough for every worker to
//     have reloaded ca.crt: kubelet's volume refresh plus the workers' reload interval), it
//     signs a new job certificate (tls.crt, tls.key) and its key is dropped.
//  3. A CA that has expired leaves ca.crt. A CA lives as long as the certificate it signs
//     plus 2 x `propagation`, so it leaves only after every peer has moved on.
// A peer is therefore never handed a certificate that the other peers do not yet trust, and no
// certificate in use expires while the job runs. A pending CA lost with its holder (an operator
// restart) is never used: rule 1 makes another, and the unused one expires out of ca.crt.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/tls_certificates.h"

namespace tandem::tls {

// The workers' file names.
inline constexpr char kCaBundleFile[] = "ca.crt";  // every CA the job's peers trust (public)
inline constexpr char kCertFile[] = "tls.crt";     // the job's certificate (server and client)
inline constexpr char kKeyFile[] = "tls.key";      // its private key

// Every job certificate also names this host (subjectAltName DNS), and clients ask for it (TLS
// SNI) whatever address they dial: peers are identified by the job's CA, not by host names.
inline constexpr char kTlsPeerName[] = "tandem-worker";

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

struct RotationPolicy {
  absl::Duration cert_lifetime = absl::Hours(24 * 30);
  // Renew when less than this share of the certificate's lifetime remains. REQUIRES: in (0, 1).
  double renew_fraction = 1.0 / 3;
  // How long a new CA sits in ca.crt before it signs (see rule 2).
  absl::Duration propagation = absl::Minutes(10);

  absl::Duration ca_lifetime() const { return cert_lifetime + 2 * propagation; }
};

struct JobCertificates {
  std::string ca_bundle_pem;
  std::string cert_pem;
  std::string key_pem;
  bool operator==(const JobCertificates&) const = default;
};

// A fresh CA, and a certificate it signed, for job `job` ("namespace/name", or the name alone
// locally). The CA's key is dropped.
absl::StatusOr<JobCertificates> CreateJobCertificates(const std::string& job, absl::Time now,
                                                      const RotationPolicy& policy);

// Writes the workers' three files into `dir` (created if missing): ca.crt and tls.crt mode 0644,
// tls.key 0600. Errors name the file.
absl::StatusOr<TlsFiles> WriteWorkerFiles(const std::string& dir, const JobCertificates& c);

struct RotationStep {
  std::optional<std::string> ca_bundle_pem;     // set: write ca.crt
  std::optional<KeyAndCertificate> identity;    // set: write tls.crt and tls.key
  std::optional<KeyAndCertificate> pending_ca;  // the pending CA to hold from now on (none: none)
  std::vector<std::string> reasons;             // what changed and why, for events and logs
  absl::Time next_check;                        // when the rule next has something to do
  bool changed() const { return ca_bundle_pem.has_value() || identity.has_value(); }
};

// Applies the rotation rule at `now` to the public material (`ca_bundle_pem`, the certificate
// last issued `cert_pem`) and the pending CA, if one is held. Errors: unreadable material.
absl::StatusOr<RotationStep> PlanRotation(const std::string& ca_bundle_pem,
                                          const std::string& cert_pem,
                                          const std::optional<KeyAndCertificate>& pending,
                                          const std::string& job, absl::Time now,
                                          const RotationPolicy& policy);

}  // namespace tandem::tls
