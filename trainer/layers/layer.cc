#include "trainer/layers/layer.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tandem::trainer {

const char* BlobKindName(BlobKind kind) {
  switch (kind) {
    case BlobKind::kDense: return "dense";
    case BlobKind::kLabel: return "label";
    case BlobKind::kIds: return "ids";
    case BlobKind::kSequenceIds: return "sequence ids";
    case BlobKind::kSequence: return "sequence";
  }
  return "?";
}

std::string BlobDesc::ToString() const {
  return absl::StrCat(BlobKindName(kind), " ", shape.ToString());
}

bool LayerSetup::ExpectInputs(size_t min_count, size_t max_count,
                              std::vector<std::vector<BlobKind>> kinds) {
  if (inputs_.size() < min_count || inputs_.size() > max_count) {
    Error("inputs", min_count == max_count
                        ? absl::StrCat("needs ", min_count, " input(s), got ", inputs_.size())
                        : absl::StrCat("needs ", min_count, " to ", max_count, " inputs, got ",
                                       inputs_.size()));
    return false;
  }
  bool ok = true;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const auto& allowed = kinds[std::min(i, kinds.size() - 1)];
    bool match = false;
    for (BlobKind k : allowed) match |= k == inputs_[i].kind;
    if (!match) {
      std::vector<std::string> names;
      for (BlobKind k : allowed) names.push_back(BlobKindName(k));
      Error(absl::StrCat("inputs[", i, "]"),
            absl::StrCat("input '", config_.inputs.size() > i ? config_.inputs[i] : "?",
                         "' is ", inputs_[i].ToString(), ", expected ",
                         absl::StrJoin(names, " or ")));
      ok = false;
    }
  }
  return ok;
}

}  // namespace tandem::trainer
