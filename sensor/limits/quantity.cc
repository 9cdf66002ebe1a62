#include "sensor/limits/quantity.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string_view>
#include <utility>

#include "common/config.h"

namespace nodescope::sensor::limits {
namespace {

constexpr std::string_view kSizeForms =
    "units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB, Ki, Mi, Gi, Ti";

using config::Quote;

// The leading decimal number of `text` (digits, one optional fraction); the rest in `unit`.
bool SplitNumber(std::string_view text, double* value, std::string_view* unit) {
  size_t end = 0;
  while (end < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '.')) {
    ++end;
  }
  if (end == 0) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + end, *value);
  if (ec != std::errc() || ptr != text.data() + end || !std::isfinite(*value)) return false;
  *unit = text.substr(end);
  return true;
}

Result<double> ParseSize(const std::string& text, std::string_view example) {
  static constexpr std::array<std::pair<std::string_view, double>, 13> kUnits = {{
      {"B", 1},
      {"KB", 1e3},
      {"MB", 1e6},
      {"GB", 1e9},
      {"TB", 1e12},
      {"KiB", 1024.0},
      {"MiB", 1024.0 * 1024},
      {"GiB", 1024.0 * 1024 * 1024},
      {"TiB", 1024.0 * 1024 * 1024 * 1024},
      {"Ki", 1024.0},
      {"Mi", 1024.0 * 1024},
      {"Gi", 1024.0 * 1024 * 1024},
      {"Ti", 1024.0 * 1024 * 1024 * 1024},
  }};
  double value = 0;
  std::string_view unit;
  const std::string error =
      fmt::format("expected a size like {} ({}), got {}", example, kSizeForms, Quote(text));
  if (!SplitNumber(text, &value, &unit)) return Status::Error(error);
  if (unit.empty()) {
    if (value == 0) return 0.0;
    return Status::Error(error + ": the unit is required");
  }
  for (const auto& [name, factor] : kUnits) {
    if (unit == name) return value * factor;
  }
  return Status::Error(error);
}

}  // namespace

Result<double> ParseCpuLimit(const std::string& text) {
  if (text.empty()) return 0.0;
  const std::string error =
      "expected cores like \"2.0\" or \"0.5\", or millicores like \"250m\", got " + Quote(text);
  double value = 0;
  std::string_view unit;
  if (!SplitNumber(text, &value, &unit)) return Status::Error(error);
  if (unit == "m") return value / 1000;
  if (!unit.empty()) return Status::Error(error);
  return value;
}

Result<double> ParseMemLimit(const std::string& text) {
  if (text.empty()) return 0.0;
  return ParseSize(text, "\"4GiB\" or \"512MiB\"");
}

Result<double> ParseNetLimit(const std::string& text) {
  if (text.empty()) return 0.0;
  constexpr std::string_view kPerSecond = "/s";
  const std::string_view view = text;
  if (text != "0" && !view.ends_with(kPerSecond)) {
    return Status::Error("expected a rate like \"100MiB/s\" (" + std::string(kSizeForms) +
                         ", then /s), got " + Quote(text));
  }
  const std::string size =
      view.ends_with(kPerSecond) ? text.substr(0, text.size() - kPerSecond.size()) : text;
  Result<double> bytes = ParseSize(size, "\"100MiB/s\"");
  if (!bytes.ok()) {
    return Status::Error("expected a rate like \"100MiB/s\" (" + std::string(kSizeForms) +
                         ", then /s), got " + Quote(text));
  }
  return bytes;
}

std::string FormatBytes(double bytes) {
  static constexpr std::array<std::string_view, 5> kUnits = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t i = 0;
  while (bytes >= 1024 && i + 1 < kUnits.size()) {
    bytes /= 1024;
    ++i;
  }
  return i == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, kUnits[i]);
}

}  // namespace nodescope::sensor::limits
