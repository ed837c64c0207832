// Parallel text for sequence-to-sequence models: one pair per line, "source<TAB>target", in text
// files (gzip or plain). Lines starting with '#' and empty lines are skipped.
//
//   tokenize: chars (default; each UTF-8 character is a token, spaces included) or words
//             (whitespace-separated tokens, the form of a pre-tokenised corpus).
//   Vocabularies: one for each side, built from `vocab_paths` (the training files: a test source
//   uses its job's training files, so both share ids): the special tokens <pad>=0, <unk>=1,
//   <s>=2, </s>=3, then the tokens by descending count (ties by byte order), cut at vocab_size
//   entries in all; rarer tokens (and tokens unseen in training) read as <unk>.
//   Lengths: a pair whose source has more than sourceLength tokens, or whose target has more
//   than targetLength - 1 (the decoder also reads <s> and predicts </s>), is dropped and counted
//   (Describe() says how many): the usual length filter of NMT corpora. An empty side is malformed.
//
// Batches: source_tokens [N, sourceLength] with source_lengths; the target side as the token
// layout's tokens = <s> y_1 .. y_m (decoder input, teacher forcing), token_targets = y_1 .. y_m
// </s> and lengths = m + 1. ExampleTokens(i) = source + target tokens, for bucketing.
// A line without a tab, or with an empty side, is malformed: an error naming the file and line,
// or with skip_malformed, dropped and counted.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/data/dataset.h"

namespace tandem::trainer::data {

// A token <-> id map with the four special tokens first.
class Vocabulary {
 public:
  static constexpr int32_t kPad = 0, kUnk = 1, kBos = 2, kEos = 3;
  // From token counts: specials, then by descending count (ties: byte order), `max_size` in all
  // (0: no cap).
  static Vocabulary FromCounts(const std::map<std::string, int64_t>& counts, int64_t max_size);
  int32_t Id(const std::string& token) const;  // kUnk when unknown
  const std::string& Token(int32_t id) const { return tokens_[id]; }
  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }

 private:
  std::vector<std::string> tokens_;
  std::map<std::string, int32_t> ids_;
};

enum class Tokenize { kChars, kWords };

class ParallelTextDataset : public Dataset {
 public:
  struct Options {
    int source_length = 50;  // REQUIRES: > 0
    int target_length = 50;  // REQUIRES: > 1
    int64_t source_vocab_size = 0;  // 0: every token of the vocabulary files
    int64_t target_vocab_size = 0;
    Tokenize tokenize = Tokenize::kChars;
    std::vector<std::string> vocab_paths;  // empty: the dataset's own files
    int64_t limit = 0;
    bool skip_malformed = false;
  };
  static absl::StatusOr<std::shared_ptr<const ParallelTextDataset>> Load(
      const std::vector<std::string>& paths, const Options& options);
  // In-memory texts as if they were files (tests): `text` is the data, `vocab_text` builds the
  // vocabularies (empty: `text`).
  static absl::StatusOr<std::shared_ptr<const ParallelTextDataset>> Parse(
      const std::string& text, const std::string& vocab_text, const std::string& path,
      const Options& options);

  int64_t size() const override { return static_cast<int64_t>(src_offsets_.size()) - 1; }
  const BatchLayout& layout() const override { return layout_; }
  void Append(int64_t i, Batch* batch) const override;
  std::string Describe() const override;
  int64_t ExampleTokens(int64_t i) const override;

  const Vocabulary& source_vocab() const { return src_vocab_; }
  const Vocabulary& target_vocab() const { return tgt_vocab_; }
  int64_t dropped_too_long() const { return too_long_; }
  // Example i's ids (without specials).
  std::vector<int32_t> Source(int64_t i) const;
  std::vector<int32_t> Target(int64_t i) const;

  // Splits a line's side into tokens.
  static std::vector<std::string> Split(std::string_view side, Tokenize tokenize);

 private:
  ParallelTextDataset() = default;
  // Counts the tokens of both sides of every well-formed line (vocabulary building).
  absl::Status Count(std::string_view text, const std::string& path,
                     std::map<std::string, int64_t>* src, std::map<std::string, int64_t>* tgt);
  absl::Status ParseText(std::string_view text, const std::string& path);

  Options options_;
  std::vector<std::string> paths_;
  BatchLayout layout_;
  Vocabulary src_vocab_, tgt_vocab_;
  std::vector<int32_t> src_, tgt_;
  std::vector<int64_t> src_offsets_{0}, tgt_offsets_{0};
  int64_t too_long_ = 0;
};

}  // namespace tandem::trainer::data
