#include "operator/kube/selector.h"

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "operator/kube/resource.h"

namespace tandem::kube {
namespace {

// Splits on commas that are not inside parentheses.
std::vector<std::string> SplitTop(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  for (char c : text) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

bool ValidLabelKey(absl::string_view k) {
  if (k.empty() || k.size() > 316) return false;
  for (char c : k) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
          c == '/'))
      return false;
  }
  return true;
}

std::string FieldString(const nlohmann::json& object, const std::string& path) {
  const nlohmann::json* v = FieldAt(object, path);
  if (v == nullptr || v->is_null()) return "";
  if (v->is_string()) return v->get<std::string>();
  if (v->is_boolean()) return v->get<bool>() ? "true" : "false";
  return v->dump();
}

}  // namespace

absl::StatusOr<LabelSelector> LabelSelector::Parse(const std::string& text) {
  LabelSelector sel;
  sel.text_ = text;
  std::string trimmed(absl::StripAsciiWhitespace(text));
  if (trimmed.empty()) return sel;
  for (std::string part : SplitTop(trimmed)) {
    std::string p(absl::StripAsciiWhitespace(part));
    auto bad = [&](const char* why) {
      return absl::InvalidArgumentError(
          absl::StrCat("labelSelector '", text, "': requirement '", p, "': ", why));
    };
    if (p.empty()) return bad("empty requirement");
    Req r;
    size_t pos;
    if (p[0] == '!') {
      r.key = std::string(absl::StripAsciiWhitespace(p.substr(1)));
      r.op = Op::kNotExists;
    } else if ((pos = p.find("!=")) != std::string::npos) {
      r.key = std::string(absl::StripAsciiWhitespace(p.substr(0, pos)));
      r.op = Op::kNe;
      r.values.push_back(std::string(absl::StripAsciiWhitespace(p.substr(pos + 2))));
    } else if ((pos = p.find("==")) != std::string::npos) {
      r.key = std::string(absl::StripAsciiWhitespace(p.substr(0, pos)));
      r.op = Op::kEq;
      r.values.push_back(std::string(absl::StripAsciiWhitespace(p.substr(pos + 2))));
    } else if ((pos = p.find('=')) != std::string::npos) {
      r.key = std::string(absl::StripAsciiWhitespace(p.substr(0, pos)));
      r.op = Op::kEq;
      r.values.push_back(std::string(absl::StripAsciiWhitespace(p.substr(pos + 1))));
    } else if ((pos = p.find(" notin ")) != std::string::npos ||
               (pos = p.find(" in ")) != std::string::npos) {
      bool notin = p.compare(pos, 7, " notin ") == 0;
      r.key = std::string(absl::StripAsciiWhitespace(p.substr(0, pos)));
      r.op = notin ? Op::kNotIn : Op::kIn;
      std::string set(absl::StripAsciiWhitespace(p.substr(pos + (notin ? 7 : 4))));
      if (set.size() < 2 || set.front() != '(' || set.back() != ')') return bad("expected (v1,v2)");
      for (absl::string_view v : absl::StrSplit(set.substr(1, set.size() - 2), ',')) {
        r.values.push_back(std::string(absl::StripAsciiWhitespace(v)));
      }
    } else {
      r.key = p;
      r.op = Op::kExists;
    }
    if (!ValidLabelKey(r.key)) return bad("invalid label key");
    sel.reqs_.push_back(std::move(r));
  }
  return sel;
}

LabelSelector LabelSelector::FromMap(const std::map<std::string, std::string>& labels) {
  LabelSelector sel;
  std::vector<std::string> parts;
  for (const auto& [k, v] : labels) {
    sel.reqs_.push_back({k, Op::kEq, {v}});
    parts.push_back(absl::StrCat(k, "=", v));
  }
  sel.text_ = absl::StrJoin(parts, ",");
  return sel;
}

bool LabelSelector::Matches(const nlohmann::json& object) const {
  const nlohmann::json* labels = FieldAt(object, "metadata.labels");
  static const nlohmann::json kEmpty = nlohmann::json::object();
  return MatchesLabels(labels != nullptr ? *labels : kEmpty);
}

bool LabelSelector::MatchesLabels(const nlohmann::json& labels) const {
  for (const Req& r : reqs_) {
    bool has = labels.is_object() && labels.contains(r.key) && labels[r.key].is_string();
    std::string v = has ? labels[r.key].get<std::string>() : "";
    bool in = false;
    for (const auto& x : r.values) in = in || (has && x == v);
    switch (r.op) {
      case Op::kEq:
      case Op::kIn:
        if (!in) return false;
        break;
      case Op::kNe:
      case Op::kNotIn:
        if (in) return false;
        break;
      case Op::kExists:
        if (!has) return false;
        break;
      case Op::kNotExists:
        if (has) return false;
        break;
    }
  }
  return true;
}

absl::StatusOr<FieldSelector> FieldSelector::Parse(const std::string& text) {
  FieldSelector sel;
  std::string trimmed(absl::StripAsciiWhitespace(text));
  if (trimmed.empty()) return sel;
  for (absl::string_view part : absl::StrSplit(trimmed, ',')) {
    std::string p(absl::StripAsciiWhitespace(part));
    Req r;
    size_t pos;
    if ((pos = p.find("!=")) != std::string::npos) {
      r = {p.substr(0, pos), true, p.substr(pos + 2)};
    } else if ((pos = p.find("==")) != std::string::npos) {
      r = {p.substr(0, pos), false, p.substr(pos + 2)};
    } else if ((pos = p.find('=')) != std::string::npos) {
      r = {p.substr(0, pos), false, p.substr(pos + 1)};
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("fieldSelector '", text, "': '", p, "' is not path=value or path!=value"));
    }
    r.path = std::string(absl::StripAsciiWhitespace(r.path));
    r.value = std::string(absl::StripAsciiWhitespace(r.value));
    if (r.path.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("fieldSelector '", text, "': empty field"));
    }
    sel.reqs_.push_back(std::move(r));
  }
  return sel;
}

bool FieldSelector::Matches(const nlohmann::json& object) const {
  for (const Req& r : reqs_) {
    bool eq = FieldString(object, r.path) == r.value;
    if (eq == r.negate) return false;
  }
  return true;
}

const std::string* FieldSelector::EqualityValue(const std::string& path) const {
  for (const Req& r : reqs_) {
    if (!r.negate && r.path == path) return &r.value;
  }
  return nullptr;
}

}  // namespace tandem::kube
