#include "common/tls_certificates.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tandem::tls {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;

void FreeX509Stack(STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); }
using X509StackPtr = std::unique_ptr<STACK_OF(X509), Deleter<STACK_OF(X509), FreeX509Stack>>;

// The OpenSSL error queue, drained into one message (it is per thread, so nothing leaks into the
// next call's error).
std::string OpenSslErrors() {
  std::vector<std::string> parts;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    parts.emplace_back(buf);
  }
  return parts.empty() ? "no OpenSSL error reported" : absl::StrJoin(parts, "; ");
}

absl::Status OpenSslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", OpenSslErrors()));
}

BioPtr MemoryBio(absl::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

absl::StatusOr<KeyPtr> NewKey() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslError("generating a P-256 key");
  return key;
}

absl::StatusOr<std::string> KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr))
    return OpenSslError("encoding a private key");
  return BioText(bio.get());
}

absl::StatusOr<std::string> CertPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_X509(bio.get(), cert)) return OpenSslError("encoding a certificate");
  return BioText(bio.get());
}

absl::StatusOr<KeyPtr> ReadKey(absl::string_view pem, absl::string_view what) {
  BioPtr bio = MemoryBio(pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key)
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": not a PEM private key (", OpenSslErrors(), ")"));
  return key;
}

absl::StatusOr<std::vector<X509Ptr>> ReadCerts(absl::string_view pem, absl::string_view what) {
  BioPtr bio = MemoryBio(pem);
  std::vector<X509Ptr> certs;
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))
    certs.emplace_back(c);
  // The loop ends at the end of the input (PEM_R_NO_START_LINE) or at text that is not a
  // certificate; only the first is fine.
  const unsigned long last = ERR_peek_last_error();
  const bool clean_end =
      ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
  if (last != 0 && !clean_end)
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": not PEM certificates (", OpenSslErrors(), ")"));
  ERR_clear_error();
  if (certs.empty())
    return absl::InvalidArgumentError(absl::StrCat(what, ": holds no PEM certificate"));
  return certs;
}

absl::StatusOr<std::string> PublicKeySha256(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int n = i2d_PUBKEY(key, &der);
  if (n <= 0) return OpenSslError("encoding a public key");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const bool ok = EVP_Digest(der, static_cast<size_t>(n), digest, &len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  if (!ok) return OpenSslError("hashing a public key");
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), static_cast<size_t>(len)));
}

absl::StatusOr<absl::Time> AsnTime(const ASN1_TIME* t) {
  struct tm tm = {};
  if (!ASN1_TIME_to_tm(t, &tm)) return OpenSslError("reading a certificate's validity");
  return absl::FromTimeT(timegm(&tm));
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || !X509_add_ext(cert, ext.get(), -1))
    return OpenSslError(absl::StrCat("adding the extension ", OBJ_nid2sn(nid), "=", value));
  return absl::OkStatus();
}

// A certificate for `key`, named `common_name`, signed by `issuer_key` (itself when
// `issuer_cert` is null: self-signed).
absl::StatusOr<X509Ptr> BuildCertificate(EVP_PKEY* key, const std::string& common_name,
                                         X509* issuer_cert, EVP_PKEY* issuer_key,
                                         absl::Time not_before, absl::Time not_after, bool is_ca,
                                         const std::vector<std::string>& dns_names) {
  X509Ptr cert(X509_new());
  if (!cert) return OpenSslError("allocating a certificate");
  if (!X509_set_version(cert.get(), X509_VERSION_3)) return OpenSslError("setting the version");
  // 127 random bits: unique serials without bookkeeping (RFC 5280 allows up to 20 octets).
  BnPtr serial(BN_new());
  if (!serial || !BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())))
    return OpenSslError("making a serial number");
  if (!ASN1_TIME_set(X509_getm_notBefore(cert.get()), absl::ToTimeT(not_before)) ||
      !ASN1_TIME_set(X509_getm_notAfter(cert.get()), absl::ToTimeT(not_after)))
    return OpenSslError("setting the validity");
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                  reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                  -1, 0))
    return OpenSslError(absl::StrCat("setting the common name '", common_name, "'"));
  X509* issuer = issuer_cert ? issuer_cert : cert.get();
  if (!X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)) ||
      !X509_set_pubkey(cert.get(), key))
    return OpenSslError("setting the issuer and the public key");
  if (is_ca) {
    for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                              std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                              std::pair{NID_subject_key_identifier, "hash"}})
      if (absl::Status s = AddExtension(cert.get(), issuer, nid, value); !s.ok()) return s;
  } else {
    for (auto [nid, value] :
         {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
          std::pair{NID_key_usage, "critical,digitalSignature,keyEncipherment"},
          std::pair{NID_ext_key_usage, "serverAuth,clientAuth"},
          std::pair{NID_subject_key_identifier, "hash"},
          std::pair{NID_authority_key_identifier, "keyid:always"}})
      if (absl::Status s = AddExtension(cert.get(), issuer, nid, value); !s.ok()) return s;
    if (!dns_names.empty()) {
      std::vector<std::string> sans;
      for (const std::string& d : dns_names) sans.push_back(absl::StrCat("DNS:", d));
      const std::string value = absl::StrJoin(sans, ",");
      if (absl::Status s = AddExtension(cert.get(), issuer, NID_subject_alt_name, value.c_str());
          !s.ok())
        return s;
    }
  }
  if (!X509_sign(cert.get(), issuer_key, EVP_sha256())) return OpenSslError("signing");
  return cert;
}

}  // namespace

absl::StatusOr<KeyAndCertificate> CreateCertificateAuthority(const std::string& common_name,
                                                             absl::Time now,
                                                             absl::Duration lifetime) {
  if (lifetime <= absl::ZeroDuration())
    return absl::InvalidArgumentError(absl::StrCat("CA '", common_name, "': lifetime ",
                                                   absl::FormatDuration(lifetime),
                                                   " must be positive"));
  absl::StatusOr<KeyPtr> key = NewKey();
  if (!key.ok()) return key.status();
  absl::StatusOr<X509Ptr> cert =
      BuildCertificate(key->get(), common_name, nullptr, key->get(), now - kClockSkewAllowance,
                       now + lifetime, /*is_ca=*/true, {});
  if (!cert.ok()) return cert.status();
  KeyAndCertificate out;
  absl::StatusOr<std::string> key_pem = KeyPem(key->get());
  absl::StatusOr<std::string> cert_pem = CertPem(cert->get());
  if (!key_pem.ok()) return key_pem.status();
  if (!cert_pem.ok()) return cert_pem.status();
  out.key_pem = *std::move(key_pem);
  out.cert_pem = *std::move(cert_pem);
  return out;
}

absl::StatusOr<KeyAndCertificate> IssueCertificate(const KeyAndCertificate& issuer,
                                                   const std::string& common_name,
                                                   const std::vector<std::string>& dns_names,
                                                   absl::Time now, absl::Duration lifetime) {
  if (lifetime <= absl::ZeroDuration())
    return absl::InvalidArgumentError(absl::StrCat("certificate '", common_name, "': lifetime ",
                                                   absl::FormatDuration(lifetime),
                                                   " must be positive"));
  absl::StatusOr<KeyPtr> issuer_key = ReadKey(issuer.key_pem, "issuer key");
  if (!issuer_key.ok()) return issuer_key.status();
  absl::StatusOr<std::vector<X509Ptr>> issuer_certs = ReadCerts(issuer.cert_pem, "issuer certificate");
  if (!issuer_certs.ok()) return issuer_certs.status();
  X509* issuer_cert = issuer_certs->front().get();
  if (X509_check_private_key(issuer_cert, issuer_key->get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("issuer key does not match the issuer certificate");
  }
  if (X509_check_ca(issuer_cert) == 0)
    return absl::InvalidArgumentError("issuer certificate is not a certificate authority");
  absl::StatusOr<absl::Time> issuer_end = AsnTime(X509_get0_notAfter(issuer_cert));
  if (!issuer_end.ok()) return issuer_end.status();
  const absl::Time not_after = std::min(now + lifetime, *issuer_end);
  if (not_after <= now)
    return absl::FailedPreconditionError(absl::StrCat(
        "certificate '", common_name, "': its issuer expired at ", absl::FormatTime(*issuer_end)));
  absl::StatusOr<KeyPtr> key = NewKey();
  if (!key.ok()) return key.status();
  absl::StatusOr<X509Ptr> cert =
      BuildCertificate(key->get(), common_name, issuer_cert, issuer_key->get(),
                       now - kClockSkewAllowance, not_after, /*is_ca=*/false, dns_names);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key_pem = KeyPem(key->get());
  absl::StatusOr<std::string> cert_pem = CertPem(cert->get());
  if (!key_pem.ok()) return key_pem.status();
  if (!cert_pem.ok()) return cert_pem.status();
  return KeyAndCertificate{*std::move(key_pem), *std::move(cert_pem)};
}

absl::StatusOr<std::vector<CertificateInfo>> ParseCertificates(absl::string_view pem,
                                                               absl::string_view what) {
  absl::StatusOr<std::vector<X509Ptr>> certs = ReadCerts(pem, what);
  if (!certs.ok()) return certs.status();
  std::vector<CertificateInfo> out;
  for (const X509Ptr& c : *certs) {
    CertificateInfo info;
    char cn[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(c.get()), NID_commonName, cn,
                                  sizeof cn) > 0)
      info.common_name = cn;
    absl::StatusOr<absl::Time> from = AsnTime(X509_get0_notBefore(c.get()));
    absl::StatusOr<absl::Time> to = AsnTime(X509_get0_notAfter(c.get()));
    if (!from.ok() || !to.ok())
      return absl::InvalidArgumentError(absl::StrCat(what, ": unreadable validity period"));
    info.not_before = *from;
    info.not_after = *to;
    info.is_ca = X509_check_ca(c.get()) != 0;
    absl::StatusOr<std::string> fp = PublicKeySha256(X509_get0_pubkey(c.get()));
    if (!fp.ok()) return fp.status();
    info.public_key_sha256 = *std::move(fp);
    absl::StatusOr<std::string> one = CertPem(c.get());
    if (!one.ok()) return one.status();
    info.pem = *std::move(one);
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<std::string> PublicKeySha256OfPrivateKey(absl::string_view key_pem,
                                                        absl::string_view what) {
  absl::StatusOr<KeyPtr> key = ReadKey(key_pem, what);
  if (!key.ok()) return key.status();
  return PublicKeySha256(key->get());
}

absl::Status VerifyCertificate(absl::string_view chain_pem, absl::string_view trusted_pem,
                               absl::Time at) {
  absl::StatusOr<std::vector<X509Ptr>> chain = ReadCerts(chain_pem, "peer certificate");
  if (!chain.ok()) return absl::UnauthenticatedError(chain.status().message());
  absl::StatusOr<std::vector<X509Ptr>> trusted = ReadCerts(trusted_pem, "trusted certificates");
  if (!trusted.ok()) return trusted.status();
  StorePtr store(X509_STORE_new());
  for (const X509Ptr& c : *trusted)
    if (!X509_STORE_add_cert(store.get(), c.get())) return OpenSslError("building the trust store");
  X509StackPtr intermediates(sk_X509_new_null());
  for (size_t i = 1; i < chain->size(); ++i) {
    if (!sk_X509_push(intermediates.get(), (*chain)[i].get()))
      return OpenSslError("building the chain");
    X509_up_ref((*chain)[i].get());
  }
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || !X509_STORE_CTX_init(ctx.get(), store.get(), chain->front().get(), intermediates.get()))
    return OpenSslError("starting the verification");
  X509_STORE_CTX_set_time(ctx.get(), 0, absl::ToTimeT(at));
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    char cn[256] = "?";
    X509_NAME_get_text_by_NID(X509_get_subject_name(chain->front().get()), NID_commonName, cn,
                              sizeof cn);
    return absl::UnauthenticatedError(absl::StrCat("certificate '", cn, "' is not trusted: ",
                                                   X509_verify_cert_error_string(err)));
  }
  return absl::OkStatus();
}

}  // namespace tandem::tls
