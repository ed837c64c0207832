#include "common/logging.h"

#include <optional>
#include <string>

#include "common/environment.h"
#include "spdlog/sinks/stdout_color_sinks.h"

namespace tandem {

void InitLogging(const std::string& component) {
  auto logger = spdlog::stderr_color_mt(component.empty() ? "tandem" : component);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ [%n] %v");
  spdlog::level::level_enum level = spdlog::level::info;
  // InitLogging runs once, first thing in a main: this is the main reading its environment.
  if (std::optional<std::string> env = EnvValue(ProcessEnvironment(), "TANDEM_LOG_LEVEL")) {
    level = spdlog::level::from_str(*env);
  }
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

}  // namespace tandem
