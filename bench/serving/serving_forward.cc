// tandem-bench-serving-forward: where one request's time goes inside tandem-serve, without HTTP
// or threads: the published model loaded as tandem-serve loads it (serve/model.h), then per
// request body of a requests file (bench/serving: requests-b<k>.jsonl) the three in-process
// steps timed separately, each the median and p99 over --iterations requests:
//   parse    ParsePredictRequest (JSON -> validated examples)
//   forward  ServedModel::Worker::Run (inputs copied in, the network's forward, softmax)
//   render   RenderPredictResponse (outputs -> JSON)
// Prints one JSON line. bench/serving/run.py --forward runs it beside ONNX Runtime's
// InferenceSession.run on the same inputs (ort_forward.py) and prints the ratio.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "nlohmann/json.hpp"
#include "serve/model.h"
#include "serve/request.h"

namespace {

using Clock = std::chrono::steady_clock;

double Us(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

nlohmann::json Summary(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto q = [&](double f) { return us[std::min(us.size() - 1, static_cast<size_t>(f * us.size()))]; };
  return {{"p50_us", q(0.5)}, {"p99_us", q(0.99)}, {"min_us", us.front()}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tandem-bench-serving-forward: parse / forward / render times of one request, in process"};
  std::string version_dir, requests;
  int iterations = 2000, warmup = 200, threads = 1;
  app.add_option("version_dir", version_dir, "A published version (…/published/v000000000001)")->required();
  app.add_option("--requests", requests, "Request bodies, one per line")->required();
  app.add_option("--iterations", iterations, "Timed requests");
  app.add_option("--warmup", warmup, "Untimed requests first");
  app.add_option("--threads", threads, "Compute threads of the worker (tandem-serve --threads-per-worker)");
  CLI11_PARSE(app, argc, argv);
  auto model = tandem::serve::ServedModel::Load(version_dir, {.workers = 1, .threads_per_worker = threads});
  if (!model.ok()) {
    std::cerr << model.status().message() << std::endl;
    return 1;
  }
  std::vector<std::string> bodies;
  std::ifstream f(requests);
  for (std::string line; std::getline(f, line);)
    if (!line.empty()) bodies.push_back(line);
  if (bodies.empty()) {
    std::cerr << requests << ": no request bodies" << std::endl;
    return 1;
  }
  const tandem::serve::ServedModel& m = **model;
  std::vector<double> parse_us, forward_us, render_us;
  std::vector<float> out;
  std::vector<const tandem::serve::Example*> ptrs;
  size_t bytes = 0;
  for (int i = 0; i < warmup + iterations; ++i) {
    const std::string& body = bodies[static_cast<size_t>(i) % bodies.size()];
    const auto t0 = Clock::now();
    auto ex = tandem::serve::ParsePredictRequest(body, m.signature(), {});
    const auto t1 = Clock::now();
    if (!ex.ok()) {
      std::cerr << "request " << i << ": " << ex.status().message() << std::endl;
      return 1;
    }
    ptrs.clear();
    for (const auto& e : *ex) ptrs.push_back(&e);
    if (auto st = m.worker(0).Run(ptrs, &out); !st.ok()) {
      std::cerr << st.message() << std::endl;
      return 1;
    }
    const auto t2 = Clock::now();
    std::string resp = tandem::serve::RenderPredictResponse(m.version(), m.step(), out, m.signature().output_size);
    const auto t3 = Clock::now();
    bytes += resp.size();
    if (i < warmup) continue;
    parse_us.push_back(Us(t0, t1));
    forward_us.push_back(Us(t1, t2));
    render_us.push_back(Us(t2, t3));
  }
  std::cout << nlohmann::json({{"parse", Summary(parse_us)},
                               {"forward", Summary(forward_us)},
                               {"render", Summary(render_us)},
                               {"iterations", iterations},
                               {"response_bytes", bytes}})
                   .dump()
            << std::endl;
  return 0;
}
