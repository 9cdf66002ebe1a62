#include "tests/bpf/sockets.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <optional>

#include "sensor/proc/procfs.h"

namespace nodescope::sensor::bpf::testing {

std::string SelfComm() {
  std::ifstream in("/proc/self/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

uint32_t SelfNetns() {
  struct stat st {};
  EXPECT_EQ(stat("/proc/self/ns/net", &st), 0);
  return static_cast<uint32_t>(st.st_ino);
}

uint64_t SelfCgroupId() {
  std::ifstream mounts("/proc/self/mounts");
  std::string dev, dir, type, rest, mount;
  while (mounts >> dev >> dir >> type && std::getline(mounts, rest)) {
    if (type == "cgroup2") mount = dir;
  }
  Result<std::string> text = proc::ReadWholeFile("/proc/self/cgroup");
  std::optional<std::string> path = text.ok() ? proc::ParseCgroupV2Path(*text) : std::nullopt;
  struct stat st {};
  if (mount.empty() || !path || stat((mount + *path).c_str(), &st) != 0) return 0;
  return st.st_ino;
}

uint16_t LocalPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len), 0);
  return ntohs(ss.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                       : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

socklen_t Address(const Loopback& where, uint16_t port, sockaddr_storage* ss) {
  std::memset(ss, 0, sizeof(*ss));
  if (where.family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    inet_pton(AF_INET, where.address, &in->sin_addr);
    return sizeof(sockaddr_in);
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(ss);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  inet_pton(AF_INET6, where.address, &in6->sin6_addr);
  return sizeof(sockaddr_in6);
}

std::vector<uint8_t> Stored(const Loopback& where) {
  std::vector<uint8_t> out(16, 0);
  if (where.family == AF_INET) {
    out[10] = out[11] = 0xff;
    inet_pton(AF_INET, where.address, out.data() + 12);
  } else {
    inet_pton(AF_INET6, where.address, out.data());
  }
  return out;
}

}  // namespace nodescope::sensor::bpf::testing
