// Internal to api/: typed reads from JSON that ignore absent or wrongly-typed values (the schema
// check reports those), so the typed parsers stay short.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "nlohmann/json.hpp"

namespace tandem::api::internal {

inline const nlohmann::json* Get(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}
inline void GetString(const nlohmann::json& obj, const char* key, std::string* out) {
  if (const auto* v = Get(obj, key); v && v->is_string()) *out = v->get<std::string>();
}
inline bool GetInt(const nlohmann::json& obj, const char* key, int64_t* out) {
  const auto* v = Get(obj, key);
  if (!v) return false;
  if (v->is_number_integer()) {
    *out = v->get<int64_t>();
    return true;
  }
  if (v->is_number_float()) {
    double d = v->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e18) {
      *out = static_cast<int64_t>(d);
      return true;
    }
  }
  return false;
}
inline void GetDouble(const nlohmann::json& obj, const char* key, double* out) {
  if (const auto* v = Get(obj, key); v && v->is_number()) {
    double d = v->get<double>();
    if (std::isfinite(d)) *out = d;
  }
}
inline void GetBool(const nlohmann::json& obj, const char* key, bool* out) {
  if (const auto* v = Get(obj, key); v && v->is_boolean()) *out = v->get<bool>();
}
inline const nlohmann::json& GetObject(const nlohmann::json& obj, const char* key) {
  static const nlohmann::json* empty = new nlohmann::json(nlohmann::json::object());
  const auto* v = Get(obj, key);
  return v && v->is_object() ? *v : *empty;
}

}  // namespace tandem::api::internal
