#include "sensor/plugins/kernel/family_probe.h"

#include <spdlog/spdlog.h>

namespace nodescope::sensor::kernel {

void WarnUnattached(std::string_view probe, const Status& why) {
  spdlog::warn("{}: {}", probe, why.message());
}

}  // namespace nodescope::sensor::kernel
