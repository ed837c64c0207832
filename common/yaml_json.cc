#include "common/yaml_json.h"

#include <cerrno>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/parser.h"
#include "yaml-cpp/yaml.h"

namespace tandem {
namespace {

class Converter {
 public:
  Converter(const std::string& source, const YamlLimits& limits)
      : source_(source), limits_(limits) {}

  absl::Status Convert(const YAML::Node& node, int depth, nlohmann::json* out) {
    if (++nodes_ > limits_.max_nodes) {
      return Error(node, absl::StrCat("more than ", limits_.max_nodes,
                                       " nodes (after expanding aliases); refusing to expand"));
    }
    if (depth > limits_.max_depth) {
      return Error(node, absl::StrCat("nesting deeper than ", limits_.max_depth, " levels"));
    }
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        *out = nullptr;
        return absl::OkStatus();
      case YAML::NodeType::Scalar:
        TANDEM_RETURN_IF_ERROR(CheckUtf8(node));
        *out = Scalar(node);
        return absl::OkStatus();
      case YAML::NodeType::Sequence: {
        *out = nlohmann::json::array();
        for (const YAML::Node& item : node) {
          nlohmann::json v;
          TANDEM_RETURN_IF_ERROR(Convert(item, depth + 1, &v));
          out->push_back(std::move(v));
        }
        return absl::OkStatus();
      }
      case YAML::NodeType::Map: {
        *out = nlohmann::json::object();
        for (const auto& kv : node) {
          if (!kv.first.IsScalar()) return Error(kv.first, "map keys must be scalars");
          TANDEM_RETURN_IF_ERROR(CheckUtf8(kv.first));
          std::string key = kv.first.Scalar();
          if (out->contains(key)) return Error(kv.first, absl::StrCat("duplicate key '", key, "'"));
          nlohmann::json v;
          TANDEM_RETURN_IF_ERROR(Convert(kv.second, depth + 1, &v));
          (*out)[key] = std::move(v);
        }
        return absl::OkStatus();
      }
    }
    return absl::OkStatus();
  }

 private:
  // JSON text is UTF-8 (RFC 8259), and so is what we write back (nlohmann's dump throws on
  // anything else). yaml-cpp passes the bytes of plain and quoted scalars through unchecked (it
  // refuses only bad escapes such as a lone "\ud800"), so each scalar is checked here.
  absl::Status CheckUtf8(const YAML::Node& node) {
    const std::string& s = node.Scalar();
    const size_t bad = FirstInvalidUtf8(s);
    if (bad == std::string::npos) return absl::OkStatus();
    return Error(node, absl::StrFormat("not valid UTF-8 (byte 0x%02x at offset %d of the scalar)",
                                       static_cast<unsigned char>(s[bad]), bad));
  }

  absl::Status Error(const YAML::Node& node, const std::string& what) {
    YAML::Mark m = node.Mark();
    if (m.is_null()) return absl::InvalidArgumentError(absl::StrCat(source_, ": ", what));
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ":", m.line + 1, ":", m.column + 1, ": ", what));
  }

  static nlohmann::json Scalar(const YAML::Node& node) {
    const std::string& s = node.Scalar();
    // Quoted scalars ("...", '...') and block scalars carry tag "!"; they are always strings.
    if (node.Tag() == "!") return s;
    if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    int64_t i;
    if (LooksNumeric(s) && absl::SimpleAtoi(s, &i)) return i;
    double d;
    if (LooksNumeric(s) && absl::SimpleAtod(s, &d) && std::isfinite(d)) return d;
    if (s == ".inf" || s == "+.inf" || s == ".Inf") return std::numeric_limits<double>::infinity();
    if (s == "-.inf" || s == "-.Inf") return -std::numeric_limits<double>::infinity();
    return s;
  }

  // Only [-+]digits[.digits][e[-+]digits]: keeps "1_000", "0x10", "inf", "nan" as strings.
  static bool LooksNumeric(const std::string& s) {
    size_t i = 0;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    bool digits = false;
    while (i < s.size() && absl::ascii_isdigit(s[i])) ++i, digits = true;
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && absl::ascii_isdigit(s[i])) ++i, digits = true;
    }
    if (!digits) return false;
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      ++i;
      if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
      bool exp = false;
      while (i < s.size() && absl::ascii_isdigit(s[i])) ++i, exp = true;
      if (!exp) return false;
    }
    return i == s.size();
  }

  const std::string& source_;
  const YamlLimits& limits_;
  size_t nodes_ = 0;
};

// yaml-cpp's parser recurses per nesting level; reject pathological nesting before parsing so
// that a file of a million '[' cannot overflow the stack.
absl::Status CheckFlowDepth(const std::string& text, const std::string& source, int max_depth) {
  int depth = 0;
  int line = 1;
  bool in_single = false, in_double = false, in_comment = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n') {
      ++line;
      in_comment = false;
      continue;
    }
    if (in_comment) continue;
    if (in_double) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_double = false;
      }
      continue;
    }
    if (in_single) {
      if (c == '\'') in_single = false;
      continue;
    }
    if (c == '#' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t' || text[i - 1] == '\n')) {
      in_comment = true;
    } else if (c == '"') {
      in_double = true;
    } else if (c == '\'' && (i == 0 || !absl::ascii_isalnum(text[i - 1]))) {
      in_single = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        return absl::InvalidArgumentError(absl::StrCat(source, ":", line, ": nesting deeper than ",
                                                       max_depth, " levels"));
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  // Block nesting by indentation: bound the indentation itself.
  size_t col = 0;
  bool leading = true;
  line = 1;
  for (char c : text) {
    if (c == '\n') {
      col = 0;
      leading = true;
      ++line;
    } else if (leading && (c == ' ' || c == '-')) {
      if (++col > static_cast<size_t>(max_depth) * 16) {
        return absl::InvalidArgumentError(absl::StrCat(
            source, ":", line, ": indentation deeper than ", max_depth * 16, " columns"));
      }
    } else {
      leading = false;
    }
  }
  return absl::OkStatus();
}

// A first pass over the parser's events that only counts them, so that inputs on which yaml-cpp
// 0.7 loops forever are refused before YAML::LoadAll would run out of memory. Found by
// fuzz_manifest (tests/fuzz/regressions/): after a top-level flow collection or quoted scalar, a
// ',' and a plain scalar ("{},x", "\"s\",x") make the parser report an endless stream of
// documents without consuming input. Real manifests are far below both limits.
class EventCounter : public YAML::EventHandler {
 public:
  explicit EventCounter(const YamlLimits& limits) : limits_(limits) {}
  void OnDocumentStart(const YAML::Mark&) override {
    if (++documents_ > limits_.max_documents) throw Limit{"documents", limits_.max_documents};
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override { Count(); }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { Count(); }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {
    Count();
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Count();
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Count();
  }
  void OnMapEnd() override {}

  struct Limit {
    const char* what;
    size_t limit;
  };

 private:
  void Count() {
    if (++events_ > limits_.max_nodes) throw Limit{"nodes", limits_.max_nodes};
  }
  const YamlLimits& limits_;
  size_t documents_ = 0;
  size_t events_ = 0;
};

}  // namespace

size_t FirstInvalidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int n = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return i;  // a continuation byte, an overlong lead (C0, C1) or beyond U+10FFFF (F5..FF)
    }
    for (int k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return i;
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    const uint32_t min = n == 1 ? 0x80 : n == 2 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += n + 1;
  }
  return std::string::npos;
}

absl::StatusOr<std::vector<nlohmann::json>> YamlToJson(const std::string& text,
                                                       const std::string& source,
                                                       const YamlLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", text.size(),
                                                   " bytes is larger than the limit of ",
                                                   limits.max_bytes));
  }
  if (text.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": binary data (NUL byte), not YAML"));
  }
  TANDEM_RETURN_IF_ERROR(CheckFlowDepth(text, source, limits.max_depth));
  std::vector<YAML::Node> nodes;
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    EventCounter counter(limits);
    while (parser.HandleNextDocument(counter)) {
    }
    nodes = YAML::LoadAll(text);
  } catch (const EventCounter::Limit& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": more than ", e.limit, " ", e.what, " (or a document yaml-cpp cannot parse)"));
  } catch (const YAML::Exception& e) {
    std::string where = e.mark.is_null()
                            ? source
                            : absl::StrCat(source, ":", e.mark.line + 1, ":", e.mark.column + 1);
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", e.what()));
  }
  if (nodes.size() > limits.max_documents) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": more than ", limits.max_documents, " documents"));
  }
  std::vector<nlohmann::json> out;
  Converter converter(source, limits);
  for (const YAML::Node& n : nodes) {
    if (n.IsNull()) continue;  // empty document (e.g. a trailing '---')
    nlohmann::json j;
    TANDEM_RETURN_IF_ERROR(converter.Convert(n, 0, &j));
    out.push_back(std::move(j));
  }
  return out;
}

absl::StatusOr<std::vector<nlohmann::json>> YamlFileToJson(const std::string& path,
                                                           const YamlLimits& limits) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoToStatus(errno, absl::StrCat("cannot open ", path));
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  if (size < 0) return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  if (static_cast<size_t>(size) > limits.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", size,
                                                   " bytes is larger than the limit of ",
                                                   limits.max_bytes));
  }
  in.seekg(0);
  std::ostringstream ss;
  ss << in.rdbuf();
  return YamlToJson(ss.str(), path, limits);
}

}  // namespace tandem
