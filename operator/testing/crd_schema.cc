#include "operator/testing/crd_schema.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_join.h"
#include "absl/strings/match.h"
#include "operator/kube/api_error.h"
#include "re2/re2.h"

namespace tandem::kube::testing {

using nlohmann::json;

namespace {

// The fields of ObjectMeta (k8s.io/apimachinery/pkg/apis/meta/v1): anything else under metadata
// is dropped by the apiserver's decoding (and reported as an unknown field).
const std::set<std::string>& ObjectMetaFields() {
  static const auto* fields = new std::set<std::string>{
      "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
      "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
      "annotations", "ownerReferences", "finalizers", "managedFields"};
  return *fields;
}

std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

bool Flag(const json& s, const char* key) {
  auto it = s.find(key);
  return it != s.end() && it->is_boolean() && it->get<bool>();
}

bool Preserve(const json* s) { return s != nullptr && Flag(*s, "x-kubernetes-preserve-unknown-fields"); }
bool Nullable(const json* s) { return s != nullptr && Flag(*s, "nullable"); }
bool HasDefault(const json* s) { return s != nullptr && s->contains("default") && !(*s)["default"].is_null(); }

const json* Child(const json* s, const char* key) {
  if (s == nullptr || !s->is_object()) return nullptr;
  auto it = s->find(key);
  return it == s->end() ? nullptr : &*it;
}

const json* Property(const json* s, const std::string& name) {
  const json* props = Child(s, "properties");
  if (props == nullptr || !props->is_object()) return nullptr;
  auto it = props->find(name);
  return it == props->end() ? nullptr : &*it;
}

// additionalProperties as a schema: an object schema, or `true` (anything: an empty schema that
// prunes nothing below it, since kube-apiserver refuses CRDs that would prune under it).
const json* AdditionalProperties(const json* s) {
  static const json* kAnything = new json{{"x-kubernetes-preserve-unknown-fields", true}};
  const json* a = Child(s, "additionalProperties");
  if (a == nullptr) return nullptr;
  if (a->is_object()) return a;
  if (a->is_boolean() && a->get<bool>()) return kAnything;
  return nullptr;
}

const json* Items(const json* s) {
  const json* i = Child(s, "items");
  return i != nullptr && i->is_object() ? i : nullptr;
}

// The schema a field of an object falls under (pruning, nulls, defaulting).
const json* FieldSchema(const json* s, const std::string& key) {
  if (const json* p = Property(s, key)) return p;
  return AdditionalProperties(s);
}

// ---- Pruning (apiextensions-apiserver pkg/apiserver/schema/pruning/algorithm.go) ----

void PruneNode(json& x, const json* s, const std::string& path, bool root, std::vector<std::string>* out);

void SkipPrune(json& x, const json* s, const std::string& path, std::vector<std::string>* out) {
  if (s == nullptr) return;
  if (x.is_object()) {
    for (auto& [k, v] : x.items()) {
      if (const json* f = FieldSchema(s, k)) PruneNode(v, f, Join(path, k), false, out);
    }
  } else if (x.is_array()) {
    for (size_t i = 0; i < x.size(); ++i) SkipPrune(x[i], Items(s), absl::StrCat(path, "[", i, "]"), out);
  }
}

void PruneNode(json& x, const json* s, const std::string& path, bool root, std::vector<std::string>* out) {
  if (Preserve(s)) {
    SkipPrune(x, s, path, out);
    return;
  }
  if (x.is_object()) {
    std::vector<std::string> drop;
    for (auto& [k, v] : x.items()) {
      if (root && (k == "apiVersion" || k == "kind" || k == "metadata")) continue;
      if (const json* f = s == nullptr ? nullptr : FieldSchema(s, k)) {
        PruneNode(v, f, Join(path, k), false, out);
      } else {
        drop.push_back(k);
      }
    }
    for (const auto& k : drop) {
      x.erase(k);
      out->push_back(Join(path, k));
    }
  } else if (x.is_array()) {
    for (size_t i = 0; i < x.size(); ++i) {
      PruneNode(x[i], s == nullptr ? nullptr : Items(s), absl::StrCat(path, "[", i, "]"), false, out);
    }
  }
}

// ---- Defaulting (defaulting/prunenulls.go, defaulting/algorithm.go) ----

void PruneNulls(json& x, const json* s) {
  if (x.is_object()) {
    std::vector<std::string> drop;
    for (auto& [k, v] : x.items()) {
      const json* f = FieldSchema(s, k);
      if (v.is_null() && f != nullptr && !Nullable(f) && !HasDefault(f)) {
        drop.push_back(k);
      } else {
        PruneNulls(v, f);
      }
    }
    for (const auto& k : drop) x.erase(k);
  } else if (x.is_array()) {
    for (auto& v : x) PruneNulls(v, Items(s));
  }
}

void DefaultNode(json& x, const json* s) {
  if (s == nullptr) return;
  if (x.is_object()) {
    if (const json* props = Child(s, "properties"); props != nullptr && props->is_object()) {
      for (const auto& [k, p] : props->items()) {
        if (!HasDefault(&p)) continue;
        auto it = x.find(k);
        if (it == x.end() || (it->is_null() && !Nullable(&p))) x[k] = p["default"];
      }
    }
    for (auto& [k, v] : x.items()) {
      if (const json* p = Property(s, k)) {
        DefaultNode(v, p);
      } else if (const json* a = AdditionalProperties(s)) {
        if (v.is_null() && !Nullable(a) && HasDefault(a)) v = (*a)["default"];
        DefaultNode(v, a);
      }
    }
  } else if (x.is_array()) {
    const json* items = Items(s);
    for (auto& v : x) {
      if (v.is_null() && items != nullptr && !Nullable(items) && HasDefault(items)) v = (*items)["default"];
      DefaultNode(v, items);
    }
  }
}

// ---- Validation (kube-openapi pkg/validation/validate, errors/schema.go) ----

// One error as kube-openapi reports it, before the apiserver turns it into a field error
// (apiextensions-apiserver pkg/apiserver/validation/validation.go).
struct OpenApiError {
  enum Code {
    kPlain,        // not an *errors.Validation: reported on the root field ("<nil>")
    kInvalidType,  // -> FieldValueTypeInvalid
    kRequired,     // -> FieldValueRequired
    kTooLong,      // -> FieldValueTooLong
    kEnum,         // -> FieldValueNotSupported
    kMaxItems,     // -> FieldValueTooMany
    kTooManyProperties,  // -> FieldValueTooMany
    kOther,        // -> FieldValueInvalid
  };
  Code code;
  std::string name;     // the validator's path: "spec.passes", ".spec" for a required root field
  json value;           // the bad value (null: none)
  std::string message;  // Error(): "spec.passes in body should be greater than or equal to 1"
  int64_t limit = -1;   // TooLong, MaxItems, TooManyProperties: the maximum
  json values;          // enum: the allowed values
};

// A validation result: errors in order, each message once (kube-openapi's Result.AddErrors).
struct Result {
  std::vector<OpenApiError> errors;
  void Add(OpenApiError e) {
    for (const auto& o : errors) {
      if (o.message == e.message) return;
    }
    errors.push_back(std::move(e));
  }
  void Merge(const Result& r) {
    for (const auto& e : r.errors) Add(e);
  }
  bool ok() const { return errors.empty(); }
};

// A schema's `format`, "" when absent or not a string (a CRD is user input: nothing here throws).
std::string FormatOf(const json& s) {
  auto it = s.find("format");
  return it != s.end() && it->is_string() ? it->get<std::string>() : "";
}

std::vector<std::string> TypesOf(const json& s) {
  if (Flag(s, "x-kubernetes-int-or-string")) return {"integer", "string"};
  auto it = s.find("type");
  if (it != s.end() && it->is_string()) return {it->get<std::string>()};
  return {};
}

bool Contains(const std::vector<std::string>& v, const std::string& x) {
  for (const auto& e : v) {
    if (e == x) return true;
  }
  return false;
}

std::string JsonType(const json& d) {
  switch (d.type()) {
    case json::value_t::boolean: return "boolean";
    case json::value_t::string: return "string";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "number";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    default: return "null";
  }
}

// The format Go's validator infers from a decoded value: int64 or float64 for numbers.
std::string DataFormat(const json& d) {
  if (d.is_number_integer() || d.is_number_unsigned()) return "int64";
  if (d.is_number_float()) return "float64";
  return "";
}

double AsDouble(const json& d) {
  if (d.is_number_unsigned()) return static_cast<double>(d.get<uint64_t>());
  if (d.is_number_integer()) return static_cast<double>(d.get<int64_t>());
  return d.get<double>();
}

// swag.IsFloat64AJSONInteger: integral and within +-2^53.
bool IsJsonInteger(double f) {
  if (std::isnan(f) || std::isinf(f) || std::fabs(f) > 9007199254740992.0) return false;
  return f == std::trunc(f);
}

OpenApiError InvalidType(const std::string& path, const std::string& type_name, const std::string& got) {
  return {OpenApiError::kInvalidType, path, got,
          absl::StrCat(path, " in body must be of type ", type_name, ": ", GoQuote(got))};
}

OpenApiError Plain(std::string message) { return {OpenApiError::kPlain, "", nullptr, std::move(message)}; }

// validate/type.go
void ValidateType(const json& s, const std::string& path, const json& d, Result& r) {
  const std::vector<std::string> types = TypesOf(s);
  const std::string format = FormatOf(s);
  if (types.empty() && format.empty()) return;
  if (d.is_null()) {
    if (!types.empty() && !Contains(types, "null") && !Nullable(&s)) {
      r.Add(InvalidType(path, absl::StrJoin(types, ","), "null"));
    }
    return;
  }
  const std::string sch = JsonType(d);
  const bool is_float_int = sch == "number" && IsJsonInteger(d.get<double>()) && Contains(types, "integer");
  const bool is_int_float = sch == "integer" && Contains(types, "number");
  if (!d.is_string() && !d.is_array() && !format.empty() &&
      !(Contains(types, sch) || DataFormat(d) == format || is_float_int || is_int_float)) {
    r.Add(InvalidType(path, format, DataFormat(d)));
    return;
  }
  if (!(Contains(types, "number") || Contains(types, "integer")) && !format.empty() &&
      (d.is_string() || d.is_array())) {
    return;
  }
  if (!(Contains(types, sch) || is_float_int || is_int_float)) {
    r.Add(InvalidType(path, absl::StrJoin(types, ","), sch));
  }
}

void ValidateNode(const json& s, const std::string& path, const json& d, Result& r);

// validate/schema_props.go
void ValidateSchemaProps(const json& s, const std::string& path, const json& d, Result& r) {
  if (const json* any = Child(&s, "anyOf"); any != nullptr && any->is_array() && !any->empty()) {
    bool succeeded = false;
    bool have_best = false;
    Result best;
    for (const auto& branch : *any) {
      Result br;
      ValidateNode(branch, path, d, br);
      if (br.ok()) {
        succeeded = true;
        have_best = false;
        break;
      }
      // kube-openapi keeps the failing branch with the most checks that passed; for the
      // branches CRDs use (int-or-string) that is the first one.
      if (!have_best) {
        best = br;
        have_best = true;
      }
    }
    if (!succeeded) r.Add(Plain(absl::StrCat("\"", path, "\" must validate at least one schema (anyOf)")));
    if (have_best) r.Merge(best);
  }
  if (const json* one = Child(&s, "oneOf"); one != nullptr && one->is_array() && !one->empty()) {
    int valid = 0;
    bool have_best = false;
    Result best;
    for (const auto& branch : *one) {
      Result br;
      ValidateNode(branch, path, d, br);
      if (br.ok()) {
        ++valid;
        have_best = false;
        continue;
      }
      if (valid == 0 && !have_best) {
        best = br;
        have_best = true;
      }
    }
    if (valid != 1) {
      std::string more = valid == 0 ? "Found none valid" : absl::StrCat("Found ", valid, " valid alternatives");
      r.Add(Plain(absl::StrCat("\"", path, "\" must validate one and only one schema (oneOf). ", more)));
      if (have_best) r.Merge(best);
    }
  }
  if (const json* all = Child(&s, "allOf"); all != nullptr && all->is_array() && !all->empty()) {
    size_t valid = 0;
    for (const auto& branch : *all) {
      Result br;
      ValidateNode(branch, path, d, br);
      if (br.ok()) ++valid;
      r.Merge(br);
    }
    if (valid != all->size()) {
      r.Add(Plain(absl::StrCat("\"", path, "\" must validate all the schemas (allOf)",
                               valid == 0 ? ". None validated" : "")));
    }
  }
  if (const json* no = Child(&s, "not"); no != nullptr && no->is_object()) {
    Result br;
    ValidateNode(*no, path, d, br);
    if (br.ok()) r.Add(Plain(absl::StrCat("\"", path, "\" must not validate the schema (not)")));
  }
}

size_t RuneCount(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

bool ReadInt(const json& s, const char* key, int64_t* out) {
  auto it = s.find(key);
  if (it == s.end() || !it->is_number()) return false;
  const double v = AsDouble(*it);
  *out = v > 9e18 ? INT64_MAX : v < -9e18 ? INT64_MIN : static_cast<int64_t>(v);
  return true;
}

// The compiled pattern, kept: CRDs repeat a few patterns (the quantity one) in many fields, and
// compiling is most of a validation's cost.
const RE2& Pattern(const std::string& pattern) {
  static absl::Mutex mu;
  static auto* cache = new std::map<std::string, std::unique_ptr<RE2>>();
  absl::MutexLock lock(&mu);
  auto& re = (*cache)[pattern];
  if (re == nullptr) re = std::make_unique<RE2>(pattern, RE2::Quiet);
  return *re;
}

// validate/validator.go stringValidator: the first failing check only.
void ValidateString(const json& s, const std::string& path, const std::string& v, Result& r) {
  int64_t n = 0;
  if (ReadInt(s, "maxLength", &n) && static_cast<int64_t>(RuneCount(v)) > n) {
    OpenApiError e{OpenApiError::kTooLong, path, v, absl::StrCat(path, " in body should be at most ", n, " chars long")};
    e.limit = n;
    r.Add(std::move(e));
    return;
  }
  if (ReadInt(s, "minLength", &n) && static_cast<int64_t>(RuneCount(v)) < n) {
    r.Add({OpenApiError::kOther, path, v, absl::StrCat(path, " in body should be at least ", n, " chars long")});
    return;
  }
  auto p = s.find("pattern");
  if (p != s.end() && p->is_string()) {
    const std::string pattern = p->get<std::string>();
    const RE2& re = Pattern(pattern);
    if (!re.ok()) {
      r.Add(Plain(absl::StrCat("pattern ", GoQuote(pattern), " is not valid: ", re.error())));
    } else if (!RE2::PartialMatch(v, re)) {
      r.Add({OpenApiError::kOther, path, v, absl::StrCat(path, " in body should match '", pattern, "'")});
    }
  }
}

int DaysIn(int year, int month) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)) return 29;
  return kDays[month - 1];
}

bool ValidDate(int y, int m, int d) { return m >= 1 && m <= 12 && d >= 1 && d <= DaysIn(y, m); }

// strfmt's date-time: RFC 3339 with a zone (Z or an offset, with or without its colon), optional
// fraction; T and Z in either case.
bool IsDateTime(const std::string& v) {
  static const RE2* re = new RE2(
      R"(^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):?(\d{2}))$)");
  int y, mo, d, h, mi, se;
  std::string frac, zone, zh, zm;
  if (!RE2::FullMatch(v, *re, &y, &mo, &d, &h, &mi, &se, &frac, &zone, &zh, &zm)) return false;
  if (!ValidDate(y, mo, d) || h > 23 || mi > 59 || se > 59) return false;
  if (!zh.empty() && (std::atoi(zh.c_str()) > 23 || std::atoi(zm.c_str()) > 59)) return false;
  return true;
}

bool IsDate(const std::string& v) {
  static const RE2* re = new RE2(R"(^(\d{4})-(\d{2})-(\d{2})$)");
  int y, m, d;
  return RE2::FullMatch(v, *re, &y, &m, &d) && ValidDate(y, m, d);
}

// validate/formats.go, for the formats the apiserver keeps (others are stripped or ignored).
void ValidateFormat(const json& s, const std::string& path, const std::string& v, Result& r) {
  const std::string format = FormatOf(s);
  bool ok = true;
  if (format == "date-time" || format == "datetime") {
    ok = IsDateTime(v);
  } else if (format == "date") {
    ok = IsDate(v);
  }
  if (!ok) r.Add(InvalidType(path, format, v));
}

// IsValueValidAgainstRange (validate/values.go): can `v` be held by the type and format? An
// error message, or "".
std::string RangeError(double v, bool is_int, int64_t iv, const std::string& type_name,
                       const std::string& format, const std::string& prefix, const std::string& path) {
  bool ok = true;
  if (type_name == "integer") {
    if (!is_int) {
      ok = false;  // a non-integral float, or one out of int64's range (NormalizeNumbers)
    } else if (format == "int32") {
      ok = iv >= INT32_MIN && iv <= INT32_MAX;
    } else if (format == "uint32") {
      ok = iv >= 0 && iv <= static_cast<int64_t>(UINT32_MAX);
    } else if (format == "uint64") {
      ok = iv >= 0;
    }
  } else if (format == "float" || format == "float32") {
    ok = std::fabs(v) <= FLT_MAX;
  }
  if (ok) return "";
  if (!format.empty()) return absl::StrCat(prefix, " value must be of type ", type_name, " with format ", format, " in ", path);
  return absl::StrCat(prefix, " value must be of type ", type_name, " (default format) in ", path);
}

bool IsInt(const json& d) { return d.is_number_integer() || d.is_number_unsigned(); }

int64_t AsInt(const json& d) {
  if (d.is_number_unsigned()) return static_cast<int64_t>(d.get<uint64_t>());
  return d.get<int64_t>();
}

// "%d" of an int64 bound or "%v" of a float64 one.
std::string BoundText(double bound, bool as_int) {
  return as_int ? absl::StrCat(static_cast<int64_t>(bound)) : GoFloat(bound);
}

// validate/validator.go numberValidator.
void ValidateNumber(const json& s, const std::string& path, const json& d, Result& r) {
  const std::vector<std::string> types = TypesOf(s);
  const std::string type_name = types.empty() ? "" : types[0];
  const std::string format = FormatOf(s);
  const bool is_int = IsInt(d);
  const int64_t iv = is_int ? AsInt(d) : 0;
  const double v = AsDouble(d);
  if (std::string e = RangeError(v, is_int, iv, type_name, format, "Checked", path); !e.empty()) r.Add(Plain(e));
  // A bound that fits the type is compared natively (int to int); else as float64.
  auto bound_fits = [&](double b) {
    const bool b_int = b == std::trunc(b) && std::fabs(b) < 9.2e18;
    return RangeError(b, b_int, b_int ? static_cast<int64_t>(b) : 0, type_name, format, "x", path).empty();
  };
  if (auto m = s.find("multipleOf"); m != s.end() && m->is_number()) {
    const double f = AsDouble(*m);
    if (f > 0) {
      const double q = v / f;
      if (q != std::trunc(q)) {
        r.Add({OpenApiError::kOther, path, d, absl::StrCat(path, " in body should be a multiple of ", GoFloat(f))});
      }
    }
  }
  if (auto m = s.find("maximum"); m != s.end() && m->is_number()) {
    const double b = AsDouble(*m);
    const bool excl = Flag(s, "exclusiveMaximum");
    const bool native_int = is_int && bound_fits(b);
    const bool bad = native_int ? (excl ? iv >= static_cast<int64_t>(b) : iv > static_cast<int64_t>(b))
                                : (excl ? v >= b : v > b);
    if (bad) {
      r.Add({OpenApiError::kOther, path, d,
             absl::StrCat(path, " in body should be less than ", excl ? "" : "or equal to ", BoundText(b, native_int))});
    }
  }
  if (auto m = s.find("minimum"); m != s.end() && m->is_number()) {
    const double b = AsDouble(*m);
    const bool excl = Flag(s, "exclusiveMinimum");
    const bool native_int = is_int && bound_fits(b);
    const bool bad = native_int ? (excl ? iv <= static_cast<int64_t>(b) : iv < static_cast<int64_t>(b))
                                : (excl ? v <= b : v < b);
    if (bad) {
      r.Add({OpenApiError::kOther, path, d,
             absl::StrCat(path, " in body should be greater than ", excl ? "" : "or equal to ", BoundText(b, native_int))});
    }
  }
}

// Equality as the apiserver compares enum values: JSON values, 1 == 1.0.
bool SameValue(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return AsDouble(a) == AsDouble(b);
  return a == b;
}

void ValidateSlice(const json& s, const std::string& path, const json& d, Result& r) {
  if (const json* items = Items(&s)) {
    for (size_t i = 0; i < d.size(); ++i) ValidateNode(*items, absl::StrCat(path, "[", i, "]"), d[i], r);
  }
  const int64_t size = static_cast<int64_t>(d.size());
  int64_t n = 0;
  if (ReadInt(s, "minItems", &n) && size < n) {
    r.Add({OpenApiError::kOther, path, size, absl::StrCat(path, " in body should have at least ", n, " items")});
  }
  if (ReadInt(s, "maxItems", &n) && size > n) {
    OpenApiError e{OpenApiError::kMaxItems, path, size, absl::StrCat(path, " in body should have at most ", n, " items")};
    e.limit = n;
    r.Add(std::move(e));
  }
  if (Flag(s, "uniqueItems")) {
    for (size_t i = 0; i < d.size(); ++i) {
      for (size_t j = i + 1; j < d.size(); ++j) {
        if (SameValue(d[i], d[j])) {
          r.Add({OpenApiError::kOther, path, nullptr, absl::StrCat(path, " in body shouldn't contain duplicates")});
          i = j = d.size();
        }
      }
    }
  }
}

void ValidateEnum(const json& s, const std::string& path, const json& d, Result& r) {
  const json* e = Child(&s, "enum");
  if (e == nullptr || !e->is_array() || e->empty()) return;
  for (const auto& v : *e) {
    if (SameValue(v, d)) return;
  }
  OpenApiError err{OpenApiError::kEnum, path, d, absl::StrCat(path, " in body should be one of ", e->dump())};
  err.values = *e;
  r.Add(std::move(err));
}

void ValidateObject(const json& s, const std::string& path, const json& d, Result& r) {
  const int64_t n = static_cast<int64_t>(d.size());
  int64_t limit = 0;
  if (ReadInt(s, "minProperties", &limit) && n < limit) {
    r.Add({OpenApiError::kOther, path, n, absl::StrCat(path, " in body should have at least ", limit, " properties")});
  }
  if (ReadInt(s, "maxProperties", &limit) && n > limit) {
    OpenApiError e{OpenApiError::kTooManyProperties, path, n,
                   absl::StrCat(path, " in body should have at most ", limit, " properties")};
    e.limit = limit;
    r.Add(std::move(e));
  }
  const json* add = Child(&s, "additionalProperties");
  for (const auto& [k, v] : d.items()) {
    if (Property(&s, k) != nullptr) continue;
    if (add != nullptr && add->is_boolean() && !add->get<bool>()) {
      r.Add({OpenApiError::kOther, path, k, absl::StrCat(path, ".", k, " in body is a forbidden property")});
    } else if (add != nullptr && add->is_object()) {
      ValidateNode(*add, path + "." + k, v, r);
    }
  }
  if (const json* props = Child(&s, "properties"); props != nullptr && props->is_object()) {
    for (const auto& [k, p] : props->items()) {
      auto it = d.find(k);
      if (it != d.end()) ValidateNode(p, Join(path, k), *it, r);
    }
  }
  if (const json* req = Child(&s, "required"); req != nullptr && req->is_array()) {
    for (const auto& k : *req) {
      if (!k.is_string() || d.contains(k.get<std::string>())) continue;
      const std::string name = path + "." + k.get<std::string>();
      r.Add({OpenApiError::kRequired, name, nullptr, absl::StrCat(name, " in body is required")});
    }
  }
}

// validate/schema.go SchemaValidator.Validate: the validators in kube-openapi's order.
void ValidateNode(const json& s, const std::string& path, const json& d, Result& r) {
  if (!s.is_object()) return;
  if (d.is_null()) {
    ValidateType(s, path, d, r);
    ValidateEnum(s, path, d, r);
    return;
  }
  ValidateType(s, path, d, r);
  ValidateSchemaProps(s, path, d, r);
  if (d.is_string()) {
    ValidateString(s, path, d.get<std::string>(), r);
    ValidateFormat(s, path, d.get<std::string>(), r);
  }
  if (d.is_number()) ValidateNumber(s, path, d, r);
  if (d.is_array()) ValidateSlice(s, path, d, r);
  ValidateEnum(s, path, d, r);
  if (d.is_object()) ValidateObject(s, path, d, r);
}

// %v (and %q for strings) of a bad value, as field.Error's ErrorBody prints it.
std::string GoValue(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return GoQuote("null");
    case json::value_t::string: return GoQuote(v.get<std::string>());
    case json::value_t::boolean: return v.get<bool>() ? "true" : "false";
    case json::value_t::number_integer: return absl::StrCat(v.get<int64_t>());
    case json::value_t::number_unsigned: return absl::StrCat(v.get<uint64_t>());
    case json::value_t::number_float: return GoFloat(v.get<double>());
    default: return v.dump();  // Go prints maps and slices with %#v; JSON is close enough here
  }
}

std::string Plural(int64_t n, const char* one, const char* many) { return n == 1 ? one : many; }

// validation.go kubeOpenAPIResultToFieldErrors, then field.Error's ErrorBody.
std::vector<FieldError> ToFieldErrors(const Result& r, const std::string& root) {
  std::vector<FieldError> out;
  for (const auto& e : r.errors) {
    std::string name = e.name;
    if (absl::StartsWith(name, ".")) name = name.substr(1);
    std::string field = root.empty() ? name : (name.empty() ? root : root + "." + name);
    if (field.empty() || e.code == OpenApiError::kPlain) field = root.empty() ? "<nil>" : root;
    const std::string value = GoValue(e.value.is_null() && e.code != OpenApiError::kEnum ? json("") : e.value);
    switch (e.code) {
      case OpenApiError::kPlain:
        out.push_back({"FieldValueInvalid", field, absl::StrCat("Invalid value: \"\": ", e.message)});
        break;
      case OpenApiError::kRequired:
        out.push_back({"FieldValueRequired", field, "Required value"});
        break;
      case OpenApiError::kEnum: {
        std::vector<std::string> quoted;
        for (const auto& v : e.values) quoted.push_back(GoQuote(v.is_string() ? v.get<std::string>() : v.dump()));
        out.push_back({"FieldValueNotSupported", field,
                       absl::StrCat("Unsupported value: ", GoValue(e.value), ": supported values: ",
                                    absl::StrJoin(quoted, ", "))});
        break;
      }
      case OpenApiError::kTooLong:
        out.push_back({"FieldValueTooLong", field,
                       absl::StrCat("Too long: may not be more than ", e.limit, " ", Plural(e.limit, "byte", "bytes"))});
        break;
      case OpenApiError::kMaxItems:
      case OpenApiError::kTooManyProperties:
        out.push_back({"FieldValueTooMany", field,
                       absl::StrCat("Too many: ", value, ": must have at most ", e.limit, " ",
                                    Plural(e.limit, "item", "items"))});
        break;
      case OpenApiError::kInvalidType:
        out.push_back({"FieldValueTypeInvalid", field, absl::StrCat("Invalid value: ", value, ": ", e.message)});
        break;
      case OpenApiError::kOther:
        out.push_back({"FieldValueInvalid", field, absl::StrCat("Invalid value: ", value, ": ", e.message)});
        break;
    }
  }
  return out;
}

}  // namespace

CrdSchema::CrdSchema(json open_api_v3_schema) : schema_(std::move(open_api_v3_schema)) {}

std::vector<std::string> CrdSchema::Prune(json& object) const {
  std::vector<std::string> unknown;
  if (!object.is_object()) return unknown;
  if (auto m = object.find("metadata"); m != object.end() && m->is_object()) {
    std::vector<std::string> drop;
    for (const auto& [k, v] : m->items()) {
      if (ObjectMetaFields().count(k) == 0) drop.push_back(k);
    }
    for (const auto& k : drop) {
      m->erase(k);
      unknown.push_back("metadata." + k);
    }
  }
  std::vector<std::string> in_schema;
  PruneNode(object, &schema_, "", /*root=*/true, &in_schema);
  std::sort(in_schema.begin(), in_schema.end());  // the apiserver's order is a Go map's: any
  unknown.insert(unknown.end(), in_schema.begin(), in_schema.end());
  return unknown;
}

void CrdSchema::Default(json& object) const {
  PruneNulls(object, &schema_);
  DefaultNode(object, &schema_);
}

std::vector<FieldError> CrdSchema::Validate(const json& object) const {
  Result r;
  ValidateNode(schema_, "", object, r);
  return ToFieldErrors(r, "");
}

std::vector<FieldError> CrdSchema::ValidateStatus(const json& object) const {
  const json* status_schema = Property(&schema_, "status");
  auto it = object.find("status");
  if (status_schema == nullptr || it == object.end()) return {};
  Result r;
  ValidateNode(*status_schema, "", *it, r);
  return ToFieldErrors(r, "status");
}

void NormalizeNumbers(json& value) {
  if (value.is_object() || value.is_array()) {
    for (auto& v : value) NormalizeNumbers(v);
  } else if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) {
      value = static_cast<double>(u);
    } else {
      value = static_cast<int64_t>(u);
    }
  } else if (value.is_number_float()) {
    const double f = value.get<double>();
    // [-2^63, 2^63): what an int64 holds exactly.
    if (f == std::trunc(f) && f >= -9223372036854775808.0 && f < 9223372036854775808.0) {
      value = static_cast<int64_t>(f);
    }
  }
}

std::string InvalidMessage(const std::string& kind, const std::string& group, const std::string& name,
                           const std::vector<FieldError>& errors) {
  std::vector<std::string> lines;
  std::set<std::string> seen;
  for (const auto& e : errors) {
    if (seen.insert(e.ToString()).second) lines.push_back(e.ToString());
  }
  std::string qualified = group.empty() ? kind : kind + "." + group;
  std::string all = lines.size() == 1 ? lines[0] : absl::StrCat("[", absl::StrJoin(lines, ", "), "]");
  return absl::StrCat(qualified, " ", GoQuote(name), " is invalid: ", all);
}

json InvalidStatus(const std::string& kind, const std::string& group, const std::string& name,
                   const std::vector<FieldError>& errors) {
  json s = StatusObject(422, "Invalid", InvalidMessage(kind, group, name, errors));
  json causes = json::array();
  for (const auto& e : errors) causes.push_back({{"reason", e.reason}, {"message", e.message}, {"field", e.field}});
  s["details"] = {{"name", name}, {"group", group}, {"kind", kind}, {"causes", causes}};
  return s;
}

std::string GoQuote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\a': out += "\\a"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\v': out += "\\v"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);  // printable ASCII and UTF-8 bytes, as Go keeps them
        }
    }
  }
  return out + "\"";
}

std::string GoFloat(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == 0) return std::signbit(v) ? "-0" : "0";
  // The shortest decimal that reads back as v (strconv's shortest formatting).
  char buf[64];
  for (int prec = 0; prec < 17; ++prec) {
    std::snprintf(buf, sizeof(buf), "%.*e", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string e(buf);  // "-d.ddde+XX"
  const bool neg = e[0] == '-';
  if (neg) e = e.substr(1);
  const size_t epos = e.find('e');
  std::string digits = e.substr(0, epos);
  const int exp = std::atoi(e.c_str() + epos + 1);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out;
  // %v is %g with the shortest precision: %e when the exponent is < -4 or >= 6 (Go's eprec).
  if (exp < -4 || exp >= 6) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char ex[16];
    std::snprintf(ex, sizeof(ex), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += ex;
  } else if (exp < 0) {
    out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
  } else if (static_cast<size_t>(exp) + 1 >= digits.size()) {
    out = digits + std::string(static_cast<size_t>(exp) + 1 - digits.size(), '0');
  } else {
    out = digits.substr(0, static_cast<size_t>(exp) + 1) + "." + digits.substr(static_cast<size_t>(exp) + 1);
  }
  return neg ? "-" + out : out;
}

}  // namespace tandem::kube::testing
