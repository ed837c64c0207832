// The `spec.data` section of a TrainingJob: where the training and test examples come from and how
// they are batched. Parsed from the nlohmann::json subtree (YAML goes through YamlToJson first), so
// the same code serves `tandem validate`, `tandem-trainer JOB.yaml` and the operator.
//
//   TANDEM_ASSIGN_OR_RETURN(DataConfig data, ParseDataConfig(job["spec"]["data"]));
//   TANDEM_ASSIGN_OR_RETURN(auto train, LoadDataset(data.train, data, "train"));
//
// Every problem is reported, each with its full field path:
//   spec.data.train.images: file not found: /x.gz
//   spec.data.batchSize: must be > 0, got -3
// The schema is documented in docs/data.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem::trainer::data {

// Default locations: the Debian package `dataset-fashion-mnist`.
inline constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

enum class DataFormat {
  kIdx,     // IDX images + labels (gzip or plain), e.g. Fashion-MNIST
  kLibsvm,  // sparse click logs: `label [qid:Q] field:id:value ...` (docs/data.md)
  kTokens,  // token-id streams or sequences for language models
  kSyntheticCtr,  // click log generated in memory from a known model (synthetic_ctr_dataset.h)
  kParallelText,  // "source<TAB>target" pairs for sequence-to-sequence (parallel_text_dataset.h)
};
const char* DataFormatName(DataFormat format);

// How a token file is cut into examples.
enum class TokenMode {
  kStream,  // one long stream; windows of sequenceLength inputs, targets shifted by one
  kLines,   // one sequence per line, truncated to sequenceLength; targets shifted by one
};

// How the files of a stream are dealt to the trainers.
enum class StreamSplit {
  kRecord,  // every trainer reads every file and takes record k of a file when k % W == rank
  kFile,    // a file belongs to one trainer: FNV-1a(file name) % W == rank
};

// `spec.data.train.stream`: an append-only directory of libsvm record files that the trainers
// follow (docs/streaming.md). Files are read in name order; only complete lines (up to the last
// newline) are consumed; a file is closed when a later file exists, the end marker exists, or
// (close_idle_seconds > 0) it has not grown for that long.
struct StreamConfig {
  std::string dir;                 // required
  std::string pattern = "*";       // fnmatch(3) on file names; dot files and end_marker never match
  double poll_seconds = 1;         // how often the directory and the open file are re-read, (0, 3600]
  double close_idle_seconds = 0;   // 0: idle time never closes a file
  std::string end_marker;          // a file name in dir whose presence ends the stream ("": none)
  StreamSplit split = StreamSplit::kRecord;
  int64_t max_steps = 0;           // stop (successfully) after this many steps in total; 0: none
  double max_hours = 0;            // stop (successfully) after this long in this process; 0: none
  int64_t eval_window = 10000;     // rolling (progressive) evaluation: records in the window; 0: off
  int64_t eval_interval_steps = 100;
  bool ledger = false;             // write every committed record to <checkpoint dir>/stream-ledger.tsv
};

// One source of examples (`spec.data.train` or `spec.data.test`).
struct SourceConfig {
  DataFormat format = DataFormat::kIdx;
  // kIdx: the image and label files. Default: Fashion-MNIST's train or t10k files.
  std::string images;
  std::string labels;
  // kLibsvm, kTokens: the files, read in order and concatenated (gzip or plain).
  std::vector<std::string> paths;
  // Use only the first `limit` examples of the source (0 = all). Handy for smoke runs.
  int64_t limit = 0;
  // kLibsvm: number of feature fields; every record's field index must be < num_fields.
  int num_fields = 1;
  // kTokens: tokens per example (> 0), vocabulary size (0 = unchecked; else ids < vocab_size).
  int sequence_length = 0;
  int64_t vocab_size = 0;
  TokenMode token_mode = TokenMode::kStream;
  // kSyntheticCtr: examples to generate, Zipf exponent of the ids, model seed; test sources draw
  // the held-out stream of the same model.
  int64_t examples = 0;
  double zipf = 1.2;
  uint64_t synthetic_seed = 1;
  bool synthetic_test = false;
  bool synthetic_pairs = false;  // records are (left, right) pairs for a rank cost
  // kLibsvm training source only: a followed directory instead of `paths` (no passes).
  std::optional<StreamConfig> stream;
  // kParallelText: tokens per source (sourceLength) and per target (sequence_length, from
  // targetLength: the decoder's <s> y / y </s>), vocabulary caps (0: all), tokenisation, and the
  // files the vocabularies are built from (the job's training files; set by the parser).
  int source_length = 0;
  int64_t source_vocab_size = 0;
  int64_t target_vocab_size = 0;
  bool tokenize_words = false;
  std::vector<std::string> vocab_paths;
};

struct DataConfig {
  SourceConfig train;
  // Held-out set evaluated each pass. Absent when the job has no `test` source and the train
  // source is not the default Fashion-MNIST one.
  std::optional<SourceConfig> test;
  // Examples per batch per trainer (the global batch is batch_size * world size). Default 64.
  int batch_size = 64;
  // Reshuffle the training examples every pass (test data is never shuffled). Default true.
  bool shuffle = true;
  // Seed for the shuffle; the order of pass p depends only on (seed, p). Default 1.
  uint64_t seed = 1;
  // Batches prepared ahead by the background thread (0 = read on the caller's thread). Default 2.
  int prefetch = 2;
  // Skip (and count) malformed records instead of failing. Default false. IDX files are always
  // validated as a whole: a damaged IDX file is an error either way.
  bool skip_malformed = false;
  // Order each rank's examples so that a batch holds examples of similar length (sequence data:
  // Dataset::ExampleTokens), with the batches' order shuffled; padding stays small. Default false.
  bool bucket_by_length = false;
  // When > 0: the batch size in examples is this many tokens over the training set's mean tokens
  // per example (bucketing keeps each batch near it), instead of batchSize. Default 0.
  int64_t batch_tokens = 0;
};

struct ParseOptions {
  // Field path of the subtree, used as the prefix of every error.
  std::string path = "spec.data";
  // Check that the named files exist and are readable. Off where the files live elsewhere (the
  // operator validating a manifest whose data is mounted in the pods).
  bool check_files = true;
};

// Parses `spec.data`. `data` may be null/absent (every default applies). On error the status is
// InvalidArgument and its message lists every problem, one per line, each with its field path.
absl::StatusOr<DataConfig> ParseDataConfig(const nlohmann::json& data,
                                           const ParseOptions& options = {});

// The same, returning the problems one per entry (empty when valid); `config` is filled as far as
// it could be parsed.
std::vector<std::string> ParseDataConfig(const nlohmann::json& data, const ParseOptions& options,
                                         DataConfig* config);

}  // namespace tandem::trainer::data
