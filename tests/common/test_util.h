// Helpers shared by tests: locating binaries and sources, running commands, tiny HTTP client.
#pragma once

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace tandem::testing {

// $TANDEM_SOURCE_DIR, $TANDEM_BIN_DIR (set by ctest), with fallbacks for manual runs.
std::string SourceDir();
std::string BinDir();

struct CommandResult {
  int exit_code = -1;  // the process' exit status, or 128+signal
  std::string output;  // stdout and stderr together
};
// Runs `command` with /bin/sh, capturing stdout and stderr.
CommandResult RunCommand(const std::string& command);

// Runs argv[0] (a path) with exactly `env` ("NAME=value" entries, nothing inherited), capturing
// stdout and stderr together. No shell: arguments are passed as they are.
CommandResult RunProgram(const std::vector<std::string>& argv, const std::vector<std::string>& env);

struct HttpResult {
  int status = 0;  // 0 when the request failed
  std::string headers;
  std::string body;  // de-chunked
};
// A plain HTTP/1.1 GET/POST to 127.0.0.1:port, Connection: close.
HttpResult HttpRequestTo(int port, const std::string& method, const std::string& target,
                         const std::string& body = "");

// Polls `cond` every 10 ms until it holds or `timeout` has passed; returns its last value.
template <typename F>
bool Eventually(F cond, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

}  // namespace tandem::testing
