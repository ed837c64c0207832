// The elastic coordinator's decisions (cli/local/elastic_coordinator.h) over a membership file in
// a scratch folder: resizes and worker failures, each case a row.
#include "cli/local/elastic_coordinator.h"

#include <unistd.h>

#include <filesystem>

#include "gtest/gtest.h"

namespace tandem::local {
namespace {

namespace fs = std::filesystem;

std::vector<Endpoint> Slots(int n) {
  std::vector<Endpoint> out;
  for (int i = 0; i < n; ++i) out.push_back({"127.0.0.1", 7000 + i});
  return out;
}

std::vector<int> PortsOf(const api::Membership& m) {
  std::vector<int> out;
  for (const Endpoint& e : m.peers) out.push_back(e.port - 7000);
  return out;
}

class ElasticCoordinatorTest : public ::testing::Test {
 protected:
  std::string File() const {
    return (fs::path(::testing::TempDir()) / ("membership-" + std::to_string(::getpid()) + ".json"))
        .string();
  }
  // Checks that the file holds what the coordinator says.
  void ExpectFile(const ElasticCoordinator& c) {
    auto m = api::ReadMembershipFile(File());
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_TRUE(m->has_value());
    EXPECT_EQ(**m, c.membership());
  }
};

TEST_F(ElasticCoordinatorTest, ResizeGrowsIntoFreeSlotsAndShrinksFromTheHighestRank) {
  ElasticCoordinator c({.membership_path = File(), .min_workers = 1, .max_workers = 4}, Slots(4), 2);
  ASSERT_TRUE(c.Start().ok());
  EXPECT_EQ(c.membership().epoch, 0);
  EXPECT_EQ(PortsOf(c.membership()), (std::vector<int>{0, 1}));
  ExpectFile(c);

  struct Row {
    int workers;
    bool ok;
    std::vector<int> members;  // slot numbers in rank order after the row
    std::vector<int> started, removed;
    int64_t epoch;
  };
  const Row rows[] = {
      {4, true, {0, 1, 2, 3}, {2, 3}, {}, 1},
      {4, true, {0, 1, 2, 3}, {}, {}, 1},    // the same size: no new epoch
      {3, true, {0, 1, 2}, {}, {3}, 2},
      {5, false, {0, 1, 2}, {}, {}, 2},      // above maxCount
      {0, false, {0, 1, 2}, {}, {}, 2},      // below minCount
      {4, false, {0, 1, 2}, {}, {}, 2},      // slot 3 is still leaving
  };
  for (const Row& row : rows) {
    auto ch = c.Resize(row.workers, "test");
    EXPECT_EQ(ch.ok(), row.ok) << row.workers << ": " << ch.status();
    if (ch.ok()) {
      EXPECT_EQ(ch->started, row.started) << row.workers;
      EXPECT_EQ(ch->removed, row.removed) << row.workers;
      EXPECT_EQ(ch->pending, !row.started.empty()) << row.workers;
      // Growing: nothing is published until every new trainer is ready.
      for (size_t i = 0; i < ch->started.size(); ++i) {
        EXPECT_EQ(c.membership().epoch, row.epoch - 1) << row.workers;
        EXPECT_EQ(c.Planned().world_size(), row.workers);
        if (i == 0) {
          auto busy = c.Resize(1, "test");  // one resize at a time
          EXPECT_FALSE(busy.ok());
          EXPECT_NE(busy.status().message().find("in progress"), std::string::npos);
        }
        auto published = c.OnReady(ch->started[i]);
        ASSERT_TRUE(published.ok()) << published.status();
        EXPECT_EQ(*published, i + 1 == ch->started.size()) << i;
      }
    }
    EXPECT_EQ(PortsOf(c.membership()), row.members) << row.workers;
    EXPECT_EQ(c.membership().epoch, row.epoch) << row.workers;
    ExpectFile(c);
  }
  // Slots 2 and 3 became members at epoch 1: a trainer that finished at epoch 0 never met them.
  EXPECT_EQ(c.JoinedAfter(0), (std::vector<int>{2}));  // slot 3 has left since
  EXPECT_TRUE(c.JoinedAfter(1).empty());
  auto bounds = c.Resize(5, "test");
  EXPECT_NE(bounds.status().message().find("spec.workers.maxCount"), std::string::npos);
  c.MarkStopped(3);  // the leaving trainer exited
  auto grew = c.Resize(4, "test");
  ASSERT_TRUE(grew.ok()) << grew.status();
  EXPECT_EQ(grew->started, (std::vector<int>{3}));
  // Its trainer fails before it is ready: the grow is called off, the job keeps its size.
  auto failed = c.OnTrainerFailed(3, 1, /*restartable=*/true);
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(*failed, ExitDecision::kRetire);
  EXPECT_FALSE(c.growing());
  EXPECT_EQ(PortsOf(c.membership()), (std::vector<int>{0, 1, 2}));
  auto late = c.OnReady(3);
  ASSERT_TRUE(late.ok());
  EXPECT_FALSE(*late);
}

TEST_F(ElasticCoordinatorTest, AFailedWorkerIsRestartedRetiredOrFailsTheJob) {
  struct Row {
    int slot, code;
    bool restartable;
    ExitDecision decision;
    std::vector<int> members;
    int64_t epoch;
  };
  // minCount 2 of 3.
  const Row rows[] = {
      {1, 137, true, ExitDecision::kRestart, {0, 1, 2}, 1},  // comes back: a new epoch, same members
      {2, 75, true, ExitDecision::kRestart, {0, 1, 2}, 1},   // its peer's failure: same epoch
      {1, 137, false, ExitDecision::kRetire, {0, 2}, 2},     // will not come back: 3 -> 2
      {2, 137, false, ExitDecision::kFail, {0, 2}, 2},       // 2 -> 1 is below minCount
      {1, 1, false, ExitDecision::kRetire, {0, 2}, 2},       // not a member any more: nothing waits
  };
  ElasticCoordinator c({.membership_path = File(), .min_workers = 2, .max_workers = 3}, Slots(3), 3);
  ASSERT_TRUE(c.Start().ok());
  for (const Row& row : rows) {
    auto d = c.OnTrainerFailed(row.slot, row.code, row.restartable);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(*d, row.decision) << "slot " << row.slot << " code " << row.code;
    EXPECT_EQ(PortsOf(c.membership()), row.members) << "slot " << row.slot;
    EXPECT_EQ(c.membership().epoch, row.epoch) << "slot " << row.slot;
    ExpectFile(c);
  }
  EXPECT_NE(c.membership().reason.find("will not come back: 3 -> 2 workers"), std::string::npos)
      << c.membership().reason;
}

std::vector<int> ShardSlots(const api::Membership& m) {
  std::vector<int> out;
  for (const api::PServerShard& s : m.pservers) {
    EXPECT_EQ(s.endpoint.port, 8000 + s.slot);
    out.push_back(s.slot);
  }
  return out;
}

TEST_F(ElasticCoordinatorTest, WithPServersTheLayoutFollowsTheMembersAndFailuresFailTheJob) {
  std::vector<Endpoint> shards;
  for (int i = 0; i < 3; ++i) shards.push_back({"127.0.0.1", 8000 + i});
  ElasticCoordinator c({.membership_path = File(), .min_workers = 1, .max_workers = 3,
                        .pserver_slots = shards},
                       Slots(3), 2);
  ASSERT_TRUE(c.Start().ok());
  EXPECT_EQ(ShardSlots(c.membership()), (std::vector<int>{0, 1}));
  EXPECT_EQ(c.membership().pserver_epoch, 0);
  ExpectFile(c);
  // Grow: the planned layout (what the new shard starts with) has the next epoch; the published
  // membership carries it once the new trainer is ready.
  auto grew = c.Resize(3, "test");
  ASSERT_TRUE(grew.ok()) << grew.status();
  EXPECT_EQ(ShardSlots(c.Planned()), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(c.Planned().pserver_epoch, 1);
  EXPECT_TRUE(c.membership().pservers.size() == 2u);
  ASSERT_TRUE(*c.OnReady(2));
  EXPECT_EQ(c.membership().epoch, 1);
  EXPECT_EQ(c.membership().pserver_epoch, 1);
  EXPECT_EQ(ShardSlots(c.membership()), (std::vector<int>{0, 1, 2}));
  ExpectFile(c);
  // Shrink: the removed slot's shard leaves the layout in the same epoch.
  auto shrank = c.Resize(2, "test");
  ASSERT_TRUE(shrank.ok()) << shrank.status();
  EXPECT_EQ(shrank->removed, (std::vector<int>{2}));
  EXPECT_EQ(c.membership().epoch, 2);
  EXPECT_EQ(c.membership().pserver_epoch, 2);
  EXPECT_EQ(ShardSlots(c.membership()), (std::vector<int>{0, 1}));
  ExpectFile(c);
  // A member failing, even restartable, fails the job: its shard's rows cannot be recovered.
  auto d = c.OnTrainerFailed(1, 137, /*restartable=*/true);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, ExitDecision::kFail);
  EXPECT_EQ(c.membership().epoch, 2);
}

TEST(MembershipTest, RendersAndParsesAndNamesWhatIsWrong) {
  api::Membership m{.epoch = 3, .peers = {{"127.0.0.1", 4001}, {"10.0.0.2", 4002}}, .reason = "r"};
  auto back = api::ParseMembership(api::RenderMembership(m), "x");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, m);
  EXPECT_EQ(back->RankOf({"10.0.0.2", 4002}), 1);
  EXPECT_EQ(back->RankOf({"10.0.0.2", 4003}), -1);
  const std::pair<const char*, const char*> bad[] = {
      {"[]", "not a JSON object"},
      {R"({"peers": ["a:1"]})", "epoch"},
      {R"({"epoch": -1, "peers": ["a:1"]})", "epoch"},
      {R"({"epoch": 1, "peers": []})", "peers"},
      {R"({"epoch": 1, "peers": ["a"]})", "peers[0]"},
      {R"({"epoch": 1, "peers": ["a:1", "a:1"]})", "listed twice"},
  };
  for (const auto& [text, what] : bad) {
    auto p = api::ParseMembership(text, "membership.json");
    ASSERT_FALSE(p.ok()) << text;
    EXPECT_NE(p.status().message().find(what), std::string::npos) << p.status();
    EXPECT_NE(p.status().message().find("membership.json"), std::string::npos) << p.status();
  }
  auto missing = api::ReadMembershipFile("/nonexistent/membership.json");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

}  // namespace
}  // namespace tandem::local
