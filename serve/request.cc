#include "serve/request.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace tandem::serve {
namespace {

using json = nlohmann::json;
using trainer::InputSource;

// Deeper nesting than any dense input needs is refused before it is walked.
constexpr int kMaxDepth = 8;

absl::Status Bad(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

std::string Describe(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return v.get<bool>() ? "true" : "false";
    case json::value_t::string: return "a string";
    case json::value_t::array: return absl::StrCat("an array of ", v.size());
    case json::value_t::object: return "an object";
    default: {
      std::string s = v.dump();
      return s.size() > 32 ? s.substr(0, 32) + "..." : s;
    }
  }
}

// Appends the numbers of `v` (a number or nested arrays of numbers) to `out`, refusing more
// than `limit` of them.
absl::Status Flatten(const json& v, const std::string& path, int depth, size_t limit,
                     std::vector<float>* out) {
  if (v.is_number()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max())
      return Bad(path, absl::StrCat("must be a finite float, got ", Describe(v)));
    if (out->size() >= limit) return absl::OutOfRangeError("");
    out->push_back(static_cast<float>(d));
    return absl::OkStatus();
  }
  if (!v.is_array()) return Bad(path, absl::StrCat("must be a number, got ", Describe(v)));
  if (depth >= kMaxDepth) return Bad(path, "arrays nested too deeply");
  for (size_t i = 0; i < v.size(); ++i) {
    absl::Status st = Flatten(v[i], absl::StrCat(path, "[", i, "]"), depth + 1, limit, out);
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status ParseId(const json& v, const std::string& path, int64_t vocab, int32_t* id) {
  const int64_t hi = vocab > 0 ? vocab - 1 : std::numeric_limits<int32_t>::max();
  auto bad = [&] {
    return Bad(path, absl::StrCat(vocab > 0 ? "token id" : "feature id",
                                  " must be an integer in [0, ", hi, "], got ", Describe(v)));
  };
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(hi)) return bad();
    *id = static_cast<int32_t>(u);
    return absl::OkStatus();
  }
  if (v.is_number_integer()) return bad();  // negative
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!(d >= 0 && d <= static_cast<double>(hi)) || d != std::floor(d)) return bad();
    *id = static_cast<int32_t>(d);
    return absl::OkStatus();
  }
  return bad();
}

absl::Status ParseInput(const json& v, const InputSpec& in, const std::string& path,
                        const RequestLimits& limits, InputValue* out) {
  switch (in.source) {
    case InputSource::kFeatures: {
      out->values.reserve(static_cast<size_t>(in.size));
      absl::Status st = Flatten(v, path, 0, static_cast<size_t>(in.size), &out->values);
      if (absl::IsOutOfRange(st) || (st.ok() && out->values.size() != static_cast<size_t>(in.size))) {
        return Bad(path, absl::StrCat("expected ", in.size, " numbers, got ",
                                      st.ok() ? absl::StrCat(out->values.size()) : "more"));
      }
      return st;
    }
    case InputSource::kFields: {
      if (!v.is_array())
        return Bad(path, absl::StrCat("expected an array of ", in.size,
                                      " fields (each an id or an array of ids), got ", Describe(v)));
      if (v.size() != static_cast<size_t>(in.size))
        return Bad(path, absl::StrCat("expected ", in.size, " fields, got ", v.size()));
      out->offsets.assign(1, 0);
      for (size_t f = 0; f < v.size(); ++f) {
        const std::string fp = absl::StrCat(path, "[", f, "]");
        const json& field = v[f];
        if (field.is_array()) {
          if (field.size() > limits.max_ids_per_field)
            return Bad(fp, absl::StrCat("at most ", limits.max_ids_per_field, " ids per field, got ",
                                        field.size()));
          for (size_t k = 0; k < field.size(); ++k) {
            int32_t id = 0;
            absl::Status st = ParseId(field[k], absl::StrCat(fp, "[", k, "]"), 0, &id);
            if (!st.ok()) return st;
            out->ids.push_back(id);
          }
        } else if (!field.is_null()) {
          int32_t id = 0;
          absl::Status st = ParseId(field, fp, 0, &id);
          if (!st.ok()) return st;
          out->ids.push_back(id);
        }
        out->offsets.push_back(static_cast<int32_t>(out->ids.size()));
      }
      return absl::OkStatus();
    }
    case InputSource::kTokens: {
      if (!v.is_array()) return Bad(path, absl::StrCat("expected an array of token ids, got ", Describe(v)));
      if (v.empty() || v.size() > static_cast<size_t>(in.size))
        return Bad(path, absl::StrCat("expected 1 to ", in.size, " token ids, got ", v.size()));
      for (size_t k = 0; k < v.size(); ++k) {
        int32_t id = 0;
        absl::Status st = ParseId(v[k], absl::StrCat(path, "[", k, "]"), in.vocab, &id);
        if (!st.ok()) return st;
        out->ids.push_back(id);
      }
      return absl::OkStatus();
    }
    default:
      return Bad(path, "not a serving input");
  }
}


// The fast path of ParsePredictRequest: a strict scanner for the shape nearly every request has
// ({"instances": [{"name": [numbers] or [ids], ...}, ...]}, plain ASCII keys, flat arrays), which
// reads numbers straight into the examples with std::from_chars instead of building a JSON
// document first (about 5x faster for a 784-pixel image). It accepts only what the general parser
// accepts, with the same values: anything else (an escape in a key, nested arrays, a float id,
// a duplicate key, any error at all) makes it give up, and the general parser decides and writes
// the message. ParsePredictRequest's fuzz target checks that both agree on every input.
class FastScanner {
 public:
  explicit FastScanner(absl::string_view s) : p_(s.data()), end_(s.data() + s.size()) {}

  void Ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool Eat(char c) {
    Ws();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool AtEnd() {
    Ws();
    return p_ == end_;
  }
  // "key": with no escapes, control characters or non-ASCII bytes.
  bool Key(absl::string_view* key) {
    if (!Eat('"')) return false;
    const char* b = p_;
    while (p_ < end_ && *p_ != '"') {
      const unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '\\' || c < 0x20 || c >= 0x80) return false;
      ++p_;
    }
    if (p_ == end_) return false;
    *key = absl::string_view(b, static_cast<size_t>(p_ - b));
    ++p_;
    return Eat(':');
  }
  bool Null() {
    Ws();
    if (end_ - p_ >= 4 && std::memcmp(p_, "null", 4) == 0) {
      p_ += 4;
      return true;
    }
    return false;
  }
  // A JSON number (RFC 8259's grammar, checked here: std::from_chars alone accepts more) as the
  // general parser reads it: an integer literal is exact-then-rounded, others correctly rounded,
  // which from_chars also is; "-0" is an integer, +0 there.
  bool Number(double* d) {
    Ws();
    const char* b = p_;
    bool integer = true;
    if (p_ < end_ && *p_ == '-') ++p_;
    if (p_ == end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (Digit()) {
      while (Digit()) ++p_;
    } else {
      return false;
    }
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      integer = false;
      if (!Digit()) return false;
      while (Digit()) ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      integer = false;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!Digit()) return false;
      while (Digit()) ++p_;
    }
    const std::from_chars_result r = std::from_chars(b, p_, *d);
    if (r.ec != std::errc() || r.ptr != p_) return false;
    if (integer && *d == 0) *d = 0;
    return true;
  }
  // A non-negative integer literal <= hi (no sign, fraction or exponent: those go the general way).
  bool Id(int64_t hi, int32_t* id) {
    Ws();
    if (!Digit()) return false;
    if (*p_ == '0' && p_ + 1 < end_ && p_[1] >= '0' && p_[1] <= '9') return false;
    int64_t v = 0;
    int digits = 0;
    while (Digit()) {
      if (++digits > 10) return false;
      v = v * 10 + (*p_++ - '0');
    }
    if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
    if (v > hi) return false;
    *id = static_cast<int32_t>(v);
    return true;
  }

 private:
  bool Digit() const { return p_ < end_ && *p_ >= '0' && *p_ <= '9'; }
  const char* p_;
  const char* end_;
};

bool FastInput(FastScanner& s, const InputSpec& in, const RequestLimits& limits, InputValue* out) {
  if (!s.Eat('[')) return false;
  switch (in.source) {
    case InputSource::kFeatures: {
      out->values.reserve(static_cast<size_t>(in.size));
      if (s.Eat(']')) return in.size == 0;
      do {
        double d = 0;
        if (!s.Number(&d) || !std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max())
          return false;
        if (out->values.size() >= static_cast<size_t>(in.size)) return false;
        out->values.push_back(static_cast<float>(d));
      } while (s.Eat(','));
      return s.Eat(']') && out->values.size() == static_cast<size_t>(in.size);
    }
    case InputSource::kFields: {
      const int64_t hi = std::numeric_limits<int32_t>::max();
      out->offsets.assign(1, 0);
      if (s.Eat(']')) return in.size == 0;
      do {
        if (out->offsets.size() > static_cast<size_t>(in.size)) return false;
        int32_t id = 0;
        if (s.Eat('[')) {
          size_t count = 0;
          if (!s.Eat(']')) {
            do {
              if (++count > limits.max_ids_per_field || !s.Id(hi, &id)) return false;
              out->ids.push_back(id);
            } while (s.Eat(','));
            if (!s.Eat(']')) return false;
          }
        } else if (!s.Null()) {
          if (!s.Id(hi, &id)) return false;
          out->ids.push_back(id);
        }
        out->offsets.push_back(static_cast<int32_t>(out->ids.size()));
      } while (s.Eat(','));
      return s.Eat(']') && out->offsets.size() == static_cast<size_t>(in.size) + 1;
    }
    case InputSource::kTokens: {
      const int64_t hi = in.vocab > 0 ? in.vocab - 1 : std::numeric_limits<int32_t>::max();
      if (s.Eat(']')) return false;  // at least one token
      do {
        int32_t id = 0;
        if (out->ids.size() >= static_cast<size_t>(in.size) || !s.Id(hi, &id)) return false;
        out->ids.push_back(id);
      } while (s.Eat(','));
      return s.Eat(']');
    }
    default:
      return false;
  }
}

}  // namespace

const InputSpec* Signature::Find(absl::string_view name) const {
  for (const InputSpec& in : inputs)
    if (in.name == name) return &in;
  return nullptr;
}

namespace internal {

std::optional<std::vector<Example>> ParsePredictRequestFast(absl::string_view body, const Signature& sig,
                                                            const RequestLimits& limits) {
  FastScanner s(body);
  absl::string_view key;
  if (!s.Eat('{') || !s.Key(&key) || key != "instances" || !s.Eat('[')) return std::nullopt;
  std::vector<Example> out;
  std::vector<bool> seen(sig.inputs.size());
  do {
    if (out.size() >= limits.max_examples || !s.Eat('{')) return std::nullopt;
    Example& e = out.emplace_back();
    e.inputs.resize(sig.inputs.size());
    std::fill(seen.begin(), seen.end(), false);
    size_t found = 0;
    do {
      if (!s.Key(&key)) return std::nullopt;
      const InputSpec* in = sig.Find(key);
      if (in == nullptr) return std::nullopt;
      const size_t k = static_cast<size_t>(in - sig.inputs.data());
      if (seen[k]) return std::nullopt;  // a duplicate key: the general parser's rule applies
      seen[k] = true;
      ++found;
      if (!FastInput(s, *in, limits, &e.inputs[k])) return std::nullopt;
    } while (s.Eat(','));
    if (!s.Eat('}') || found != sig.inputs.size()) return std::nullopt;
  } while (s.Eat(','));
  if (!s.Eat(']') || !s.Eat('}') || !s.AtEnd()) return std::nullopt;
  return out;
}

absl::StatusOr<std::vector<Example>> ParsePredictRequestGeneral(absl::string_view body, const Signature& sig,
                                                                const RequestLimits& limits) {
  json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded())
    return absl::InvalidArgumentError("body: malformed JSON (expected {\"instances\": [...]})");
  if (!doc.is_object())
    return Bad("body", absl::StrCat("expected an object {\"instances\": [...]}, got ", Describe(doc)));
  for (const auto& [key, value] : doc.items()) {
    if (key != "instances")
      return Bad(key, "unknown field (a request has \"instances\")");
  }
  auto it = doc.find("instances");
  if (it == doc.end()) return Bad("instances", "required: an array of examples");
  const json& instances = *it;
  if (!instances.is_array())
    return Bad("instances", absl::StrCat("must be an array of examples, got ", Describe(instances)));
  if (instances.empty()) return Bad("instances", "must hold at least one example");
  if (instances.size() > limits.max_examples)
    return Bad("instances", absl::StrCat("at most ", limits.max_examples,
                                         " examples per request, got ", instances.size()));
  std::vector<std::string> names;
  for (const InputSpec& in : sig.inputs) names.push_back(in.name);
  const std::string known = absl::StrJoin(names, ", ");
  std::vector<Example> out(instances.size());
  for (size_t i = 0; i < instances.size(); ++i) {
    const std::string base = absl::StrCat("instances[", i, "]");
    const json& inst = instances[i];
    if (!inst.is_object())
      return Bad(base, absl::StrCat("must be an object {input: value}, got ", Describe(inst)));
    for (const auto& [key, value] : inst.items()) {
      if (sig.Find(key) == nullptr)
        return Bad(absl::StrCat(base, ".", key), absl::StrCat("unknown input (inputs: ", known, ")"));
    }
    out[i].inputs.resize(sig.inputs.size());
    for (size_t k = 0; k < sig.inputs.size(); ++k) {
      const InputSpec& in = sig.inputs[k];
      const std::string path = absl::StrCat(base, ".", in.name);
      auto f = inst.find(in.name);
      if (f == inst.end()) return Bad(path, "required");
      absl::Status st = ParseInput(*f, in, path, limits, &out[i].inputs[k]);
      if (!st.ok()) return st;
    }
  }
  return out;
}

}  // namespace internal

absl::StatusOr<std::vector<Example>> ParsePredictRequest(absl::string_view body, const Signature& sig,
                                                         const RequestLimits& limits) {
  if (std::optional<std::vector<Example>> fast = internal::ParsePredictRequestFast(body, sig, limits))
    return *std::move(fast);
  return internal::ParsePredictRequestGeneral(body, sig, limits);
}

std::string RenderPredictResponse(int64_t version, int64_t step, const std::vector<float>& outputs,
                                  int64_t per_example) {
  std::string s = absl::StrCat("{\"model\":{\"version\":", version, ",\"step\":", step,
                               "},\"predictions\":[");
  const size_t n = per_example > 0 ? outputs.size() / static_cast<size_t>(per_example) : 0;
  char buf[32];
  for (size_t i = 0; i < n; ++i) {
    s += i == 0 ? "[" : ",[";
    for (int64_t j = 0; j < per_example; ++j) {
      const float v = outputs[i * per_example + j];
      if (j > 0) s += ',';
      if (std::isfinite(v)) {
        const int len = std::snprintf(buf, sizeof(buf), "%.7g", v);
        s.append(buf, static_cast<size_t>(len));
      } else {
        s += "null";
      }
    }
    s += ']';
  }
  s += "]}";
  return s;
}

std::string RenderError(int code, absl::string_view message) {
  return json({{"error", {{"code", code}, {"message", std::string(message)}}}})
             .dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace tandem::serve
