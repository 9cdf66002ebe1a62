// What the probe tests compare socket events with: this process's identity as the kernel sees it,
// and loopback sockets made by hand.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

namespace nodescope::sensor::bpf::testing {

std::string SelfComm();
uint32_t SelfNetns();  // inode of /proc/self/ns/net
// The cgroup v2 id of this process: the inode of its directory in the cgroup2 mount; 0 if none.
uint64_t SelfCgroupId();

struct Loopback {
  int family;
  const char* address;
};

uint16_t LocalPort(int fd);
socklen_t Address(const Loopback& where, uint16_t port, sockaddr_storage* ss);
// The address as the probes store it: IPv4 v4-mapped.
std::vector<uint8_t> Stored(const Loopback& where);

}  // namespace nodescope::sensor::bpf::testing
