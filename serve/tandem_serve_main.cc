// tandem-serve: serves the models a training job publishes (spec.publish), following new
// versions as they appear (docs/serving.md).
//
//   tandem-serve --model-dir /checkpoints/published --port 8080 --grpc-port 8081 --workers 2
//   curl -d '{"instances": [{"image": [...]}]}' localhost:8080/v1/predict
//
// /readyz answers 200 once a model is loaded; /metrics has the latency histogram, requests by
// outcome, requests per second, batch sizes and the served version and step. SIGTERM or SIGINT
// stops it (requests in flight are answered first). Exit codes: 0 stopped, 1 could not start,
// 2 bad flags.
#include <signal.h>

#include <iostream>
#include <string>

#include "common/cli.h"
#include "common/logging.h"
#include "common/out_of_memory.h"
#include "serve/server.h"

int main(int argc, char** argv) {
  tandem::InstallOutOfMemoryHandler("tandem-serve");
  CLI::App app{"tandem-serve: serves a training job's published models (HTTP/JSON and gRPC)"};
  app.name("tandem-serve");
  tandem::AddVersionFlag(app, "tandem-serve");
  tandem::serve::ServerOptions o;
  int64_t max_queue_delay_us = 1000;
  int poll_ms = 1000;
  int64_t max_body_bytes = static_cast<int64_t>(o.max_body_bytes);
  int64_t max_examples = static_cast<int64_t>(o.limits.max_examples);
  app.add_option("--model-dir", o.model_dir,
                 "The job's publish directory (<checkpoint dir>/<spec.publish.directory>)")
      ->required();
  app.add_option("--host", o.host, "Address to listen on")->capture_default_str();
  app.add_option("--port", o.port, "HTTP port (0: a free one)")->capture_default_str();
  app.add_option("--grpc-port", o.grpc_port, "gRPC port (0: a free one; -1: none)")
      ->capture_default_str();
  app.add_option("--workers", o.workers, "Inference threads (each with its own copy of the dense weights)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--threads-per-worker", o.threads_per_worker, "Compute threads of each worker")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--max-batch-size", o.max_batch_size, "Dynamic batching: most examples per batch")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--max-queue-delay-us", max_queue_delay_us,
                 "Dynamic batching: longest a request waits for others to join its batch")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}))
      ->capture_default_str();
  app.add_option("--poll-interval-ms", poll_ms, "How often the model directory is checked")
      ->check(CLI::Range(10, 600000))
      ->capture_default_str();
  app.add_option("--max-body-bytes", max_body_bytes, "Largest request body (larger: 413)")
      ->check(CLI::Range(int64_t{1024}, int64_t{1} << 30))
      ->capture_default_str();
  app.add_option("--max-examples", max_examples, "Most instances per request")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;
  tandem::InitLogging("serve");
  o.max_queue_delay = absl::Microseconds(max_queue_delay_us);
  o.poll_interval = absl::Milliseconds(poll_ms);
  o.max_body_bytes = static_cast<size_t>(max_body_bytes);
  o.limits.max_examples = static_cast<size_t>(max_examples);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = tandem::serve::ModelServer::Start(o);
  if (!server.ok()) {
    std::cerr << "tandem-serve: " << server.status().message() << std::endl;
    return 1;
  }
  // One line on stdout that scripts and tests can wait for.
  std::cout << "tandem-serve: listening on port " << (*server)->port();
  if ((*server)->grpc_port() > 0) std::cout << " grpc port " << (*server)->grpc_port();
  std::cout << " model dir " << o.model_dir << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  TANDEM_LOG(info, "signal {}: stopping", sig);
  (*server)->Stop();
  return 0;
}
