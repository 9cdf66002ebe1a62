// Debian's dnsmasq as the DNS peer of the dnsflow tests: an authoritative-only server (no
// upstream, no /etc/hosts) on one address of a namespace, port 53, answering the names it is
// given and NXDOMAIN for the domains it is told, UDP and TCP. It logs every query and reply,
// which is the ground truth a test holds records against.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/testing/temp_dir.h"
#include "tests/integration/harness.h"
#include "tests/integration/netns.h"

namespace nodescope::test {

struct DnsmasqOptions {
  const Netns* ns = nullptr;                     // nullptr: the root namespace
  std::string listen;                            // one IPv4 address; port 53
  std::map<std::string, std::string> addresses;  // name (and its subdomains) -> IPv4
  std::vector<std::string> nxdomains;            // names answered with NXDOMAIN
};

class Dnsmasq {
 public:
  // Starts dnsmasq in the foreground and waits until it answers over TCP.
  static Result<std::unique_ptr<Dnsmasq>> Start(DnsmasqOptions options);
  ~Dnsmasq();
  Dnsmasq(const Dnsmasq&) = delete;
  Dnsmasq& operator=(const Dnsmasq&) = delete;

  // dnsmasq's log: one "query[A] name from addr" line per query it received.
  std::string Log() const;
  // How many queries it logged.
  int Queries() const;

 private:
  Dnsmasq() = default;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace nodescope::test
