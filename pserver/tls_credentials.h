// Mutual TLS on the pserver's gRPC with the job's certificates (common/job_certificates.h).
//
//   TANDEM_RETURN_IF_ERROR(CheckTlsFiles(files));             // at start-up: names a bad file
//   builder.AddListeningPort(addr, MutualTlsServerCredentials(files, absl::Seconds(60)));
//   grpc::CreateCustomChannel(target, MutualTlsChannelCredentials(files, ...), args);
//
// Both ends present the job's certificate and accept a peer only if the peer's certificate
// chains to a CA in the job's trust bundle (ca.crt): a peer holding another job's certificate
// fails the handshake and is counted in tandem_pserver_tls_rejected_peers_total{side}. Peer
// host names are not checked: the per-job CA is the identity (every holder of a certificate
// it signed is a worker of the job), and workers reach each other by addresses that differ
// between `tandem run`, pods and tests. The files are re-read every `reload_interval`, so a
// rotated Secret (docs/operator.md) is picked up by running processes; connections already
// established keep the certificate they were opened with.
#pragma once

#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/job_certificates.h"

namespace grpc {
class ServerCredentials;
class ChannelCredentials;
}  // namespace grpc

namespace tandem::pserver {

// Reads the three files and checks that each parses, that the key matches the certificate and
// that the certificate chains to the bundle now. Errors name the file.
absl::Status CheckTlsFiles(const tls::TlsFiles& files);

// REQUIRES: CheckTlsFiles(files).ok() (a later unreadable file fails handshakes, not the process).
std::shared_ptr<grpc::ServerCredentials> MutualTlsServerCredentials(const tls::TlsFiles& files,
                                                                    absl::Duration reload_interval);
std::shared_ptr<grpc::ChannelCredentials> MutualTlsChannelCredentials(
    const tls::TlsFiles& files, absl::Duration reload_interval);

}  // namespace tandem::pserver
