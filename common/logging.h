// Logging on spdlog (Debian's libspdlog-dev). Chosen over glog because it formats with {fmt}
// (type-safe, no streams on hot paths), has a compiled library in Debian, and lets each process
// name its component in every line, which `tandem run` needs when it interleaves workers' logs.
//
//   tandem::InitLogging("trainer");          // once, in main()
//   TANDEM_LOG(info, "pass {} step {} loss {:.4f}", pass, step, loss);
//
// The level comes from TANDEM_LOG_LEVEL (trace, debug, info, warn, error; default info).
#pragma once

#include <string>

#include "spdlog/spdlog.h"

namespace tandem {

// Configures the default logger: stderr, pattern "time level [component] message".
void InitLogging(const std::string& component);

}  // namespace tandem

#define TANDEM_LOG(level, ...) ::spdlog::level(__VA_ARGS__)
