#include "trainer/engine/stream_driver.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/metrics.h"
#include "common/status.h"
#include "trainer/eval/auc_accumulator.h"

namespace tandem::trainer {
namespace {

using Clock = std::chrono::steady_clock;

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Log loss of one logit against a 0/1 label, computed stably.
double LogLoss(float logit, float label) {
  const double z = logit;
  return std::max(z, 0.0) - z * (label > 0.5f ? 1.0 : 0.0) + std::log1p(std::exp(-std::abs(z)));
}

constexpr int kEvalBins = 1 << 14;  // AucAccumulator's histogram (merged across ranks)

}  // namespace

struct StreamDriver::Metrics {
  metrics::Gauge* lag_bytes;
  metrics::Gauge* lag_seconds;
  metrics::Counter* records;
  metrics::Counter* bytes;
  metrics::Gauge* files_open;
  metrics::Counter* files_closed;
  metrics::Counter* files_lost;
  metrics::Counter* malformed;
  metrics::Gauge* online_auc;
  metrics::Gauge* online_loss;
  metrics::Gauge* online_records;

  explicit Metrics(const std::string& job) {
    auto& r = metrics::Registry::Default();
    auto gauge = [&](const char* name, const char* help) {
      return r.AddGauge(name, help, {"job"}).WithLabels({job});
    };
    auto counter = [&](const char* name, const char* help) {
      return r.AddCounter(name, help, {"job"}).WithLabels({job});
    };
    lag_bytes = gauge("tandem_trainer_stream_lag_bytes",
                      "Bytes of this trainer's part of the stream not consumed yet.");
    lag_seconds = gauge("tandem_trainer_stream_lag_seconds",
                        "How long ago the head of the stream was first seen beyond this "
                        "trainer's read position (0: caught up).");
    records = counter("tandem_trainer_stream_records_total",
                      "Stream records this trainer consumed (this process).");
    bytes = counter("tandem_trainer_stream_bytes_total",
                    "Stream bytes this trainer consumed (this process).");
    files_open = gauge("tandem_trainer_stream_files_open", "Stream files open for reading (0 or 1).");
    files_closed = counter("tandem_trainer_stream_files_closed_total",
                           "Stream files this trainer read to their end after they were closed.");
    files_lost = counter("tandem_trainer_stream_files_lost_total",
                         "Stream files that disappeared before this trainer read them to their end "
                         "(their remaining records were not trained).");
    malformed = counter("tandem_trainer_stream_malformed_records_total",
                        "Malformed stream records skipped (spec.data.skipMalformed).");
    online_auc = gauge("tandem_trainer_stream_online_auc",
                       "Rolling AUC of every rank's newest records, each scored before training "
                       "on it.");
    online_loss = gauge("tandem_trainer_stream_online_loss",
                        "Rolling log loss of the same records.");
    online_records = gauge("tandem_trainer_stream_online_records",
                           "Records in the rolling evaluation window, all ranks.");
  }
};

StreamDriver::StreamDriver(const data::SourceConfig& source, const StreamDriverOptions& options)
    : config_(*source.stream),
      options_(options),
      reader_({.config = *source.stream,
               .num_fields = source.num_fields,
               .skip_malformed = options.skip_malformed,
               .rank = options.rank,
               .world_size = options.world_size}),
      start_(WallSeconds()),
      m_(std::make_unique<Metrics>(options.job)) {
  TANDEM_CHECK(source.stream.has_value());
  batch_.Allocate(reader_.layout(), options_.batch_size);
  window_logits_.assign(static_cast<size_t>(config_.eval_window), 0.f);
  window_labels_.assign(static_cast<size_t>(config_.eval_window), 0.f);
  if (config_.ledger && !options_.checkpoint_dir.empty()) {
    ledger_path_ = (std::filesystem::path(options_.checkpoint_dir) /
                    absl::StrCat("stream-ledger-rank", options_.rank, ".tsv"))
                       .string();
  }
}

StreamDriver::~StreamDriver() {
  if (ledger_fd_ >= 0) ::close(ledger_fd_);
}

absl::Status StreamDriver::Restore(const std::optional<nlohmann::json>& meta, int64_t step) {
  data::StreamPosition pos;
  seconds_before_ = 0;
  if (meta.has_value()) {
    if (!meta->contains("stream")) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the checkpoint of step ", step, " holds no stream position (it was written by a job "
          "reading files, not a stream); use another checkpoint directory or --no-resume"));
    }
    auto parsed = data::StreamPosition::FromJson((*meta)["stream"]);
    if (!parsed.ok())
      return Annotate(parsed.status(), absl::StrCat("checkpoint of step ", step));
    pos = *parsed;
    seconds_before_ = meta->value("streamSeconds", 0.0);
  }
  reader_.Restore(pos);
  committed_ = pos;
  counted_records_ = pos.records;
  counted_bytes_ = pos.bytes;
  counted_files_ = pos.files;
  start_ = WallSeconds();
  if (ledger_path_.empty()) return absl::OkStatus();
  // The ledger keeps the lines of committed steps only: those above `step` were rolled back.
  std::error_code ec;
  std::filesystem::create_directories(options_.checkpoint_dir, ec);
  std::string kept;
  {
    std::ifstream in(ledger_path_);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const int64_t s = std::strtoll(line.c_str(), nullptr, 10);
      if (s <= step) absl::StrAppend(&kept, line, "\n");
    }
  }
  const std::string tmp = ledger_path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc | std::ios::binary);
    out << kept;
    if (!out) return absl::InternalError(absl::StrCat("stream ledger ", tmp, ": write failed"));
  }
  std::filesystem::rename(tmp, ledger_path_, ec);
  if (ec) return absl::InternalError(absl::StrCat("stream ledger ", ledger_path_, ": ", ec.message()));
  ledger_fd_ = ::open(ledger_path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (ledger_fd_ < 0)
    return absl::InternalError(
        absl::StrCat("stream ledger ", ledger_path_, ": ", std::strerror(errno)));
  return absl::OkStatus();
}

absl::StatusOr<const data::Batch*> StreamDriver::NextBatch(const std::atomic<bool>* stop) {
  batch_.Clear();
  refs_.clear();
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(config_.poll_seconds));
  const auto nap = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::min(0.05, config_.poll_seconds / 4)));
  while (true) {
    TANDEM_ASSIGN_OR_RETURN(int added, reader_.Read(&batch_, &refs_));
    if (batch_.size >= batch_.capacity || reader_.finished()) break;
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) break;
    if (Clock::now() >= deadline) break;
    if (added == 0) std::this_thread::sleep_for(nap);
  }
  UpdateCounters();
  return &batch_;
}

void StreamDriver::UpdateCounters() {
  const data::StreamPosition& p = reader_.position();
  m_->records->Inc(static_cast<double>(p.records - counted_records_));
  m_->bytes->Inc(static_cast<double>(p.bytes - counted_bytes_));
  m_->files_closed->Inc(static_cast<double>(p.files - counted_files_));
  m_->files_lost->Inc(static_cast<double>(reader_.files_lost() - counted_lost_));
  m_->malformed->Inc(static_cast<double>(reader_.malformed_skipped() - counted_malformed_));
  counted_records_ = p.records;
  counted_bytes_ = p.bytes;
  counted_files_ = p.files;
  counted_lost_ = reader_.files_lost();
  counted_malformed_ = reader_.malformed_skipped();
  m_->files_open->Set(reader_.file_open() ? 1 : 0);
}

nlohmann::json StreamDriver::CheckpointMetadata() const {
  return {{"stream", committed_.ToJson()}, {"streamSeconds", TrainingSeconds()}};
}

absl::Status StreamDriver::BeforeUpdate(int64_t step) {
  if (ledger_fd_ < 0 || batch_.size == 0) return absl::OkStatus();
  std::string lines;
  for (int i = 0; i < batch_.size; ++i) {
    absl::StrAppend(&lines, step, "\t", refs_[static_cast<size_t>(i)].file, "\t",
                    refs_[static_cast<size_t>(i)].ordinal, "\t", batch_.query_ids[i], "\n");
  }
  // One write: a trainer killed afterwards leaves it in the page cache; Restore cuts it back.
  size_t done = 0;
  while (done < lines.size()) {
    const ssize_t n = ::write(ledger_fd_, lines.data() + done, lines.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(
          absl::StrCat("stream ledger ", ledger_path_, ": ", std::strerror(errno)));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

void StreamDriver::Score(std::span<const float> logits) {
  if (config_.eval_window <= 0) return;
  const size_t n = std::min(logits.size(), static_cast<size_t>(batch_.size));
  for (size_t i = 0; i < n; ++i) {
    window_logits_[static_cast<size_t>(window_next_)] = logits[i];
    window_labels_[static_cast<size_t>(window_next_)] = batch_.targets[i];
    window_next_ = (window_next_ + 1) % config_.eval_window;
    window_size_ = std::min(window_size_ + 1, config_.eval_window);
  }
}

void StreamDriver::AppendEvalState(std::vector<double>* state) const {
  eval::AucAccumulator auc({.bins = kEvalBins, .exact = false, .logits = true});
  double loss = 0;
  const std::span<const float> scores(window_logits_.data(), static_cast<size_t>(window_size_));
  const std::span<const float> labels(window_labels_.data(), static_cast<size_t>(window_size_));
  auc.Add(scores, labels);
  for (int64_t i = 0; i < window_size_; ++i)
    loss += LogLoss(window_logits_[static_cast<size_t>(i)], window_labels_[static_cast<size_t>(i)]);
  state->push_back(loss);
  state->push_back(static_cast<double>(window_size_));
  auc.AppendState(state);
}

StreamDriver::Eval StreamDriver::Evaluate(std::span<const double> summed) {
  Eval e;
  TANDEM_CHECK(summed.size() >= 2);
  e.records = static_cast<int64_t>(summed[1]);
  e.loss = e.records > 0 ? summed[0] / static_cast<double>(e.records) : 0;
  eval::AucAccumulator auc({.bins = kEvalBins, .exact = false, .logits = true});
  auc.SetState(summed.subspan(2));
  e.has_auc = auc.positives() > 0 && auc.negatives() > 0;
  if (e.has_auc) e.auc = auc.Auc();
  if (e.has_auc) m_->online_auc->Set(e.auc);
  m_->online_loss->Set(e.loss);
  m_->online_records->Set(static_cast<double>(e.records));
  return e;
}

double StreamDriver::TrainingSeconds() const { return seconds_before_ + (WallSeconds() - start_); }

bool StreamDriver::TimeLimitReached() const {
  return config_.max_hours > 0 && TrainingSeconds() >= config_.max_hours * 3600;
}

absl::StatusOr<data::StreamReader::Lag> StreamDriver::UpdateLag() {
  TANDEM_ASSIGN_OR_RETURN(data::StreamReader::Lag lag, reader_.MeasureLag());
  m_->lag_bytes->Set(static_cast<double>(lag.bytes));
  m_->lag_seconds->Set(lag.seconds);
  return lag;
}

}  // namespace tandem::trainer
