#include "operator/controller/prometheus_text.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace tandem::controller {

namespace {

bool NameStart(char c, bool colon_ok) {
  return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_' || (colon_ok && c == ':');
}
bool NameChar(char c, bool colon_ok) {
  return NameStart(c, colon_ok) || absl::ascii_isdigit(static_cast<unsigned char>(c));
}

// Go's strconv.ParseFloat as Prometheus uses it: decimal or exponent forms, "NaN", "+Inf",
// "-Inf", "Inf" (any case). std::from_chars takes no leading '+', so it is handled here.
bool ParseValue(absl::string_view s, double* out) {
  if (s.empty()) return false;
  bool negative = false;
  if (s[0] == '+' || s[0] == '-') {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  std::string lower = absl::AsciiStrToLower(s);
  if (lower == "inf" || lower == "infinity") {
    *out = negative ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
    return true;
  }
  if (lower == "nan") {
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (s.empty() || !(absl::ascii_isdigit(static_cast<unsigned char>(s[0])) || s[0] == '.')) return false;
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, std::chars_format::general);
  if (ec == std::errc::result_out_of_range) {
    // Overflow becomes +-Inf and underflow 0, as in Go; strtod tells which it was.
    v = std::abs(std::strtod(std::string(s.data(), static_cast<size_t>(end - s.data())).c_str(), nullptr));
  } else if (ec != std::errc()) {
    return false;
  }
  if (end != s.data() + s.size()) return false;
  *out = negative ? -v : v;
  return true;
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

class LineParser {
 public:
  LineParser(absl::string_view line, const PromParseLimits& limits) : s_(line), limits_(limits) {}

  absl::Status Parse(PromSample* out) {
    SkipBlanks();
    if (!ReadName(/*colon_ok=*/true, &out->name)) return Error("expected a metric name");
    bool blank = SkipBlanks();
    if (Peek() == '{') {
      ++i_;
      if (absl::Status s = ReadLabels(out); !s.ok()) return s;
      blank = SkipBlanks();
    }
    if (!blank) return Error("expected a blank before the value");
    absl::string_view value = Token();
    if (value.empty()) return Error("missing value");
    if (!ParseValue(value, &out->value)) return Error(absl::StrCat("invalid value '", Clip(value), "'"));
    SkipBlanks();
    absl::string_view ts = Token();
    if (!ts.empty()) {
      int64_t t = 0;
      auto [end, ec] = std::from_chars(ts.data(), ts.data() + ts.size(), t);
      if (ec != std::errc() || end != ts.data() + ts.size()) {
        return Error(absl::StrCat("invalid timestamp '", Clip(ts), "'"));
      }
    }
    SkipBlanks();
    if (i_ != s_.size()) return Error("unexpected text after the value");
    return absl::OkStatus();
  }

 private:
  char Peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  bool SkipBlanks() {
    size_t start = i_;
    while (i_ < s_.size() && IsBlank(s_[i_])) ++i_;
    return i_ > start;
  }
  absl::string_view Token() {
    size_t start = i_;
    while (i_ < s_.size() && !IsBlank(s_[i_])) ++i_;
    return s_.substr(start, i_ - start);
  }
  bool ReadName(bool colon_ok, std::string* out) {
    if (i_ >= s_.size() || !NameStart(s_[i_], colon_ok)) return false;
    size_t start = i_;
    while (i_ < s_.size() && NameChar(s_[i_], colon_ok)) ++i_;
    *out = std::string(s_.substr(start, i_ - start));
    return true;
  }
  absl::Status ReadLabels(PromSample* out) {
    for (;;) {
      SkipBlanks();
      if (Peek() == '}') {
        ++i_;
        return absl::OkStatus();
      }
      std::string name, value;
      if (!ReadName(/*colon_ok=*/false, &name)) return Error("expected a label name or '}'");
      SkipBlanks();
      if (Peek() != '=') return Error(absl::StrCat("expected '=' after label ", name));
      ++i_;
      SkipBlanks();
      if (Peek() != '"') return Error(absl::StrCat("expected '\"' to open the value of label ", name));
      ++i_;
      bool closed = false;
      while (i_ < s_.size()) {
        char c = s_[i_++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\') {
          if (i_ >= s_.size()) break;
          char e = s_[i_++];
          if (e == 'n') value += '\n';
          else if (e == '\\' || e == '"') value += e;
          else return Error(absl::StrCat("invalid escape '\\", std::string(1, e), "' in label ", name));
        } else {
          value += c;
        }
      }
      if (!closed) return Error(absl::StrCat("unterminated value of label ", name));
      for (const auto& [k, v] : out->labels) {
        if (k == name) return Error(absl::StrCat("duplicate label ", name));
      }
      if (out->labels.size() >= limits_.max_labels) {
        return Error(absl::StrCat("more than ", limits_.max_labels, " labels"));
      }
      out->labels.emplace_back(std::move(name), std::move(value));
      SkipBlanks();
      if (Peek() == ',') {
        ++i_;
      } else if (Peek() != '}') {
        return Error("expected ',' or '}' after a label");
      }
    }
  }
  // At most 40 bytes of hostile text go into an error message, non-printables as '?'.
  static std::string Clip(absl::string_view s) {
    std::string out;
    for (char c : s.substr(0, 40)) out += absl::ascii_isprint(static_cast<unsigned char>(c)) ? c : '?';
    if (s.size() > 40) out += "...";
    return out;
  }
  absl::Status Error(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(what, " (column ", i_ + 1, ")"));
  }

  absl::string_view s_;
  const PromParseLimits& limits_;
  size_t i_ = 0;
};

}  // namespace

const std::string* PromSample::Label(absl::string_view label) const {
  for (const auto& [k, v] : labels) {
    if (k == label) return &v;
  }
  return nullptr;
}

absl::StatusOr<std::vector<PromSample>> ParsePrometheusText(absl::string_view text, const PromParseLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("metrics body of ", text.size(), " bytes exceeds ",
                                                   limits.max_bytes));
  }
  std::vector<PromSample> samples;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    absl::string_view line = text.substr(pos, nl == absl::string_view::npos ? absl::string_view::npos : nl - pos);
    pos = nl == absl::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // tolerate CRLF
    if (line.size() > limits.max_line_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": longer than ", limits.max_line_bytes, " bytes"));
    }
    size_t first = 0;
    while (first < line.size() && IsBlank(line[first])) ++first;
    if (first == line.size() || line[first] == '#') continue;
    if (line.find('\0') != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": NUL byte"));
    }
    if (samples.size() >= limits.max_samples) {
      return absl::InvalidArgumentError(absl::StrCat("more than ", limits.max_samples, " samples"));
    }
    PromSample s;
    if (absl::Status st = LineParser(line, limits).Parse(&s); !st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": ", st.message()));
    }
    samples.push_back(std::move(s));
  }
  return samples;
}

const PromSample* FindSample(const std::vector<PromSample>& samples, absl::string_view name,
                             const std::vector<std::pair<std::string, std::string>>& match) {
  for (const auto& s : samples) {
    if (s.name != name) continue;
    bool all = true;
    for (const auto& [k, v] : match) {
      const std::string* have = s.Label(k);
      if (have == nullptr || *have != v) {
        all = false;
        break;
      }
    }
    if (all) return &s;
  }
  return nullptr;
}

}  // namespace tandem::controller
