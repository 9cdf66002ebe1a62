// libFuzzer target for the sensor's connection filters (registered with nodescope_fuzz in this
// folder's CMakeLists.txt; netflow_filter_fuzz_test links this file too and replays
// testdata/fuzz/ through CheckNetflowFilterInput()).
//
// The input is lines:
//   p ITEMS    the ports option (Netdata syntax: 80 1-1024 !145 !domain)
//   i ITEMS    the ips option (CIDRs, dash ranges, addresses, '!')
//   n ITEMS    the hostnames option (names, '*' patterns, '!')
//   m PORT=NAME  a service_names entry
//   c PORT ADDRESS [NAME]  a connection to decide
//   S LINE / H LINE  a line of an /etc/services / /etc/hosts text, parsed on its own
// The filter reads /etc/services under $HOST_ROOT, set here to a directory holding kServices, and
// resolves plain host names through the getaddrinfo below: addresses made from the name's hash,
// without any network traffic.
//
// Invariants: no crash or sanitizer report; a refusal is one line naming the option; an accepted
// filter decides every connection as the option texts say, computed here another way (the port
// set item by item, '*' patterns by dynamic programming, ranges by their ends).
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bitset>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sensor/plugins/netflow/filter.h"

namespace nodescope::sensor::netflow {

std::string CheckNetflowFilterInput(const uint8_t* data, size_t size);  // the unit test too

namespace {

constexpr std::string_view kServices =
    "http 80/tcp www # WorldWideWeb HTTP\n"
    "domain 53/tcp\n"
    "domain 53/udp\n"
    "https 443/tcp\n"
    "https 443/udp\n"
    "netdata 19999/tcp nd\n"
    "gre 47/ddp\n";
const std::map<std::string, std::vector<uint16_t>> kServicePorts = {
    {"http", {80}},   {"www", {80}},        {"domain", {53}},
    {"https", {443}}, {"netdata", {19999}}, {"nd", {19999}}};

constexpr size_t kMaxLines = 32;
constexpr size_t kMaxChecks = 256;

uint32_t Hash(std::string_view name) {
  uint32_t h = 2166136261u;
  for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  return h;
}

}  // namespace

// What the fake resolver answers: nothing for a quarter of the names, else 198.18.x.y and, for
// half of those, fd00::<hash> too.
std::vector<net::IpAddress> FakeAddresses(std::string_view name) {
  const uint32_t h = Hash(name);
  if (h % 4 == 0) return {};
  std::vector<net::IpAddress> out;
  const uint8_t v4[4] = {198, 18, static_cast<uint8_t>(h >> 8), static_cast<uint8_t>(h)};
  out.push_back(*net::IpAddress::FromBytes(v4));
  if (h % 2 == 0) {
    uint8_t v6[16] = {0xfd, 0x00};
    std::memcpy(v6 + 12, &h, 4);
    out.push_back(*net::IpAddress::FromBytes(v6));
  }
  return out;
}

namespace {

Status Refusal(const Status& s) {
  const std::string& m = s.message();
  if (m.empty()) return Status::Error("refused without a message");
  if (m.find('\n') != std::string::npos) return Status::Error("a refusal of two lines: " + m);
  for (const char* option : {"ports: ", "ips: ", "hostnames: ", "service_names: "}) {
    if (m.rfind(option, 0) == 0) return Status::Ok();
  }
  return Status::Error("a refusal naming no option: " + m);
}

// Items as the filter splits them: on space, tab, CR and LF only.
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::vector<std::string> Words(std::string_view text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && IsSpace(text[i])) ++i;
    const size_t start = i;
    while (i < text.size() && !IsSpace(text[i])) ++i;
    if (i > start) out.emplace_back(text.substr(start, i - start));
  }
  return out;
}

std::optional<uint16_t> Port(const std::string& text) {
  if (text.empty() || text.size() > 5 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const int value = std::stoi(text);
  if (value < 1 || value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

// The ports option item by item; std::nullopt when an item is not valid.
std::optional<std::bitset<65536>> ExpectedPorts(const std::string& option) {
  std::bitset<65536> include, exclude;
  bool positive = false;
  for (std::string item : Words(option)) {
    const bool negated = item[0] == '!';
    if (negated) item.erase(0, 1);
    if (item.empty()) return std::nullopt;
    positive = positive || !negated;
    std::bitset<65536>& set = negated ? exclude : include;
    if (item == "*") {
      set.set();
    } else if (item.find_first_not_of("0123456789-") == std::string::npos) {
      const size_t dash = item.find('-');
      auto low = Port(item.substr(0, dash));
      auto high = dash == std::string::npos ? low : Port(item.substr(dash + 1));
      if (!low || !high || *low > *high) return std::nullopt;
      for (uint32_t p = *low; p <= *high; ++p) set.set(p);
    } else {
      auto it = kServicePorts.find(item);
      if (it == kServicePorts.end()) return std::nullopt;
      for (uint16_t p : it->second) set.set(p);
    }
  }
  return (positive ? include : ~std::bitset<65536>()) & ~exclude;
}

// '*' matches any run, other characters themselves case-insensitively (pattern in lower case).
bool GlobByTable(const std::string& pattern, std::string name) {
  if (name.size() > 1 && name.back() == '.') name.pop_back();
  for (char& c : name) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  // ok[j]: pattern[0, i) matches name[0, j).
  std::vector<bool> ok(name.size() + 1, false);
  ok[0] = true;
  for (char p : pattern) {
    std::vector<bool> next(name.size() + 1, false);
    for (size_t j = 0; j <= name.size(); ++j) {
      if (p == '*') {
        next[j] = ok[j] || (j > 0 && next[j - 1]);
      } else {
        next[j] = j > 0 && ok[j - 1] && name[j - 1] == p;
      }
    }
    ok = std::move(next);
  }
  return ok[name.size()];
}

// The remote side's options, as read by the definitions in filter.h.
struct Remote {
  bool any = false, none = false, positive = false;
  std::vector<net::IpRange> include_ranges, exclude_ranges;
  std::vector<net::IpAddress> include_hosts, exclude_hosts;
  std::vector<std::string> include_patterns, exclude_patterns;

  bool Allows(const net::IpAddress& address, const std::string& name) const {
    if (none) return false;
    auto in_ranges = [&](const std::vector<net::IpRange>& ranges) {
      return std::any_of(ranges.begin(), ranges.end(), [&](const net::IpRange& r) {
        return address.v6 == r.first().v6 && !(address < r.first()) && !(r.last() < address);
      });
    };
    auto in_hosts = [&](const std::vector<net::IpAddress>& hosts) {
      return std::find(hosts.begin(), hosts.end(), address) != hosts.end();
    };
    auto in_patterns = [&](const std::vector<std::string>& patterns) {
      return !name.empty() &&
             std::any_of(patterns.begin(), patterns.end(),
                         [&](const std::string& p) { return GlobByTable(p, name); });
    };
    if (in_ranges(exclude_ranges) || in_hosts(exclude_hosts) || in_patterns(exclude_patterns)) {
      return false;
    }
    if (!positive || any) return true;
    return in_ranges(include_ranges) || in_hosts(include_hosts) || in_patterns(include_patterns);
  }
};

// Only for options the filter accepted.
Remote ExpectedRemote(const std::string& ips, const std::string& hostnames) {
  Remote r;
  // Both lists: a leading '!' excludes, "*" is everything; `add` takes any other item.
  auto each = [&r](const std::string& list, auto&& add) {
    for (std::string item : Words(list)) {
      const bool negated = item[0] == '!';
      if (negated) item.erase(0, 1);
      r.positive = r.positive || !negated;
      if (item == "*") {
        (negated ? r.none : r.any) = true;
      } else {
        add(item, negated);
      }
    }
  };
  each(ips, [&r](const std::string& item, bool negated) {
    std::string why;
    if (auto range = net::IpRange::Parse(item, &why)) {
      (negated ? r.exclude_ranges : r.include_ranges).push_back(*range);
    }
  });
  each(hostnames, [&r](std::string item, bool negated) {
    if (item.size() > 1 && item.back() == '.') item.pop_back();
    for (char& c : item) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    (negated ? r.exclude_patterns : r.include_patterns).push_back(item);
    if (item.find('*') == std::string::npos) {
      for (const net::IpAddress& a : FakeAddresses(item)) {
        (negated ? r.exclude_hosts : r.include_hosts).push_back(a);
      }
    }
  });
  return r;
}

struct Connection {
  uint16_t port;
  net::IpAddress address;
  std::string name;
};

Status CheckRanges(const std::string& ips) {
  for (std::string item : Words(ips)) {
    if (item[0] == '!') item.erase(0, 1);
    std::string why;
    auto range = net::IpRange::Parse(item, &why);
    if (!range) continue;
    if (range->first().v6 != range->last().v6 || range->last() < range->first() ||
        !range->Contains(range->first()) || !range->Contains(range->last())) {
      return Status::Error("range " + item + " does not hold its own ends");
    }
  }
  return Status::Ok();
}

Status CheckFiles(const std::string& services_text, const std::string& hosts_text) {
  ServicesFile services = ServicesFile::Parse(services_text);
  for (const std::string& word : Words(services_text)) {
    std::vector<uint16_t> ports = services.Ports(word);
    if (!std::is_sorted(ports.begin(), ports.end()) ||
        std::adjacent_find(ports.begin(), ports.end()) != ports.end() ||
        std::count(ports.begin(), ports.end(), 0) > 0) {
      return Status::Error("services: ports of " + word + " not ascending, unique and >0");
    }
    for (uint16_t p : ports) {
      if (services.Name(p, false).empty() && services.Name(p, true).empty()) {
        return Status::Error("services: port " + std::to_string(p) + " of " + word + " unnamed");
      }
    }
  }
  for (const auto& [address, names] : ParseHosts(hosts_text)) {
    if (names.empty()) return Status::Error("hosts: an address without names");
    std::vector<std::string> sorted = names;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
      return Status::Error("hosts: a name listed twice for " + address.ToString());
    }
  }
  return Status::Ok();
}

char host_root[] = "/tmp/ns-fuzz-netflow-XXXXXX";

void RemoveFakeHostRoot() {
  const std::string root = host_root;
  std::remove((root + "/etc/services").c_str());
  std::remove((root + "/etc").c_str());
  std::remove(root.c_str());
}

void UseFakeHostRoot() {
  static const bool done = [] {
    if (mkdtemp(host_root) == nullptr) std::abort();
    const std::string etc = std::string(host_root) + "/etc";
    if (mkdir(etc.c_str(), 0755) != 0) std::abort();
    std::ofstream(etc + "/services") << kServices;
    setenv("HOST_ROOT", host_root, 1);
    std::atexit(RemoveFakeHostRoot);
    return true;
  }();
  (void)done;
}

}  // namespace

std::string CheckNetflowFilterInput(const uint8_t* data, size_t size) {
  UseFakeHostRoot();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  FilterOptions options;
  std::string services_text, hosts_text;
  std::vector<Connection> connections;
  for (size_t lines = 0; !text.empty() && lines < kMaxLines; ++lines) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.size() < 2 || line[1] != ' ') continue;
    const std::string arg(line.substr(2));
    switch (line[0]) {
      case 'p':
        options.ports += " " + arg;
        break;
      case 'i':
        options.ips += " " + arg;
        break;
      case 'n':
        options.hostnames += " " + arg;
        break;
      case 'm': {
        const size_t eq = arg.find('=');
        if (eq != std::string::npos) options.service_names[arg.substr(0, eq)] = arg.substr(eq + 1);
        break;
      }
      case 'c': {
        const std::vector<std::string> w = Words(arg);
        if (w.size() < 2) break;
        auto port = Port(w[0]);
        auto address = net::IpAddress::Parse(w[1]);
        if (port && address) connections.push_back({*port, *address, w.size() > 2 ? w[2] : ""});
        break;
      }
      case 'S':
        services_text += arg + "\n";
        break;
      case 'H':
        hosts_text += arg + "\n";
        break;
      default:
        break;
    }
  }
  if (Status s = CheckFiles(services_text, hosts_text); !s.ok()) return s.message();
  if (Status s = CheckRanges(options.ips); !s.ok()) return s.message();

  Result<ConnectionFilter> filter = ConnectionFilter::Build(options);
  const std::optional<std::bitset<65536>> ports = ExpectedPorts(options.ports);
  if (!filter.ok()) {
    if (Status s = Refusal(filter.status()); !s.ok()) return s.message();
    if (ports && filter.status().message().rfind("ports: ", 0) == 0) {
      return "ports " + options.ports + " refused though valid: " + filter.status().message();
    }
    return "";
  }
  if (!ports) return "ports " + options.ports + " accepted though not valid";
  for (const auto& [key, name] : options.service_names) {
    const uint16_t port = *Port(key);  // accepted, so a port
    if (filter->service_names().Name(port, false) != name) return "service name of " + key;
  }

  // Connections: the input's, then ones at the edges of every item.
  const Remote remote = ExpectedRemote(options.ips, options.hostnames);
  std::vector<uint16_t> edge_ports = {1, 53, 80, 443, 65535};
  for (const std::string& w : Words(options.ports)) {
    for (const std::string& part : {w.substr(w[0] == '!'), w.substr(w.find('-') + 1)}) {
      if (auto p = Port(part.substr(0, part.find('-')))) {
        edge_ports.push_back(*p);
        if (*p > 1) edge_ports.push_back(*p - 1);
        if (*p < 65535) edge_ports.push_back(*p + 1);
      }
    }
  }
  std::vector<net::IpAddress> addresses = {*net::IpAddress::Parse("198.18.0.1"),
                                           *net::IpAddress::Parse("fd00::1")};
  for (const auto& ranges : {remote.include_ranges, remote.exclude_ranges}) {
    for (const net::IpRange& r : ranges) {
      addresses.push_back(r.first());
      addresses.push_back(r.last());
    }
  }
  for (const auto& hosts : {remote.include_hosts, remote.exclude_hosts}) {
    addresses.insert(addresses.end(), hosts.begin(), hosts.end());
  }
  std::vector<std::string> names = {"", "example.com"};
  for (const auto& patterns : {remote.include_patterns, remote.exclude_patterns}) {
    names.insert(names.end(), patterns.begin(), patterns.end());
  }
  for (size_t i = 0; i < edge_ports.size() && connections.size() < kMaxChecks; ++i) {
    connections.push_back(
        {edge_ports[i], addresses[i % addresses.size()], names[i % names.size()]});
  }
  for (size_t i = 0; i < addresses.size() && connections.size() < kMaxChecks; ++i) {
    for (size_t j = 0; j < names.size() && connections.size() < kMaxChecks; ++j) {
      connections.push_back({80, addresses[i], names[j]});
    }
  }
  for (const Connection& c : connections) {
    const bool expected = (*ports)[c.port] && remote.Allows(c.address, c.name);
    if (filter->Allows(c.port, c.address, c.name) != expected) {
      return "filter says " + std::string(expected ? "no" : "yes") + " to port " +
             std::to_string(c.port) + " " + c.address.ToString() + " \"" + c.name + "\"";
    }
  }
  return "";
}

}  // namespace nodescope::sensor::netflow

// The resolver every plain `hostnames` item goes through, replaced for the fuzzer and the corpus
// replay: the filter must never send a DNS query from here.
extern "C" int getaddrinfo(const char* node, const char*, const addrinfo*, addrinfo** result) {
  using nodescope::sensor::netflow::FakeAddresses;
  const std::vector<nodescope::net::IpAddress> addresses = FakeAddresses(node ? node : "");
  if (addresses.empty()) return EAI_NONAME;
  addrinfo* head = nullptr;
  for (auto it = addresses.rbegin(); it != addresses.rend(); ++it) {
    auto* entry = static_cast<addrinfo*>(std::calloc(1, sizeof(addrinfo)));
    auto* storage = static_cast<sockaddr_in6*>(std::calloc(1, sizeof(sockaddr_in6)));
    if (it->v6) {
      entry->ai_family = storage->sin6_family = AF_INET6;
      std::memcpy(&storage->sin6_addr, it->bytes.data(), 16);
      entry->ai_addrlen = sizeof(sockaddr_in6);
    } else {
      auto* sin = reinterpret_cast<sockaddr_in*>(storage);
      entry->ai_family = sin->sin_family = AF_INET;
      std::memcpy(&sin->sin_addr, it->bytes.data(), 4);
      entry->ai_addrlen = sizeof(sockaddr_in);
    }
    entry->ai_socktype = SOCK_STREAM;
    entry->ai_addr = reinterpret_cast<sockaddr*>(storage);
    entry->ai_next = head;
    head = entry;
  }
  *result = head;
  return 0;
}

extern "C" void freeaddrinfo(addrinfo* list) {
  while (list != nullptr) {
    addrinfo* next = list->ai_next;
    std::free(list->ai_addr);
    std::free(list);
    list = next;
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string why = nodescope::sensor::netflow::CheckNetflowFilterInput(data, size);
  if (!why.empty()) {
    std::fprintf(stderr, "invariant broken: %s\n", why.c_str());
    std::abort();
  }
  return 0;
}
