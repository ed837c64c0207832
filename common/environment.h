// The process environment as a value. Mains read it once (ProcessEnvironment) and hand it, or
// typed values parsed from it, down; libraries never call getenv. The readers below name the
// variable at fault in their errors.
//
//   Environment env = ProcessEnvironment();
//   double timeout_s = 30;
//   TANDEM_RETURN_IF_ERROR(ReadEnvNumber(env, "TANDEM_COLLECTIVE_TIMEOUT_S", &timeout_s));
#pragma once

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem {

using Environment = std::map<std::string, std::string, std::less<>>;

// A copy of this process' environment (environ).
Environment ProcessEnvironment();

// The value of `name`; nullopt when unset or empty (an empty variable means "not given").
std::optional<std::string> EnvValue(const Environment& env, absl::string_view name);

// Each reader leaves `*out` unchanged when the variable is unset or empty.
// A number > 0 (>= 0 with allow_zero): "NAME='x': must be a number > 0".
absl::Status ReadEnvNumber(const Environment& env, absl::string_view name, double* out,
                           bool allow_zero = false);
// An integer in [min, max]: "NAME='x': must be an integer in [min, max]".
absl::Status ReadEnvInt(const Environment& env, absl::string_view name, int64_t min, int64_t max,
                        int64_t* out);
// 1/0, true/false, on/off, yes/no (any case).
absl::Status ReadEnvBool(const Environment& env, absl::string_view name, bool* out);

}  // namespace tandem
