#include "pserver/tls_credentials.h"

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/tls_certificates.h"
#include "pserver/metrics.h"

namespace tandem::pserver {
namespace {

namespace gx = grpc::experimental;

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Accepts a peer whose certificate chains to the job's trust bundle, read from its file at each
// handshake (handshakes are per connection, and the file may have been rotated).
class JobPeerVerifier final : public gx::ExternalCertificateVerifier {
 public:
  JobPeerVerifier(std::string ca_file, int side) : ca_file_(std::move(ca_file)), side_(side) {}

  bool Verify(gx::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> /*callback*/, grpc::Status* sync_status) override {
    *sync_status = Check(*request);
    return true;  // answered synchronously
  }
  void Cancel(gx::TlsCustomVerificationCheckRequest*) override {}

 private:
  grpc::Status Check(const gx::TlsCustomVerificationCheckRequest& request) {
    grpc::string_ref chain = request.peer_cert_full_chain();
    if (chain.empty()) chain = request.peer_cert();
    absl::StatusOr<std::string> trusted = ReadFile(ca_file_);
    absl::Status s = trusted.ok() ? tls::VerifyCertificate(absl::string_view(chain.data(), chain.size()),
                                                           *trusted, absl::Now())
                                  : trusted.status();
    if (s.ok()) return grpc::Status::OK;
    PServerMetrics::Get().tls_rejected_peers[side_]->Inc();
    TANDEM_LOG(warn, "TLS: refused a {} peer: {}",
               side_ == PServerMetrics::kServer ? "client" : "server", std::string(s.message()));
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(s.message()));
  }

  const std::string ca_file_;
  const int side_;  // PServerMetrics::kServer: we are the server, checking a client
};

std::shared_ptr<gx::FileWatcherCertificateProvider> Provider(const tls::TlsFiles& f,
                                                             absl::Duration reload) {
  const auto seconds = static_cast<unsigned>(std::max<int64_t>(1, absl::ToInt64Seconds(reload)));
  return std::make_shared<gx::FileWatcherCertificateProvider>(f.key_file, f.cert_file, f.ca_file,
                                                              seconds);
}

}  // namespace

absl::Status CheckTlsFiles(const tls::TlsFiles& f) {
  absl::StatusOr<std::string> ca = ReadFile(f.ca_file);
  absl::StatusOr<std::string> cert = ReadFile(f.cert_file);
  absl::StatusOr<std::string> key = ReadFile(f.key_file);
  for (const auto* s : {&ca, &cert, &key})
    if (!s->ok()) return s->status();
  absl::StatusOr<std::vector<tls::CertificateInfo>> bundle = tls::ParseCertificates(*ca, f.ca_file);
  if (!bundle.ok()) return bundle.status();
  absl::StatusOr<std::vector<tls::CertificateInfo>> leaf = tls::ParseCertificates(*cert, f.cert_file);
  if (!leaf.ok()) return leaf.status();
  absl::StatusOr<std::string> key_fp = tls::PublicKeySha256OfPrivateKey(*key, f.key_file);
  if (!key_fp.ok()) return key_fp.status();
  if (leaf->front().public_key_sha256 != *key_fp)
    return absl::InvalidArgumentError(
        absl::StrCat(f.key_file, ": is not the key of the certificate in ", f.cert_file));
  if (absl::Status s = tls::VerifyCertificate(*cert, *ca, absl::Now()); !s.ok())
    return absl::InvalidArgumentError(absl::StrCat(f.cert_file, ": ", s.message(), " by ", f.ca_file));
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> MutualTlsServerCredentials(const tls::TlsFiles& f,
                                                                    absl::Duration reload_interval) {
  gx::TlsServerCredentialsOptions options(Provider(f, reload_interval));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  // The chain is checked by JobPeerVerifier rather than in the handshake so that a refused peer
  // is seen, logged and counted by our code.
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  options.set_certificate_verifier(
      gx::ExternalCertificateVerifier::Create<JobPeerVerifier>(f.ca_file, PServerMetrics::kServer));
  return gx::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> MutualTlsChannelCredentials(
    const tls::TlsFiles& f, absl::Duration reload_interval) {
  gx::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(Provider(f, reload_interval));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(false);  // JobPeerVerifier checks the chain (see above)
  options.set_check_call_host(false);      // no host names: see the header
  options.set_certificate_verifier(
      gx::ExternalCertificateVerifier::Create<JobPeerVerifier>(f.ca_file, PServerMetrics::kClient));
  return grpc::experimental::TlsCredentials(options);
}

}  // namespace tandem::pserver
