// Sensor-side connection filters in the syntax of Netdata's eBPF "[network connections]" section
// (ports, ips, hostnames) and its "[service name]" port -> name map. Decided once per connection,
// so everything is parsed and resolved when the filter is built.
//
// Lists are space-separated; every item may be negated with '!'. A negated item always excludes;
// when a list has at least one positive item a connection must match one of them; a list of
// negations only lets everything else through; an empty list or "*" lets everything through.
// `ips` and `hostnames` both describe the remote side and form one include/exclude set.
#pragma once

#include <bitset>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/net/ip.h"
#include "common/status.h"

namespace nodescope::sensor::netflow {

// `path` under $HOST_ROOT when it is set (the host's /etc seen from the sensor's container).
std::string HostPath(std::string_view path);

// /etc/services: "name port/proto [aliases...] # comment"; tcp and udp entries only.
class ServicesFile {
 public:
  static ServicesFile Parse(std::string_view text);
  // Errors: "cannot read PATH: <strerror>".
  static Result<ServicesFile> Read(const std::string& path);

  // The ports a name or alias stands for, tcp and udp together, ascending; empty when unknown.
  std::vector<uint16_t> Ports(std::string_view name) const;
  // The first name listed for port/proto, "" when none.
  std::string_view Name(uint16_t port, bool udp) const;

 private:
  friend class ServiceNames;
  std::map<std::string, std::vector<uint16_t>, std::less<>> ports_;
  std::unordered_map<uint32_t, std::string> names_;  // key: port | udp << 16
};

// /etc/hosts as address -> names (canonical name first, then aliases, in file order; the names of
// an address repeated on several lines are joined). Lets the plugin name a remote address for
// `hostnames` patterns. Errors: "cannot read PATH: <strerror>".
using HostsMap = std::map<net::IpAddress, std::vector<std::string>>;
HostsMap ParseHosts(std::string_view text);
Result<HostsMap> ReadHosts(const std::string& path = HostPath("/etc/hosts"));

// The "[service name]" map over /etc/services: what `dst_service_name` says for a port.
class ServiceNames {
 public:
  ServiceNames() = default;  // knows no names
  // `configured`: "19999" -> "Netdata"; keys must be ports 1-65535, names non-empty. Errors:
  // `service_names: "70000" is not a port (1-65535)`, `service_names: port 19999 has an empty
  // name`, `service_names: "09999" and "9999" are both port 9999`.
  static Result<ServiceNames> Build(const std::map<std::string, std::string>& configured,
                                    const ServicesFile& services);
  // As above over HostPath("/etc/services"); a file that cannot be read leaves only the
  // configured names (slim container images have no /etc/services, and names are cosmetic).
  static Result<ServiceNames> Build(const std::map<std::string, std::string>& configured);

  // The configured name for `port`, else the /etc/services name for port/proto, else "".
  std::string_view Name(uint16_t port, bool udp) const;

 private:
  std::unordered_map<uint32_t, std::string> names_;  // key: port | udp << 16
};

struct FilterOptions {
  std::string ports{};      // "1-1024 !145 !domain"
  std::string ips{};        // "!127.0.0.1/8 10.0.0.0/8 198.18.0.1-198.18.0.9 fc00::/7"
  std::string hostnames{};  // "!example.com *.internal"
  std::map<std::string, std::string> service_names{};  // "19999" -> "Netdata"
};

class ConnectionFilter {
 public:
  // Parses every option, reads HostPath("/etc/services") (service names in `ports`, and the
  // fallback names of service_names()), and resolves the plain hostnames (see Refresh). A hostname
  // that does not resolve is not an error here (DNS may come up after the sensor): resolve_status()
  // says which. Errors are one line naming the option and the item, e.g. `ports: "70000" is not a
  // port (1-65535)`, `ips: "10.0.0.0/33": prefix length 33 is out of range for IPv4 (0-32)`,
  // `ports: unknown service "nosuchsvc"`, `hostnames: "a/b" is not a hostname or pattern`.
  static Result<ConnectionFilter> Build(const FilterOptions& options);

  // Whether to record a connection. `server_port` is the listening side's port; `remote_name` is
  // a name the caller knows for `remote` (from /etc/hosts or DNS answers), matched against the
  // `hostnames` items case-insensitively; empty when none is known.
  bool Allows(uint16_t server_port, const net::IpAddress& remote,
              std::string_view remote_name = {}) const;

  // Resolves each plain (wildcard-free) `hostnames` item again with getaddrinfo (AF_UNSPEC).
  // An item that fails keeps the addresses it had. Error: `hostnames: cannot resolve "x": <why>`
  // (several joined with "; "). Not safe to run concurrently with Allows().
  Status Refresh();
  const Status& resolve_status() const { return resolve_status_; }

  const ServiceNames& service_names() const { return service_names_; }

 private:
  struct Hostname {
    std::string name;  // lower case
    bool negated = false;
    std::vector<net::IpAddress> addresses;
  };

  void CollectAddresses();

  std::bitset<65536> port_allowed_;
  bool remote_any_ = false;       // a positive "*" in ips or hostnames
  bool remote_none_ = false;      // a negated "*" in ips or hostnames
  bool remote_positive_ = false;  // any positive ips/hostnames item
  std::vector<net::IpRange> ip_include_, ip_exclude_;
  std::vector<Hostname> hostnames_;                             // plain names, resolved
  std::vector<net::IpAddress> host_include_, host_exclude_;     // sorted, from hostnames_
  std::vector<std::string> pattern_include_, pattern_exclude_;  // lower case, plain names too
  Status resolve_status_;
  ServiceNames service_names_;
};

}  // namespace nodescope::sensor::netflow
