// Which CPUs a machine has online, as the kernel lists them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace nodescope::sensor::bpf {

// A CPU list as the kernel prints one (Documentation/admin-guide/cputopology.rst): ranges and
// single numbers separated by commas, "0-3,8,10-11", and a trailing newline. The numbers come out
// ascending, each once; an empty list, a range that runs backwards or a number past 65535 is an
// error that quotes the text.
Result<std::vector<int>> ParseCpuList(std::string_view text);

// The CPUs online now: /sys/devices/system/cpu/online, or `path`.
Result<std::vector<int>> OnlineCpus(const std::string& path = "/sys/devices/system/cpu/online");

}  // namespace nodescope::sensor::bpf
