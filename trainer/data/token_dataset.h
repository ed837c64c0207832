// Token-id sequences for language models, in text files (gzip or plain) of whitespace-separated
// non-negative integer ids. Two layouts (spec.data.train.mode):
//
//   stream (default): the lines of all files form one stream t[0..T). Example i predicts
//     t[iL+1 .. iL+L] from t[iL .. iL+L-1], L = sequenceLength: consecutive windows that overlap
//     by one token, as in the seed's PTB language model. The last window may be shorter.
//   lines: each non-empty line is one sequence; its first min(n-1, L) tokens are the inputs and
//     the tokens after them the targets. A line needs at least 2 tokens.
//
// Batches get tokens and token_targets [batch, L] (padded with 0 after lengths[i]) and lengths.
// A line with a token that is not an integer in [0, vocabSize) (vocabSize 0: [0, 2^31)) is
// malformed: an error naming the file and line, or, with skip_malformed, dropped and counted.
// Lines starting with '#' are comments.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/data/data_config.h"
#include "trainer/data/dataset.h"

namespace tandem::trainer::data {

class TokenDataset : public Dataset {
 public:
  struct Options {
    int sequence_length = 35;  // REQUIRES: > 0
    int64_t vocab_size = 0;    // 0 = unchecked
    TokenMode mode = TokenMode::kStream;
    int64_t limit = 0;         // keep only the first `limit` examples (0 = all)
    bool skip_malformed = false;
  };
  static absl::StatusOr<std::shared_ptr<const TokenDataset>> Load(
      const std::vector<std::string>& paths, const Options& options);
  // Parses in-memory text as if it were the file `path` (tests).
  static absl::StatusOr<std::shared_ptr<const TokenDataset>> Parse(const std::string& text,
                                                                   const std::string& path,
                                                                   const Options& options);

  int64_t size() const override { return count_; }
  const BatchLayout& layout() const override { return layout_; }
  void Append(int64_t i, Batch* batch) const override;
  std::string Describe() const override;
  int64_t num_tokens() const { return static_cast<int64_t>(tokens_.size()); }

 private:
  TokenDataset() = default;
  absl::Status ParseText(std::string_view text, const std::string& path);
  void Finish();

  Options options_;
  std::vector<std::string> paths_;
  BatchLayout layout_;
  std::vector<int32_t> tokens_;
  std::vector<int64_t> line_offsets_{0};  // lines mode: each sequence's range in tokens_
  int64_t count_ = 0;
};

}  // namespace tandem::trainer::data
