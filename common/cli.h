// Command-line parsing on CLI11 with Tandem's conventions: --help and --version print and exit
// 0; an unknown flag or a bad value prints a one-line error plus a hint and exits 2.
//
//   CLI::App app{"tandem-pserver: one parameter-server shard"};
//   tandem::AddVersionFlag(app, "tandem-pserver");
//   app.add_option("--port", port, "gRPC port")->check(CLI::Range(0, 65535));
//   if (auto exit_code = tandem::ParseCommandLine(app, argc, argv)) return *exit_code;
#pragma once

#include <optional>
#include <string>

#include "CLI/CLI.hpp"

namespace tandem {

inline constexpr int kExitUsage = 2;

// Adds --version, printing "<program> <version>".
void AddVersionFlag(CLI::App& app, const std::string& program);

// Parses argv; returns an exit code when the program should exit now (help, version, error).
std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv);

}  // namespace tandem
