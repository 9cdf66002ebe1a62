#include "sensor/bpf/strategy.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace nodescope::sensor::bpf {
namespace {

std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (const auto& part : parts) {
    if (!out.empty()) out += sep;
    out += part;
  }
  return out;
}

std::string Names(std::span<const AttachStrategy> strategies) {
  std::vector<std::string> names;
  for (const auto& s : strategies) names.push_back(s.name);
  return Join(names, ", ");
}

}  // namespace

v1::ProbeStatus Selection::ToProto() const {
  v1::ProbeStatus status;
  status.set_probe(probe);
  status.set_strategy(strategy);
  status.set_state(attached ? "attached" : "failed");
  status.set_error(error);
  for (const auto& t : tried) status.add_tried(t);
  return status;
}

Selection SelectStrategy(std::string_view probe, std::span<const AttachStrategy> strategies,
                         std::string_view forced) {
  Selection selection;
  selection.probe = std::string(probe);
  std::span<const AttachStrategy> candidates = strategies;
  if (!forced.empty()) {
    auto it = std::find_if(strategies.begin(), strategies.end(),
                           [&](const AttachStrategy& s) { return s.name == forced; });
    if (it == strategies.end()) {
      selection.error = std::string("probe ") + std::string(probe) + ": unknown attach strategy '" +
                        std::string(forced) + "' (this probe offers: " + Names(strategies) + ")";
      return selection;
    }
    candidates = std::span<const AttachStrategy>(&*it, 1);
  }
  if (candidates.empty()) {
    selection.error = std::string("probe ") + std::string(probe) + " offers no attach strategy";
    return selection;
  }
  for (const auto& strategy : candidates) {
    Status status = strategy.attach ? strategy.attach() : Status::Error("no attach function");
    if (status.ok()) {
      selection.strategy = strategy.name;
      selection.attached = true;
      spdlog::info(
          "probe {}: attached with strategy {}{}", probe, strategy.name,
          selection.tried.empty() ? "" : " (failed before: " + Join(selection.tried, "; ") + ")");
      return selection;
    }
    spdlog::debug("probe {}: strategy {} failed: {}", probe, strategy.name, status.message());
    selection.tried.push_back(strategy.name + ": " + status.message());
  }
  selection.error = std::string("probe ") + std::string(probe) +
                    ": no attach strategy worked: " + Join(selection.tried, "; ");
  return selection;
}

bool ProgramInStrategy(std::string_view program, std::string_view strategy) {
  return program.size() > strategy.size() + 2 && program.substr(0, strategy.size()) == strategy &&
         program.substr(strategy.size(), 2) == "__";
}

}  // namespace nodescope::sensor::bpf
