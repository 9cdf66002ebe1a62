// The forms of the reference collector's resource limits (DataKit's cpu_limit, mem_limit and
// net_limit), parsed once for the configuration check and again for the limit monitor. "" and
// "0" mean no limit, returned as 0.
#pragma once

#include <string>

#include "common/status.h"

namespace nodescope::sensor::limits {

// Cores: "2.0", "0.5", or Kubernetes millicores "250m".
Result<double> ParseCpuLimit(const std::string& text);
// Bytes: "4GiB", "512MiB", "1.5GB"; units B, KB, MB, GB, TB (powers of 1000), KiB, MiB, GiB,
// TiB and Kubernetes' Ki, Mi, Gi, Ti (powers of 1024). A bare number other than 0 is refused:
// "4" is almost surely not 4 bytes.
Result<double> ParseMemLimit(const std::string& text);
// Bytes per second: a size as for ParseMemLimit followed by "/s", e.g. "100MiB/s".
Result<double> ParseNetLimit(const std::string& text);

// "1.5 GiB", "512 B": for log lines and status.
std::string FormatBytes(double bytes);

}  // namespace nodescope::sensor::limits
