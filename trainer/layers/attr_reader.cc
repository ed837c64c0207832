#include "trainer/layers/attr_reader.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tandem::trainer {
namespace {

std::string RangeText(int64_t min, int64_t max) {
  if (max == AttrReader::kNoMax) return absl::StrCat("must be >= ", min);
  if (min == AttrReader::kNoMin) return absl::StrCat("must be <= ", max);
  return absl::StrCat("must be in [", min, ", ", max, "]");
}

}  // namespace

const nlohmann::json* AttrReader::Find(const std::string& field) {
  read_.insert(field);
  if (!attrs_.is_object()) return nullptr;
  auto it = attrs_.find(field);
  if (it == attrs_.end() || it->is_null()) return nullptr;
  return &*it;
}

int64_t AttrReader::Int(const std::string& field, int64_t def, int64_t min, int64_t max) {
  const nlohmann::json* v = Find(field);
  int64_t value = def;
  if (v != nullptr) {
    if (v->is_number_integer()) {
      value = v->get<int64_t>();
    } else if (v->is_number_float() && v->get<double>() == static_cast<int64_t>(v->get<double>())) {
      value = static_cast<int64_t>(v->get<double>());
    } else {
      Error(field, absl::StrCat("must be an integer, got ", v->dump()));
      return def;
    }
    if (value < min || value > max) {
      Error(field, absl::StrCat(RangeText(min, max), ", got ", value));
      return def;
    }
  }
  resolved_[field] = value;
  return value;
}

int64_t AttrReader::RequiredInt(const std::string& field, int64_t min, int64_t max) {
  if (Find(field) == nullptr) {
    Error(field, "is required");
    return min == kNoMin ? 0 : min;
  }
  return Int(field, 0, min, max);
}

double AttrReader::Float(const std::string& field, double def, double min, double max) {
  const nlohmann::json* v = Find(field);
  double value = def;
  if (v != nullptr) {
    if (!v->is_number()) {
      Error(field, absl::StrCat("must be a number, got ", v->dump()));
      return def;
    }
    value = v->get<double>();
    if (value < min || value > max) {
      Error(field, absl::StrCat("must be in [", min, ", ", max, "], got ", value));
      return def;
    }
  }
  resolved_[field] = value;
  return value;
}

bool AttrReader::Bool(const std::string& field, bool def) {
  const nlohmann::json* v = Find(field);
  bool value = def;
  if (v != nullptr) {
    if (!v->is_boolean()) {
      Error(field, absl::StrCat("must be true or false, got ", v->dump()));
      return def;
    }
    value = v->get<bool>();
  }
  resolved_[field] = value;
  return value;
}

std::string AttrReader::Enum(const std::string& field, const std::string& def,
                             const std::vector<std::string>& allowed) {
  const nlohmann::json* v = Find(field);
  std::string value = def;
  if (v != nullptr) {
    if (!v->is_string()) {
      Error(field, absl::StrCat("must be a string, got ", v->dump()));
      return def;
    }
    value = v->get<std::string>();
    bool found = false;
    for (const auto& a : allowed) found |= a == value;
    if (!found) {
      Error(field, absl::StrCat("must be one of ", absl::StrJoin(allowed, ", "), ", got \"",
                                value, "\""));
      return def;
    }
  }
  resolved_[field] = value;
  return value;
}

std::pair<int64_t, int64_t> AttrReader::IntPair(const std::string& field, int64_t def,
                                                int64_t min) {
  const nlohmann::json* v = Find(field);
  std::pair<int64_t, int64_t> value{def, def};
  if (v != nullptr) {
    if (v->is_number_integer()) {
      value = {v->get<int64_t>(), v->get<int64_t>()};
    } else if (v->is_array() && v->size() == 2 && (*v)[0].is_number_integer() &&
               (*v)[1].is_number_integer()) {
      value = {(*v)[0].get<int64_t>(), (*v)[1].get<int64_t>()};
    } else {
      Error(field, absl::StrCat("must be an integer or [height, width], got ", v->dump()));
      return {def, def};
    }
    if (value.first < min || value.second < min) {
      Error(field, absl::StrCat("must be >= ", min, ", got ", v->dump()));
      return {def, def};
    }
  }
  // Resolved form: a single integer when square, so `5` and `[5, 5]` compare equal.
  if (value.first == value.second) {
    resolved_[field] = value.first;
  } else {
    resolved_[field] = {value.first, value.second};
  }
  return value;
}

void AttrReader::CheckNoUnknownFields() {
  if (!attrs_.is_object()) return;
  for (auto it = attrs_.begin(); it != attrs_.end(); ++it) {
    if (read_.count(it.key()) == 0) {
      std::vector<std::string> known(read_.begin(), read_.end());
      Error(it.key(), absl::StrCat("unknown field (known: ", absl::StrJoin(known, ", "), ")"));
    }
  }
}

}  // namespace tandem::trainer
