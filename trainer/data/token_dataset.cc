#include "trainer/data/token_dataset.h"

#include <algorithm>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "trainer/data/file_bytes.h"
#include "trainer/data/text_lines.h"

namespace tandem::trainer::data {

absl::StatusOr<std::shared_ptr<const TokenDataset>> TokenDataset::Load(
    const std::vector<std::string>& paths, const Options& options) {
  TANDEM_CHECK_GT(options.sequence_length, 0);
  std::shared_ptr<TokenDataset> ds(new TokenDataset());
  ds->options_ = options;
  for (const std::string& path : paths) {
    auto file = ReadFileBytes(path);
    if (!file.ok()) return file.status();
    ds->paths_.push_back(path);
    ds->bytes_read_ += file->bytes_on_disk;
    absl::Status s = ds->ParseText(file->data, path);
    if (!s.ok()) return s;
  }
  ds->Finish();
  return std::shared_ptr<const TokenDataset>(std::move(ds));
}

absl::StatusOr<std::shared_ptr<const TokenDataset>> TokenDataset::Parse(const std::string& text,
                                                                        const std::string& path,
                                                                        const Options& options) {
  TANDEM_CHECK_GT(options.sequence_length, 0);
  std::shared_ptr<TokenDataset> ds(new TokenDataset());
  ds->options_ = options;
  ds->paths_.push_back(path);
  absl::Status s = ds->ParseText(text, path);
  if (!s.ok()) return s;
  ds->Finish();
  return std::shared_ptr<const TokenDataset>(std::move(ds));
}

absl::Status TokenDataset::ParseText(std::string_view text, const std::string& path) {
  absl::Status status;
  const int64_t vocab =
      options_.vocab_size > 0 ? options_.vocab_size : std::numeric_limits<int32_t>::max();
  const bool lines = options_.mode == TokenMode::kLines;
  ForEachLine(text, [&](int64_t line_no, std::string_view line) {
    std::string_view rest = line;
    const size_t start = tokens_.size();
    std::string error;
    int64_t n = 0;
    for (std::string_view tok = NextToken(&rest); !tok.empty(); tok = NextToken(&rest)) {
      if (n == 0 && tok.front() == '#') return true;  // comment line
      int64_t id = 0;
      if (!ParseNumber(tok, &id) || id < 0 || id >= vocab) {
        error = options_.vocab_size > 0
                    ? absl::StrCat("bad token ", Quote(tok), " (expected an integer in [0, ",
                                   options_.vocab_size, "), vocabSize is ", options_.vocab_size,
                                   ")")
                    : absl::StrCat("bad token ", Quote(tok), " (expected a non-negative integer)");
        break;
      }
      tokens_.push_back(static_cast<int32_t>(id));
      ++n;
    }
    if (error.empty() && lines && n == 1) error = "a sequence needs at least 2 tokens, found 1";
    if (!error.empty()) {
      tokens_.resize(start);  // the whole line is dropped
      if (options_.skip_malformed) {
        ++malformed_skipped_;
        return true;
      }
      status = absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": ", error));
      return false;
    }
    if (lines && n > 0) line_offsets_.push_back(static_cast<int64_t>(tokens_.size()));
    return true;
  });
  return status;
}

void TokenDataset::Finish() {
  const int64_t L = options_.sequence_length;
  if (options_.mode == TokenMode::kLines) {
    count_ = static_cast<int64_t>(line_offsets_.size()) - 1;
  } else {
    const int64_t pairs = std::max<int64_t>(0, static_cast<int64_t>(tokens_.size()) - 1);
    count_ = (pairs + L - 1) / L;
  }
  if (options_.limit > 0) count_ = std::min(count_, options_.limit);
  layout_.sequence_length = static_cast<int>(L);
}

void TokenDataset::Append(int64_t i, Batch* batch) const {
  TANDEM_DCHECK(i >= 0 && i < count_);
  const int64_t L = options_.sequence_length;
  int64_t begin, length;
  if (options_.mode == TokenMode::kLines) {
    begin = line_offsets_[static_cast<size_t>(i)];
    length = std::min(L, line_offsets_[static_cast<size_t>(i) + 1] - begin - 1);
  } else {
    begin = i * L;
    length = std::min(L, static_cast<int64_t>(tokens_.size()) - 1 - begin);
  }
  const size_t row = static_cast<size_t>(batch->size) * static_cast<size_t>(L);
  int32_t* in = batch->tokens.data() + row;
  int32_t* out = batch->token_targets.data() + row;
  const int32_t* src = tokens_.data() + begin;
  std::copy(src, src + length, in);
  std::copy(src + 1, src + 1 + length, out);
  std::fill(in + length, in + L, 0);
  std::fill(out + length, out + L, 0);
  batch->lengths[static_cast<size_t>(batch->size)] = static_cast<int32_t>(length);
  ++batch->size;
}

std::string TokenDataset::Describe() const {
  std::string files;
  for (const auto& p : paths_) absl::StrAppend(&files, files.empty() ? "" : ", ", p);
  return absl::StrCat("tokens ", files, ": ", tokens_.size(), " tokens, ", count_,
                      " sequences of up to ", options_.sequence_length,
                      options_.mode == TokenMode::kLines ? " (lines)" : " (stream)",
                      malformed_skipped_ > 0
                          ? absl::StrCat(", ", malformed_skipped_, " malformed lines skipped")
                          : "");
}

}  // namespace tandem::trainer::data
