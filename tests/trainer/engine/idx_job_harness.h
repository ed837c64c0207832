// What the data-parallel and elastic engine tests share: a scratch folder, a small deterministic
// 4-class IDX problem and the job that trains on it (fc -> [batch_norm ->] relu -> fc), fast
// communicator timeouts, a quiet trainer, and helpers to compare weights and watch log lines.
// Header-only, like tests/trainer/collective/ring_harness.h.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <streambuf>
#include <string>
#include <system_error>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "trainer/collective/communicator.h"
#include "trainer/engine/trainer.h"
#include "trainer/model/trainer_spec.h"

namespace tandem::trainer::testing {

namespace fs = std::filesystem;

// A scratch folder removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "tandem-dp-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline void PutBigEndian32(std::string* s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s->push_back(static_cast<char>((v >> shift) & 0xff));
}

// A deterministic 4-class problem as IDX files: 8x8 images, each class brightens one quadrant,
// plus pseudo-random noise (a fixed LCG, so every run sees the same bytes).
inline void WriteIdx(const std::string& dir, const std::string& name, int n, uint32_t seed,
              int classes = 4) {
  std::string images, labels;
  PutBigEndian32(&images, 0x00000803);
  PutBigEndian32(&images, n);
  PutBigEndian32(&images, 8);
  PutBigEndian32(&images, 8);
  PutBigEndian32(&labels, 0x00000801);
  PutBigEndian32(&labels, n);
  uint32_t x = seed;
  for (int i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    const int label = static_cast<int>((x >> 16) % classes);
    labels.push_back(static_cast<char>(label));
    for (int p = 0; p < 64; ++p) {
      x = x * 1664525u + 1013904223u;
      const int row = p / 8, col = p % 8;
      const int quadrant = (row / 4) * 2 + col / 4;
      int v = static_cast<int>((x >> 24) % 160);
      if (quadrant == label) v += 90;
      images.push_back(static_cast<char>(v));
    }
  }
  std::ofstream(dir + "/" + name + "-images-idx3-ubyte", std::ios::binary) << images;
  std::ofstream(dir + "/" + name + "-labels-idx1-ubyte", std::ios::binary) << labels;
}

struct Job {
  int batch_size = 16;
  int passes = 2;
  std::string compression = "none";
  double bucket_mib = 0.001;  // tiny buckets: several per step, overlapping backward
  bool batch_norm = false;    // fc1 -> batch_norm -> relu
  bool binary = false;        // one logit, binary cross-entropy (a CTR-like cost: AUC)
};

inline nlohmann::json Layers(const Job& job) {
  nlohmann::json layers = nlohmann::json::array();
  layers.push_back({{"name", "fc1"}, {"type", "fc"}, {"input", "image"}, {"size", 16}});
  std::string last = "fc1";
  if (job.batch_norm) {
    layers.push_back({{"name", "bn1"}, {"type", "batch_norm"}, {"input", last}});
    last = "bn1";
  }
  layers.push_back({{"name", "relu1"}, {"type", "relu"}, {"input", last}});
  layers.push_back({{"name", "fc2"}, {"type", "fc"}, {"input", "relu1"}, {"size", job.binary ? 1 : 4}});
  layers.push_back({{"name", "cost"},
                    {"type", job.binary ? "binary_cross_entropy" : "softmax_cross_entropy"},
                    {"inputs", {"fc2", "label"}}});
  return layers;
}

inline TrainerSpec MakeSpec(const std::string& dir, const Job& job) {
  nlohmann::json spec = {
      {"passes", job.passes},
      {"trainer", {{"threads", 1}}},
      {"data",
       {{"train",
         {{"format", "idx"},
          {"images", dir + "/train-images-idx3-ubyte"},
          {"labels", dir + "/train-labels-idx1-ubyte"}}},
        {"test",
         {{"format", "idx"},
          {"images", dir + "/test-images-idx3-ubyte"},
          {"labels", dir + "/test-labels-idx1-ubyte"}}},
        {"batchSize", job.batch_size},
        {"shuffle", true},
        {"seed", 7}}},
      {"model",
       {{"inputs",
         {{{"name", "image"}, {"source", "features"}, {"shape", {1, 8, 8}}},
          {{"name", "label"}, {"source", "labels"}}}},
        {"layers", Layers(job)}}},
      {"optimizer", {{"type", "momentum"}, {"learningRate", 0.1}, {"momentum", 0.9}}}};
  auto parsed = ParseTrainerSpec(spec, {.check_files = true});
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *parsed : TrainerSpec{};
}

inline collective::CommunicatorOptions FastOptions() {
  collective::CommunicatorOptions o;
  o.transport.rendezvous_timeout = std::chrono::seconds(20);
  o.transport.peer_timeout = std::chrono::seconds(5);
  o.transport.socket_buffer_bytes = 256 << 10;
  o.ring.op_timeout = std::chrono::seconds(30);
  o.registry = nullptr;
  return o;
}

inline TrainOptions Quiet() {
  TrainOptions o;
  o.threads = 1;
  o.seed = 3;
  return o;
}

inline double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    d = std::max(d, std::fabs(static_cast<double>(a[i]) - b[i]));
  return d;
}

// Calls `on_line(n)` after the n-th line written through it.
class LineHook : public std::streambuf {
 public:
  explicit LineHook(std::function<void(int)> on_line) : on_line_(std::move(on_line)) {}

 protected:
  int overflow(int c) override {
    if (c == '\n') on_line_(++lines_);
    return c;
  }

 private:
  std::function<void(int)> on_line_;
  int lines_ = 0;
};

}  // namespace tandem::trainer::testing
