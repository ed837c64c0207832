#include "trainer/data/parallel_text_dataset.h"

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status.h"
#include "trainer/data/file_bytes.h"
#include "trainer/data/text_lines.h"

namespace tandem::trainer::data {
namespace {

// A line's two sides; false when it has no tab or an empty side. Comments and blank lines give
// `skip`.
bool SplitLine(std::string_view line, std::string_view* src, std::string_view* tgt, bool* skip) {
  *skip = line.empty() || line.front() == '#';
  if (*skip) return true;
  const size_t tab = line.find('\t');
  if (tab == std::string_view::npos) return false;
  *src = line.substr(0, tab);
  *tgt = line.substr(tab + 1);
  return !src->empty() && !tgt->empty();
}

}  // namespace

Vocabulary Vocabulary::FromCounts(const std::map<std::string, int64_t>& counts,
                                  int64_t max_size) {
  Vocabulary v;
  v.tokens_ = {"<pad>", "<unk>", "<s>", "</s>"};
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  for (const auto& [token, count] : sorted) {
    if (max_size > 0 && v.size() >= max_size) break;
    v.tokens_.push_back(token);
  }
  for (size_t i = 0; i < v.tokens_.size(); ++i) v.ids_[v.tokens_[i]] = static_cast<int32_t>(i);
  return v;
}

int32_t Vocabulary::Id(const std::string& token) const {
  auto it = ids_.find(token);
  // The special tokens' spellings in the text are ordinary tokens, never the specials.
  if (it == ids_.end() || it->second <= kEos) return kUnk;
  return it->second;
}

std::vector<std::string> ParallelTextDataset::Split(std::string_view side, Tokenize tokenize) {
  std::vector<std::string> out;
  if (tokenize == Tokenize::kWords) {
    for (std::string_view t = NextToken(&side); !t.empty(); t = NextToken(&side))
      out.emplace_back(t);
    return out;
  }
  for (size_t i = 0; i < side.size();) {
    size_t n = 1;  // a UTF-8 character: the lead byte and its continuation bytes
    while (i + n < side.size() && (static_cast<unsigned char>(side[i + n]) & 0xC0) == 0x80) ++n;
    out.emplace_back(side.substr(i, n));
    i += n;
  }
  return out;
}

absl::Status ParallelTextDataset::Count(std::string_view text, const std::string& path,
                                        std::map<std::string, int64_t>* src,
                                        std::map<std::string, int64_t>* tgt) {
  ForEachLine(text, [&](int64_t, std::string_view line) {
    std::string_view s, t;
    bool skip = false;
    if (!SplitLine(line, &s, &t, &skip) || skip) return true;  // ParseText reports bad lines
    for (const std::string& tok : Split(s, options_.tokenize)) ++(*src)[tok];
    for (const std::string& tok : Split(t, options_.tokenize)) ++(*tgt)[tok];
    return true;
  });
  return absl::OkStatus();
}

absl::Status ParallelTextDataset::ParseText(std::string_view text, const std::string& path) {
  absl::Status status;
  ForEachLine(text, [&](int64_t line_no, std::string_view line) {
    if (options_.limit > 0 && size() >= options_.limit) return false;
    std::string_view s, t;
    bool skip = false;
    if (!SplitLine(line, &s, &t, &skip)) {
      if (options_.skip_malformed) {
        ++malformed_skipped_;
        return true;
      }
      status = absl::InvalidArgumentError(absl::StrCat(
          path, ":", line_no, ": expected \"source<TAB>target\" with both sides non-empty, got ",
          Quote(line)));
      return false;
    }
    if (skip) return true;
    const std::vector<std::string> st = Split(s, options_.tokenize);
    const std::vector<std::string> tt = Split(t, options_.tokenize);
    if (static_cast<int64_t>(st.size()) > options_.source_length ||
        static_cast<int64_t>(tt.size()) > options_.target_length - 1) {
      ++too_long_;
      return true;
    }
    for (const std::string& tok : st) src_.push_back(src_vocab_.Id(tok));
    for (const std::string& tok : tt) tgt_.push_back(tgt_vocab_.Id(tok));
    src_offsets_.push_back(static_cast<int64_t>(src_.size()));
    tgt_offsets_.push_back(static_cast<int64_t>(tgt_.size()));
    return true;
  });
  return status;
}

absl::StatusOr<std::shared_ptr<const ParallelTextDataset>> ParallelTextDataset::Load(
    const std::vector<std::string>& paths, const Options& options) {
  TANDEM_CHECK_GT(options.source_length, 0);
  TANDEM_CHECK_GT(options.target_length, 1);
  std::shared_ptr<ParallelTextDataset> ds(new ParallelTextDataset());
  ds->options_ = options;
  std::vector<std::string> texts;
  for (const std::string& path : paths) {
    auto file = ReadFileBytes(path);
    if (!file.ok()) return file.status();
    ds->paths_.push_back(path);
    ds->bytes_read_ += file->bytes_on_disk;
    texts.push_back(std::move(file->data));
  }
  std::map<std::string, int64_t> src_counts, tgt_counts;
  if (options.vocab_paths.empty() || options.vocab_paths == paths) {
    for (size_t i = 0; i < paths.size(); ++i)
      TANDEM_RETURN_IF_ERROR(ds->Count(texts[i], paths[i], &src_counts, &tgt_counts));
  } else {
    for (const std::string& path : options.vocab_paths) {
      auto file = ReadFileBytes(path);
      if (!file.ok()) return ::tandem::Annotate(file.status(), "vocabulary source");
      TANDEM_RETURN_IF_ERROR(ds->Count(file->data, path, &src_counts, &tgt_counts));
    }
  }
  ds->src_vocab_ = Vocabulary::FromCounts(src_counts, options.source_vocab_size);
  ds->tgt_vocab_ = Vocabulary::FromCounts(tgt_counts, options.target_vocab_size);
  for (size_t i = 0; i < paths.size(); ++i)
    TANDEM_RETURN_IF_ERROR(ds->ParseText(texts[i], paths[i]));
  ds->layout_.sequence_length = options.target_length;
  ds->layout_.source_length = options.source_length;
  return std::shared_ptr<const ParallelTextDataset>(std::move(ds));
}

absl::StatusOr<std::shared_ptr<const ParallelTextDataset>> ParallelTextDataset::Parse(
    const std::string& text, const std::string& vocab_text, const std::string& path,
    const Options& options) {
  TANDEM_CHECK_GT(options.source_length, 0);
  TANDEM_CHECK_GT(options.target_length, 1);
  std::shared_ptr<ParallelTextDataset> ds(new ParallelTextDataset());
  ds->options_ = options;
  ds->paths_.push_back(path);
  std::map<std::string, int64_t> src_counts, tgt_counts;
  TANDEM_RETURN_IF_ERROR(
      ds->Count(vocab_text.empty() ? text : vocab_text, path, &src_counts, &tgt_counts));
  ds->src_vocab_ = Vocabulary::FromCounts(src_counts, options.source_vocab_size);
  ds->tgt_vocab_ = Vocabulary::FromCounts(tgt_counts, options.target_vocab_size);
  TANDEM_RETURN_IF_ERROR(ds->ParseText(text, path));
  ds->layout_.sequence_length = options.target_length;
  ds->layout_.source_length = options.source_length;
  return std::shared_ptr<const ParallelTextDataset>(std::move(ds));
}

std::vector<int32_t> ParallelTextDataset::Source(int64_t i) const {
  return {src_.begin() + src_offsets_[i], src_.begin() + src_offsets_[i + 1]};
}

std::vector<int32_t> ParallelTextDataset::Target(int64_t i) const {
  return {tgt_.begin() + tgt_offsets_[i], tgt_.begin() + tgt_offsets_[i + 1]};
}

int64_t ParallelTextDataset::ExampleTokens(int64_t i) const {
  return (src_offsets_[i + 1] - src_offsets_[i]) + (tgt_offsets_[i + 1] - tgt_offsets_[i]) + 1;
}

void ParallelTextDataset::Append(int64_t i, Batch* batch) const {
  TANDEM_DCHECK(batch->size < batch->capacity);
  const int64_t row = batch->size;
  const int64_t ls = src_offsets_[i + 1] - src_offsets_[i];
  const int64_t lt = tgt_offsets_[i + 1] - tgt_offsets_[i];
  const int64_t S = options_.source_length, T = options_.target_length;
  int32_t* s = batch->source_tokens.data() + row * S;
  std::fill(s, s + S, Vocabulary::kPad);
  std::copy(src_.begin() + src_offsets_[i], src_.begin() + src_offsets_[i + 1], s);
  batch->source_lengths[row] = static_cast<int32_t>(ls);
  int32_t* in = batch->tokens.data() + row * T;
  int32_t* out = batch->token_targets.data() + row * T;
  std::fill(in, in + T, Vocabulary::kPad);
  std::fill(out, out + T, Vocabulary::kPad);
  in[0] = Vocabulary::kBos;
  std::copy(tgt_.begin() + tgt_offsets_[i], tgt_.begin() + tgt_offsets_[i + 1], in + 1);
  std::copy(tgt_.begin() + tgt_offsets_[i], tgt_.begin() + tgt_offsets_[i + 1], out);
  out[lt] = Vocabulary::kEos;
  batch->lengths[row] = static_cast<int32_t>(lt + 1);
  ++batch->size;
}

std::string ParallelTextDataset::Describe() const {
  std::string files;
  for (const std::string& p : paths_) absl::StrAppend(&files, files.empty() ? "" : " + ", p);
  return absl::StrCat("parallel-text ", files, ", ", size(), " pairs (", too_long_,
                      " longer than the lengths dropped), vocabularies ", src_vocab_.size(), " / ",
                      tgt_vocab_.size());
}

}  // namespace tandem::trainer::data
