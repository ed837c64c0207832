#include "trainer/engine/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <span>
#include <thread>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/check.h"
#include "common/metrics.h"
#include "common/status.h"
#include "trainer/backend/cpu/cpu_device.h"
#include "trainer/core/device.h"
#include "trainer/data/batch_reader.h"
#include "trainer/data/dataset.h"
#include "trainer/engine/batch_feeder.h"
#include "trainer/engine/checkpointer.h"
#include "trainer/engine/data_parallel.h"
#include "trainer/engine/elastic_world.h"
#include "trainer/collective/exit_codes.h"
#include "trainer/engine/events.h"
#include "trainer/engine/publisher.h"
#include "trainer/engine/sparse_path.h"
#include "pserver/reshard.h"
#include "trainer/engine/stream_driver.h"
#include "trainer/data/synthetic_ctr_dataset.h"
#include "trainer/engine/decode_evaluator.h"
#include "trainer/eval/accuracy_accumulator.h"
#include "trainer/eval/auc_accumulator.h"
#include "trainer/eval/loss_accumulator.h"
#include "trainer/layers/layer_registry.h"
#include "trainer/model/model_graph.h"
#include "trainer/model/network.h"
#include "trainer/optim/optimizer.h"

namespace tandem::trainer {
namespace {

using Clock = std::chrono::steady_clock;

double WallClockSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Metrics {
  metrics::Histogram* step_seconds;
  metrics::Counter* steps;
  metrics::Counter* examples;
  metrics::Gauge* examples_per_sec;
  metrics::Gauge* loss;
  metrics::Gauge* accuracy;
  metrics::Gauge* test_loss;
  metrics::Gauge* test_accuracy;
  metrics::Gauge* test_auc;
  metrics::Gauge* test_exact_match;
  metrics::Gauge* test_bleu;
  metrics::Gauge* test_pass;
  metrics::Gauge* learning_rate;
  metrics::Gauge* pass;
  // Step time split: [0] compute, [1] waiting for data, [2] all-reduce, [3] pserver.
  metrics::Counter* phase_seconds[4];
  metrics::Gauge* last_checkpoint;

  explicit Metrics(const std::string& job) {
    auto& r = metrics::Registry::Default();
    step_seconds = r.AddHistogram("tandem_trainer_step_seconds",
                                  "Time of one training step (forward, backward, update).",
                                  {"job"}, metrics::LatencyBuckets())
                       .WithLabels({job});
    steps = r.AddCounter("tandem_trainer_steps_total", "Training steps completed.", {"job"})
                .WithLabels({job});
    examples = r.AddCounter("tandem_trainer_examples_total", "Training examples processed.",
                            {"job"})
                   .WithLabels({job});
    examples_per_sec = r.AddGauge("tandem_trainer_examples_per_second",
                                  "Training throughput over the last progress interval.", {"job"})
                           .WithLabels({job});
    loss = r.AddGauge("tandem_trainer_loss", "Mean training loss over the last progress interval.",
                      {"job"})
               .WithLabels({job});
    accuracy = r.AddGauge("tandem_trainer_accuracy",
                          "Training accuracy over the last progress interval.", {"job"})
                   .WithLabels({job});
    test_loss = r.AddGauge("tandem_trainer_test_loss", "Loss on the test set after the last pass.",
                           {"job"})
                    .WithLabels({job});
    test_accuracy = r.AddGauge("tandem_trainer_test_accuracy",
                               "Accuracy on the test set after the last pass.", {"job"})
                        .WithLabels({job});
    test_auc = r.AddGauge("tandem_trainer_test_auc",
                          "AUC on the test set after the last pass (binary and ranking costs only).", {"job"})
                   .WithLabels({job});
    test_exact_match = r.AddGauge("tandem_trainer_test_exact_match",
                                  "Fraction of decoded test sequences equal to their reference "
                                  "after the last pass (models with spec.model.decode).", {"job"})
                           .WithLabels({job});
    test_bleu = r.AddGauge("tandem_trainer_test_bleu",
                           "Corpus BLEU-4 of the decoded test set after the last pass (models "
                           "with spec.model.decode).", {"job"})
                    .WithLabels({job});
    test_pass = r.AddGauge("tandem_trainer_test_pass",
                           "Passes done when the test_* gauges were last set (0: no evaluation yet).", {"job"})
                    .WithLabels({job});
    learning_rate = r.AddGauge("tandem_trainer_learning_rate", "Current learning rate.", {"job"})
                        .WithLabels({job});
    pass = r.AddGauge("tandem_trainer_pass", "Current pass (0-based).", {"job"}).WithLabels({job});
    auto& phases = r.AddCounter("tandem_trainer_step_phase_seconds_total",
                                "Step time by what the trainer was doing: compute (forward, "
                                "backward, update), data (waiting for the next batch), allreduce "
                                "(waiting for gradients after backward), pserver (pulls and pushes).",
                                {"job", "phase"});
    const char* names[4] = {"compute", "data", "allreduce", "pserver"};
    for (int i = 0; i < 4; ++i) phase_seconds[i] = phases.WithLabels({job, names[i]});
    last_checkpoint = r.AddGauge("tandem_trainer_last_checkpoint_timestamp_seconds",
                                 "Unix time of this trainer's newest checkpoint (0: none yet).",
                                 {"job"})
                          .WithLabels({job});
  }
};

// Correct predictions and scored examples of the last forward pass, for costs with a notion of
// accuracy (softmax cross-entropy: argmax; binary cross-entropy: logit > 0 vs target > 0.5).
std::pair<int64_t, int64_t> CountCorrect(const Network& net) {
  const ModelGraph& g = net.graph();
  const GraphLayer& cost = g.layers[g.cost_layer];
  const int64_t n = net.batch_size();
  if (cost.config.type == "softmax_cross_entropy") {
    const Blob& logits = net.cost_input(0);
    const Blob& labels = net.cost_input(1);
    const BlobDesc& d = g.blobs[cost.inputs[0]];
    const int64_t classes = d.shape.dim(d.shape.rank() - 1);
    const bool seq = d.kind == BlobKind::kSequence;
    const int64_t steps = seq ? d.shape.dim(0) : 1;
    int64_t correct = 0, total = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t len = seq ? labels.lengths[i] : 1;
      for (int64_t t = 0; t < len; ++t) {
        const int64_t row = i * steps + t;
        const float* x = logits.value.data() + row * classes;
        int64_t best = 0;
        for (int64_t c = 1; c < classes; ++c)
          if (x[c] > x[best]) best = c;
        correct += best == labels.ids[row];
        ++total;
      }
    }
    return {correct, total};
  }
  if (cost.config.type == "binary_cross_entropy") {
    const Blob& logits = net.cost_input(0);
    const Blob& targets = net.cost_input(1);
    // Targets are floats, or class ids 0/1 when the cost's second input is a labels input.
    const bool ids = targets.ids.size() >= static_cast<size_t>(n);
    int64_t correct = 0;
    for (int64_t i = 0; i < n; ++i) {
      const bool positive = ids ? targets.ids[i] > 0 : targets.value.data()[i] > 0.5f;
      correct += (logits.value.data()[i] > 0) == positive;
    }
    return {correct, n};
  }
  return {0, 0};
}

struct EvalResult {
  double loss = std::nan("");
  double accuracy = std::nan("");
  double auc = std::nan("");
  // The accumulators behind them: data-parallel ranks merge their states.
  eval::LossAccumulator loss_acc;
  eval::AccuracyAccumulator accuracy_acc;
  std::optional<eval::AucAccumulator> auc_acc;
};

// Loss, accuracy and (for binary costs) AUC over the whole test set, with the trainer/eval
// accumulators (mergeable across ranks once training is data-parallel).
absl::StatusOr<EvalResult> Evaluate(Network& net, data::BatchReader& reader, BatchFeeder& feeder,
                                    uint64_t seed, SparsePath* sparse) {
  reader.StartPass(0);
  eval::LossAccumulator loss;
  eval::AccuracyAccumulator accuracy;
  eval::AucAccumulator auc({.logits = true});
  const ModelGraph& g = net.graph();
  const GraphLayer& cost = g.layers[g.cost_layer];
  const BlobDesc& logits_desc = g.blobs[cost.inputs[0]];
  const bool dense_classes = cost.config.type == "softmax_cross_entropy" &&
                             logits_desc.kind == BlobKind::kDense;
  const bool binary = cost.config.type == "binary_cross_entropy";
  // rank_cost: AUC of the score difference (left - right) against the preference.
  const bool ranking = cost.config.type == "rank_cost";
  std::vector<float> diff;
  StepContext ctx{.training = false, .step = 0, .seed = seed};
  while (const data::Batch* batch = reader.Next()) {
    if (batch->size == 0) continue;
    TANDEM_RETURN_IF_ERROR(feeder.Feed(*batch, net), "test data");
    if (sparse != nullptr) TANDEM_RETURN_IF_ERROR(sparse->PrepareEval(), "test data");
    const int64_t n = batch->size;
    loss.AddMean(net.Forward(ctx), n);
    const Blob& logits = net.cost_input(0);
    const Blob& labels = net.cost_input(1);
    if (dense_classes) {
      const int classes = static_cast<int>(logits_desc.shape.dim(0));
      accuracy.Add(std::span<const float>(logits.value.data(), n * classes), classes,
                   std::span<const int32_t>(labels.ids.data(), n));
    } else {
      auto [c, t] = CountCorrect(net);
      if (t > 0) accuracy.AddCounts(c, t);
    }
    if (binary) {
      const std::span<const float> scores(logits.value.data(), n);
      if (labels.ids.empty()) {
        auc.Add(scores, std::span<const float>(labels.value.data(), n));
      } else {
        auc.Add(scores, std::span<const int32_t>(labels.ids.data(), n));
      }
    }
    if (ranking && net.cost_input(2).value.size() >= n) {
      diff.resize(n);
      for (int64_t i = 0; i < n; ++i) diff[i] = logits.value.data()[i] - labels.value.data()[i];
      auc.Add(std::span<const float>(diff), std::span<const float>(net.cost_input(2).value.data(), n));
    }
  }
  const bool scored_auc = (binary || ranking) && auc.positives() > 0 && auc.negatives() > 0;
  EvalResult r{loss.Mean(), accuracy.Accuracy(), scored_auc ? auc.Auc() : std::nan(""), loss,
               accuracy, std::nullopt};
  if (binary || ranking) r.auc_acc = auc;
  return r;
}

// Adds the time `fn` takes to `*acc` and returns what it returns.
template <typename Fn>
auto Timed(double* acc, Fn&& fn) {
  const Clock::time_point a = Clock::now();
  auto r = fn();
  *acc += Seconds(a, Clock::now());
  return r;
}

// Data-parallel evaluation: each rank evaluated its shard of the test set; sums the
// accumulators' states across ranks so that every rank reports the whole set's figures.
absl::Status MergeAcrossRanks(DataParallel& dp, EvalResult& ev) {
  std::vector<double> state;
  ev.loss_acc.AppendState(&state);
  ev.accuracy_acc.AppendState(&state);
  if (ev.auc_acc.has_value()) ev.auc_acc->AppendState(&state);
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> merged, dp.SumAcrossRanks(state));
  std::span<const double> rest(merged);
  ev.loss_acc.SetState(rest.subspan(0, eval::LossAccumulator::kStateSize));
  rest = rest.subspan(eval::LossAccumulator::kStateSize);
  ev.accuracy_acc.SetState(rest.subspan(0, eval::AccuracyAccumulator::kStateSize));
  rest = rest.subspan(eval::AccuracyAccumulator::kStateSize);
  ev.loss = ev.loss_acc.Mean();
  ev.accuracy = ev.accuracy_acc.Accuracy();
  if (ev.auc_acc.has_value()) {  // histograms add up: the same AUC on every rank
    ev.auc_acc->SetState(rest);
    ev.auc = ev.auc_acc->positives() > 0 && ev.auc_acc->negatives() > 0 ? ev.auc_acc->Auc()
                                                                         : std::nan("");
  }
  return absl::OkStatus();
}

// The training loop of one process (Train): Setup builds the model, the data and the peers,
// Resume restores the newest checkpoint, then RunPass runs each pass step by step (TrainStep)
// and Finish gathers the result. Not reusable: one TrainingLoop trains once.
class TrainingLoop {
 public:
  TrainingLoop(const TrainerSpec& spec, const TrainOptions& options)
      : spec_(spec),
        options_(options),
        m_(options.job),
        sp_(options.sparse),
        dp_(options.parallel),
        elastic_(options.elastic),
        checkpointer_(options.checkpoint_dir) {}
  // The ring (the caller's) must let go of the network before it dies, on every way out, or its
  // reducer and gradient hook would outlive the gradients they point at.
  ~TrainingLoop() {
    if (ring_attached_) ring_->Detach();
  }

  absl::StatusOr<TrainResult> Run();

 private:
  // Where a pass stands: its totals, and those of the current progress interval.
  struct PassStats {
    int64_t pass = 0;
    int64_t in_pass = 0;  // steps taken (or skipped, resuming) in this pass
    double loss = 0;      // summed over examples
    int64_t examples = 0;
    double interval_loss = 0;
    int64_t interval_examples = 0, interval_correct = 0, interval_scored = 0;
    double interval_seconds = 0;
  };
  // What one step spent waiting: for data, the all-reduce, the pservers.
  struct StepTimes {
    double data = 0, allreduce = 0, pserver = 0;
  };

  absl::Status BuildModel();
  absl::Status LoadData();
  absl::Status CreateNetwork();
  void CreateReaders();
  absl::Status Resume();
  absl::Status RunPass(int64_t pass);
  absl::Status RunStream();  // a followed directory (spec.data.train.stream): no passes
  absl::Status StreamEval(int64_t records_this_rank);
  absl::Status TrainStep(const data::Batch& batch, Clock::time_point t0, StepTimes times,
                         PassStats& ps);
  absl::StatusOr<double> ComputeGradients(const data::Batch& batch, int64_t pass,
                                          StepTimes& times);
  absl::Status ReduceGradients(StepTimes& times);
  void ReportProgress(PassStats& ps);
  absl::Status EndPass(const PassStats& ps);
  absl::Status SaveCheckpoint(int64_t at);
  absl::Status StopWithCheckpoint();
  absl::StatusOr<TrainResult> Pause(int64_t pass);
  absl::StatusOr<TrainResult> Finish();
  absl::Status EvaluateDecoded(const PassStats& ps);
  // Elastic jobs (elastic_world.h): the start (join the running job, or restore), what happens
  // after each step (`stepped`: its outcome), the readers and ring rebuilt for a new world.
  enum class Turn { kSame, kResized, kLeft };
  absl::Status ResumeElastic();
  absl::StatusOr<Turn> ElasticBoundary(const absl::Status& stepped, PassStats& ps);
  absl::Status FollowLayout(const api::Membership& m);
  void RebuildForWorld(int64_t pass);
  bool MaxStepsReached() const { return options_.max_steps > 0 && step_ >= options_.max_steps; }
  void Log(const std::string& line) const {
    if (options_.log != nullptr) *options_.log << line << std::endl;
  }

  const TrainerSpec& spec_;
  const TrainOptions& options_;
  const Clock::time_point start_ = Clock::now();
  TrainResult result_;
  Metrics m_;
  std::unique_ptr<Device> own_device_;  // the CPU device, unless TrainOptions::device
  Device* device_ = nullptr;
  ModelGraph graph_;  // moved into net_ by CreateNetwork
  std::shared_ptr<const data::Dataset> train_, test_;
  std::unique_ptr<Network> net_;
  SparsePath* const sp_;
  std::unique_ptr<Optimizer> optimizer_;
  DataParallel* const dp_;
  ElasticWorld* const elastic_;
  ElasticPosition epos_;     // elastic: where the job stands (step, pass, examples of the pass)
  int64_t batch_base_ = 0;   // elastic: steps of this pass taken before the current reader
  bool left_ = false;        // elastic: this trainer was taken out of the job
  // Dense gradients by ring all-reduce, unless the pserver holds the dense parameters too.
  DataParallel* ring_ = nullptr;
  bool ring_attached_ = false;
  int rank_ = 0, world_size_ = 1;
  std::unique_ptr<data::BatchReader> reader_, test_reader_;
  BatchFeeder feeder_, test_feeder_;
  int64_t steps_per_pass_ = 0, total_steps_ = 0;
  int64_t step_ = 0;
  int64_t start_pass_ = 0, skip_in_pass_ = 0;
  Checkpointer checkpointer_;
  StepJournal journal_;
  double train_seconds_ = 0;
  const data::Batch empty_batch_{};  // a data-parallel rank whose shard ran out steps with this
  std::unique_ptr<StreamDriver> stream_;  // set when the training source is a stream
  int64_t stream_global_batch_ = 0;       // a stream step's examples on all ranks together
};

absl::StatusOr<TrainResult> TrainingLoop::Run() {
  TANDEM_RETURN_IF_ERROR(BuildModel());
  TANDEM_RETURN_IF_ERROR(LoadData());
  if (elastic_ != nullptr) {
    // Data loaded: a new member tells its coordinator it is ready, then joins the ring.
    TANDEM_ASSIGN_OR_RETURN(const bool member, elastic_->Join([this] {
      if (options_.events != nullptr) options_.events->Emit({{"event", "ready"}});
    }));
    if (!member) {
      // The membership changed while this trainer started and no longer names it: it leaves as
      // at a step boundary, having trained nothing (docs/elastic.md, the start-up race).
      Log(absl::StrCat("elastic: ", elastic_->leave_reason(), ": leaving the job before step 1"));
      left_ = true;
      result_.left_job = true;
      result_.steps = 0;
      result_.wall_seconds = Seconds(start_, Clock::now());
      return result_;
    }
    // A new member of a grow: its tables are declared (CreateNetwork) on the grown layout, once
    // rank 0 resharded to it. Every member of the ring takes part (one broadcast).
    TANDEM_RETURN_IF_ERROR(FollowLayout(elastic_->membership()));
  }
  TANDEM_RETURN_IF_ERROR(CreateNetwork());
  CreateReaders();
  if (stream_ != nullptr) {
    if (ring_ != nullptr) {
      TANDEM_RETURN_IF_ERROR(ring_->AttachStream(*net_));
      ring_attached_ = true;
    }
    // Schedules with a length run over maxSteps; without one, the rate stays where it starts.
    total_steps_ = stream_->config().max_steps > 0 ? stream_->config().max_steps
                                                    : std::numeric_limits<int32_t>::max();
    TANDEM_RETURN_IF_ERROR(Resume());
    TANDEM_RETURN_IF_ERROR(RunStream());
    return Finish();
  }
  // Data-parallel ranks all take the same number of steps (a rank whose shard ran out takes empty
  // ones), since every step is an all-reduce.
  if (ring_ != nullptr) {
    TANDEM_RETURN_IF_ERROR(ring_->Attach(*net_, *reader_));
    ring_attached_ = true;
  }
  steps_per_pass_ = dp_ != nullptr ? reader_->MaxBatchesPerPass() : reader_->BatchesPerPass();
  total_steps_ = steps_per_pass_ * spec_.passes;
  TANDEM_RETURN_IF_ERROR(Resume());
  for (int64_t pass = start_pass_; pass < spec_.passes; ++pass) {
    TANDEM_RETURN_IF_ERROR(RunPass(pass));
    if (left_) {
      result_.left_job = true;
      result_.steps = step_;
      result_.wall_seconds = Seconds(start_, Clock::now());
      return result_;
    }
    if (MaxStepsReached()) break;
    if (options_.stop_after_pass > 0 && pass + 1 == options_.stop_after_pass && pass + 1 < spec_.passes)
      return Pause(pass + 1);
  }
  return Finish();
}

// TrainOptions::stop_after_pass: the state at the end of the pass is checkpointed (EndPass did
// when checkpoints are per pass) and the run returns; no final model.
absl::StatusOr<TrainResult> TrainingLoop::Pause(int64_t pass) {
  if (!options_.checkpoint_dir.empty() && options_.checkpoint_every != 0) TANDEM_RETURN_IF_ERROR(SaveCheckpoint(step_));
  Log(absl::StrCat("paused after pass ", pass, " at step ", step_,
                   options_.checkpoint_dir.empty() ? "" : absl::StrCat(" (checkpoint ", checkpointer_.last_path(), ")")));
  result_.paused_after_pass = pass;
  result_.steps = step_;
  result_.train_seconds = train_seconds_;
  result_.wall_seconds = Seconds(start_, Clock::now());
  return result_;
}

absl::Status TrainingLoop::BuildModel() {
  const int threads = options_.threads >= 0 ? options_.threads : spec_.threads;
  if (options_.device != nullptr) {
    device_ = options_.device;
  } else {
    own_device_ = CreateCpuDevice({.threads = threads});
    device_ = own_device_.get();
  }
  result_.threads = device_->threads();
  std::vector<FieldError> errors =
      BuildModelGraph(spec_.model, LayerRegistry::Builtin(), "spec.model", &graph_);
  if (!errors.empty()) {
    std::string msg;
    for (const auto& e : errors) absl::StrAppend(&msg, msg.empty() ? "" : "\n", e.ToString());
    return absl::InvalidArgumentError(msg);
  }
  result_.parameters = graph_.NumParameters();
  return absl::OkStatus();
}

absl::Status TrainingLoop::LoadData() {
  if (spec_.data.train.stream.has_value()) {
    // Built here, used once the network (and so the rank) is known: see CreateReaders.
    TANDEM_RETURN_IF_ERROR(BatchFeeder::CheckLayout(
        graph_, data::StreamReader({.num_fields = spec_.data.train.num_fields}).layout(), "train"));
    Log(absl::StrCat("model: ", graph_.layers.size(), " layers, ", result_.parameters,
                     " parameters; device: ", device_->Describe()));
    Log(absl::StrCat("train: stream of libsvm files in ", spec_.data.train.stream->dir));
    return absl::OkStatus();
  }
  TANDEM_ASSIGN_OR_RETURN(
      train_, data::LoadDataset(spec_.data.train, {.skip_malformed = spec_.data.skip_malformed,
                                                   .name = "train",
                                                   .decoded_cache_dir = options_.decoded_cache_dir,
                                                   .note = [this](const std::string& n) { Log(n); }}));
  TANDEM_RETURN_IF_ERROR(BatchFeeder::CheckLayout(graph_, train_->layout(), "train"));
  if (spec_.data.test.has_value()) {
    TANDEM_ASSIGN_OR_RETURN(test_, data::LoadDataset(*spec_.data.test,
                                                     {.skip_malformed = spec_.data.skip_malformed,
                                                      .name = "test",
                                                      .decoded_cache_dir = options_.decoded_cache_dir,
                                                      .note = [this](const std::string& n) { Log(n); }}));
    TANDEM_RETURN_IF_ERROR(BatchFeeder::CheckLayout(graph_, test_->layout(), "test"));
    if (const auto* synth = dynamic_cast<const data::SyntheticCtrDataset*>(test_.get()))
      result_.best_auc = synth->BestAuc();
  }
  Log(absl::StrCat("model: ", graph_.layers.size(), " layers, ", result_.parameters,
                   " parameters; device: ", device_->Describe()));
  Log(absl::StrCat("train: ", train_->Describe()));
  if (test_) Log(absl::StrCat("test: ", test_->Describe()));
  return absl::OkStatus();
}

absl::Status TrainingLoop::CreateNetwork() {
  // Elastic jobs keep embedding tables on the pservers (resharded at each resize) and their dense
  // parameters on the ring; dense parameters on the pservers are refused by validation already.
  if (elastic_ != nullptr && dp_ == nullptr)
    return absl::UnimplementedError(
        "spec.elastic: an elastic trainer needs its data-parallel ring");
  if (elastic_ != nullptr && sp_ != nullptr && sp_->dense_on_pserver())
    return absl::UnimplementedError(
        "spec.elastic: not supported with spec.sync.dense: pserver (docs/elastic.md)");
  TANDEM_ASSIGN_OR_RETURN(net_, Network::Create(std::move(graph_), *device_, options_.seed,
                                                /*remote_sparse=*/sp_ != nullptr));
  if (options_.on_network_created) options_.on_network_created(*net_);
  if (sp_ != nullptr) {
    TANDEM_RETURN_IF_ERROR(sp_->Attach(*net_, spec_.optimizer, options_.seed), "parameter server");
    Log(absl::StrCat("parameter server: ", sp_->client().num_shards(), " shards; embedding tables ",
                     "remote", sp_->dense_on_pserver() ? "; dense parameters on the pserver" : ""));
  }
  optimizer_ = std::make_unique<Optimizer>(spec_.optimizer, net_->params(), *device_);
  ring_ = sp_ != nullptr && sp_->dense_on_pserver() ? nullptr : dp_;
  rank_ = dp_ != nullptr ? dp_->rank() : 0;
  world_size_ = dp_ != nullptr ? dp_->world_size() : 1;
  return absl::OkStatus();
}

void TrainingLoop::CreateReaders() {
  if (spec_.data.train.stream.has_value()) {
    stream_ = std::make_unique<StreamDriver>(
        spec_.data.train, StreamDriverOptions{.job = options_.job,
                                              .rank = rank_,
                                              .world_size = world_size_,
                                              .batch_size = spec_.data.batch_size,
                                              .skip_malformed = spec_.data.skip_malformed,
                                              .checkpoint_dir = options_.checkpoint_dir});
    return;  // no test set with a stream (validated): the rolling evaluation scores the stream
  }
  reader_ = std::make_unique<data::BatchReader>(
      train_, data::ReaderOptions{.batch_size = spec_.data.batch_size,
                                  .rank = rank_,
                                  .world_size = world_size_,
                                  .shuffle = spec_.data.shuffle,
                                  .seed = spec_.data.seed,
                                  .prefetch = spec_.data.prefetch,
                                  .name = "train",
                                  .global_batch = elastic_ ? elastic_->GlobalBatch(world_size_) : 0,
                                  .start_offset = elastic_ ? epos_.pass_offset : 0});
  if (test_) {
    test_reader_ = std::make_unique<data::BatchReader>(
        test_, data::ReaderOptions{.batch_size = spec_.data.batch_size,
                                   .rank = rank_,
                                   .world_size = world_size_,
                                   .shuffle = false,
                                   .seed = spec_.data.seed,
                                   .prefetch = spec_.data.prefetch,
                                   .name = "test"});
  }
}

// The newest checkpoint (agreed by every rank; with pservers, one every shard holds too), the
// shards rolled back to it, and the restart reported.
absl::Status TrainingLoop::Resume() {
  // With pservers a checkpoint of step S is complete only when every shard holds S too (the
  // shards write theirs first, see SaveCheckpoint): resume from the newest such step.
  if (sp_ != nullptr && elastic_ == nullptr && options_.resume &&
      !options_.checkpoint_dir.empty()) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<uint64_t> shard_steps, sp_->ShardCheckpointSteps());
    checkpointer_.set_step_filter([shard_steps](int64_t s) {
      return s >= 0 && std::binary_search(shard_steps.begin(), shard_steps.end(),
                                          static_cast<uint64_t>(s));
    });
  }
  // Steps this trainer had finished before it was restarted (crash, kill, peer failure).
  const std::optional<int64_t> steps_before_restart = StepJournal::Read(options_.checkpoint_dir);
  if (elastic_ != nullptr) {
    TANDEM_RETURN_IF_ERROR(ResumeElastic());
  } else if (dp_ != nullptr) {
    TANDEM_ASSIGN_OR_RETURN(
        std::optional<int64_t> resumed,
        dp_->RestoreCheckpoint(options_.checkpoint_dir.empty() ? nullptr : &checkpointer_,
                               options_.resume, *net_, *optimizer_, options_.seed));
    if (resumed.has_value()) {
      step_ = *resumed;
      if (steps_per_pass_ > 0) {
        start_pass_ = step_ / steps_per_pass_;
        skip_in_pass_ = step_ % steps_per_pass_;
      }
      Log(absl::StrCat("resumed from step ", step_, " (", checkpointer_.last_path(),
                       "), agreed by all ", world_size_, " ranks"));
    }
    if (stream_ != nullptr)
      TANDEM_RETURN_IF_ERROR(stream_->Restore(
          resumed.has_value() ? std::optional(checkpointer_.last_metadata()) : std::nullopt, step_));
  } else if (options_.resume && !options_.checkpoint_dir.empty()) {
    TANDEM_ASSIGN_OR_RETURN(std::optional<int64_t> resumed,
                            checkpointer_.LoadLatest(*net_, *optimizer_));
    if (resumed.has_value()) {
      step_ = *resumed;
      if (steps_per_pass_ > 0) {
        start_pass_ = step_ / steps_per_pass_;
        skip_in_pass_ = step_ % steps_per_pass_;
      }
      Log(absl::StrCat("resumed from step ", step_, " (", checkpointer_.last_path(), ")"));
    }
    if (stream_ != nullptr)
      TANDEM_RETURN_IF_ERROR(stream_->Restore(
          resumed.has_value() ? std::optional(checkpointer_.last_metadata()) : std::nullopt, step_));
  } else if (stream_ != nullptr) {
    TANDEM_RETURN_IF_ERROR(stream_->Restore(std::nullopt, 0));
  }
  if (sp_ != nullptr && elastic_ == nullptr) {
    // Every shard goes to the step this trainer starts from (a no-op for shards already there).
    auto rolled_back_or = sp_->RestoreShards(step_);
    if (!rolled_back_or.ok())
      return Annotate(rolled_back_or.status(),
                      absl::StrCat("parameter servers: restoring step ", step_));
    const uint64_t rolled_back = *rolled_back_or;
    if (rolled_back > 0)
      Log(absl::StrCat("parameter servers rolled back ", rolled_back, " steps to step ", step_));
  }
  if (steps_before_restart.has_value() && options_.resume) {
    result_.resumed_step = step_;
    const int64_t lost = std::max<int64_t>(0, *steps_before_restart - step_);
    // One event per job restart: every rank restarts together, rank 0 speaks for them.
    if (options_.events != nullptr && rank_ == 0)
      options_.events->Emit({{"event", "resumed"}, {"step", step_}, {"lostSteps", lost}});
    if (lost > 0) Log(absl::StrCat(lost, " steps done before the restart are trained again"));
  }
  TANDEM_ASSIGN_OR_RETURN(journal_, StepJournal::Open(options_.checkpoint_dir));
  journal_.Record(step_);
  return absl::OkStatus();
}

absl::Status TrainingLoop::RunPass(int64_t pass) {
  m_.pass->Set(static_cast<double>(pass));
  if (elastic_ != nullptr && pass != epos_.pass) {
    // A new pass starts at the first example of its order, whatever the last one's world was.
    epos_.pass = pass;
    epos_.pass_offset = 0;
    batch_base_ = 0;
    RebuildForWorld(pass);
  }
  if (sp_ != nullptr) {
    sp_->StartPass(*reader_, pass);  // reads one batch ahead, for the row prefetch
  } else {
    reader_->StartPass(pass);
  }
  PassStats ps{.pass = pass};
  while (true) {
    const Clock::time_point t0 = Clock::now();
    const data::Batch* batch = sp_ != nullptr ? sp_->NextBatch() : reader_->Next();
    const StepTimes times{.data = Seconds(t0, Clock::now())};
    if (batch == nullptr) {
      if (dp_ == nullptr || ps.in_pass >= steps_per_pass_) break;
      batch = &empty_batch_;
    }
    if (ps.in_pass++ < skip_in_pass_) continue;  // resuming inside this pass: same order, skip
    if (batch->size == 0 && dp_ == nullptr) continue;
    if (elastic_ == nullptr) {
      TANDEM_RETURN_IF_ERROR(TrainStep(*batch, t0, times, ps));
    } else {
      const absl::Status stepped = TrainStep(*batch, t0, times, ps);
      TANDEM_ASSIGN_OR_RETURN(const Turn turn, ElasticBoundary(stepped, ps));
      if (turn == Turn::kLeft) return absl::OkStatus();
      if (turn == Turn::kResized) {  // the new reader: its first batch
        if (sp_ != nullptr) {
          sp_->StartPass(*reader_, pass);
        } else {
          reader_->StartPass(pass);
        }
      }
    }
    if (MaxStepsReached()) break;
  }
  skip_in_pass_ = 0;
  return EndPass(ps);
}

// Steps on the stream until a stop rule: maxSteps, maxHours, the end marker (every rank's part
// read), or a stop request. Data-parallel ranks agree every step on what they hold (each step is
// an all-reduce or a pserver barrier): a step nobody has records for is not taken (no update on
// an empty step, no step number spent), a rank without records takes an empty step, and every
// stop rule holds for all ranks at once.
absl::Status TrainingLoop::RunStream() {
  m_.pass->Set(0);
  PassStats ps{.pass = 0};
  const ModelGraph& g = net_->graph();
  const bool scored = g.layers[g.cost_layer].config.type == "binary_cross_entropy";
  if (!scored && stream_->config().eval_window > 0)
    Log("stream: the rolling evaluation needs a binary_cross_entropy cost; it is off");
  Clock::time_point last_lag = Clock::now() - std::chrono::hours(1);
  while (!MaxStepsReached() && !stream_->StepLimitReached(step_)) {
    const Clock::time_point t0 = Clock::now();
    TANDEM_ASSIGN_OR_RETURN(const data::Batch* batch, stream_->NextBatch(options_.stop));
    const StepTimes times{.data = Seconds(t0, Clock::now())};
    const bool stopping = options_.stop != nullptr && options_.stop->load();
    std::vector<double> agree = {static_cast<double>(batch->size),
                                 stream_->finished() ? 1.0 : 0.0,
                                 stream_->TimeLimitReached() ? 1.0 : 0.0, stopping ? 1.0 : 0.0};
    if (dp_ != nullptr) {
      TANDEM_ASSIGN_OR_RETURN(agree, dp_->SumAcrossRanks(agree));
    }
    if (Seconds(last_lag, Clock::now()) >= 0.1) {  // lists the directory: 10 times a second
      TANDEM_RETURN_IF_ERROR(stream_->UpdateLag().status());
      last_lag = Clock::now();
    }
    if (agree[3] > 0) return StopWithCheckpoint();
    if (agree[2] > 0) {
      Log(absl::StrCat("stream: maxHours reached at step ", step_));
      break;
    }
    stream_global_batch_ = static_cast<int64_t>(agree[0]);
    if (stream_global_batch_ == 0) {
      if (agree[1] >= world_size_) {
        Log(absl::StrCat("stream: the end marker is present and every rank read its part; "
                         "stopping at step ", step_));
        break;
      }
      continue;  // nothing to train anywhere: NextBatch waited pollSeconds already
    }
    TANDEM_RETURN_IF_ERROR(stream_->BeforeUpdate(step_ + 1));
    ++ps.in_pass;
    TANDEM_RETURN_IF_ERROR(TrainStep(batch->size > 0 ? *batch : empty_batch_, t0, times, ps));
    if (scored && batch->size > 0)
      stream_->Score(std::span<const float>(net_->cost_input(0).value.data(), batch->size));
    if (stream_->EvalDue(step_)) TANDEM_RETURN_IF_ERROR(StreamEval(ps.examples));
  }
  if (stream_->config().eval_window > 0) TANDEM_RETURN_IF_ERROR(StreamEval(ps.examples));
  // The summary's train loss is over this process's steps; no test set: test_* are the rolling
  // evaluation's (StreamEval), accuracy has none.
  if (ps.examples > 0) result_.train_loss = ps.loss / ps.examples;
  result_.test_accuracy = std::nan("");
  return absl::OkStatus();
}

// The rolling evaluation of every rank's window, the lag, and their event.
absl::Status TrainingLoop::StreamEval(int64_t records_this_rank) {
  std::vector<double> state;
  stream_->AppendEvalState(&state);
  if (dp_ != nullptr) {
    TANDEM_ASSIGN_OR_RETURN(state, dp_->SumAcrossRanks(state));
  }
  const StreamDriver::Eval ev = stream_->Evaluate(state);
  TANDEM_ASSIGN_OR_RETURN(const data::StreamReader::Lag lag, stream_->UpdateLag());
  auto finite = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
  if (options_.events != nullptr) {
    options_.events->Emit({{"event", "stream"},
                           {"step", step_},
                           {"records", records_this_rank},
                           {"position", stream_->position().ToJson()},
                           {"lagBytes", lag.bytes},
                           {"lagSeconds", finite(lag.seconds)},
                           {"windowRecords", ev.records},
                           {"onlineAuc", ev.has_auc ? finite(ev.auc) : nlohmann::json()},
                           {"onlineLoss", finite(ev.loss)}});
  }
  Log(absl::StrFormat("stream step %d: online_auc %s online_loss %.4f over %d records; lag %d "
                      "bytes %.1f s",
                      step_, ev.has_auc ? absl::StrFormat("%.4f", ev.auc) : "-", ev.loss,
                      ev.records, lag.bytes, lag.seconds));
  if (ev.has_auc) result_.test_auc = ev.auc;
  result_.test_loss = ev.loss;
  return absl::OkStatus();
}

// One step on `batch` (empty: a data-parallel rank whose shard ran out, which still takes part in
// the all-reduce): gradients, their reduction, the update, then metrics, progress, checkpoints.
absl::Status TrainingLoop::TrainStep(const data::Batch& batch, Clock::time_point t0,
                                     StepTimes times, PassStats& ps) {
  if (ring_ != nullptr && stream_ != nullptr) {
    ring_->BeginStreamStep(batch.size, stream_global_batch_);
  } else if (ring_ != nullptr) {
    ring_->BeginStep(ps.in_pass - 1 - batch_base_, batch.size);
  }
  TANDEM_ASSIGN_OR_RETURN(const double loss, ComputeGradients(batch, ps.pass, times));
  TANDEM_RETURN_IF_ERROR(ReduceGradients(times));
  if (elastic_ != nullptr) {
    optimizer_->set_learning_rate_scale(elastic_->LearningRateScale(epos_, step_));
    epos_.pass_offset += reader_->GlobalBatchSize(ps.in_pass - 1 - batch_base_);
    epos_.step = step_ + 1;
  }
  optimizer_->Step(step_, total_steps_);
  const double dt = Seconds(t0, Clock::now());
  train_seconds_ += dt;
  ps.interval_seconds += dt;
  ++step_;
  if (stream_ != nullptr) stream_->Commit();  // checkpoints from here on start after this batch
  m_.step_seconds->Observe(dt);
  m_.phase_seconds[0]->Inc(std::max(0.0, dt - times.data - times.allreduce - times.pserver));
  m_.phase_seconds[1]->Inc(times.data);
  m_.phase_seconds[2]->Inc(times.allreduce);
  m_.phase_seconds[3]->Inc(times.pserver);
  m_.steps->Inc();
  m_.examples->Inc(batch.size);
  auto [c, t] = batch.size > 0 ? CountCorrect(*net_) : std::pair<int64_t, int64_t>{0, 0};
  journal_.Record(step_);
  if (options_.events != nullptr) {
    // A stream reports one endless pass (steps of maxSteps, when set).
    options_.events->OnStep({.pass = ps.pass,
                             .passes = stream_ != nullptr ? 1 : spec_.passes,
                             .step_in_pass = stream_ != nullptr ? step_ : ps.in_pass,
                             .steps_per_pass = stream_ != nullptr ? stream_->config().max_steps
                                                                  : steps_per_pass_,
                             .loss_sum = loss * batch.size,
                             .examples = batch.size,
                             .correct = c,
                             .scored = t,
                             .seconds = dt,
                             .data_seconds = times.data,
                             .allreduce_seconds = times.allreduce,
                             .pserver_seconds = times.pserver});
  }
  ps.interval_correct += c;
  ps.interval_scored += t;
  ps.loss += loss * batch.size;
  ps.interval_loss += loss * batch.size;
  ps.examples += batch.size;
  ps.interval_examples += batch.size;
  result_.examples += batch.size;
  if (step_ % options_.progress_every == 0 || (stream_ == nullptr && ps.in_pass == steps_per_pass_))
    ReportProgress(ps);
  if (options_.checkpoint_every > 0 && !options_.checkpoint_dir.empty() &&
      step_ % options_.checkpoint_every == 0) {
    TANDEM_RETURN_IF_ERROR(SaveCheckpoint(step_));
  }
  if (options_.publisher != nullptr) options_.publisher->MaybePublish(step_, *net_, sp_);
  if (options_.stop != nullptr && options_.stop->load(std::memory_order_relaxed)) {
    return StopWithCheckpoint();
  }
  return absl::OkStatus();
}

// Forward and backward (data-parallel: buckets are all-reduced as their gradients finish), with
// the pserver's pulls and pushes around them; returns the batch's mean loss (0 when empty).
absl::StatusOr<double> TrainingLoop::ComputeGradients(const data::Batch& batch, int64_t pass,
                                                      StepTimes& times) {
  if (batch.size == 0) {
    if (sp_ != nullptr)
      TANDEM_RETURN_IF_ERROR(Timed(&times.pserver, [&] { return sp_->EmptyStep(step_); }),
                             "step ", step_);
    return 0.0;
  }
  TANDEM_RETURN_IF_ERROR(feeder_.Feed(batch, *net_), "training data, pass ", pass, " batch ",
                         batch.index);
  StepContext ctx{.training = true, .step = static_cast<uint64_t>(step_), .seed = options_.seed};
  if (sp_ != nullptr)
    TANDEM_RETURN_IF_ERROR(Timed(&times.pserver, [&] { return sp_->BeforeForward(step_); }),
                           "step ", step_);
  const double loss = net_->Forward(ctx);
  if (!std::isfinite(loss)) {
    return absl::FailedPreconditionError(
        absl::StrCat("training diverged: loss is ", loss, " at step ", step_,
                     " (lower spec.optimizer.learningRate)"));
  }
  net_->Backward(ctx);
  if (sp_ != nullptr)
    TANDEM_RETURN_IF_ERROR(Timed(&times.pserver, [&] { return sp_->AfterBackward(step_); }),
                           "step ", step_);
  return loss;
}

absl::Status TrainingLoop::ReduceGradients(StepTimes& times) {
  if (ring_ == nullptr) return absl::OkStatus();
  absl::Status reduced = Timed(&times.allreduce, [&] { return ring_->FinishGradients(); });
  if (!reduced.ok() && options_.stop != nullptr && options_.stop->load() &&
      !options_.checkpoint_dir.empty() && sp_ == nullptr) {
    // Stopping, and a peer stopped first: the parameters are still those of `step` (no update
    // was applied), so they make a valid checkpoint.
    TANDEM_RETURN_IF_ERROR(checkpointer_.Save(
        step_, *net_, *optimizer_,
        stream_ != nullptr ? stream_->CheckpointMetadata() : nlohmann::json::object()));
    m_.last_checkpoint->Set(WallClockSeconds());
    return absl::CancelledError(absl::StrCat("stopped at step ", step_, " (checkpoint ",
                                             checkpointer_.last_path(), ")"));
  }
  return Annotate(reduced, absl::StrCat("step ", step_));
}

// The progress line and gauges of the interval that ends with this step.
void TrainingLoop::ReportProgress(PassStats& ps) {
  const double eps = ps.interval_seconds > 0 ? ps.interval_examples / ps.interval_seconds : 0;
  const double acc =
      ps.interval_scored > 0 ? static_cast<double>(ps.interval_correct) / ps.interval_scored : 0;
  const double mean_loss = ps.interval_examples > 0 ? ps.interval_loss / ps.interval_examples : 0.0;
  m_.examples_per_sec->Set(eps);
  m_.loss->Set(mean_loss);
  m_.accuracy->Set(acc);
  m_.learning_rate->Set(optimizer_->LearningRate(step_ - 1, total_steps_));
  Log(absl::StrFormat("pass %d step %d/%d loss %.4f accuracy %.4f lr %.5g examples/s %.0f",
                      ps.pass + 1, ps.in_pass, steps_per_pass_, mean_loss, acc,
                      optimizer_->LearningRate(step_ - 1, total_steps_), eps));
  ps.interval_loss = 0;
  ps.interval_examples = ps.interval_correct = ps.interval_scored = 0;
  ps.interval_seconds = 0;
}

// After the last step of a pass: layer state averaged across ranks, the evaluation on the test
// set, and the end-of-pass checkpoint.
absl::Status TrainingLoop::EndPass(const PassStats& ps) {
  if (dp_ != nullptr) TANDEM_RETURN_IF_ERROR(dp_->AverageLayerState(*net_));
  if (ps.examples > 0) result_.train_loss = ps.loss / ps.examples;
  if (test_reader_) {
    TANDEM_ASSIGN_OR_RETURN(EvalResult ev,
                            Evaluate(*net_, *test_reader_, test_feeder_, options_.seed, sp_));
    if (dp_ != nullptr) TANDEM_RETURN_IF_ERROR(MergeAcrossRanks(*dp_, ev));
    result_.test_loss = ev.loss;
    result_.test_accuracy = ev.accuracy;
    result_.test_auc = ev.auc;
    m_.test_loss->Set(ev.loss);
    m_.test_accuracy->Set(ev.accuracy);
    if (!std::isnan(ev.auc)) m_.test_auc->Set(ev.auc);
    m_.test_pass->Set(static_cast<double>(ps.pass + 1));
    if (options_.events != nullptr) {
      // The objective of a Sweep's trial after every pass (docs/sweeps.md).
      auto finite = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
      options_.events->Emit({{"event", "eval"}, {"pass", ps.pass + 1}, {"passes", spec_.passes},
                             {"test_loss", finite(ev.loss)}, {"test_accuracy", finite(ev.accuracy)},
                             {"test_auc", finite(ev.auc)}});
    }
    Log(absl::StrFormat("pass %d done: train_loss %.4f test_loss %.4f test_accuracy %.4f%s",
                        ps.pass + 1, result_.train_loss, ev.loss, ev.accuracy,
                        std::isnan(ev.auc) ? "" : absl::StrFormat(" test_auc %.4f", ev.auc)));
    if (spec_.model.decode.has_value()) TANDEM_RETURN_IF_ERROR(EvaluateDecoded(ps));
  } else {
    result_.test_loss = result_.test_accuracy = std::nan("");
    Log(absl::StrFormat("pass %d done: train_loss %.4f", ps.pass + 1, result_.train_loss));
  }
  if (!options_.checkpoint_dir.empty() && options_.checkpoint_every == 0) {
    TANDEM_RETURN_IF_ERROR(SaveCheckpoint(step_));
  }
  return absl::OkStatus();
}

// spec.model.decode: decodes this rank's test examples, sums the counts across ranks, and
// reports exact match and BLEU.
absl::Status TrainingLoop::EvaluateDecoded(const PassStats& ps) {
  TANDEM_ASSIGN_OR_RETURN(eval::BleuAccumulator bleu,
                          EvaluateDecoding(*net_, *test_reader_, *spec_.model.decode, sp_));
  if (dp_ != nullptr) {
    std::vector<double> state;
    bleu.AppendState(&state);
    TANDEM_ASSIGN_OR_RETURN(std::vector<double> merged, dp_->SumAcrossRanks(state));
    bleu.SetState(merged);
  }
  result_.test_exact_match = bleu.ExactMatch();
  result_.test_bleu = bleu.Bleu();
  m_.test_exact_match->Set(result_.test_exact_match);
  m_.test_bleu->Set(result_.test_bleu);
  if (options_.events != nullptr) {
    options_.events->Emit({{"event", "decode"}, {"pass", ps.pass + 1},
                           {"test_exact_match", result_.test_exact_match},
                           {"test_bleu", result_.test_bleu},
                           {"sequences", bleu.sentences()}});
  }
  Log(absl::StrFormat("pass %d decoded %d test sequences (beam %d): exact_match %.4f bleu %.4f",
                      ps.pass + 1, bleu.sentences(), spec_.model.decode->beam,
                      result_.test_exact_match, result_.test_bleu));
  return absl::OkStatus();
}

// A consistent cut: the shards checkpoint this step first, then this trainer.
absl::Status TrainingLoop::SaveCheckpoint(int64_t at) {
  // Elastic shards do not checkpoint (their files would be keyed by a layout that changes), and
  // a trainer checkpoint without the shards' rows could only be restored with those rows lost:
  // an elastic job with pservers writes none (docs/elastic.md).
  if (elastic_ != nullptr && sp_ != nullptr) return absl::OkStatus();
  if (sp_ != nullptr)
    TANDEM_RETURN_IF_ERROR(sp_->CheckpointShards(at), "parameter-server checkpoint of step ", at);
  TANDEM_RETURN_IF_ERROR(checkpointer_.Save(
      at, *net_, *optimizer_,
      stream_ != nullptr ? stream_->CheckpointMetadata() : nlohmann::json::object()));
  if (elastic_ != nullptr) TANDEM_RETURN_IF_ERROR(SaveElasticPosition(options_.checkpoint_dir, epos_));
  m_.last_checkpoint->Set(WallClockSeconds());
  return absl::OkStatus();
}

// options.stop was set: checkpoint (when there is a folder) and return Cancelled.
absl::Status TrainingLoop::StopWithCheckpoint() {
  if (!options_.checkpoint_dir.empty()) {
    absl::Status saved = SaveCheckpoint(step_);
    // A pserver stopping at the same time: the previous checkpoint stays the newest.
    if (!saved.ok() && sp_ != nullptr)
      Log(absl::StrCat("no checkpoint at step ", step_, ": ", saved.message()));
    else
      TANDEM_RETURN_IF_ERROR(saved);
  }
  return absl::CancelledError(absl::StrCat(
      "stopped at step ", step_,
      options_.checkpoint_dir.empty() ? ""
                                      : absl::StrCat(" (checkpoint ", checkpointer_.last_path(), ")")));
}

// Elastic start: a new member of a running job takes a live trainer's state and position; a job
// that starts (or restarts whole) restores the newest checkpoint any rank holds, at whatever
// world size it was written, from the same example of the same pass.
absl::Status TrainingLoop::ResumeElastic() {
  TANDEM_ASSIGN_OR_RETURN(const bool joined,
                          elastic_->AgreeOnState(/*live=*/false, &epos_, *net_, *optimizer_));
  if (joined) {
    step_ = epos_.step;
    Log(absl::StrCat("elastic: joined the running job at step ", step_, " (pass ", epos_.pass + 1,
                     ", example ", epos_.pass_offset, " of its order), membership epoch ",
                     elastic_->epoch(), ", ", dp_->world_size(), " trainers"));
  } else {
    TANDEM_ASSIGN_OR_RETURN(
        std::optional<int64_t> resumed,
        dp_->RestoreCheckpoint(options_.checkpoint_dir.empty() ? nullptr : &checkpointer_,
                               options_.resume, *net_, *optimizer_, options_.seed,
                               /*ranks_may_lack=*/true));
    epos_ = ElasticPosition{};
    if (resumed.has_value()) {
      step_ = *resumed;
      if (std::optional<ElasticPosition> saved = LoadElasticPosition(options_.checkpoint_dir, step_)) {
        epos_ = *saved;
      } else {
        // A checkpoint without its position (written before the job was elastic): its step at
        // the reference world's global batch.
        const int64_t g = elastic_->GlobalBatch(dp_->world_size());
        const int64_t per_pass = std::max<int64_t>(1, (train_->size() + g - 1) / g);
        epos_.pass = step_ / per_pass;
        epos_.pass_offset = std::min(train_->size(), (step_ % per_pass) * g);
      }
      epos_.step = step_;
      result_.resumed_step = step_;  // a rank with no checkpoint of its own resumed too
      // Ranks may have found different positions (a rank's folder without the file): rank 0's.
      TANDEM_RETURN_IF_ERROR(
          elastic_->AgreeOnState(/*live=*/true, &epos_, *net_, *optimizer_).status());
      Log(absl::StrCat("elastic: resumed from step ", step_, " (pass ", epos_.pass + 1,
                       ", example ", epos_.pass_offset, " of its order) on ", dp_->world_size(),
                       " trainers"));
    }
  }
  elastic_->RescaleLearningRate(dp_->world_size(), &epos_);
  start_pass_ = epos_.pass;
  skip_in_pass_ = 0;
  RebuildForWorld(epos_.pass);
  return absl::OkStatus();
}

// The readers (this rank's slices of the rest of the pass) and the ring's buckets for the world
// the communicator now has; the step counts of the pass and of the run follow.
void TrainingLoop::RebuildForWorld(int64_t pass) {
  if (ring_attached_) ring_->Detach();
  ring_attached_ = false;
  rank_ = dp_->rank();
  world_size_ = dp_->world_size();
  reader_.reset();
  test_reader_.reset();
  CreateReaders();
  if (ring_ != nullptr) {
    // Attach only fails for a reader of another rank or a sparse parameter, both ruled out.
    TANDEM_CHECK_OK(ring_->Attach(*net_, *reader_));
    ring_attached_ = true;
  }
  const int64_t g = elastic_->GlobalBatch(world_size_);
  const int64_t full_pass = (train_->size() + g - 1) / g;
  steps_per_pass_ = batch_base_ + reader_->MaxBatchesPerPass();
  total_steps_ = step_ + reader_->MaxBatchesPerPass() + (spec_.passes - pass - 1) * full_pass;
}

// After each step of an elastic job: a newer membership (polled at the boundary, or awaited when
// the step failed because a peer died) is entered, the state agreed, the readers rebuilt.
absl::StatusOr<TrainingLoop::Turn> TrainingLoop::ElasticBoundary(const absl::Status& stepped,
                                                                 PassStats& ps) {
  const Clock::time_point t0 = Clock::now();
  absl::Status failed = stepped;
  std::optional<api::Membership> next;
  if (failed.ok()) {
    absl::StatusOr<std::optional<api::Membership>> polled = elastic_->PollAtBoundary();
    if (polled.ok()) {
      if (!polled->has_value()) return Turn::kSame;
      next = **polled;
    } else {
      failed = polled.status();
    }
  }
  if (!failed.ok()) {
    if (!collective::IsPeerFailure(failed)) return failed;
    if (sp_ != nullptr)
      return absl::FailedPreconditionError(absl::StrCat(
          "elastic: a peer failed at step ", step_, " (", failed.message(),
          "): with tables on the pservers a lost worker cannot be recovered in place (its shard's "
          "rows are not replicated and elastic shards do not checkpoint): the job fails "
          "(docs/elastic.md)"));
    Log(absl::StrCat("elastic: a peer failed at step ", step_, " (", failed.message(),
                     "); waiting for the next membership"));
    TANDEM_ASSIGN_OR_RETURN(next, elastic_->AwaitNewMembership());
  }
  const int old_world = world_size_;
  const int64_t my_step = step_;
  TANDEM_ASSIGN_OR_RETURN(const bool member, elastic_->Enter(*next));
  if (!member) {
    Log(absl::StrCat("elastic: not in membership epoch ", next->epoch, " (", next->reason,
                     "): leaving the job after step ", step_));
    left_ = true;
    return Turn::kLeft;
  }
  TANDEM_RETURN_IF_ERROR(FollowLayout(*next));
  TANDEM_RETURN_IF_ERROR(elastic_->AgreeOnState(/*live=*/true, &epos_, *net_, *optimizer_).status());
  if (epos_.pass != ps.pass)
    return absl::InternalError(absl::StrCat("elastic: the source rank is in pass ", epos_.pass + 1,
                                            ", this one in pass ", ps.pass + 1));
  step_ = epos_.step;
  elastic_->RescaleLearningRate(dp_->world_size(), &epos_);
  batch_base_ = ps.in_pass;
  RebuildForWorld(ps.pass);
  ++result_.resizes;
  const double pause = Seconds(t0, Clock::now());
  // The step in flight when a peer died is computed again by whoever had not finished it.
  const int64_t lost = failed.ok() ? 0 : 1;
  Log(absl::StrFormat("elastic: epoch %d (%s): %d -> %d trainers at step %d, rank %d, pass %d "
                      "example %d, lr scale %.3g -> %.3g, paused %.3f s",
                      elastic_->epoch(), next->reason, old_world, world_size_, step_, rank_,
                      ps.pass + 1, epos_.pass_offset, epos_.lr_from, epos_.lr_to, pause));
  if (options_.events != nullptr && rank_ == 0) {
    options_.events->Emit({{"event", "resized"}, {"epoch", elastic_->epoch()},
                           {"from", old_world}, {"to", world_size_}, {"step", step_},
                           {"reason", next->reason}, {"pauseSeconds", pause},
                           {"lostSteps", lost}, {"rankStep", my_step}});
  }
  return Turn::kResized;
}

// Elastic jobs with tables on the pservers (docs/elastic.md): every rank of the ring of `m`, at
// the step boundary where it entered it (every trainer paused; sync mode: the last step applied
// on every shard). When m's pserver layout is not the one rank 0's client uses, rank 0 reshards
// the shards from its layout to m's (pserver/reshard.h) while the others wait in the broadcast
// of the outcome; then every rank's client moves to m's layout. A reshard that fails before its
// commit leaves every shard on the old layout with everything it had; the trainers stop with the
// error (the job fails) rather than train on a layout some shards do not serve.
absl::Status TrainingLoop::FollowLayout(const api::Membership& m) {
  if (sp_ == nullptr) return absl::OkStatus();
  if (m.pservers.empty())
    return absl::FailedPreconditionError(absl::StrCat(
        "elastic: membership epoch ", m.epoch, " has no pserver layout (pservers) but the model "
        "has tables on the pservers"));
  std::vector<std::string> endpoints;
  PServerLayout layout{.epoch = static_cast<uint64_t>(m.pserver_epoch),
                       .block_size_shards = sp_->client_options().block_size_shards};
  for (const api::PServerShard& s : m.pservers) {
    endpoints.push_back(s.endpoint.ToString());
    layout.ids.push_back(static_cast<uint32_t>(s.slot));
  }
  const pserver::PServerClientOptions& cur = sp_->client_options();
  const bool same = cur.placement_epoch == layout.epoch && cur.shard_ids == layout.ids &&
                    cur.endpoints == endpoints;
  // [0] status code (0: ok), [1] 1 when a reshard ran, [2] message length.
  int64_t header[3] = {0, 0, 0};
  std::string message;
  if (dp_->rank() == 0 && !same) {
    pserver::ReshardPlan plan;
    plan.epoch = layout.epoch;
    plan.num_trainers = static_cast<uint32_t>(m.world_size());
    for (size_t i = 0; i < cur.shard_ids.size(); ++i)
      plan.from.push_back({.id = cur.shard_ids[i], .endpoint = cur.endpoints[i]});
    for (size_t i = 0; i < layout.ids.size(); ++i)
      plan.to.push_back({.id = layout.ids[i], .endpoint = endpoints[i]});
    const Clock::time_point t0 = Clock::now();
    absl::StatusOr<pserver::ReshardReport> report =
        absl::FailedPreconditionError("this client has no elastic layout (shard ids)");
    if (!cur.shard_ids.empty()) {
      // A new shard still starting answers UNAVAILABLE: the reshard aborts cleanly; try again.
      const Clock::time_point deadline = t0 + std::chrono::seconds(60);
      while (true) {
        report = pserver::RunReshard(plan, {.token = cur.token, .tls = cur.tls});
        if (report.ok() || !absl::IsUnavailable(report.status()) || Clock::now() >= deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
    if (!report.ok()) {
      header[0] = static_cast<int64_t>(report.status().code());
      message = std::string(report.status().message());
    } else {
      header[1] = 1;
      const double seconds = Seconds(t0, Clock::now());
      std::vector<uint32_t> from_ids = cur.shard_ids;
      Log(absl::StrFormat("elastic: resharded the pservers from [%s] to [%s] (layout epoch %d): "
                          "%d rows and %d blocks moved (%d bytes), %d rows kept, %.3f s",
                          absl::StrJoin(from_ids, ","), absl::StrJoin(layout.ids, ","),
                          layout.epoch, report->rows_moved, report->blocks_moved,
                          report->bytes_moved, report->rows_kept, seconds));
      if (options_.events != nullptr)
        options_.events->Emit({{"event", "resharded"}, {"epoch", m.epoch},
                               {"layoutEpoch", layout.epoch}, {"from", from_ids},
                               {"to", layout.ids}, {"left", report->left},
                               {"rowsMoved", report->rows_moved},
                               {"blocksMoved", report->blocks_moved},
                               {"bytesMoved", report->bytes_moved},
                               {"rowsKept", report->rows_kept}, {"seconds", seconds},
                               {"step", step_}});
    }
    header[2] = static_cast<int64_t>(message.size());
  }
  TANDEM_RETURN_IF_ERROR(dp_->Broadcast(header, sizeof(header), 0),
                         "elastic: the reshard's outcome");
  message.resize(static_cast<size_t>(header[2]));
  if (header[2] > 0)
    TANDEM_RETURN_IF_ERROR(dp_->Broadcast(message.data(), message.size(), 0),
                           "elastic: the reshard's outcome");
  if (header[0] != 0)
    return absl::Status(static_cast<absl::StatusCode>(header[0]),
                        absl::StrCat("elastic: resharding the pservers to layout epoch ",
                                     layout.epoch, " of membership epoch ", m.epoch, ": ",
                                     message));
  if (same) return absl::OkStatus();
  return sp_->Relayout(endpoints, layout);
}

absl::StatusOr<TrainResult> TrainingLoop::Finish() {
  if (!options_.checkpoint_dir.empty()) TANDEM_RETURN_IF_ERROR(SaveCheckpoint(step_));
  result_.steps = step_;
  result_.train_seconds = train_seconds_;
  result_.examples_per_sec = train_seconds_ > 0 ? result_.examples / train_seconds_ : 0;
  if (dp_ != nullptr) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> examples, dp_->AllGather(result_.examples));
    TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> micros,
                            dp_->AllGather(static_cast<int64_t>(train_seconds_ * 1e6)));
    int64_t all_examples = 0, slowest = 0;
    for (int r = 0; r < world_size_; ++r) {
      all_examples += examples[r];
      slowest = std::max(slowest, micros[r]);
    }
    result_.examples_per_sec = slowest > 0 ? all_examples / (slowest * 1e-6) : 0;
  }
  if (options_.publisher != nullptr)
    options_.publisher->MaybePublish(step_, *net_, sp_, /*force=*/true);
  if (!options_.output_dir.empty() && rank_ == 0) {
    Checkpointer model_writer(options_.output_dir, /*keep=*/1);
    TANDEM_RETURN_IF_ERROR(model_writer.Save(step_, *net_, *optimizer_), "writing the final model");
    Log(absl::StrCat("final model: ", model_writer.last_path()));
  }
  if (sp_ != nullptr) {
    result_.rows_pulled = sp_->rows_pulled();
    result_.rows_pushed = sp_->rows_pushed();
    result_.ids_seen = sp_->ids_seen();
  }
  result_.wall_seconds = Seconds(start_, Clock::now());
  if (options_.keep_final_parameters) {
    result_.final_parameters.assign(net_->parameter_arena(),
                                    net_->parameter_arena() + net_->parameter_arena_size());
  }
  return result_;
}

}  // namespace

std::string TrainResult::SummaryLine() const {
  std::string line = absl::StrFormat(
      "test_accuracy=%.4f test_loss=%.4f train_loss=%.4f examples_per_sec=%.1f wall_s=%.2f "
      "train_s=%.2f steps=%d examples=%d threads=%d parameters=%d",
      test_accuracy, test_loss, train_loss, examples_per_sec, wall_seconds, train_seconds, steps,
      examples, threads, parameters);
  if (!std::isnan(test_auc)) absl::StrAppend(&line, absl::StrFormat(" test_auc=%.4f", test_auc));
  if (!std::isnan(best_auc)) absl::StrAppend(&line, absl::StrFormat(" best_auc=%.4f", best_auc));
  if (!std::isnan(test_bleu))
    absl::StrAppend(&line, absl::StrFormat(" test_exact_match=%.4f test_bleu=%.4f",
                                           test_exact_match, test_bleu));
  return line;
}

absl::StatusOr<TrainResult> Train(const TrainerSpec& spec, const TrainOptions& options) {
  TrainingLoop loop(spec, options);
  return loop.Run();
}

}  // namespace tandem::trainer
