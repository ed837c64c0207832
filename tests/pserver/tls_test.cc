// Mutual TLS on the pserver's gRPC (pserver/tls_credentials.h): a job's workers talk with no
// token, a peer with another job's certificate is refused on either side and counted, plaintext
// and TLS do not mix, and files rotated under a running server (as the kubelet swaps a Secret
// volume) are picked up without a restart.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/job_certificates.h"
#include "common/tls_certificates.h"
#include "gtest/gtest.h"
#include "pserver/client/pserver_client.h"
#include "pserver/metrics.h"
#include "pserver/server.h"
#include "pserver/tls_credentials.h"
#include "tests/common/test_util.h"

namespace tandem::pserver {
namespace {

namespace fs = std::filesystem;

class PServerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / absl::StrCat("pserver-tls-test-", getpid(), "-",
                                                     ::testing::UnitTest::GetInstance()->random_seed());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // The material's worker files as the kubelet lays out a Secret volume: `dir`/<file> are
  // symlinks through `dir`/..data, which is swapped atomically to publish a new version.
  tls::TlsFiles Publish(const std::string& dir, const tls::JobCertificates& c) {
    const fs::path d = root_ / dir;
    fs::create_directories(d);
    const fs::path version = d / absl::StrCat("..v", ++versions_);
    fs::create_directories(version);
    for (const auto& [name, text] : {std::pair{tls::kCaBundleFile, c.ca_bundle_pem},
                                     std::pair{tls::kCertFile, c.cert_pem},
                                     std::pair{tls::kKeyFile, c.key_pem}}) {
      std::ofstream(version / name) << text;
      if (!fs::exists(fs::symlink_status(d / name))) fs::create_symlink(fs::path("..data") / name, d / name);
    }
    const fs::path tmp = d / "..data_tmp";
    fs::remove(tmp);
    fs::create_symlink(version.filename(), tmp);
    fs::rename(tmp, d / "..data");
    return tls::TlsFiles::InFolder(d.string());
  }

  static tls::JobCertificates Job(const std::string& name) {
    absl::StatusOr<tls::JobCertificates> c = tls::CreateJobCertificates(name, absl::Now(), {});
    EXPECT_TRUE(c.ok()) << c.status();
    return *c;
  }

  std::unique_ptr<PServer> Server(const tls::TlsFiles& files, const std::string& token = "") {
    PServerOptions o;
    o.host = "127.0.0.1";
    o.shard = {.shard = 0, .num_shards = 1, .num_trainers = 1};
    o.token = token;
    o.tls = files;
    o.tls_reload_interval = absl::Seconds(1);
    auto ps = PServer::Start(o);
    EXPECT_TRUE(ps.ok()) << ps.status();
    return ps.ok() ? std::move(*ps) : nullptr;
  }

  // One Status RPC from a fresh client; the error when it cannot get through.
  static absl::Status Probe(int port, const tls::TlsFiles& files, const std::string& token = "") {
    PServerClientOptions o;
    o.endpoints = {absl::StrCat("127.0.0.1:", port)};
    o.token = token;
    o.tls = files;
    o.tls_reload_interval = absl::Seconds(1);
    o.rpc_timeout = absl::Seconds(5);
    o.reconnect_timeout = absl::Milliseconds(300);
    absl::StatusOr<std::unique_ptr<PServerClient>> c = PServerClient::Connect(o);
    if (!c.ok()) return c.status();
    return (*c)->ShardStatus(0).status();
  }

  static double Rejected(int side) { return PServerMetrics::Get().tls_rejected_peers[side]->Value(); }

  fs::path root_;
  int versions_ = 0;
};

TEST_F(PServerTlsTest, TheJobsWorkersTalkWithoutAToken) {
  const tls::JobCertificates a = Job("ml/a");
  const tls::TlsFiles server_files = Publish("server", a), client_files = Publish("client", a);
  std::unique_ptr<PServer> ps = Server(server_files);
  ASSERT_NE(ps, nullptr);
  EXPECT_TRUE(Probe(ps->port(), client_files).ok()) << Probe(ps->port(), client_files);
  // A plaintext client (with a token) cannot talk to a TLS port.
  absl::Status plain = Probe(ps->port(), {}, "some-token");
  EXPECT_FALSE(plain.ok());
}

TEST_F(PServerTlsTest, WithATokenBothAreRequired) {
  const tls::JobCertificates a = Job("ml/a");
  const tls::TlsFiles files = Publish("a", a);
  std::unique_ptr<PServer> ps = Server(files, "job-a-token");
  ASSERT_NE(ps, nullptr);
  EXPECT_TRUE(Probe(ps->port(), files, "job-a-token").ok());
  EXPECT_EQ(Probe(ps->port(), files, "").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Probe(ps->port(), files, "job-b-token").code(), absl::StatusCode::kUnauthenticated);
}

// A hostile worker of job b knows job a's CA certificate (it is not secret) and so trusts the
// server, but can only present its own job's certificate: the server refuses it and counts it.
TEST_F(PServerTlsTest, AClientWithAnotherJobsCertificateIsRefusedAndCounted) {
  const tls::JobCertificates a = Job("ml/a"), b = Job("ml/b");
  std::unique_ptr<PServer> ps = Server(Publish("a", a));
  ASSERT_NE(ps, nullptr);
  tls::JobCertificates intruder = b;
  intruder.ca_bundle_pem = a.ca_bundle_pem + b.ca_bundle_pem;
  const double before = Rejected(PServerMetrics::kServer);
  absl::Status s = Probe(ps->port(), Publish("intruder", intruder));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_GE(Rejected(PServerMetrics::kServer), before + 1);
  // The shard saw nothing of it, and job a's own client still gets through.
  EXPECT_TRUE(Probe(ps->port(), Publish("client", a)).ok());
}

// The other way round: a server of job b (say, an address mix-up) is refused by job a's client.
TEST_F(PServerTlsTest, AServerWithAnotherJobsCertificateIsRefusedAndCounted) {
  const tls::JobCertificates a = Job("ml/a"), b = Job("ml/b");
  std::unique_ptr<PServer> ps = Server(Publish("b", b));
  ASSERT_NE(ps, nullptr);
  const double before = Rejected(PServerMetrics::kClient);
  absl::Status s = Probe(ps->port(), Publish("a", a));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_GE(Rejected(PServerMetrics::kClient), before + 1);
}

TEST_F(PServerTlsTest, BadFilesAreRefusedAtStartNamingTheFile) {
  const tls::JobCertificates a = Job("ml/a"), b = Job("ml/b");
  tls::JobCertificates wrong_key = a;
  wrong_key.key_pem = b.key_pem;
  tls::JobCertificates foreign_cert = a;
  foreign_cert.cert_pem = b.cert_pem;
  foreign_cert.key_pem = b.key_pem;
  const tls::TlsFiles k = Publish("wrong-key", wrong_key), f = Publish("foreign", foreign_cert);
  PServerOptions o;
  o.shard = {.shard = 0, .num_shards = 1, .num_trainers = 1};
  o.tls = k;
  absl::Status s = PServer::Start(o).status();
  EXPECT_NE(s.message().find(k.key_file + ": is not the key of the certificate"), std::string::npos) << s;
  o.tls = f;
  s = PServer::Start(o).status();
  EXPECT_NE(s.message().find(f.cert_file), std::string::npos) << s;
  EXPECT_NE(s.message().find("not trusted"), std::string::npos) << s;
  o.tls = {root_ / "none/ca.crt", root_ / "none/tls.crt", root_ / "none/tls.key"};
  s = PServer::Start(o).status();
  EXPECT_NE(s.message().find("none/ca.crt: cannot be read"), std::string::npos) << s;
  // The client checks the same at Connect.
  EXPECT_NE(Probe(1, k).message().find(k.key_file), std::string::npos);
}

// The rotation rule (common/job_certificates.h) played against a live server: phase 1 trusts a
// new CA before anything is signed by it, phase 2 presents a certificate it signed. Peers on
// either phase keep talking; once the server has reloaded phase 2 a client that trusts only the
// new CA gets through, and one that trusts only the old CA is refused.
TEST_F(PServerTlsTest, RotatedFilesAreReloadedAndBothPhasesInteroperate) {
  tls::RotationPolicy p;
  p.cert_lifetime = absl::Hours(3);
  p.propagation = absl::Minutes(10);
  const absl::Time now = absl::Now();
  absl::StatusOr<tls::JobCertificates> one = tls::CreateJobCertificates("ml/a", now - absl::Minutes(150), p);
  ASSERT_TRUE(one.ok()) << one.status();
  absl::StatusOr<tls::RotationStep> add =
      tls::PlanRotation(one->ca_bundle_pem, one->cert_pem, std::nullopt, "ml/a", now - absl::Minutes(20), p);
  ASSERT_TRUE(add.ok()) << add.status();
  ASSERT_TRUE(add->ca_bundle_pem && add->pending_ca && !add->identity) << "a CA was added";
  one->ca_bundle_pem = *add->ca_bundle_pem;
  absl::StatusOr<tls::RotationStep> sign =
      tls::PlanRotation(one->ca_bundle_pem, one->cert_pem, add->pending_ca, "ml/a", now, p);
  ASSERT_TRUE(sign.ok()) << sign.status();
  ASSERT_TRUE(sign->identity) << "the new CA signs";
  const tls::JobCertificates two{one->ca_bundle_pem, sign->identity->cert_pem, sign->identity->key_pem};

  std::unique_ptr<PServer> ps = Server(Publish("server", *one));
  ASSERT_NE(ps, nullptr);
  EXPECT_TRUE(Probe(ps->port(), Publish("c1", *one)).ok());
  EXPECT_TRUE(Probe(ps->port(), Publish("c2", two)).ok()) << "phase 2 client, phase 1 server";

  // Only the new CA trusted: the server's phase-1 certificate (old CA) is refused ...
  auto bundle = tls::ParseCertificates(two.ca_bundle_pem, "ca.crt");
  ASSERT_TRUE(bundle.ok());
  ASSERT_EQ(bundle->size(), 2u);
  tls::JobCertificates new_ca_only = two, old_ca_only = *one;
  new_ca_only.ca_bundle_pem = (*bundle)[1].pem;
  old_ca_only.ca_bundle_pem = (*bundle)[0].pem;
  const tls::TlsFiles new_only = Publish("new-only", new_ca_only), old_only = Publish("old-only", old_ca_only);
  EXPECT_FALSE(Probe(ps->port(), new_only).ok());
  // ... until the server has reloaded phase 2 (files swapped as the kubelet does).
  Publish("server", two);
  EXPECT_TRUE(testing::Eventually([&] { return Probe(ps->port(), new_only).ok(); }))
      << "the server never presented the re-issued certificate";
  EXPECT_FALSE(Probe(ps->port(), old_only).ok());
  EXPECT_TRUE(Probe(ps->port(), Publish("c1", *one)).ok()) << "phase 1 client, phase 2 server";
}

}  // namespace
}  // namespace tandem::pserver
