// X.509 certificates for a job's mutual TLS, made and checked with OpenSSL's C API (no openssl
// command line). Keys are ECDSA P-256; everything is PEM text.
//
//   TANDEM_ASSIGN_OR_RETURN(KeyAndCertificate ca,
//       CreateCertificateAuthority("tandem job ml/ctr CA", absl::Now(), absl::Hours(24 * 365)));
//   TANDEM_ASSIGN_OR_RETURN(KeyAndCertificate leaf,
//       IssueCertificate(ca, "tandem job ml/ctr", {"ctr"}, absl::Now(), absl::Hours(24 * 30)));
//   TANDEM_RETURN_IF_ERROR(VerifyCertificate(leaf.cert_pem, ca.cert_pem, absl::Now()));
//
// Thread-safe (no shared state; OpenSSL 3 initialises itself).
#pragma once

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem::tls {

struct KeyAndCertificate {
  std::string key_pem;   // PKCS#8 private key
  std::string cert_pem;  // one certificate
  bool operator==(const KeyAndCertificate&) const = default;
};

// What the job's TLS code needs to know about a certificate.
struct CertificateInfo {
  std::string common_name;
  absl::Time not_before;
  absl::Time not_after;
  bool is_ca = false;
  std::string public_key_sha256;  // hex SHA-256 of the DER public key: matches keys to certs
  std::string pem;                // this certificate alone, re-encoded
};

// Certificates are backdated by this much so that peers whose clocks lag still accept them.
inline constexpr absl::Duration kClockSkewAllowance = absl::Minutes(5);

// A self-signed certificate authority: valid from `now - kClockSkewAllowance` to `now + lifetime`,
// basicConstraints CA:TRUE (path length 0), keyUsage keyCertSign. REQUIRES: lifetime > 0.
absl::StatusOr<KeyAndCertificate> CreateCertificateAuthority(const std::string& common_name,
                                                             absl::Time now,
                                                             absl::Duration lifetime);

// A certificate signed by `issuer` for both ends of a TLS connection (extendedKeyUsage serverAuth
// and clientAuth), with `dns_names` as subjectAltName. Its validity ends at `now + lifetime` or at
// the issuer's notAfter, whichever is first. Errors: an issuer key that does not match its
// certificate, an issuer that is not a CA, a lifetime that is not positive.
absl::StatusOr<KeyAndCertificate> IssueCertificate(const KeyAndCertificate& issuer,
                                                   const std::string& common_name,
                                                   const std::vector<std::string>& dns_names,
                                                   absl::Time now, absl::Duration lifetime);

// Every certificate in `pem` (one or a bundle), in order. `what` names the source in errors
// ("ca.crt"). Errors: no certificate, or text that is not PEM certificates.
absl::StatusOr<std::vector<CertificateInfo>> ParseCertificates(absl::string_view pem,
                                                               absl::string_view what);

// The hex SHA-256 of the private key's public half (compare with CertificateInfo's).
absl::StatusOr<std::string> PublicKeySha256OfPrivateKey(absl::string_view key_pem,
                                                        absl::string_view what);

// Whether `chain_pem` (the peer's certificate, then any intermediates) chains up to one of the
// certificates in `trusted_pem` at time `at`. The error says why not, in OpenSSL's words
// ("unable to get local issuer certificate": signed by another CA, e.g. another job's;
// "certificate has expired").
absl::Status VerifyCertificate(absl::string_view chain_pem, absl::string_view trusted_pem,
                               absl::Time at);

}  // namespace tandem::tls
