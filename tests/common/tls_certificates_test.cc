#include "common/tls_certificates.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/job_certificates.h"

namespace tandem::tls {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

KeyAndCertificate Ca(const std::string& name, absl::Time now = kNow,
                     absl::Duration lifetime = absl::Hours(100)) {
  absl::StatusOr<KeyAndCertificate> ca = CreateCertificateAuthority(name, now, lifetime);
  EXPECT_TRUE(ca.ok()) << ca.status();
  return *ca;
}

KeyAndCertificate Leaf(const KeyAndCertificate& ca, absl::Duration lifetime = absl::Hours(10)) {
  absl::StatusOr<KeyAndCertificate> leaf = IssueCertificate(ca, "job a", {"a.tandem-job"}, kNow, lifetime);
  EXPECT_TRUE(leaf.ok()) << leaf.status();
  return *leaf;
}

TEST(TlsCertificatesTest, LeafChainsToItsCaOnlyWhileValid) {
  KeyAndCertificate ca = Ca("ca a");
  KeyAndCertificate leaf = Leaf(ca);
  EXPECT_TRUE(VerifyCertificate(leaf.cert_pem, ca.cert_pem, kNow).ok());
  EXPECT_TRUE(VerifyCertificate(leaf.cert_pem, ca.cert_pem, kNow - absl::Minutes(4)).ok())
      << "backdated for clock skew";
  absl::Status expired = VerifyCertificate(leaf.cert_pem, ca.cert_pem, kNow + absl::Hours(11));
  EXPECT_EQ(expired.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(expired.message(), HasSubstr("certificate has expired"));
  absl::Status early = VerifyCertificate(leaf.cert_pem, ca.cert_pem, kNow - absl::Hours(1));
  EXPECT_THAT(early.message(), HasSubstr("not yet valid"));
}

TEST(TlsCertificatesTest, AnotherJobsCertificateIsNotTrusted) {
  KeyAndCertificate ca_a = Ca("ca a"), ca_b = Ca("ca b");
  KeyAndCertificate leaf_b = Leaf(ca_b);
  absl::Status s = VerifyCertificate(leaf_b.cert_pem, ca_a.cert_pem, kNow);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), HasSubstr("unable to get local issuer certificate"));
  EXPECT_THAT(s.message(), HasSubstr("'job a'"));
  // A bundle trusting both accepts it; a CA presented as a leaf is not its own proof.
  EXPECT_TRUE(VerifyCertificate(leaf_b.cert_pem, ca_a.cert_pem + ca_b.cert_pem, kNow).ok());
  EXPECT_FALSE(VerifyCertificate(ca_b.cert_pem, ca_a.cert_pem, kNow).ok());
}

TEST(TlsCertificatesTest, ParsesWhatItMadeAndMatchesKeysToCertificates) {
  KeyAndCertificate ca = Ca("ca a");
  KeyAndCertificate leaf = Leaf(ca, absl::Hours(1000));
  absl::StatusOr<std::vector<CertificateInfo>> both = ParseCertificates(ca.cert_pem + leaf.cert_pem, "bundle");
  ASSERT_TRUE(both.ok()) << both.status();
  ASSERT_THAT(*both, SizeIs(2));
  EXPECT_EQ((*both)[0].common_name, "ca a");
  EXPECT_TRUE((*both)[0].is_ca);
  EXPECT_FALSE((*both)[1].is_ca);
  EXPECT_EQ((*both)[0].not_after, kNow + absl::Hours(100));
  EXPECT_EQ((*both)[1].not_before, kNow - kClockSkewAllowance);
  EXPECT_EQ((*both)[1].not_after, kNow + absl::Hours(100)) << "a leaf ends no later than its CA";
  EXPECT_EQ(*PublicKeySha256OfPrivateKey(ca.key_pem, "k"), (*both)[0].public_key_sha256);
  EXPECT_EQ(*PublicKeySha256OfPrivateKey(leaf.key_pem, "k"), (*both)[1].public_key_sha256);
  EXPECT_EQ((*both)[1].pem, leaf.cert_pem);
}

TEST(TlsCertificatesTest, BadInputIsAnErrorNamingItsSource) {
  for (const std::string& text : {std::string(), std::string("hello"),
                                 std::string("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}) {
    absl::StatusOr<std::vector<CertificateInfo>> c = ParseCertificates(text, "ca.crt");
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_THAT(c.status().message(), HasSubstr("ca.crt")) << text;
  }
  EXPECT_THAT(PublicKeySha256OfPrivateKey("nope", "tls.key").status().message(), HasSubstr("tls.key"));
  KeyAndCertificate ca = Ca("ca a"), other = Ca("ca b");
  KeyAndCertificate leaf = Leaf(ca);
  EXPECT_THAT(IssueCertificate({other.key_pem, ca.cert_pem}, "x", {}, kNow, absl::Hours(1)).status().message(),
              HasSubstr("does not match"));
  EXPECT_THAT(IssueCertificate(leaf, "x", {}, kNow, absl::Hours(1)).status().message(),
              HasSubstr("not a certificate authority"));
  EXPECT_FALSE(IssueCertificate(ca, "x", {}, kNow, absl::ZeroDuration()).ok());
  EXPECT_FALSE(IssueCertificate(ca, "x", {}, kNow + absl::Hours(200), absl::Hours(1)).ok())
      << "the issuer has expired";
  EXPECT_FALSE(CreateCertificateAuthority("x", kNow, -absl::Hours(1)).ok());
  EXPECT_EQ(VerifyCertificate("garbage", ca.cert_pem, kNow).code(), absl::StatusCode::kUnauthenticated);
}

// ---- the rotation rule (common/job_certificates.h) ----

RotationPolicy ShortPolicy() {
  RotationPolicy p;
  p.ca_lifetime = absl::Hours(30);
  p.cert_lifetime = absl::Hours(3);
  p.propagation = absl::Minutes(10);
  return p;
}

TEST(JobCertificatesTest, FreshMaterialIsConsistentAndNeedsNothingUntilRenewal) {
  const RotationPolicy p = ShortPolicy();
  absl::StatusOr<JobCertificates> c = CreateJobCertificates("ml/ctr", kNow, p);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(VerifyCertificate(c->cert_pem, c->ca_bundle_pem, kNow).ok());
  EXPECT_EQ(ParseCertificates(c->cert_pem, "c")->front().common_name, "tandem job ml/ctr");
  absl::StatusOr<CertificateRotation> r = RotateJobCertificates(*c, "ml/ctr", kNow + absl::Hours(1), p);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->changed) << absl::StrJoin(r->reasons, "; ");
  EXPECT_EQ(r->certificates, *c);
  // 3 h 5 min lifetime (backdated 5 min), renewed with a third left.
  const absl::Time renew = kNow + absl::Hours(3) - (absl::Hours(3) + absl::Minutes(5)) / 3;
  EXPECT_EQ(r->next_check, renew);
  r = RotateJobCertificates(*c, "ml/ctr", renew, p);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->changed);
  EXPECT_NE(r->certificates.cert_pem, c->cert_pem);
  EXPECT_EQ(r->certificates.ca_bundle_pem, c->ca_bundle_pem) << "the CA is kept";
  EXPECT_TRUE(VerifyCertificate(r->certificates.cert_pem, c->ca_bundle_pem, renew).ok());
}

TEST(JobCertificatesTest, FilesRoundTripAndMissingOnesAreNamed) {
  absl::StatusOr<JobCertificates> c = CreateJobCertificates("a", kNow, ShortPolicy());
  ASSERT_TRUE(c.ok());
  std::map<std::string, std::string> files = c->Files();
  EXPECT_EQ(files.count(kNextCaKeyFile), 0u);
  EXPECT_EQ(*JobCertificates::FromFiles(files, "Secret ns/a-token"), *c);
  files.erase(kKeyFile);
  absl::Status s = JobCertificates::FromFiles(files, "Secret ns/a-token").status();
  EXPECT_THAT(s.message(), HasSubstr("Secret ns/a-token: no 'tls.key'"));
}

TEST(JobCertificatesTest, UnusableMaterialIsAnError) {
  const RotationPolicy p = ShortPolicy();
  JobCertificates a = *CreateJobCertificates("a", kNow, p), b = *CreateJobCertificates("b", kNow, p);
  JobCertificates mixed = a;
  mixed.ca_key_pem = b.ca_key_pem;
  EXPECT_THAT(RotateJobCertificates(mixed, "a", kNow, p).status().message(),
              HasSubstr("ca.key matches no certificate in ca.crt"));
  EXPECT_THAT(RotateJobCertificates(a, "a", kNow + absl::Hours(31), p).status().message(),
              HasSubstr("expired"));
  RotationPolicy bad = p;
  bad.renew_fraction = 1.5;
  EXPECT_FALSE(RotateJobCertificates(a, "a", kNow, bad).ok());
  // A certificate that does not belong to the CA (or to its key) is re-issued, not an error.
  JobCertificates foreign_leaf = a;
  foreign_leaf.cert_pem = b.cert_pem;
  absl::StatusOr<CertificateRotation> r = RotateJobCertificates(foreign_leaf, "a", kNow, p);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->changed);
  EXPECT_TRUE(VerifyCertificate(r->certificates.cert_pem, a.ca_bundle_pem, kNow).ok());
}

// Runs the rule at every time it asks to be run, over three CA lifetimes, and checks at each
// step what peers that have not reloaded yet see: the new certificate is trusted by the previous
// bundle, the previous certificate by the new bundle, and nothing in use expires before the
// next step.
TEST(JobCertificatesTest, RotationNeverPresentsAnUntrustedOrExpiredCertificate) {
  const RotationPolicy p = ShortPolicy();
  absl::StatusOr<JobCertificates> first = CreateJobCertificates("ml/ctr", kNow, p);
  ASSERT_TRUE(first.ok());
  JobCertificates cur = *first;
  absl::Time t = kNow;
  int ca_added = 0, ca_promoted = 0, ca_removed = 0, reissued = 0;
  while (t < kNow + 3 * p.ca_lifetime) {
    absl::StatusOr<CertificateRotation> r = RotateJobCertificates(cur, "ml/ctr", t, p);
    ASSERT_TRUE(r.ok()) << r.status() << " at " << absl::FormatDuration(t - kNow);
    const JobCertificates& next = r->certificates;
    const std::string when = absl::StrCat(absl::FormatDuration(t - kNow), ": ", absl::StrJoin(r->reasons, "; "));
    EXPECT_TRUE(VerifyCertificate(next.cert_pem, next.ca_bundle_pem, t).ok()) << when;
    EXPECT_TRUE(VerifyCertificate(next.cert_pem, cur.ca_bundle_pem, t).ok()) << when;
    EXPECT_TRUE(VerifyCertificate(cur.cert_pem, next.ca_bundle_pem, t).ok()) << when;
    ASSERT_GT(r->next_check, t) << when;
    EXPECT_TRUE(VerifyCertificate(next.cert_pem, next.ca_bundle_pem, r->next_check - absl::Seconds(1)).ok())
        << when;
    for (const std::string& reason : r->reasons) {
      ca_added += absl::StrContains(reason, "added the next CA");
      ca_promoted += absl::StrContains(reason, "now signs");
      ca_removed += absl::StrContains(reason, "removed the expired CA");
      reissued += absl::StartsWith(reason, "re-issued");
    }
    cur = next;
    t = r->next_check;
  }
  EXPECT_GE(ca_added, 3);
  EXPECT_GE(ca_promoted, 3);
  EXPECT_GE(ca_removed, 2);
  EXPECT_GE(reissued, 20);
  EXPECT_LE(ParseCertificates(cur.ca_bundle_pem, "ca.crt")->size(), 2u);
}

}  // namespace
}  // namespace tandem::tls
