#include "trainer/engine/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <span>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/metrics.h"
#include "common/status.h"
#include "trainer/core/device.h"
#include "trainer/data/batch_reader.h"
#include "trainer/data/dataset.h"
#include "trainer/engine/batch_feeder.h"
#include "trainer/engine/checkpointer.h"
#include "trainer/engine/data_parallel.h"
#include "trainer/engine/events.h"
#include "trainer/engine/sparse_path.h"
#include "trainer/data/synthetic_ctr_dataset.h"
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

}  // namespace

std::string TrainResult::SummaryLine() const {
  std::string line = absl::StrFormat(
      "test_accuracy=%.4f test_loss=%.4f train_loss=%.4f examples_per_sec=%.1f wall_s=%.2f "
      "train_s=%.2f steps=%d examples=%d threads=%d parameters=%d",
      test_accuracy, test_loss, train_loss, examples_per_sec, wall_seconds, train_seconds, steps,
      examples, threads, parameters);
  if (!std::isnan(test_auc)) absl::StrAppend(&line, absl::StrFormat(" test_auc=%.4f", test_auc));
  if (!std::isnan(best_auc)) absl::StrAppend(&line, absl::StrFormat(" best_auc=%.4f", best_auc));
  return line;
}

absl::StatusOr<TrainResult> Train(const TrainerSpec& spec, const TrainOptions& options) {
  const Clock::time_point start = Clock::now();
  auto log = [&](const std::string& line) {
    if (options.log != nullptr) *options.log << line << std::endl;
  };
  TrainResult result;
  Metrics m(options.job);

  const int threads = options.threads >= 0 ? options.threads : spec.threads;
  std::unique_ptr<Device> device = CreateCpuDevice({.threads = threads});
  result.threads = device->threads();

  ModelGraph graph;
  std::vector<FieldError> errors =
      BuildModelGraph(spec.model, LayerRegistry::Builtin(), "spec.model", &graph);
  if (!errors.empty()) {
    std::string msg;
    for (const auto& e : errors) absl::StrAppend(&msg, msg.empty() ? "" : "\n", e.ToString());
    return absl::InvalidArgumentError(msg);
  }
  result.parameters = graph.NumParameters();

  TANDEM_ASSIGN_OR_RETURN(
      std::shared_ptr<const data::Dataset> train,
      data::LoadDataset(spec.data.train, {.skip_malformed = spec.data.skip_malformed,
                                          .name = "train"}));
  TANDEM_RETURN_IF_ERROR(BatchFeeder::CheckLayout(graph, train->layout(), "train"));
  std::shared_ptr<const data::Dataset> test;
  if (spec.data.test.has_value()) {
    TANDEM_ASSIGN_OR_RETURN(test, data::LoadDataset(*spec.data.test,
                                                    {.skip_malformed = spec.data.skip_malformed,
                                                     .name = "test"}));
    TANDEM_RETURN_IF_ERROR(BatchFeeder::CheckLayout(graph, test->layout(), "test"));
    if (const auto* synth = dynamic_cast<const data::SyntheticCtrDataset*>(test.get()))
      result.best_auc = synth->BestAuc();
  }
  log(absl::StrCat("model: ", graph.layers.size(), " layers, ", result.parameters,
                   " parameters; device: ", device->Describe()));
  log(absl::StrCat("train: ", train->Describe()));
  if (test) log(absl::StrCat("test: ", test->Describe()));

  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Network> net,
                          Network::Create(std::move(graph), *device, options.seed,
                                          /*remote_sparse=*/options.sparse != nullptr));
  if (options.on_network_created) options.on_network_created(*net);
  SparsePath* const sp = options.sparse;
  if (sp != nullptr) {
    TANDEM_RETURN_IF_ERROR(sp->Attach(*net, spec.optimizer, options.seed), "parameter server");
    log(absl::StrCat("parameter server: ", sp->client().num_shards(), " shards; embedding tables ",
                     "remote", sp->dense_on_pserver() ? "; dense parameters on the pserver" : ""));
  }
  Optimizer optimizer(spec.optimizer, net->params(), *device);
  DataParallel* const dp = options.parallel;
  // Dense gradients by ring all-reduce, unless the pserver holds the dense parameters too.
  DataParallel* const ring = sp != nullptr && sp->dense_on_pserver() ? nullptr : dp;
  const int rank = dp != nullptr ? dp->rank() : 0;
  const int world_size = dp != nullptr ? dp->world_size() : 1;

  data::BatchReader reader(train, {.batch_size = spec.data.batch_size,
                                   .rank = rank,
                                   .world_size = world_size,
                                   .shuffle = spec.data.shuffle,
                                   .seed = spec.data.seed,
                                   .prefetch = spec.data.prefetch,
                                   .name = "train"});
  std::unique_ptr<data::BatchReader> test_reader;
  if (test) {
    test_reader = std::make_unique<data::BatchReader>(
        test, data::ReaderOptions{.batch_size = spec.data.batch_size,
                                  .rank = rank,
                                  .world_size = world_size,
                                  .shuffle = false,
                                  .seed = spec.data.seed,
                                  .prefetch = spec.data.prefetch,
                                  .name = "test"});
  }
  BatchFeeder feeder, test_feeder;

  // Data-parallel ranks all take the same number of steps (a rank whose shard ran out takes empty
  // ones), since every step is an all-reduce.
  if (ring != nullptr) TANDEM_RETURN_IF_ERROR(ring->Attach(*net, reader));
  // The network dies with this function; the ring (the caller's) must let go of it first, on
  // every way out, or its reducer and gradient hook would outlive the gradients they point at.
  struct DetachRing {
    DataParallel* ring;
    ~DetachRing() {
      if (ring != nullptr) ring->Detach();
    }
  } detach_ring{ring};
  const int64_t steps_per_pass = dp != nullptr ? reader.MaxBatchesPerPass() : reader.BatchesPerPass();
  const int64_t total_steps = steps_per_pass * spec.passes;
  int64_t step = 0;
  int64_t start_pass = 0, skip_in_pass = 0;
  Checkpointer checkpointer(options.checkpoint_dir);
  // With pservers a checkpoint of step S is complete only when every shard holds S too (the
  // shards write theirs first, see save_checkpoint): resume from the newest such step.
  if (sp != nullptr && options.resume && !options.checkpoint_dir.empty()) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<uint64_t> shard_steps, sp->ShardCheckpointSteps());
    checkpointer.set_step_filter([shard_steps](int64_t s) {
      return s >= 0 && std::binary_search(shard_steps.begin(), shard_steps.end(),
                                          static_cast<uint64_t>(s));
    });
  }
  // A consistent cut: the shards checkpoint this step first, then this trainer.
  auto save_checkpoint = [&](int64_t at) -> absl::Status {
    if (sp != nullptr)
      TANDEM_RETURN_IF_ERROR(sp->CheckpointShards(at), "parameter-server checkpoint of step ", at);
    TANDEM_RETURN_IF_ERROR(checkpointer.Save(at, *net, optimizer));
    m.last_checkpoint->Set(WallClockSeconds());
    return absl::OkStatus();
  };
  // Steps this trainer had finished before it was restarted (crash, kill, peer failure).
  const std::optional<int64_t> steps_before_restart = StepJournal::Read(options.checkpoint_dir);
  if (dp != nullptr) {
    TANDEM_ASSIGN_OR_RETURN(
        std::optional<int64_t> resumed,
        dp->RestoreCheckpoint(options.checkpoint_dir.empty() ? nullptr : &checkpointer,
                              options.resume, *net, optimizer, options.seed));
    if (resumed.has_value()) {
      step = *resumed;
      start_pass = step / steps_per_pass;
      skip_in_pass = step % steps_per_pass;
      log(absl::StrCat("resumed from step ", step, " (", checkpointer.last_path(),
                       "), agreed by all ", world_size, " ranks"));
    }
  } else if (options.resume && !options.checkpoint_dir.empty()) {
    TANDEM_ASSIGN_OR_RETURN(std::optional<int64_t> resumed, checkpointer.LoadLatest(*net, optimizer));
    if (resumed.has_value()) {
      step = *resumed;
      start_pass = step / steps_per_pass;
      skip_in_pass = step % steps_per_pass;
      log(absl::StrCat("resumed from step ", step, " (", checkpointer.last_path(), ")"));
    }
  }

  if (sp != nullptr) {
    // Every shard goes to the step this trainer starts from (a no-op for shards already there).
    auto rolled_back_or = sp->RestoreShards(step);
    if (!rolled_back_or.ok())
      return Annotate(rolled_back_or.status(),
                      absl::StrCat("parameter servers: restoring step ", step));
    const uint64_t rolled_back = *rolled_back_or;
    if (rolled_back > 0)
      log(absl::StrCat("parameter servers rolled back ", rolled_back, " steps to step ", step));
  }
  if (steps_before_restart.has_value() && options.resume) {
    result.resumed_step = step;
    const int64_t lost = std::max<int64_t>(0, *steps_before_restart - step);
    // One event per job restart: every rank restarts together, rank 0 speaks for them.
    if (options.events != nullptr && rank == 0)
      options.events->Emit({{"event", "resumed"}, {"step", step}, {"lostSteps", lost}});
    if (lost > 0) log(absl::StrCat(lost, " steps done before the restart are trained again"));
  }
  TANDEM_ASSIGN_OR_RETURN(StepJournal journal, StepJournal::Open(options.checkpoint_dir));
  journal.Record(step);

  double train_seconds = 0;
  const data::Batch empty_batch{};  // a data-parallel rank whose shard ran out steps with this
  for (int64_t pass = start_pass; pass < spec.passes; ++pass) {
    m.pass->Set(static_cast<double>(pass));
    if (sp != nullptr) {
      sp->StartPass(reader, pass);  // reads one batch ahead, for the row prefetch
    } else {
      reader.StartPass(pass);
    }
    double pass_loss = 0, interval_loss = 0;
    int64_t pass_examples = 0, interval_examples = 0, interval_correct = 0, interval_scored = 0;
    int64_t in_pass = 0;
    Clock::time_point interval_start = Clock::now();
    double interval_seconds = 0;
    while (true) {
      const Clock::time_point t0 = Clock::now();
      const data::Batch* batch = sp != nullptr ? sp->NextBatch() : reader.Next();
      const double data_s = Seconds(t0, Clock::now());
      double allreduce_s = 0, pserver_s = 0;
      // Adds the time `fn` takes to `*acc`.
      auto timed = [](double* acc, auto&& fn) {
        const Clock::time_point a = Clock::now();
        auto r = fn();
        *acc += Seconds(a, Clock::now());
        return r;
      };
      if (batch == nullptr) {
        if (dp == nullptr || in_pass >= steps_per_pass) break;
        batch = &empty_batch;
      }
      if (in_pass++ < skip_in_pass) continue;  // resuming inside this pass: same order, skip
      if (batch->size == 0 && dp == nullptr) continue;
      if (ring != nullptr) ring->BeginStep(in_pass - 1, batch->size);
      double loss = 0;
      if (batch->size > 0) {
        TANDEM_RETURN_IF_ERROR(feeder.Feed(*batch, *net), "training data, pass ", pass,
                               " batch ", batch->index);
        StepContext ctx{.training = true, .step = static_cast<uint64_t>(step), .seed = options.seed};
        if (sp != nullptr)
          TANDEM_RETURN_IF_ERROR(timed(&pserver_s, [&] { return sp->BeforeForward(step); }), "step ", step);
        loss = net->Forward(ctx);
        if (!std::isfinite(loss)) {
          return absl::FailedPreconditionError(
              absl::StrCat("training diverged: loss is ", loss, " at step ", step,
                           " (lower spec.optimizer.learningRate)"));
        }
        net->Backward(ctx);  // data-parallel: buckets are all-reduced as their gradients finish
        if (sp != nullptr)
          TANDEM_RETURN_IF_ERROR(timed(&pserver_s, [&] { return sp->AfterBackward(step); }), "step ", step);
      } else if (sp != nullptr) {
        TANDEM_RETURN_IF_ERROR(timed(&pserver_s, [&] { return sp->EmptyStep(step); }), "step ", step);
      }
      if (ring != nullptr) {
        absl::Status reduced = timed(&allreduce_s, [&] { return ring->FinishGradients(); });
        if (!reduced.ok() && options.stop != nullptr && options.stop->load() &&
            !options.checkpoint_dir.empty() && sp == nullptr) {
          // Stopping, and a peer stopped first: the parameters are still those of `step` (no
          // update was applied), so they make a valid checkpoint.
          TANDEM_RETURN_IF_ERROR(checkpointer.Save(step, *net, optimizer));
          m.last_checkpoint->Set(WallClockSeconds());
          return absl::CancelledError(absl::StrCat("stopped at step ", step, " (checkpoint ",
                                                   checkpointer.last_path(), ")"));
        }
        TANDEM_RETURN_IF_ERROR(reduced, "step ", step);
      }
      optimizer.Step(step, total_steps);
      const double dt = Seconds(t0, Clock::now());
      train_seconds += dt;
      interval_seconds += dt;
      ++step;
      m.step_seconds->Observe(dt);
      m.phase_seconds[0]->Inc(std::max(0.0, dt - data_s - allreduce_s - pserver_s));
      m.phase_seconds[1]->Inc(data_s);
      m.phase_seconds[2]->Inc(allreduce_s);
      m.phase_seconds[3]->Inc(pserver_s);
      m.steps->Inc();
      m.examples->Inc(batch->size);
      auto [c, t] = batch->size > 0 ? CountCorrect(*net) : std::pair<int64_t, int64_t>{0, 0};
      journal.Record(step);
      if (options.events != nullptr) {
        options.events->OnStep({.pass = pass,
                                .passes = spec.passes,
                                .step_in_pass = in_pass,
                                .steps_per_pass = steps_per_pass,
                                .loss_sum = loss * batch->size,
                                .examples = batch->size,
                                .correct = c,
                                .scored = t,
                                .seconds = dt,
                                .data_seconds = data_s,
                                .allreduce_seconds = allreduce_s,
                                .pserver_seconds = pserver_s});
      }
      interval_correct += c;
      interval_scored += t;
      pass_loss += loss * batch->size;
      interval_loss += loss * batch->size;
      pass_examples += batch->size;
      interval_examples += batch->size;
      result.examples += batch->size;
      if (step % options.progress_every == 0 || in_pass == steps_per_pass) {
        const double eps = interval_seconds > 0 ? interval_examples / interval_seconds : 0;
        const double acc =
            interval_scored > 0 ? static_cast<double>(interval_correct) / interval_scored : 0;
        m.examples_per_sec->Set(eps);
        m.loss->Set(interval_examples > 0 ? interval_loss / interval_examples : 0.0);
        m.accuracy->Set(acc);
        m.learning_rate->Set(optimizer.LearningRate(step - 1, total_steps));
        log(absl::StrFormat("pass %d step %d/%d loss %.4f accuracy %.4f lr %.5g examples/s %.0f",
                            pass + 1, in_pass, steps_per_pass,
                            interval_examples > 0 ? interval_loss / interval_examples : 0.0,
                            acc, optimizer.LearningRate(step - 1, total_steps), eps));
        interval_loss = 0;
        interval_examples = interval_correct = interval_scored = 0;
        interval_seconds = 0;
        interval_start = Clock::now();
      }
      if (options.checkpoint_every > 0 && !options.checkpoint_dir.empty() &&
          step % options.checkpoint_every == 0) {
        TANDEM_RETURN_IF_ERROR(save_checkpoint(step));
      }
      if (options.stop != nullptr && options.stop->load(std::memory_order_relaxed)) {
        if (!options.checkpoint_dir.empty()) {
          absl::Status saved = save_checkpoint(step);
          // A pserver stopping at the same time: the previous checkpoint stays the newest.
          if (!saved.ok() && sp != nullptr)
            log(absl::StrCat("no checkpoint at step ", step, ": ", saved.message()));
          else
            TANDEM_RETURN_IF_ERROR(saved);
        }
        return absl::CancelledError(absl::StrCat(
            "stopped at step ", step,
            options.checkpoint_dir.empty() ? "" : absl::StrCat(" (checkpoint ", checkpointer.last_path(), ")")));
      }
      if (options.max_steps > 0 && step >= options.max_steps) break;
    }
    skip_in_pass = 0;
    if (dp != nullptr) TANDEM_RETURN_IF_ERROR(dp->AverageLayerState(*net));
    if (pass_examples > 0) result.train_loss = pass_loss / pass_examples;
    if (test_reader) {
      TANDEM_ASSIGN_OR_RETURN(EvalResult ev,
                              Evaluate(*net, *test_reader, test_feeder, options.seed, sp));
      if (dp != nullptr) {  // each rank evaluated its shard of the test set
        std::vector<double> state;
        ev.loss_acc.AppendState(&state);
        ev.accuracy_acc.AppendState(&state);
        if (ev.auc_acc.has_value()) ev.auc_acc->AppendState(&state);
        TANDEM_ASSIGN_OR_RETURN(std::vector<double> merged, dp->SumAcrossRanks(state));
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
      }
      result.test_loss = ev.loss;
      result.test_accuracy = ev.accuracy;
      result.test_auc = ev.auc;
      m.test_loss->Set(ev.loss);
      m.test_accuracy->Set(ev.accuracy);
      log(absl::StrFormat("pass %d done: train_loss %.4f test_loss %.4f test_accuracy %.4f%s",
                          pass + 1, result.train_loss, ev.loss, ev.accuracy,
                          std::isnan(ev.auc) ? "" : absl::StrFormat(" test_auc %.4f", ev.auc)));
    } else {
      result.test_loss = result.test_accuracy = std::nan("");
      log(absl::StrFormat("pass %d done: train_loss %.4f", pass + 1, result.train_loss));
    }
    if (!options.checkpoint_dir.empty() && options.checkpoint_every == 0) {
      TANDEM_RETURN_IF_ERROR(save_checkpoint(step));
    }
    if (options.max_steps > 0 && step >= options.max_steps) break;
  }
  if (!options.checkpoint_dir.empty()) TANDEM_RETURN_IF_ERROR(save_checkpoint(step));
  result.steps = step;
  result.train_seconds = train_seconds;
  result.examples_per_sec = train_seconds > 0 ? result.examples / train_seconds : 0;
  if (dp != nullptr) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> examples, dp->AllGather(result.examples));
    TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> micros,
                            dp->AllGather(static_cast<int64_t>(train_seconds * 1e6)));
    int64_t all_examples = 0, slowest = 0;
    for (int r = 0; r < world_size; ++r) {
      all_examples += examples[r];
      slowest = std::max(slowest, micros[r]);
    }
    result.examples_per_sec = slowest > 0 ? all_examples / (slowest * 1e-6) : 0;
  }
  if (!options.output_dir.empty() && rank == 0) {
    Checkpointer model_writer(options.output_dir, /*keep=*/1);
    TANDEM_RETURN_IF_ERROR(model_writer.Save(step, *net, optimizer), "writing the final model");
    log(absl::StrCat("final model: ", model_writer.last_path()));
  }
  if (sp != nullptr) {
    result.rows_pulled = sp->rows_pulled();
    result.rows_pushed = sp->rows_pushed();
    result.ids_seen = sp->ids_seen();
  }
  result.wall_seconds = Seconds(start, Clock::now());
  if (options.keep_final_parameters) {
    result.final_parameters.assign(net->parameter_arena(),
                                   net->parameter_arena() + net->parameter_arena_size());
  }
  return result;
}

}  // namespace tandem::trainer
