#include "common/cli.h"

#include <iostream>

#include "common/version.h"

namespace tandem {

void AddVersionFlag(CLI::App& app, const std::string& program) {
  app.set_version_flag("--version", std::string(program) + " " + TANDEM_VERSION);
}

std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp& e) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << std::endl;
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << app.get_name() << ": error: " << e.what() << "\n"
              << "Run '" << app.get_name() << " --help' for usage." << std::endl;
    return kExitUsage;
  }
  return std::nullopt;
}

}  // namespace tandem
