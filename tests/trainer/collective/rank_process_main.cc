// One rank as its own process, for collective_process_test: connects to the peers of its worker
// contract (TANDEM_PEERS / TANDEM_RANK / TANDEM_WORLD_SIZE), runs `loops` verified all-reduces of `count` floats, and exits
// like a trainer would: 0, or ExitCodeFor(status) (75 when a peer died) with the error on stderr.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "api/worker_contract.h"
#include "trainer/collective/communicator.h"
#include "trainer/collective/exit_codes.h"

namespace tc = tandem::collective;

int main(int argc, char** argv) {
  const size_t count = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000;
  const long loops = argc > 2 ? std::atol(argv[2]) : 1;
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
    std::fprintf(stderr, "connect: %s\n", comm.status().ToString().c_str());
    return tc::ExitCodeFor(comm.status());
  }
  const int n = (*comm)->world_size(), rank = (*comm)->rank();
  std::printf("rank %d: transport %s segment '%s'\n", rank, (*comm)->allreduce_transport(),
              (*comm)->shared_memory_segment().c_str());
  std::vector<float> buf(count);
  for (long loop = 0; loop < loops; ++loop) {
    for (size_t i = 0; i < count; ++i) buf[i] = static_cast<float>((i + rank) % 50);
    absl::Status s = (*comm)->AllReduce(buf.data(), count);
    if (!s.ok()) {
      std::fprintf(stderr, "all-reduce: %s\n", s.ToString().c_str());
      return tc::ExitCodeFor(s);
    }
    for (size_t i = 0; i < count; ++i) {
      float want = 0;
      for (int r = 0; r < n; ++r) want += static_cast<float>((i + r) % 50);
      if (buf[i] != want) {
        std::fprintf(stderr, "rank %d: element %zu is %g, want %g\n", rank, i, buf[i], want);
        return 1;
      }
    }
    if (loop == 0) {
      std::printf("rank %d: first all-reduce done\n", rank);
      std::fflush(stdout);
    }
  }
  return 0;
}
