// Which local TCP ports have a listener, from /proc/<pid>/net/tcp{,6}: that file shows the
// network namespace of <pid>, so one reader serves every namespace a socket can live in. Used only
// for sockets older than the sensor, whose handshake the probe did not see.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "common/status.h"

namespace nodescope::sensor::netflow {

// Local ports of LISTEN sockets in one /proc/net/tcp or tcp6 text.
std::set<uint16_t> ParseListeningPorts(std::string_view proc_net_tcp);

// Both families of `pid`'s namespace under `proc_root` (HOST_PROC or /proc).
Result<std::set<uint16_t>> ListeningPorts(const std::string& proc_root, uint32_t pid);

// The first port of /proc/sys/net/ipv4/ip_local_port_range: where ephemeral ports start.
Result<uint16_t> EphemeralPortStart(const std::string& proc_root);

}  // namespace nodescope::sensor::netflow
