// The Open MPI peer of bench/allreduce-vs-peers: MPI_Allreduce (in place, MPI_FLOAT, MPI_SUM)
// timed exactly like tandem_allreduce_bench.cc (barrier, one call, per iteration). Rank 0 prints
// one JSON line per size. Usage: mpirun -np N mpi-allreduce-bench [sizes_mib] [iters] [warmup]
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, n = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  std::string sizes = argc > 1 ? argv[1] : "1,16,64,256";
  const int iters = argc > 2 ? std::atoi(argv[2]) : 5;
  const int warmup = argc > 3 ? std::atoi(argv[3]) : 1;
  std::stringstream ss(sizes);
  std::string part;
  while (std::getline(ss, part, ',')) {
    const size_t count = static_cast<size_t>(std::atof(part.c_str()) * (1 << 20)) / sizeof(float);
    std::vector<float> data(count);
    for (size_t i = 0; i < count; ++i) data[i] = static_cast<float>((i + rank) % 64);
    double total = 0, best = 1e30;
    for (int it = 0; it < warmup + iters; ++it) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, data.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM,
                    MPI_COMM_WORLD);
      double sec = MPI_Wtime() - t0;
      if (it >= warmup) {
        total += sec;
        if (sec < best) best = sec;
      }
    }
    if (rank == 0 && iters > 0) {
      const double mean = total / iters, bytes = static_cast<double>(count * sizeof(float));
      std::printf(
          "{\"impl\":\"mpi\",\"n\":%d,\"bytes\":%.0f,\"seconds\":%.6g,\"best_seconds\":%.6g,"
          "\"busbw\":%.6g}\n",
          n, bytes, mean, best, mean > 0 ? 2.0 * (n - 1) / n * bytes / mean : 0.0);
      std::fflush(stdout);
    }
  }
  MPI_Finalize();
  return 0;
}
