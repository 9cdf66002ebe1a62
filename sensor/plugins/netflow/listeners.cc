#include "sensor/plugins/netflow/listeners.h"

#include <charconv>

#include "sensor/proc/procfs.h"

namespace nodescope::sensor::netflow {
namespace {

constexpr std::string_view kListenState = "0A";  // TCP_LISTEN in hex, as /proc/net/tcp prints it

}  // namespace

std::set<uint16_t> ParseListeningPorts(std::string_view text) {
  std::set<uint16_t> ports;
  bool header = true;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    if (header) {  // "  sl  local_address rem_address   st ..."
      header = false;
      continue;
    }
    // sl local_address rem_address st ...; local_address is ADDR:PORT in hex.
    std::vector<std::string_view> fields = proc::SplitSpaces(line);
    if (fields.size() < 4 || fields[3] != kListenState) continue;
    size_t colon = fields[1].rfind(':');
    if (colon == std::string_view::npos) continue;
    std::string_view port_hex = fields[1].substr(colon + 1);
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_hex.data(), port_hex.data() + port_hex.size(), port, 16);
    if (ec == std::errc() && end == port_hex.data() + port_hex.size() && port <= 0xffff) {
      ports.insert(static_cast<uint16_t>(port));
    }
  }
  return ports;
}

Result<std::set<uint16_t>> ListeningPorts(const std::string& proc_root, uint32_t pid) {
  std::set<uint16_t> ports;
  bool any = false;
  for (const char* file : {"tcp", "tcp6"}) {
    Result<std::string> text =
        proc::ReadWholeFile(proc_root + "/" + std::to_string(pid) + "/net/" + file);
    if (!text.ok()) continue;  // tcp6 is absent with IPv6 disabled
    any = true;
    std::set<uint16_t> found = ParseListeningPorts(*text);
    ports.insert(found.begin(), found.end());
  }
  if (!any) {
    return Status::Error("no " + proc_root + "/" + std::to_string(pid) + "/net/tcp");
  }
  return ports;
}

Result<uint16_t> EphemeralPortStart(const std::string& proc_root) {
  const std::string path = proc_root + "/sys/net/ipv4/ip_local_port_range";
  Result<std::string> text = proc::ReadWholeFile(path);
  if (!text.ok()) return text.status();
  std::vector<std::string_view> fields = proc::SplitSpaces(*text);
  unsigned port = 0;
  if (!fields.empty()) {
    auto [end, ec] = std::from_chars(fields[0].data(), fields[0].data() + fields[0].size(), port);
    if (ec == std::errc() && end == fields[0].data() + fields[0].size() && port >= 1 &&
        port <= 0xffff) {
      return static_cast<uint16_t>(port);
    }
  }
  return Status::Error(path + ": expected two port numbers, got \"" + *text + "\"");
}

}  // namespace nodescope::sensor::netflow
