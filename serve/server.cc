#include "serve/server.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/model_snapshot.h"
#include "common/status.h"
#include "serve/grpc_service.h"

namespace tandem::serve {
namespace {

int HttpCode(const absl::Status& st) {
  switch (st.code()) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

// Requests per second over the last full seconds, for the QPS gauge.
class RateMeter {
 public:
  void Add(uint64_t n) {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    absl::MutexLock lock(&mu_);
    Advance(now);
    counts_[now % kSlots] += n;
  }
  double PerSecond() {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    absl::MutexLock lock(&mu_);
    Advance(now);
    uint64_t sum = 0;
    for (int64_t s = now - kWindow; s < now; ++s) sum += counts_[((s % kSlots) + kSlots) % kSlots];
    return static_cast<double>(sum) / kWindow;
  }

 private:
  static constexpr int64_t kSlots = 16, kWindow = 10;
  void Advance(int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (last_ == 0) last_ = now;
    for (int64_t s = last_ + 1; s <= now && s <= last_ + kSlots; ++s) counts_[s % kSlots] = 0;
    last_ = std::max(last_, now);
  }
  absl::Mutex mu_;
  uint64_t counts_[kSlots] ABSL_GUARDED_BY(mu_) = {};
  int64_t last_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

struct ModelServer::Metrics {
  metrics::Family<metrics::Histogram>* latency;
  metrics::Family<metrics::Counter>* requests;
  metrics::Counter* examples;
  metrics::Gauge* version;
  metrics::Gauge* step;
  metrics::Gauge* published;
  metrics::Counter* loads;
  metrics::Counter* load_failures;
  RateMeter rate;
  // Process-wide (the registry is): every server in a process shares them.
  static Metrics& Get() {
    static Metrics* m = new Metrics();
    return *m;
  }

 private:
  Metrics() {
    auto& r = metrics::Registry::Default();
    latency = &r.AddHistogram("tandem_serve_request_seconds",
                              "Predict latency, from the request read to the answer written.",
                              {"protocol"}, metrics::ExponentialBuckets(5e-5, 1.5, 30));
    requests = &r.AddCounter("tandem_serve_requests_total",
                             "Predict requests by protocol and outcome (an HTTP status; errors are "
                             "the codes >= 400).",
                             {"protocol", "code"});
    examples = r.AddCounter("tandem_serve_examples_total", "Examples predicted.").Get();
    version = r.AddGauge("tandem_serve_model_version", "Version of the model being served (0: none).").Get();
    step = r.AddGauge("tandem_serve_model_step", "Training step of the model being served.").Get();
    published = r.AddGauge("tandem_serve_model_published_timestamp_seconds",
                           "Unix time the served model was published.")
                    .Get();
    loads = r.AddCounter("tandem_serve_model_loads_total", "Model versions loaded.").Get();
    load_failures = r.AddCounter("tandem_serve_model_load_failures_total",
                                 "Model versions that failed to load (skipped; the previous one "
                                 "keeps serving).")
                        .Get();
    r.AddCallback("tandem_serve_requests_per_second",
                  "Predict requests per second over the last 10 seconds.", metrics::MetricType::kGauge,
                  [this] { return rate.PerSecond(); });
  }
};

ModelServer::ModelServer(const ServerOptions& options)
    : options_(options),
      http_(HttpServerOptions{.max_connections = options.max_connections,
                              .max_body_bytes = options.max_body_bytes}),
      m_(&Metrics::Get()) {}

ModelServer::~ModelServer() { Stop(); }

absl::StatusOr<std::unique_ptr<ModelServer>> ModelServer::Start(const ServerOptions& options) {
  if (options.model_dir.empty()) return absl::InvalidArgumentError("--model-dir: required");
  if (options.workers < 1) return absl::InvalidArgumentError("--workers: must be >= 1");
  if (options.max_batch_size < 1) return absl::InvalidArgumentError("--max-batch-size: must be >= 1");
  auto s = std::unique_ptr<ModelServer>(new ModelServer(options));
  ModelServer* raw = s.get();
  s->health_.SetReady(false, absl::StrCat("no model loaded yet from ", options.model_dir));
  s->batcher_ = std::make_unique<Batcher>(BatcherOptions{
      .workers = options.workers,
      .threads_per_worker = options.threads_per_worker,
      .max_batch_size = options.max_batch_size,
      .max_queue_delay = options.max_queue_delay,
      .max_queued_examples = options.max_queued_examples});
  AddMetricsRoutes(s->http_, metrics::Registry::Default(), &s->health_);
  s->http_.Handle("POST", "/v1/predict", [raw](const HttpRequest& req, HttpResponseWriter& w) {
    raw->HandlePredict(req, w);
  });
  s->http_.Handle("GET", "/v1/model", [raw](const HttpRequest&, HttpResponseWriter& w) {
    std::shared_ptr<const ServedModel> m = raw->current();
    if (!m) {
      w.Respond(503, "application/json", RenderError(503, "no model loaded yet"));
      return;
    }
    nlohmann::json j = m->manifest();
    j.erase("files");
    nlohmann::json inputs = nlohmann::json::array();
    for (const InputSpec& in : m->signature().inputs)
      inputs.push_back({{"name", in.name}, {"source", trainer::InputSourceName(in.source)}, {"size", in.size}});
    j["signature"] = {{"inputs", inputs}, {"outputSize", m->signature().output_size},
                      {"output", m->signature().output}};
    w.Respond(200, "application/json", j.dump(1));
  });
  // A first model before listening when one is there (readiness follows it either way).
  if (auto loaded = s->Reload(); !loaded.ok())
    TANDEM_LOG(warn, "loading a model from {}: {}", options.model_dir, loaded.status().ToString());
  TANDEM_RETURN_IF_ERROR(s->http_.Start(options.host, options.port), "HTTP port ", options.port);
  if (options.grpc_port >= 0) {
    TANDEM_ASSIGN_OR_RETURN(s->grpc_, StartGrpc(raw, options.host, options.grpc_port, &s->grpc_port_));
  }
  s->watcher_ = std::thread([raw] { raw->WatchLoop(); });
  return s;
}

void ModelServer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (watcher_.joinable()) watcher_.join();
  if (grpc_) grpc_->Shutdown();
  http_.Stop();
  if (batcher_) batcher_->Stop();
}

std::shared_ptr<const ServedModel> ModelServer::current() const {
  absl::MutexLock lock(&mu_);
  return model_;
}

absl::StatusOr<bool> ModelServer::Reload() {
  absl::MutexLock reload(&reload_mu_);
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> versions, snapshot::ListVersions(options_.model_dir));
  int64_t current_version = 0;
  {
    absl::MutexLock lock(&mu_);
    if (model_) current_version = model_->version();
  }
  absl::Status last = absl::OkStatus();
  for (auto it = versions.rbegin(); it != versions.rend() && *it > current_version; ++it) {
    {
      absl::MutexLock lock(&mu_);
      if (failed_versions_.count(*it)) continue;
    }
    const std::string dir = snapshot::VersionPath(options_.model_dir, *it);
    const auto start = std::chrono::steady_clock::now();
    auto loaded = ServedModel::Load(dir, {.workers = options_.workers,
                                          .threads_per_worker = options_.threads_per_worker});
    if (!loaded.ok()) {
      // A version pruned while loading is not a failure of that version.
      if (!std::filesystem::exists(dir)) continue;
      m_->load_failures->Inc();
      TANDEM_LOG(error, "not serving {}: {}", dir, loaded.status().ToString());
      absl::MutexLock lock(&mu_);
      failed_versions_.insert(*it);
      last = loaded.status();
      continue;
    }
    std::shared_ptr<const ServedModel> m = *std::move(loaded);
    {
      absl::MutexLock lock(&mu_);
      model_ = m;  // in-flight requests keep the old version alive until they are answered
    }
    m_->loads->Inc();
    m_->version->Set(static_cast<double>(m->version()));
    m_->step->Set(static_cast<double>(m->step()));
    m_->published->Set(m->published_unix_time());
    health_.SetReady(true);
    TANDEM_LOG(info, "serving model version {} (step {}) from {}, loaded in {:.3f} s", m->version(),
               m->step(), dir,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return true;
  }
  if (!last.ok()) return last;
  return false;
}

void ModelServer::WatchLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping), options_.poll_interval)) return;
    }
    auto loaded = Reload();
    if (!loaded.ok()) TANDEM_LOG(debug, "reload: {}", loaded.status().ToString());
  }
}

BatchResult ModelServer::Predict(std::shared_ptr<const ServedModel> model, std::vector<Example> examples) {
  return batcher_->Predict(std::move(model), std::move(examples));
}

void ModelServer::Record(const char* protocol, int code, double seconds, size_t examples) {
  m_->latency->WithLabels({protocol})->Observe(seconds);
  m_->requests->WithLabels({protocol, absl::StrCat(code)})->Inc();
  if (code == 200) {
    m_->examples->Inc(static_cast<double>(examples));
    m_->rate.Add(1);
  }
}

void ModelServer::HandlePredict(const HttpRequest& req, HttpResponseWriter& w) {
  const auto start = std::chrono::steady_clock::now();
  auto done = [&](int code, const std::string& body, size_t examples) {
    w.Respond(code, "application/json", body);
    Record("http", code, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
           examples);
  };
  std::shared_ptr<const ServedModel> model = current();
  if (!model) {
    done(503, RenderError(503, absl::StrCat("no model loaded yet from ", options_.model_dir)), 0);
    return;
  }
  auto parsed = ParsePredictRequest(req.body, model->signature(), options_.limits);
  if (!parsed.ok()) {
    done(400, RenderError(400, parsed.status().message()), 0);
    return;
  }
  const size_t n = parsed->size();
  BatchResult r = Predict(std::move(model), *std::move(parsed));
  if (!r.status.ok()) {
    const int code = HttpCode(r.status);
    done(code, RenderError(code, r.status.message()), 0);
    return;
  }
  done(200,
       RenderPredictResponse(r.model->version(), r.model->step(), r.outputs,
                             r.model->signature().output_size),
       n);
}

}  // namespace tandem::serve
