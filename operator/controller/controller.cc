#include "operator/controller/controller.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "operator/controller/cache_transform.h"
#include "operator/controller/operator_metrics.h"

namespace tandem::controller {

Controller::Controller(kube::KubeApi* api, ControllerOptions options)
    : api_(api), options_(std::move(options)),
      requests_(options_.api_concurrency > 0 ? std::make_unique<kube::RequestPool>(options_.api_concurrency) : nullptr),
      events_(api, options_.component, options_.host, requests_.get()),
      queue_("trainingjobs") {
  ReconcilerOptions reconciler_options = options_.reconciler;
  reconciler_options.requests = requests_.get();
  if (options_.progress.interval_s > 0) {
    ProgressProberOptions p = options_.progress;
    p.on_update = [this](const std::string& key) { queue_.Add(key); };
    prober_ = std::make_unique<ProgressProber>(std::move(p));
    reconciler_options.progress = prober_.get();
  }
  reconciler_ = std::make_unique<TrainingJobReconciler>(api_, &cache_, &events_, reconciler_options);
  auto informer = [&](const kube::Resource& r, const std::string& label_selector) {
    return AddInformer(api_, r, options_.informer, label_selector, &informers_, &cache_);
  };
  // The scheduling pass goes ahead of the job keys: it admits the jobs they wait on, and in FIFO
  // order it waited behind every reconcile queued before it (a backlog of thousands of jobs
  // creating their workers stalled admission at 583 of 10,000 jobs).
  queue_.SetUrgent(kScheduleKey);
  auto schedule = [this] { queue_.Add(kScheduleKey); };
  auto enqueue_owner = [this](const kube::Object& o) {
    std::string owner = TrainingJobReconciler::OwnerKey(*o);
    if (!owner.empty()) queue_.Add(owner);
    return !owner.empty();
  };

  kube::Informer* jobs = informer(kube::kTrainingJobs, "");
  jobs->AddHandler({.on_add = [this](const kube::Object& o) { queue_.Add(kube::ObjectKey::Of(*o).String()); },
                    .on_update = [this](const kube::Object& old_obj, const kube::Object& o) {
                      if (JobUpdateNeedsReconcile(*old_obj, *o)) queue_.Add(kube::ObjectKey::Of(*o).String());
                    },
                    .on_delete = [this, schedule](const kube::Object& o) {
                      queue_.Add(kube::ObjectKey::Of(*o).String());
                      schedule();
                    }});
  kube::Informer* pods = informer(kube::kPods, "");
  pods->AddHandler({.on_add = [=](const kube::Object& o) {
                      if (!enqueue_owner(o)) schedule();
                    },
                    .on_update = [=](const kube::Object& old_obj, const kube::Object& o) {
                      if (!enqueue_owner(o) && kube::FieldAt(*old_obj, "status.phase") !=
                                                   kube::FieldAt(*o, "status.phase")) {
                        schedule();
                      }
                    },
                    .on_delete = [=](const kube::Object& o) {
                      enqueue_owner(o);
                      schedule();  // capacity freed
                    }});
  for (const kube::Resource* r : {&kube::kServices, &kube::kConfigMaps, &kube::kNetworkPolicies, &kube::kDeployments}) {
    informer(*r, "tandem.dev/job")->AddHandler({.on_add = nullptr, .on_update = nullptr,
                                                .on_delete = [=](const kube::Object& o) { enqueue_owner(o); }});
  }
  // Claims also on update: binding (status.phase) matters to the job's status.
  informer(kube::kPersistentVolumeClaims, "tandem.dev/job")
      ->AddHandler({.on_add = nullptr,
                    .on_update = [=](const kube::Object& old_obj, const kube::Object& o) {
                      if (kube::FieldAt(*old_obj, "status.phase") != kube::FieldAt(*o, "status.phase")) enqueue_owner(o);
                    },
                    .on_delete = [=](const kube::Object& o) { enqueue_owner(o); }});
  for (const kube::Resource* r : {&kube::kNodes, &kube::kQueues}) {
    informer(*r, "")->AddHandler({.on_add = [=](const kube::Object&) { schedule(); },
                                  .on_update = [=](const kube::Object&, const kube::Object&) { schedule(); },
                                  .on_delete = [=](const kube::Object&) { schedule(); }});
  }
}

Controller::~Controller() { Stop(); }

bool Controller::JobUpdateNeedsReconcile(const nlohmann::json& old_job, const nlohmann::json& new_job) {
  auto phase = [](const nlohmann::json& o) {
    const nlohmann::json* p = kube::FieldAt(o, "status.phase");
    return p != nullptr && p->is_string() ? p->get<std::string>() : "";
  };
  auto generation = [](const nlohmann::json& o) {
    const nlohmann::json* g = kube::FieldAt(o, "metadata.generation");
    return g != nullptr ? *g : nlohmann::json();
  };
  const bool stays_queued = phase(old_job) == api::kPhaseQueued && phase(new_job) == api::kPhaseQueued &&
                            generation(old_job) == generation(new_job) &&
                            kube::FieldAt(new_job, "metadata.deletionTimestamp") == nullptr;
  return !stays_queued;
}

absl::Status Controller::Start() {
  if (started_) return absl::OkStatus();
  started_ = true;
  for (auto& i : informers_) i->Start();
  for (auto& i : informers_) {
    if (!i->WaitForSync(std::chrono::duration<double>(options_.cache_sync_timeout_s))) {
      return absl::DeadlineExceededError(
          absl::StrCat("cache for ", i->resource().plural, " did not sync within ",
                       options_.cache_sync_timeout_s, "s"));
    }
  }
  TANDEM_LOG(info, "controller: caches synced; starting {} workers", options_.workers);
  queue_.Add(kScheduleKey);
  if (prober_) prober_->Start();
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { Worker(); });
  return absl::OkStatus();
}

void Controller::Stop() {
  queue_.ShutDown();
  for (auto& w : workers_) w.join();
  workers_.clear();
  if (prober_) prober_->Stop();
  for (auto& i : informers_) i->Stop();
  if (requests_) requests_->ShutDown();  // Events still queued are dropped
}

void Controller::Worker() {
  std::string key;
  while (queue_.Get(&key)) {
    Process(key);
    queue_.Done(key);
  }
}

void Controller::Process(const std::string& key) {
  auto start = std::chrono::steady_clock::now();
  if (key == kScheduleKey) {
    const auto next = last_pass_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                       std::chrono::duration<double>(options_.schedule_min_interval_s));
    if (start < next) {
      queue_.AddAfter(key, kube::Duration(next - start));
      return;
    }
    last_pass_ = start;
  }
  ReconcileResult r = key == kScheduleKey ? reconciler_->Schedule() : reconciler_->Reconcile(key);
  FinishReconcile(queue_, key, r, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (r.schedule && key != kScheduleKey) queue_.Add(kScheduleKey);
}

void FinishReconcile(kube::WorkQueue& queue, const std::string& key, const ReconcileResult& r, double seconds) {
  const char* outcome = r.error.ok() ? (r.requeue_after_s > 0 ? "requeue" : "success") : "error";
  OperatorMetrics::Get().reconcile.WithLabels({outcome})->Observe(seconds);
  if (!r.error.ok()) {
    TANDEM_LOG(warn, "reconcile {}: {} (retry {})", key, r.error.ToString(), queue.NumRequeues(key) + 1);
    queue.AddRateLimited(key);
  } else {
    queue.Forget(key);
    if (r.requeue_after_s > 0) queue.AddAfter(key, kube::Duration(r.requeue_after_s));
  }
}

}  // namespace tandem::controller
