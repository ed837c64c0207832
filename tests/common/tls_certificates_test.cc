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
  p.cert_lifetime = absl::Hours(3);
  p.propagation = absl::Minutes(10);
  return p;
}

TEST(JobCertificatesTest, FreshMaterialChainsAndKeepsNoCaKey) {
  absl::StatusOr<JobCertificates> c = CreateJobCertificates("ml/ctr", kNow, ShortPolicy());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(VerifyCertificate(c->cert_pem, c->ca_bundle_pem, kNow).ok());
  auto leaf = ParseCertificates(c->cert_pem, "c");
  EXPECT_EQ(leaf->front().common_name, "tandem job ml/ctr");
  EXPECT_EQ(leaf->front().not_after, kNow + absl::Hours(3));
  EXPECT_EQ(*PublicKeySha256OfPrivateKey(c->key_pem, "k"), leaf->front().public_key_sha256);
  EXPECT_EQ(ParseCertificates(c->ca_bundle_pem, "ca")->front().not_after,
            kNow + absl::Hours(3) + absl::Minutes(20));
}

TEST(JobCertificatesTest, LongJobNamesFitTheCommonNameAndStayApart) {
  // A namespace and a name of 63 characters each (the longest Kubernetes allows), and a
  // `tandem run` sweep trial's name: X.509 allows 64 characters in a common name.
  const std::string ns(63, 'n'), name_a = std::string(62, 'a') + "1", name_b = std::string(62, 'a') + "2";
  for (const std::string& job : {ns + "/" + name_a, ns + "/" + name_b, std::string("bench-tpe-mv-cost-asha-budget-s1-0")}) {
    absl::StatusOr<JobCertificates> c = CreateJobCertificates(job, kNow, ShortPolicy());
    ASSERT_TRUE(c.ok()) << job << ": " << c.status();
    EXPECT_TRUE(VerifyCertificate(c->cert_pem, c->ca_bundle_pem, kNow).ok()) << job;
    const std::string leaf = ParseCertificates(c->cert_pem, "c")->front().common_name;
    const std::string ca = ParseCertificates(c->ca_bundle_pem, "ca")->front().common_name;
    EXPECT_LE(leaf.size(), 64u) << leaf;
    EXPECT_LE(ca.size(), 64u) << ca;
    EXPECT_TRUE(absl::StartsWith(leaf, "tandem job ")) << leaf;
    EXPECT_TRUE(absl::StrContains(ca, " CA 2")) << ca;  // the time still keeps a job's CAs apart
  }
  // What fits is unchanged; two long names that differ only at their end get different names.
  EXPECT_EQ(ParseCertificates(CreateJobCertificates("ml/ctr", kNow, ShortPolicy())->cert_pem, "c")->front().common_name,
            "tandem job ml/ctr");
  EXPECT_NE(ParseCertificates(CreateJobCertificates(ns + "/" + name_a, kNow, ShortPolicy())->cert_pem, "c")
                ->front().common_name,
            ParseCertificates(CreateJobCertificates(ns + "/" + name_b, kNow, ShortPolicy())->cert_pem, "c")
                ->front().common_name);
}

TEST(JobCertificatesTest, RenewalAddsACaFirstAndSignsWithItAfterThePropagationDelay) {
  const RotationPolicy p = ShortPolicy();
  JobCertificates c = *CreateJobCertificates("ml/ctr", kNow, p);
  absl::StatusOr<RotationStep> s = PlanRotation(c.ca_bundle_pem, c.cert_pem, std::nullopt, "ml/ctr", kNow + absl::Hours(1), p);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->changed());
  EXPECT_FALSE(s->pending_ca.has_value());
  // 3 h 5 min lifetime (backdated 5 min), renewed with a third left.
  const absl::Time renew = kNow + absl::Hours(3) - (absl::Hours(3) + absl::Minutes(5)) / 3;
  EXPECT_EQ(s->next_check, renew);
  s = PlanRotation(c.ca_bundle_pem, c.cert_pem, std::nullopt, "ml/ctr", renew, p);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(s->ca_bundle_pem.has_value());
  EXPECT_FALSE(s->identity.has_value()) << "nothing is signed by a CA the peers do not trust yet";
  ASSERT_TRUE(s->pending_ca.has_value());
  EXPECT_EQ(ParseCertificates(*s->ca_bundle_pem, "ca.crt")->size(), 2u);
  EXPECT_EQ(s->next_check, renew + absl::Minutes(10));
  const std::string bundle = *s->ca_bundle_pem;
  // Before the delay: nothing to do. After: a certificate the old bundle already trusted.
  absl::StatusOr<RotationStep> early = PlanRotation(bundle, c.cert_pem, s->pending_ca, "ml/ctr", renew + absl::Minutes(5), p);
  ASSERT_TRUE(early.ok());
  EXPECT_FALSE(early->changed());
  EXPECT_TRUE(early->pending_ca.has_value());
  absl::StatusOr<RotationStep> sign = PlanRotation(bundle, c.cert_pem, s->pending_ca, "ml/ctr", renew + absl::Minutes(10), p);
  ASSERT_TRUE(sign.ok()) << sign.status();
  ASSERT_TRUE(sign->identity.has_value());
  EXPECT_FALSE(sign->ca_bundle_pem.has_value());
  EXPECT_FALSE(sign->pending_ca.has_value()) << "the CA key is dropped once used";
  EXPECT_TRUE(VerifyCertificate(sign->identity->cert_pem, bundle, renew + absl::Minutes(10)).ok());
  EXPECT_FALSE(VerifyCertificate(sign->identity->cert_pem, c.ca_bundle_pem, renew + absl::Minutes(10)).ok());
}

TEST(JobCertificatesTest, UnreadableMaterialIsAnErrorAndAForeignCertificateIsReplaced) {
  const RotationPolicy p = ShortPolicy();
  JobCertificates a = *CreateJobCertificates("a", kNow, p), b = *CreateJobCertificates("b", kNow, p);
  EXPECT_THAT(PlanRotation("junk", a.cert_pem, std::nullopt, "a", kNow, p).status().message(), HasSubstr("ca.crt"));
  EXPECT_THAT(PlanRotation(a.ca_bundle_pem, "", std::nullopt, "a", kNow, p).status().message(), HasSubstr("tls.crt"));
  RotationPolicy bad = p;
  bad.renew_fraction = 1.5;
  EXPECT_FALSE(PlanRotation(a.ca_bundle_pem, a.cert_pem, std::nullopt, "a", kNow, bad).ok());
  // A certificate of another CA is renewed at once, through the same two steps.
  absl::StatusOr<RotationStep> s = PlanRotation(a.ca_bundle_pem, b.cert_pem, std::nullopt, "a", kNow, p);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->ca_bundle_pem.has_value());
  EXPECT_TRUE(s->pending_ca.has_value());
  EXPECT_THAT(absl::StrJoin(s->reasons, ";"), HasSubstr("does not chain"));
}

// Runs the rule at every time it asks to be run, over many certificate lifetimes, losing the
// pending CA now and then (an operator restart), and checks what peers see: a new certificate
// is trusted by every bundle published within the propagation delay before it (peers that have
// not reloaded yet), the previous certificate is trusted by the new bundle (peers still
// presenting it), and nothing in use expires before the next step.
TEST(JobCertificatesTest, RotationNeverPresentsAnUntrustedOrExpiredCertificate) {
  const RotationPolicy p = ShortPolicy();
  JobCertificates cur = *CreateJobCertificates("ml/ctr", kNow, p);
  std::optional<KeyAndCertificate> pending;
  std::vector<std::pair<absl::Time, std::string>> published = {{kNow, cur.ca_bundle_pem}};
  absl::Time t = kNow;
  int added = 0, issued = 0, removed = 0, restarts = 0, steps = 0;
  while (t < kNow + 10 * p.cert_lifetime) {
    absl::StatusOr<RotationStep> s = PlanRotation(cur.ca_bundle_pem, cur.cert_pem, pending, "ml/ctr", t, p);
    ASSERT_TRUE(s.ok()) << s.status() << " at " << absl::FormatDuration(t - kNow);
    const std::string when = absl::StrCat(absl::FormatDuration(t - kNow), ": ", absl::StrJoin(s->reasons, "; "));
    JobCertificates next = cur;
    if (s->ca_bundle_pem) next.ca_bundle_pem = *s->ca_bundle_pem;
    if (s->identity) {
      next.cert_pem = s->identity->cert_pem;
      next.key_pem = s->identity->key_pem;
      ++issued;
      ASSERT_FALSE(s->ca_bundle_pem.has_value() && !absl::StrContains(when, "removed")) << when;
      // Every bundle a peer may still hold trusts the new certificate.
      for (auto it = published.rbegin(); it != published.rend(); ++it) {
        EXPECT_TRUE(VerifyCertificate(next.cert_pem, it->second, t).ok()) << when;
        if (it->first <= t - p.propagation) break;
      }
    }
    EXPECT_TRUE(VerifyCertificate(cur.cert_pem, next.ca_bundle_pem, t).ok()) << when;
    EXPECT_TRUE(VerifyCertificate(next.cert_pem, next.ca_bundle_pem, t).ok()) << when;
    ASSERT_GT(s->next_check, t) << when;
    EXPECT_TRUE(VerifyCertificate(next.cert_pem, next.ca_bundle_pem, s->next_check).ok()) << when;
    for (const std::string& r : s->reasons) {
      added += absl::StrContains(r, "added the CA");
      removed += absl::StrContains(r, "removed the expired CA");
    }
    if (s->ca_bundle_pem) published.emplace_back(t, next.ca_bundle_pem);
    pending = s->pending_ca;
    // Every third pending CA is lost before it signs, as when the operator restarts.
    if (pending && ++steps % 3 == 0) {
      pending.reset();
      ++restarts;
    }
    cur = next;
    t = s->next_check;
  }
  EXPECT_GE(issued, 10);
  EXPECT_GE(added, issued + restarts);
  EXPECT_GE(removed, issued - 1);
  EXPECT_GE(restarts, 3);
  EXPECT_LE(ParseCertificates(cur.ca_bundle_pem, "ca.crt")->size(), 3u);
}

}  // namespace
}  // namespace tandem::tls
