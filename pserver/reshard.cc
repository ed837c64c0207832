#include "pserver/reshard.h"

#include <map>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "grpcpp/grpcpp.h"
#include "proto/pserver.grpc.pb.h"
#include "pserver/tls_credentials.h"

namespace tandem::pserver {
namespace {

absl::Status FromGrpc(const grpc::Status& s, const ReshardMember& m, const char* what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, " on pserver shard ", m.id, " (", m.endpoint,
                                   "): ", s.error_message()));
}

class Coordinator {
 public:
  explicit Coordinator(const ReshardAuth& auth) : auth_(auth) {}

  ParameterServer::Stub* Stub(const ReshardMember& m) {
    auto& stub = stubs_[m.endpoint];
    if (!stub) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(64 << 20);
      stub = ParameterServer::NewStub(grpc::CreateCustomChannel(
          m.endpoint,
          auth_.tls.enabled() ? MutualTlsChannelCredentials(auth_.tls, absl::Seconds(60))
                              : grpc::InsecureChannelCredentials(),
          args));
    }
    return stub.get();
  }

  std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!auth_.token.empty())
      ctx->AddMetadata("authorization", absl::StrCat("Bearer ", auth_.token));
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    return ctx;
  }

 private:
  const ReshardAuth auth_;
  std::map<std::string, std::unique_ptr<ParameterServer::Stub>> stubs_;
};

}  // namespace

absl::StatusOr<ReshardReport> RunReshard(const ReshardPlan& plan, const ReshardAuth& auth) {
  if (plan.to.empty()) return absl::InvalidArgumentError("reshard: the new layout has no shards");
  Coordinator c(auth);
  // Every shard of either layout, once.
  std::vector<ReshardMember> all = plan.from;
  for (const ReshardMember& m : plan.to) {
    bool known = false;
    for (const ReshardMember& f : plan.from) known |= f.id == m.id;
    if (!known) all.push_back(m);
  }
  ReshardBeginRequest begin;
  begin.set_epoch(plan.epoch);
  begin.set_num_trainers(plan.num_trainers);
  for (const ReshardMember& m : plan.to) {
    ShardEndpoint* e = begin.add_members();
    e->set_id(m.id);
    e->set_endpoint(m.endpoint);
  }
  for (const ReshardMember& m : plan.from) begin.add_previous(m.id);
  auto abort_all = [&](absl::Status cause) {
    ReshardAbortRequest req;
    req.set_epoch(plan.epoch);
    for (const ReshardMember& m : all) {
      ReshardAbortResponse resp;
      (void)c.Stub(m)->ReshardAbort(c.Context(absl::Seconds(30)).get(), req, &resp);
    }
    return cause;
  };

  ReshardReport report;
  const absl::Time start = absl::Now();
  for (const ReshardMember& m : all) {
    ReshardBeginResponse resp;
    grpc::Status s = c.Stub(m)->ReshardBegin(c.Context(absl::Seconds(60)).get(), begin, &resp);
    if (!s.ok()) return abort_all(FromGrpc(s, m, "reshard: begin"));
  }
  const absl::Time begun = absl::Now();
  report.begin = begun - start;

  // The old shards send in parallel (each sends to its receivers in parallel).
  std::vector<absl::Status> results(plan.from.size());
  std::vector<ReshardSendResponse> sent(plan.from.size());
  {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < plan.from.size(); ++i) {
      ParameterServer::Stub* stub = c.Stub(plan.from[i]);
      threads.emplace_back([&, i, stub] {
        ReshardSendRequest req;
        req.set_epoch(plan.epoch);
        auto ctx = c.Context(absl::Minutes(10));
        results[i] = FromGrpc(stub->ReshardSend(ctx.get(), req, &sent[i]), plan.from[i],
                              "reshard: send");
      });
    }
    for (auto& t : threads) t.join();
  }
  for (const absl::Status& s : results)
    if (!s.ok()) return abort_all(s);
  for (const ReshardSendResponse& r : sent) {
    report.rows_moved += r.rows_sent();
    report.blocks_moved += r.blocks_sent();
    report.bytes_moved += r.bytes_sent();
    report.rows_kept += r.rows_kept();
    report.blocks_kept += r.blocks_kept();
  }
  const absl::Time sent_at = absl::Now();
  report.send = sent_at - begun;

  // Commit, all shards in parallel. Every sender's Send returned, so every receiver holds all
  // its chunks: a commit can then fail only on malformed data or a lost shard, and a shard that
  // committed serves the new layout, so there is no abort after this point (the error is
  // returned, naming the shard).
  ReshardCommitRequest commit;
  commit.set_epoch(plan.epoch);
  std::vector<ReshardCommitResponse> committed(all.size());
  results.assign(all.size(), absl::OkStatus());
  {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < all.size(); ++i) {
      ParameterServer::Stub* stub = c.Stub(all[i]);
      threads.emplace_back([&, i, stub] {
        auto ctx = c.Context(absl::Seconds(120));
        results[i] = FromGrpc(stub->ReshardCommit(ctx.get(), commit, &committed[i]), all[i],
                              "reshard: commit");
      });
    }
    for (auto& t : threads) t.join();
  }
  for (const absl::Status& s : results) TANDEM_RETURN_IF_ERROR(s);
  for (size_t i = 0; i < all.size(); ++i)
    if (committed[i].left()) report.left.push_back(all[i].id);
  report.commit = absl::Now() - sent_at;
  report.total = absl::Now() - start;
  return report;
}

}  // namespace tandem::pserver
