// The steps of limit_shed_order (sensor/limits/monitor.h), apart so that the configuration
// schema can list them without the monitor.
#pragma once

#include <string>
#include <vector>

namespace nodescope::sensor::limits {

inline constexpr char kStepSampling[] = "sampling";
inline constexpr char kStepL7Payload[] = "l7_payload";
inline constexpr char kStepKernelFamilies[] = "kernel_families";
inline const std::vector<std::string> kSteps = {kStepSampling, kStepL7Payload, kStepKernelFamilies};

}  // namespace nodescope::sensor::limits
