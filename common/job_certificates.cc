#include "common/job_certificates.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/tls_certificates.h"

namespace tandem::tls {
namespace {

std::string CaName(const std::string& job, absl::Time now) {
  // The time keeps two CAs of one job (during a rotation) apart in logs and `openssl x509`.
  return absl::StrCat("tandem job ", job, " CA ", absl::FormatTime("%Y%m%dT%H%M%SZ", now,
                                                                   absl::UTCTimeZone()));
}

std::string CertName(const std::string& job) { return absl::StrCat("tandem job ", job); }

// The job name as a DNS-safe subjectAltName (informational: peers check the chain, not names).
std::vector<std::string> DnsNames(const std::string& job) {
  std::string d;
  for (char ch : job) d += (ch == '/') ? '.' : ch;
  return {kTlsPeerName, absl::StrCat(d, ".tandem-job")};
}

absl::Time RenewAt(const CertificateInfo& c, double fraction) {
  return c.not_after - (c.not_after - c.not_before) * fraction;
}

absl::Status CheckPolicy(const RotationPolicy& p) {
  if (!(p.renew_fraction > 0 && p.renew_fraction < 1))
    return absl::InvalidArgumentError(
        absl::StrCat("renew_fraction ", p.renew_fraction, " must be in (0, 1)"));
  if (p.ca_lifetime <= absl::ZeroDuration() || p.cert_lifetime <= absl::ZeroDuration())
    return absl::InvalidArgumentError("certificate lifetimes must be positive");
  return absl::OkStatus();
}

absl::StatusOr<KeyAndCertificate> Issue(const KeyAndCertificate& ca, const std::string& job,
                                        absl::Time now, const RotationPolicy& policy) {
  return IssueCertificate(ca, CertName(job), DnsNames(job), now, policy.cert_lifetime);
}

}  // namespace

TlsFiles TlsFiles::InFolder(const std::string& dir) {
  return {absl::StrCat(dir, "/", kCaBundleFile), absl::StrCat(dir, "/", kCertFile),
          absl::StrCat(dir, "/", kKeyFile)};
}

std::map<std::string, std::string> JobCertificates::Files() const {
  std::map<std::string, std::string> files = {{kCaBundleFile, ca_bundle_pem},
                                              {kCaKeyFile, ca_key_pem},
                                              {kCertFile, cert_pem},
                                              {kKeyFile, key_pem}};
  if (!next_ca_key_pem.empty()) files[kNextCaKeyFile] = next_ca_key_pem;
  return files;
}

absl::StatusOr<JobCertificates> JobCertificates::FromFiles(
    const std::map<std::string, std::string>& files, const std::string& where) {
  JobCertificates c;
  for (auto [name, field] : {std::pair{kCaBundleFile, &c.ca_bundle_pem},
                             std::pair{kCaKeyFile, &c.ca_key_pem}, std::pair{kCertFile, &c.cert_pem},
                             std::pair{kKeyFile, &c.key_pem}}) {
    auto it = files.find(name);
    if (it == files.end() || it->second.empty())
      return absl::NotFoundError(absl::StrCat(where, ": no '", name, "'"));
    *field = it->second;
  }
  if (auto it = files.find(kNextCaKeyFile); it != files.end()) c.next_ca_key_pem = it->second;
  return c;
}

absl::StatusOr<JobCertificates> CreateJobCertificates(const std::string& job, absl::Time now,
                                                      const RotationPolicy& policy) {
  if (absl::Status s = CheckPolicy(policy); !s.ok()) return s;
  absl::StatusOr<KeyAndCertificate> ca =
      CreateCertificateAuthority(CaName(job, now), now, policy.ca_lifetime);
  if (!ca.ok()) return ca.status();
  absl::StatusOr<KeyAndCertificate> leaf = Issue(*ca, job, now, policy);
  if (!leaf.ok()) return leaf.status();
  JobCertificates c;
  c.ca_bundle_pem = ca->cert_pem;
  c.ca_key_pem = ca->key_pem;
  c.cert_pem = leaf->cert_pem;
  c.key_pem = leaf->key_pem;
  return c;
}

absl::StatusOr<CertificateRotation> RotateJobCertificates(const JobCertificates& current,
                                                          const std::string& job, absl::Time now,
                                                          const RotationPolicy& policy) {
  if (absl::Status s = CheckPolicy(policy); !s.ok()) return s;
  absl::StatusOr<std::vector<CertificateInfo>> bundle =
      ParseCertificates(current.ca_bundle_pem, kCaBundleFile);
  if (!bundle.ok()) return bundle.status();
  absl::StatusOr<std::string> signing_fp = PublicKeySha256OfPrivateKey(current.ca_key_pem, kCaKeyFile);
  if (!signing_fp.ok()) return signing_fp.status();
  std::optional<std::string> next_fp;
  if (!current.next_ca_key_pem.empty()) {
    absl::StatusOr<std::string> fp =
        PublicKeySha256OfPrivateKey(current.next_ca_key_pem, kNextCaKeyFile);
    if (!fp.ok()) return fp.status();
    next_fp = *fp;
  }
  auto find = [&](const std::string& fp) -> std::optional<CertificateInfo> {
    for (const CertificateInfo& c : *bundle)
      if (c.public_key_sha256 == fp) return c;
    return std::nullopt;
  };
  std::optional<CertificateInfo> signing = find(*signing_fp);
  if (!signing)
    return absl::FailedPreconditionError(
        absl::StrCat(kCaKeyFile, " matches no certificate in ", kCaBundleFile));
  if (signing->not_after <= now)
    return absl::FailedPreconditionError(absl::StrCat(
        "the signing CA '", signing->common_name, "' expired at ", absl::FormatTime(signing->not_after)));
  std::optional<CertificateInfo> next;
  if (next_fp) {
    next = find(*next_fp);
    if (!next)
      return absl::FailedPreconditionError(
          absl::StrCat(kNextCaKeyFile, " matches no certificate in ", kCaBundleFile));
  }

  CertificateRotation r;
  r.certificates = current;
  JobCertificates& out = r.certificates;
  std::vector<CertificateInfo> trusted;

  // Rule 4: expired CAs leave the bundle.
  for (const CertificateInfo& c : *bundle) {
    if (c.not_after <= now) {
      r.reasons.push_back(absl::StrCat("removed the expired CA '", c.common_name, "'"));
      continue;
    }
    trusted.push_back(c);
  }
  // Rule 3: a next CA everyone has had time to load becomes the signing CA.
  bool reissue = false;
  if (next && now >= next->not_before + kClockSkewAllowance + policy.propagation) {
    out.ca_key_pem = out.next_ca_key_pem;
    out.next_ca_key_pem.clear();
    signing = next;
    next.reset();
    reissue = true;
    r.reasons.push_back(absl::StrCat("the CA '", signing->common_name, "' now signs"));
  }
  // Rule 2: a signing CA nearing its end gets a successor, trusted before it signs.
  if (!next && now >= RenewAt(*signing, policy.renew_fraction)) {
    absl::StatusOr<KeyAndCertificate> ca =
        CreateCertificateAuthority(CaName(job, now), now, policy.ca_lifetime);
    if (!ca.ok()) return ca.status();
    absl::StatusOr<std::vector<CertificateInfo>> parsed = ParseCertificates(ca->cert_pem, "new CA");
    if (!parsed.ok()) return parsed.status();
    next = parsed->front();
    trusted.push_back(*next);
    out.next_ca_key_pem = ca->key_pem;
    r.reasons.push_back(absl::StrCat("added the next CA '", next->common_name, "' (the CA '",
                                     signing->common_name, "' expires at ",
                                     absl::FormatTime(signing->not_after), ")"));
  }
  std::string bundle_pem;
  for (const CertificateInfo& c : trusted) bundle_pem += c.pem;
  out.ca_bundle_pem = bundle_pem;

  // Rule 1: the job's certificate.
  absl::StatusOr<std::vector<CertificateInfo>> leaf = ParseCertificates(out.cert_pem, kCertFile);
  absl::StatusOr<std::string> leaf_key_fp = PublicKeySha256OfPrivateKey(out.key_pem, kKeyFile);
  if (!leaf.ok() || !leaf_key_fp.ok()) {
    reissue = true;
    r.reasons.push_back(absl::StrCat("re-issued the certificate: ",
                                     (!leaf.ok() ? leaf.status() : leaf_key_fp.status()).message()));
  } else if (leaf->front().public_key_sha256 != *leaf_key_fp) {
    reissue = true;
    r.reasons.push_back(absl::StrCat("re-issued the certificate: ", kKeyFile, " does not match ", kCertFile));
  } else if (!reissue && !VerifyCertificate(out.cert_pem, signing->pem, now).ok()) {
    reissue = true;
    r.reasons.push_back("re-issued the certificate: it does not chain to the signing CA");
  } else if (!reissue && now >= RenewAt(leaf->front(), policy.renew_fraction)) {
    reissue = true;
    r.reasons.push_back(absl::StrCat("re-issued the certificate expiring at ",
                                     absl::FormatTime(leaf->front().not_after)));
  } else if (reissue) {
    r.reasons.push_back("re-issued the certificate with the new signing CA");
  }
  if (reissue) {
    absl::StatusOr<KeyAndCertificate> issued =
        Issue(KeyAndCertificate{out.ca_key_pem, signing->pem}, job, now, policy);
    if (!issued.ok()) return issued.status();
    out.cert_pem = issued->cert_pem;
    out.key_pem = issued->key_pem;
  }
  r.changed = !(out == current);

  // When the rule next has something to do.
  absl::StatusOr<std::vector<CertificateInfo>> final_leaf = ParseCertificates(out.cert_pem, kCertFile);
  if (!final_leaf.ok()) return final_leaf.status();
  absl::Time next_check = RenewAt(final_leaf->front(), policy.renew_fraction);
  if (next)
    next_check = std::min(next_check, next->not_before + kClockSkewAllowance + policy.propagation);
  else
    next_check = std::min(next_check, RenewAt(*signing, policy.renew_fraction));
  for (const CertificateInfo& c : trusted) next_check = std::min(next_check, c.not_after);
  r.next_check = std::max(next_check, now);
  return r;
}

}  // namespace tandem::tls
