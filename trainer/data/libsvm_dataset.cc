#include "trainer/data/libsvm_dataset.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "trainer/data/file_bytes.h"
#include "trainer/data/text_lines.h"

namespace tandem::trainer::data {

absl::StatusOr<std::shared_ptr<const LibsvmDataset>> LibsvmDataset::Load(
    const std::vector<std::string>& paths, int num_fields, int64_t limit, bool skip_malformed) {
  TANDEM_CHECK(num_fields >= 1 && num_fields <= 65535) << num_fields;
  std::shared_ptr<LibsvmDataset> ds(new LibsvmDataset());
  ds->layout_.has_targets = true;
  ds->layout_.num_fields = num_fields;
  bool full = false;
  for (const std::string& path : paths) {
    auto file = ReadFileBytes(path);
    if (!file.ok()) return file.status();
    ds->paths_.push_back(path);
    ds->bytes_read_ += file->bytes_on_disk;
    absl::Status s = ds->ParseText(file->data, path, limit, skip_malformed, &full);
    if (!s.ok()) return s;
    if (full) break;
  }
  return std::shared_ptr<const LibsvmDataset>(std::move(ds));
}

absl::StatusOr<std::shared_ptr<const LibsvmDataset>> LibsvmDataset::Parse(
    const std::string& text, const std::string& path, int num_fields, bool skip_malformed) {
  TANDEM_CHECK(num_fields >= 1 && num_fields <= 65535) << num_fields;
  std::shared_ptr<LibsvmDataset> ds(new LibsvmDataset());
  ds->layout_.has_targets = true;
  ds->layout_.num_fields = num_fields;
  ds->paths_.push_back(path);
  bool full = false;
  absl::Status s = ds->ParseText(text, path, 0, skip_malformed, &full);
  if (!s.ok()) return s;
  return std::shared_ptr<const LibsvmDataset>(std::move(ds));
}

absl::Status LibsvmDataset::ParseText(std::string_view text, const std::string& path,
                                      int64_t limit, bool skip_malformed, bool* full) {
  absl::Status status;
  const int num_fields = layout_.num_fields;
  struct Entry {
    uint16_t field;
    uint64_t id;
    float value;
  };
  std::vector<Entry> entries;
  ForEachLine(text, [&](int64_t line_no, std::string_view line) {
    std::string_view rest = line;
    std::string_view first = NextToken(&rest);
    if (first.empty() || first.front() == '#') return true;  // blank or comment
    std::string error;
    float label = 0;
    int64_t qid = 0;
    entries.clear();
    if (!ParseNumber(first, &label) || !std::isfinite(label)) {
      error = absl::StrCat("bad label ", Quote(first), " (expected a finite number)");
    }
    for (std::string_view tok = NextToken(&rest); error.empty() && !tok.empty();
         tok = NextToken(&rest)) {
      if (tok.front() == '#') break;  // trailing comment
      if (tok.substr(0, 4) == "qid:") {
        if (!ParseNumber(tok.substr(4), &qid)) error = absl::StrCat("bad query id ", Quote(tok));
        continue;
      }
      const size_t c1 = tok.find(':');
      const size_t c2 = c1 == std::string_view::npos ? c1 : tok.find(':', c1 + 1);
      if (c1 == std::string_view::npos || (c2 != std::string_view::npos &&
                                           tok.find(':', c2 + 1) != std::string_view::npos)) {
        error = absl::StrCat("bad entry ", Quote(tok), " (expected field:id:value or id:value)");
        break;
      }
      Entry e{0, 0, 0};
      std::string_view id_text, value_text;
      if (c2 == std::string_view::npos) {
        id_text = tok.substr(0, c1);
        value_text = tok.substr(c1 + 1);
      } else {
        int field = 0;
        if (!ParseNumber(tok.substr(0, c1), &field) || field < 0 || field >= num_fields) {
          error = absl::StrCat("bad field in ", Quote(tok), " (fields are 0 to ", num_fields - 1,
                               ", numFields is ", num_fields, ")");
          break;
        }
        e.field = static_cast<uint16_t>(field);
        id_text = tok.substr(c1 + 1, c2 - c1 - 1);
        value_text = tok.substr(c2 + 1);
      }
      if (!ParseNumber(id_text, &e.id)) {
        error = absl::StrCat("bad id in ", Quote(tok), " (expected an unsigned 64-bit integer)");
        break;
      }
      if (!ParseNumber(value_text, &e.value) || !std::isfinite(e.value)) {
        error = absl::StrCat("bad value in ", Quote(tok), " (expected a finite number)");
        break;
      }
      entries.push_back(e);
    }
    if (!error.empty()) {
      if (skip_malformed) {
        ++malformed_skipped_;
        return true;
      }
      status = absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": ", error));
      return false;
    }
    // Entries grouped by field (stable), so a batch is filled in one scan.
    std::stable_sort(entries.begin(), entries.end(),
                     [](const Entry& a, const Entry& b) { return a.field < b.field; });
    for (const Entry& e : entries) {
      fields_.push_back(e.field);
      ids_.push_back(e.id);
      values_.push_back(e.value);
    }
    offsets_.push_back(static_cast<int64_t>(ids_.size()));
    labels_.push_back(label);
    qids_.push_back(qid);
    if (limit > 0 && static_cast<int64_t>(labels_.size()) >= limit) {
      *full = true;
      return false;
    }
    return true;
  });
  return status;
}

void LibsvmDataset::Append(int64_t i, Batch* batch) const {
  TANDEM_DCHECK(i >= 0 && i < size());
  const size_t row = static_cast<size_t>(batch->size);
  batch->targets[row] = labels_[static_cast<size_t>(i)];
  batch->query_ids[row] = qids_[static_cast<size_t>(i)];
  const size_t begin = static_cast<size_t>(offsets_[static_cast<size_t>(i)]);
  const size_t end = static_cast<size_t>(offsets_[static_cast<size_t>(i) + 1]);
  for (size_t k = begin; k < end; ++k) {
    SparseField& f = batch->fields[fields_[k]];
    f.ids.push_back(ids_[k]);
    f.values.push_back(values_[k]);
  }
  for (SparseField& f : batch->fields) f.offsets.push_back(static_cast<int64_t>(f.ids.size()));
  ++batch->size;
}

std::string LibsvmDataset::Describe() const {
  std::string files;
  for (const auto& p : paths_) absl::StrAppend(&files, files.empty() ? "" : ", ", p);
  return absl::StrCat("libsvm ", files, ": ", size(), " records, ", ids_.size(), " entries in ",
                      layout_.num_fields, " fields",
                      malformed_skipped_ > 0 ? absl::StrCat(", ", malformed_skipped_,
                                                            " malformed skipped")
                                             : "");
}

}  // namespace tandem::trainer::data
