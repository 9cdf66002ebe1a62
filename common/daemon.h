// What both daemons do before anything else: read --config FILE, --print-config and --version,
// load the option table from the file and NODESCOPE_* variables, and check it.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "common/config.h"
#include "common/status.h"

namespace nodescope::daemon {

// Returns the exit code when the process must end now: 0 after --help, --version or
// --print-config; 2 after one line on stderr ("<binary>: ...") for a bad flag or configuration.
// Returns nullopt when the daemon should run with the loaded configuration.
std::optional<int> LoadConfig(int argc, char** argv, const std::string& binary,
                              const std::string& description, config::Schema* schema,
                              const std::function<Status()>& validate = {});

}  // namespace nodescope::daemon
