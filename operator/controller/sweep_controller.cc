#include "operator/controller/sweep_controller.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "operator/controller/controller.h"

namespace tandem::controller {

SweepController::SweepController(kube::KubeApi* api, SweepControllerOptions options)
    : api_(api), options_(std::move(options)), events_(api, options_.component, options_.host), queue_("sweeps") {
  reconciler_ = std::make_unique<SweepReconciler>(api_, &cache_, &events_, options_.reconciler);
  auto informer = [&](const kube::Resource& r, const std::string& label_selector) {
    return AddInformer(api_, r, options_.informer, label_selector, &informers_, &cache_);
  };
  auto add = [this](const kube::Object& o) { queue_.Add(kube::ObjectKey::Of(*o).String()); };
  informer(kube::kSweeps, "")->AddHandler({.on_add = add,
                                           .on_update = [add](const kube::Object&, const kube::Object& o) { add(o); },
                                           .on_delete = add});
  auto owner = [this](const kube::Object& o) {
    std::string key = SweepReconciler::SweepKeyOf(*o);
    if (!key.empty()) queue_.Add(key);
  };
  informer(kube::kTrainingJobs, api::kSweepLabel)
      ->AddHandler({.on_add = owner,
                    .on_update = [owner](const kube::Object&, const kube::Object& o) { owner(o); },
                    .on_delete = owner});
}

SweepController::~SweepController() { Stop(); }

absl::Status SweepController::Start() {
  if (started_) return absl::OkStatus();
  started_ = true;
  for (auto& i : informers_) i->Start();
  for (auto& i : informers_) {
    if (!i->WaitForSync(std::chrono::duration<double>(options_.cache_sync_timeout_s))) {
      return absl::DeadlineExceededError(absl::StrCat("cache for ", i->resource().plural, " did not sync within ",
                                                      options_.cache_sync_timeout_s, "s"));
    }
  }
  TANDEM_LOG(info, "sweep controller: caches synced; starting {} workers", options_.workers);
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { Worker(); });
  return absl::OkStatus();
}

void SweepController::Stop() {
  queue_.ShutDown();
  for (auto& w : workers_) w.join();
  workers_.clear();
  for (auto& i : informers_) i->Stop();
}

void SweepController::Worker() {
  std::string key;
  while (queue_.Get(&key)) {
    auto start = std::chrono::steady_clock::now();
    ReconcileResult r = reconciler_->Reconcile(key);
    FinishReconcile(queue_, key, r, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    queue_.Done(key);
  }
}

}  // namespace tandem::controller
