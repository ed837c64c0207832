// One rank of Tandem's all-reduce benchmark. Started N times by run.py (or by hand) with
// TANDEM_PEERS / TANDEM_RANK / TANDEM_WORLD_SIZE; rank 0 prints one JSON line per size:
//   {"impl":"tandem","transport":"shm","n":2,"bytes":67108864,"seconds":0.0512,"busbw":1.31e9}
// ("transport": shm when the ranks share memory, tcp otherwise or with TANDEM_COLLECTIVE_SHM=0)
// where seconds is the mean time of one all-reduce over --iters timed calls after --warmup.
#include <sys/socket.h>

#include <cstdio>
#include <thread>
#include <cstdlib>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/cli.h"
#include "common/logging.h"
#include "common/socket.h"
#include "api/worker_contract.h"
#include "trainer/collective/communicator.h"
#include "trainer/collective/exit_codes.h"

namespace tc = tandem::collective;

// The limit our ring runs against: one TCP stream over loopback, one sender thread and one
// receiver thread, 4 MiB writes, `mib` MiB in total. Prints bytes per second.
int MeasureLoopback(double mib) {
  auto listener = tandem::net::Listener::Bind("127.0.0.1", 0);
  if (!listener.ok()) return 1;
  const size_t total = static_cast<size_t>(mib * (1 << 20)), block = 4 << 20;
  double seconds = 0;
  std::thread receiver([&] {
    auto conn = listener->Accept(tandem::net::Clock::now() + std::chrono::seconds(10));
    if (!conn.ok()) return;
    std::vector<char> buf(block);
    size_t got = 0;
    auto t0 = tandem::net::Clock::now();
    while (got < total) {
      ssize_t r = recv(conn->get(), buf.data(), buf.size(), 0);
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
    seconds = std::chrono::duration<double>(tandem::net::Clock::now() - t0).count();
  });
  auto fd = tandem::net::ConnectOnce("127.0.0.1", listener->port(),
                            tandem::net::Clock::now() + std::chrono::seconds(10));
  if (!fd.ok() || !tandem::net::SetNonBlocking(fd->get(), false).ok()) return 1;
  std::vector<char> buf(block, 1);
  size_t sent = 0;
  while (sent < total) {
    ssize_t w = send(fd->get(), buf.data(), std::min(block, total - sent), MSG_NOSIGNAL);
    if (w <= 0) break;
    sent += static_cast<size_t>(w);
  }
  receiver.join();
  std::printf("{\"impl\":\"loopback\",\"bytes\":%zu,\"seconds\":%.6g,\"bytes_per_second\":%.6g}\n",
              total, seconds, seconds > 0 ? total / seconds : 0.0);
  return 0;
}

int main(int argc, char** argv) {
  tandem::InitLogging("allreduce-bench");
  CLI::App app{"Tandem ring all-reduce benchmark (one rank; see bench/allreduce-vs-peers/run.py)"};
  tandem::AddVersionFlag(app, "tandem-allreduce-bench");
  std::string sizes_mib = "1,16,64,256";
  int iters = 5, warmup = 1;
  bool bf16 = false, verify = false;
  double loopback_mib = 0;
  app.add_option("--loopback-mib", loopback_mib,
                 "instead: measure one loopback TCP stream carrying this many MiB");
  app.add_option("--sizes-mib", sizes_mib, "comma list of sizes in MiB (fractions allowed)");
  app.add_option("--iters", iters, "timed all-reduces per size");
  app.add_option("--warmup", warmup, "untimed all-reduces per size");
  app.add_flag("--bf16", bf16, "bf16 on the wire");
  app.add_flag("--verify", verify, "check the sums (integer-valued data)");
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;

  if (loopback_mib > 0) return MeasureLoopback(loopback_mib);
  // The peers as a trainer takes them: its worker contract (no manifest is read here).
  const tandem::Environment env = tandem::ProcessEnvironment();
  auto contract = tandem::api::ParseWorkerContract(tandem::api::WorkerRole::kTrainer,
                                                   "(no manifest)", env);
  if (!contract.ok()) {
    std::fprintf(stderr, "%s\n", contract.status().ToString().c_str());
    return 2;
  }
  auto comm = tc::Communicator::ConnectWorker(*contract, env, /*registry=*/nullptr);
  if (!comm.ok()) {
    std::fprintf(stderr, "%s\n", comm.status().ToString().c_str());
    return tc::ExitCodeFor(comm.status());
  }
  const int n = (*comm)->world_size(), rank = (*comm)->rank();
  for (auto part : absl::StrSplit(sizes_mib, ',')) {
    double mib = 0;
    if (!absl::SimpleAtod(part, &mib) || mib < 0) {
      std::fprintf(stderr, "bad size '%s'\n", std::string(part).c_str());
      return 2;
    }
    const size_t count = static_cast<size_t>(mib * (1 << 20)) / sizeof(float);
    std::vector<float> data(count);
    for (size_t i = 0; i < count; ++i) data[i] = static_cast<float>((i + rank) % 64);
    double best = 1e30, total = 0;
    for (int it = 0; it < warmup + iters; ++it) {
      if (auto s = (*comm)->Barrier(); !s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        return tc::ExitCodeFor(s);
      }
      auto t0 = tandem::net::Clock::now();
      absl::Status s = (*comm)->AllReduce(data.data(), count, tc::ReduceOp::kSum,
                                          bf16 ? tc::Compression::kBf16 : tc::Compression::kNone);
      double sec = std::chrono::duration<double>(tandem::net::Clock::now() - t0).count();
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        return tc::ExitCodeFor(s);
      }
      if (it == 0 && verify && !bf16) {
        for (size_t i = 0; i < count; ++i) {
          double want = 0;
          for (int r = 0; r < n; ++r) want += static_cast<double>((i + r) % 64);
          if (data[i] != static_cast<float>(want)) {
            std::fprintf(stderr, "rank %d: wrong sum at %zu: %g, want %g\n", rank, i, data[i],
                         want);
            return 1;
          }
        }
      }
      if (it >= warmup) {
        total += sec;
        best = std::min(best, sec);
      }
    }
    if (rank == 0 && iters > 0) {
      const double mean = total / iters;
      const double bytes = static_cast<double>(count * sizeof(float));
      std::printf(
          "{\"impl\":\"tandem\",\"transport\":\"%s\",\"n\":%d,\"bytes\":%.0f,\"seconds\":%.6g,"
          "\"best_seconds\":%.6g,\"busbw\":%.6g}\n",
          (*comm)->allreduce_transport(), n, bytes, mean, best,
          mean > 0 ? 2.0 * (n - 1) / n * bytes / mean : 0.0);
      std::fflush(stdout);
    }
  }
  return 0;
}
