#include "common/daemon.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

namespace nodescope::daemon {

std::optional<int> LoadConfig(int argc, char** argv, const std::string& binary,
                              const std::string& description, config::Schema* schema,
                              const std::function<Status()>& validate) {
  CLI::App app(binary + ": " + description);
  std::string config_path;
  bool print_config = false;
  app.add_option("--config", config_path, "YAML configuration file (empty file: all defaults)");
  app.add_flag("--print-config", print_config, "print the effective configuration and exit");
  app.set_version_flag("--version", NODESCOPE_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "%s: %s (see --help)\n", binary.c_str(), e.what());
    return 2;
  }
  Status s;
  if (!config_path.empty()) s = schema->LoadFile(config_path);
  if (s.ok()) s = schema->LoadEnv([](const char* name) { return std::getenv(name); });
  if (s.ok() && validate) s = validate();
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", binary.c_str(), s.message().c_str());
    return 2;
  }
  if (print_config) {
    std::fputs(schema->Print().c_str(), stdout);
    return 0;
  }
  return std::nullopt;
}

}  // namespace nodescope::daemon
