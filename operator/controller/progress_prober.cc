#include "operator/controller/progress_prober.h"

#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "operator/controller/http_get.h"
#include "operator/controller/operator_metrics.h"
#include "operator/controller/prometheus_text.h"

namespace tandem::controller {

namespace {

const char* ResultOf(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk: return "ok";
    case absl::StatusCode::kDeadlineExceeded: return "timeout";
    case absl::StatusCode::kUnavailable: return "unreachable";
    case absl::StatusCode::kFailedPrecondition: return "http_error";
    default: return "invalid";
  }
}

}  // namespace

absl::StatusOr<TrainerMetrics> TrainerMetricsFromText(absl::string_view text, const std::string& job) {
  auto samples = ParsePrometheusText(text);
  if (!samples.ok()) return samples.status();
  // The job's own samples; else unlabelled ones (a trainer started without a job name).
  auto find = [&](const char* name) -> const PromSample* {
    if (const PromSample* s = FindSample(*samples, name, {{"job", job}})) return s;
    for (const auto& s : *samples) {
      if (s.name == name && s.Label("job") == nullptr) return &s;
    }
    return nullptr;
  };
  const PromSample* steps = find("tandem_trainer_steps_total");
  const PromSample* pass = find("tandem_trainer_pass");
  if (steps == nullptr || pass == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("no tandem_trainer_steps_total and tandem_trainer_pass for job ",
                                                   job, " in the metrics"));
  }
  auto count = [](const PromSample* s, int64_t* out) {
    // Integral counters; beyond 2^53 a double is no longer exact and the value is garbage.
    if (!std::isfinite(s->value) || s->value < 0 || s->value > 9007199254740992.0) {
      return absl::InvalidArgumentError(absl::StrCat(s->name, " is ", s->value, ", not a count"));
    }
    *out = static_cast<int64_t>(s->value);
    return absl::OkStatus();
  };
  TrainerMetrics m;
  if (absl::Status s = count(steps, &m.steps); !s.ok()) return s;
  if (absl::Status s = count(pass, &m.pass); !s.ok()) return s;
  // Gauges a diverged or just-started trainer may report as NaN: unknown, shown as 0.
  auto gauge = [&](const char* name) {
    const PromSample* s = find(name);
    return s != nullptr && std::isfinite(s->value) ? s->value : 0.0;
  };
  m.loss = gauge("tandem_trainer_loss");
  m.accuracy = gauge("tandem_trainer_accuracy");
  m.test_accuracy = gauge("tandem_trainer_test_accuracy");
  m.test_loss = gauge("tandem_trainer_test_loss");
  if (const PromSample* auc = find("tandem_trainer_test_auc"); auc != nullptr && std::isfinite(auc->value))
    m.test_auc = auc->value;
  // Older trainers have no test_pass gauge: their test figures are then not attributed to a pass.
  if (const PromSample* tp = find("tandem_trainer_test_pass"); tp != nullptr)
    if (absl::Status s = count(tp, &m.test_pass); !s.ok()) return s;
  m.examples_per_sec = gauge("tandem_trainer_examples_per_second");
  return m;
}

ProgressProber::ProgressProber(ProgressProberOptions options) : options_(std::move(options)) {}

ProgressProber::~ProgressProber() { Stop(); }

double ProgressProber::WallNow() const {
  if (options_.now) return options_.now();
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void ProgressProber::Start() {
  absl::MutexLock lock(&mu_);
  if (!threads_.empty()) return;
  stop_ = false;
  for (int i = 0; i < std::max(1, options_.threads); ++i) threads_.emplace_back([this] { Loop(); });
}

void ProgressProber::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

std::optional<ProgressSample> ProgressProber::Observe(const std::string& key, const TrainerEndpoint& endpoint) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = entries_.try_emplace(key);
  Entry& e = it->second;
  if (inserted || !(e.endpoint == endpoint)) {
    // A new pod (restart, new IP) is scraped at once; its predecessor's numbers stay until then.
    e.endpoint = endpoint;
    e.next_due = Clock::now();
    e.generation = next_generation_++;
    cv_.Signal();
  }
  return e.last;
}

void ProgressProber::Forget(const std::string& key) {
  absl::MutexLock lock(&mu_);
  entries_.erase(key);
}

void ProgressProber::Loop() {
  auto& scrapes = OperatorMetrics::Get().progress_scrapes;
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    // The due entry with the earliest deadline that no other thread is scraping.
    auto due = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.flight != 0) continue;
      if (due == entries_.end() || it->second.next_due < due->second.next_due) due = it;
    }
    if (due == entries_.end()) {
      cv_.Wait(&mu_);
      continue;
    }
    if (due->second.next_due > Clock::now()) {
      cv_.WaitWithTimeout(&mu_, absl::FromChrono(due->second.next_due - Clock::now()));
      continue;
    }
    const std::string key = due->first;
    const TrainerEndpoint endpoint = due->second.endpoint;
    const uint64_t generation = due->second.generation;
    const uint64_t flight = next_flight_++;
    due->second.flight = flight;
    mu_.Unlock();

    absl::StatusOr<TrainerMetrics> metrics = [&]() -> absl::StatusOr<TrainerMetrics> {
      auto body = HttpGet({.host = endpoint.host,
                           .port = endpoint.port,
                           .path = options_.path,
                           .timeout_s = options_.timeout_s,
                           .max_body_bytes = options_.max_body_bytes});
      if (!body.ok()) return body.status();
      return TrainerMetricsFromText(*body, endpoint.job);
    }();
    scrapes.WithLabels({ResultOf(metrics.status())})->Inc();
    const double wall = WallNow();

    bool changed = false;
    mu_.Lock();
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.generation == generation) {
      Entry& e = it->second;
      e.flight = 0;
      e.next_due = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(options_.interval_s));
      if (metrics.ok()) {
        if (!e.last || !(e.last->metrics == *metrics)) {
          e.last = ProgressSample{*metrics, wall};
          changed = true;
        }
      } else {
        TANDEM_LOG(debug, "progress of {}: {}", key, metrics.status().ToString());
      }
    } else if (it != entries_.end() && it->second.flight == flight) {
      it->second.flight = 0;  // the endpoint changed meanwhile: this result is stale
    }
    if (changed && options_.on_update) {
      mu_.Unlock();
      options_.on_update(key);
      mu_.Lock();
    }
    cv_.SignalAll();
  }
}

}  // namespace tandem::controller
