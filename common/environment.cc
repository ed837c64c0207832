#include "common/environment.h"

#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace tandem {

Environment ProcessEnvironment() {
  Environment env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    absl::string_view entry(*e);
    size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) continue;
    env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return env;
}

std::optional<std::string> EnvValue(const Environment& env, absl::string_view name) {
  auto it = env.find(name);
  if (it == env.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

absl::Status ReadEnvNumber(const Environment& env, absl::string_view name, double* out,
                           bool allow_zero) {
  std::optional<std::string> v = EnvValue(env, name);
  if (!v) return absl::OkStatus();
  double d = 0;
  if (!absl::SimpleAtod(*v, &d) || !(d > 0 || (allow_zero && d == 0)))
    return absl::InvalidArgumentError(
        absl::StrCat(name, "='", *v, "': must be a number ", allow_zero ? ">= 0" : "> 0"));
  *out = d;
  return absl::OkStatus();
}

absl::Status ReadEnvInt(const Environment& env, absl::string_view name, int64_t min, int64_t max,
                        int64_t* out) {
  std::optional<std::string> v = EnvValue(env, name);
  if (!v) return absl::OkStatus();
  int64_t i = 0;
  if (!absl::SimpleAtoi(*v, &i) || i < min || i > max)
    return absl::InvalidArgumentError(
        absl::StrCat(name, "='", *v, "': must be an integer in [", min, ", ", max, "]"));
  *out = i;
  return absl::OkStatus();
}

absl::Status ReadEnvBool(const Environment& env, absl::string_view name, bool* out) {
  std::optional<std::string> v = EnvValue(env, name);
  if (!v) return absl::OkStatus();
  const std::string s = absl::AsciiStrToLower(*v);
  if (s == "1" || s == "true" || s == "on" || s == "yes") {
    *out = true;
  } else if (s == "0" || s == "false" || s == "off" || s == "no") {
    *out = false;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(name, "='", *v, "': must be 1/0, true/false, on/off or yes/no"));
  }
  return absl::OkStatus();
}

}  // namespace tandem
