#include "common/job_certificates.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/crc32c.h"
#include "common/status.h"

namespace tandem::tls {
namespace {

// "<prefix><job><suffix>" within X.509's 64 characters for a common name (RFC 5280's
// ub-common-name; OpenSSL refuses longer). A job name that does not fit (a namespace and a name
// may take 63 characters each) is cut, and the CRC-32C of the whole name keeps two cut names apart.
std::string CommonName(absl::string_view prefix, const std::string& job, absl::string_view suffix) {
  constexpr size_t kMaxCommonName = 64;
  std::string name = absl::StrCat(prefix, job, suffix);
  if (name.size() <= kMaxCommonName) return name;
  const std::string tag = absl::StrFormat("~%08x", crc32c::Value(job.data(), job.size()));
  const size_t room = kMaxCommonName - prefix.size() - suffix.size() - tag.size();
  return absl::StrCat(prefix, job.substr(0, room), tag, suffix);
}

std::string CaName(const std::string& job, absl::Time now) {
  // The time keeps a job's CAs apart (two live at once during a rotation).
  return CommonName("tandem job ", job,
                    absl::StrCat(" CA ", absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone())));
}

// The job name as a DNS-safe subjectAltName (informational: peers check the chain, not names).
std::vector<std::string> DnsNames(const std::string& job) {
  std::string d;
  for (char ch : job) d += (ch == '/') ? '.' : ch;
  return {kTlsPeerName, absl::StrCat(d, ".tandem-job")};
}

absl::Time RenewAt(const CertificateInfo& c, double fraction) {
  return c.not_after - (c.not_after - c.not_before) * fraction;
}

// When a CA made at `ca.not_before + kClockSkewAllowance` may sign (rule 2).
absl::Time UsableAt(const CertificateInfo& ca, const RotationPolicy& p) {
  return ca.not_before + kClockSkewAllowance + p.propagation;
}

absl::Status CheckPolicy(const RotationPolicy& p) {
  if (!(p.renew_fraction > 0 && p.renew_fraction < 1))
    return absl::InvalidArgumentError(
        absl::StrCat("renew_fraction ", p.renew_fraction, " must be in (0, 1)"));
  if (p.cert_lifetime <= absl::ZeroDuration() || p.propagation < absl::ZeroDuration())
    return absl::InvalidArgumentError(
        "the certificate lifetime must be positive and the propagation delay not negative");
  return absl::OkStatus();
}

absl::StatusOr<KeyAndCertificate> IssueJobCertificate(const KeyAndCertificate& ca,
                                                      const std::string& job, absl::Time now,
                                                      const RotationPolicy& policy) {
  return IssueCertificate(ca, CommonName("tandem job ", job, ""), DnsNames(job), now,
                          policy.cert_lifetime);
}

}  // namespace

TlsFiles TlsFiles::InFolder(const std::string& dir) {
  return {absl::StrCat(dir, "/", kCaBundleFile), absl::StrCat(dir, "/", kCertFile),
          absl::StrCat(dir, "/", kKeyFile)};
}

absl::StatusOr<JobCertificates> CreateJobCertificates(const std::string& job, absl::Time now,
                                                      const RotationPolicy& policy) {
  if (absl::Status s = CheckPolicy(policy); !s.ok()) return s;
  absl::StatusOr<KeyAndCertificate> ca =
      CreateCertificateAuthority(CaName(job, now), now, policy.ca_lifetime());
  if (!ca.ok()) return ca.status();
  absl::StatusOr<KeyAndCertificate> leaf = IssueJobCertificate(*ca, job, now, policy);
  if (!leaf.ok()) return leaf.status();
  return JobCertificates{ca->cert_pem, leaf->cert_pem, leaf->key_pem};
}

absl::StatusOr<TlsFiles> WriteWorkerFiles(const std::string& dir, const JobCertificates& c) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  const TlsFiles files = TlsFiles::InFolder(dir);
  for (const auto& [path, text, mode] : {std::tuple{files.ca_file, &c.ca_bundle_pem, 0644},
                                         std::tuple{files.cert_file, &c.cert_pem, 0644},
                                         std::tuple{files.key_file, &c.key_pem, 0600}}) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("create ", path));
    const bool ok = ::write(fd, text->data(), text->size()) == static_cast<ssize_t>(text->size());
    const int saved = errno;
    ::close(fd);
    if (!ok) return ErrnoToStatus(saved, absl::StrCat("write ", path));
  }
  return files;
}

absl::StatusOr<RotationStep> PlanRotation(const std::string& ca_bundle_pem,
                                          const std::string& cert_pem,
                                          const std::optional<KeyAndCertificate>& pending,
                                          const std::string& job, absl::Time now,
                                          const RotationPolicy& policy) {
  if (absl::Status s = CheckPolicy(policy); !s.ok()) return s;
  absl::StatusOr<std::vector<CertificateInfo>> bundle = ParseCertificates(ca_bundle_pem, kCaBundleFile);
  if (!bundle.ok()) return bundle.status();
  absl::StatusOr<std::vector<CertificateInfo>> leaf = ParseCertificates(cert_pem, kCertFile);
  if (!leaf.ok()) return leaf.status();

  RotationStep step;
  // Rule 3: expired CAs leave the bundle.
  std::vector<CertificateInfo> trusted;
  for (const CertificateInfo& c : *bundle) {
    if (c.not_after <= now) {
      step.reasons.push_back(absl::StrCat("removed the expired CA '", c.common_name, "'"));
    } else {
      trusted.push_back(c);
    }
  }
  // The pending CA counts only while the bundle still trusts it (someone may have replaced
  // ca.crt since it was added).
  std::optional<CertificateInfo> pending_info;
  if (pending) {
    absl::StatusOr<std::vector<CertificateInfo>> p = ParseCertificates(pending->cert_pem, "pending CA");
    if (!p.ok()) return p.status();
    for (const CertificateInfo& c : trusted)
      if (c.public_key_sha256 == p->front().public_key_sha256) pending_info = p->front();
    if (pending_info) {
      step.pending_ca = pending;
    } else {
      step.reasons.push_back("dropped a pending CA that ca.crt no longer holds");
    }
  }
  std::string trusted_pem;
  for (const CertificateInfo& c : trusted) trusted_pem += c.pem;
  const CertificateInfo& current = leaf->front();
  const bool chains = !trusted.empty() && VerifyCertificate(cert_pem, trusted_pem, now).ok();
  const bool due = !chains || now >= RenewAt(current, policy.renew_fraction);

  absl::Time renew_at = RenewAt(current, policy.renew_fraction);
  if (pending_info && now >= UsableAt(*pending_info, policy)) {
    // Rule 2: every peer trusts the pending CA by now; it signs, and its key is dropped.
    absl::StatusOr<KeyAndCertificate> issued = IssueJobCertificate(*pending, job, now, policy);
    if (!issued.ok()) return issued.status();
    absl::StatusOr<std::vector<CertificateInfo>> info = ParseCertificates(issued->cert_pem, kCertFile);
    if (!info.ok()) return info.status();
    renew_at = RenewAt(info->front(), policy.renew_fraction);
    step.reasons.push_back(absl::StrCat("issued a certificate signed by '", pending_info->common_name,
                                        "', valid until ", absl::FormatTime(info->front().not_after)));
    step.identity = *std::move(issued);
    step.pending_ca.reset();
    pending_info.reset();
  } else if (!pending_info && due) {
    // Rule 1: a new CA, trusted before it signs.
    absl::StatusOr<KeyAndCertificate> ca =
        CreateCertificateAuthority(CaName(job, now), now, policy.ca_lifetime());
    if (!ca.ok()) return ca.status();
    absl::StatusOr<std::vector<CertificateInfo>> info = ParseCertificates(ca->cert_pem, "new CA");
    if (!info.ok()) return info.status();
    trusted.push_back(info->front());
    trusted_pem += info->front().pem;
    pending_info = info->front();
    step.pending_ca = *std::move(ca);
    step.reasons.push_back(absl::StrCat(
        "added the CA '", info->front().common_name, "' to ", kCaBundleFile, " (the certificate ",
        chains ? absl::StrCat("expires at ", absl::FormatTime(current.not_after))
               : std::string("does not chain to the bundle"),
        "); it signs after ", absl::FormatDuration(policy.propagation)));
  }
  if (trusted_pem != ca_bundle_pem) step.ca_bundle_pem = trusted_pem;

  absl::Time next = pending_info ? UsableAt(*pending_info, policy) : renew_at;
  for (const CertificateInfo& c : trusted) next = std::min(next, c.not_after);
  step.next_check = std::max(next, now + absl::Seconds(1));
  return step;
}

}  // namespace tandem::tls
