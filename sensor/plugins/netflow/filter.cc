#include "sensor/plugins/netflow/filter.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

namespace nodescope::sensor::netflow {
namespace {

uint32_t Key(uint16_t port, bool udp) { return port | (udp ? 1u << 16 : 0u); }

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::vector<std::string_view> Split(std::string_view text) {
  std::vector<std::string_view> items;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && IsSpace(text[i])) ++i;
    size_t start = i;
    while (i < text.size() && !IsSpace(text[i])) ++i;
    if (i > start) items.push_back(text.substr(start, i - start));
  }
  return items;
}

// Calls `fn` with each line of `text`, a '#' comment removed, split into words.
template <typename Fn>
void ForEachLine(std::string_view text, Fn fn) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    line = line.substr(0, line.find('#'));
    auto words = Split(line);
    if (!words.empty()) fn(words);
  }
}

Result<std::string> ReadText(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error(fmt::format("cannot read {}: {}", path, strerror(errno)));
  std::string text;
  char buffer[16384];
  while (true) {
    ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      close(fd);
      return Status::Error(fmt::format("cannot read {}: {}", path, strerror(saved)));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  close(fd);  // read-only: a failing close loses nothing
  return text;
}

// 1-65535 written in decimal digits only.
std::optional<uint16_t> ParsePort(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value < 1 || value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

std::string LowerName(std::string_view name) {
  if (name.size() > 1 && name.back() == '.') name.remove_suffix(1);  // "example.com." (DNS)
  std::string lower(name);
  for (char& c : lower) c = Lower(c);
  return lower;
}

// '*' matches any run of characters; `pattern` is lower case, `name` compared case-insensitively.
bool Glob(std::string_view pattern, std::string_view name) {
  size_t p = 0;
  size_t n = 0;
  size_t star = std::string_view::npos;  // the last '*' seen, to retry from
  size_t resume = 0;                     // where in `name` that '*' started matching
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (p < pattern.size() && pattern[p] == Lower(name[n])) {
      ++p;
      ++n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool MatchesAny(const std::vector<std::string>& patterns, std::string_view name) {
  if (name.size() > 1 && name.back() == '.') name.remove_suffix(1);
  return std::any_of(patterns.begin(), patterns.end(),
                     [name](const std::string& pattern) { return Glob(pattern, name); });
}

bool IsHostnameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_' || c == '*' || c == ':';
}

// An item with its '!' taken off; `error` set when nothing follows the '!'.
struct Item {
  std::string_view body;
  bool negated = false;
};
std::optional<Item> SplitNegation(std::string_view option, std::string_view item, Status* error) {
  Item out{item, false};
  if (!item.empty() && item.front() == '!') {
    out.negated = true;
    out.body.remove_prefix(1);
  }
  if (out.body.empty()) {
    *error = Status::Error(fmt::format("{}: \"{}\" has nothing after \"!\"", option, item));
    return std::nullopt;
  }
  return out;
}

}  // namespace

std::string HostPath(std::string_view path) {
  const char* root = std::getenv("HOST_ROOT");
  std::string prefix = root != nullptr ? root : "";
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return prefix + std::string(path);
}

ServicesFile ServicesFile::Parse(std::string_view text) {
  ServicesFile file;
  ForEachLine(text, [&file](const std::vector<std::string_view>& words) {
    if (words.size() < 2) return;
    std::string_view port_proto = words[1];
    size_t slash = port_proto.find('/');
    if (slash == std::string_view::npos) return;
    std::string_view proto = port_proto.substr(slash + 1);
    if (proto != "tcp" && proto != "udp") return;  // sctp, ddp: no such sockets here
    auto port = ParsePort(port_proto.substr(0, slash));
    if (!port) return;
    file.names_.emplace(Key(*port, proto == "udp"), std::string(words[0]));  // first one wins
    for (size_t i = 0; i < words.size(); ++i) {
      if (i == 1) continue;
      auto& ports = file.ports_[std::string(words[i])];
      if (std::find(ports.begin(), ports.end(), *port) == ports.end()) ports.push_back(*port);
    }
  });
  for (auto& [name, ports] : file.ports_) std::sort(ports.begin(), ports.end());
  return file;
}

Result<ServicesFile> ServicesFile::Read(const std::string& path) {
  auto text = ReadText(path);
  if (!text.ok()) return text.status();
  return Parse(*text);
}

std::vector<uint16_t> ServicesFile::Ports(std::string_view name) const {
  auto it = ports_.find(name);
  return it == ports_.end() ? std::vector<uint16_t>{} : it->second;
}

std::string_view ServicesFile::Name(uint16_t port, bool udp) const {
  auto it = names_.find(Key(port, udp));
  return it == names_.end() ? std::string_view() : std::string_view(it->second);
}

HostsMap ParseHosts(std::string_view text) {
  HostsMap hosts;
  ForEachLine(text, [&hosts](const std::vector<std::string_view>& words) {
    auto address = net::IpAddress::Parse(words[0]);
    if (!address || words.size() < 2) return;  // "fe80::1%lo0" and the like: not ours to use
    auto& names = hosts[*address];
    for (size_t i = 1; i < words.size(); ++i) {
      if (std::find(names.begin(), names.end(), words[i]) == names.end()) {
        names.emplace_back(words[i]);
      }
    }
  });
  return hosts;
}

Result<HostsMap> ReadHosts(const std::string& path) {
  auto text = ReadText(path);
  if (!text.ok()) return text.status();
  return ParseHosts(*text);
}

Result<ServiceNames> ServiceNames::Build(const std::map<std::string, std::string>& configured,
                                         const ServicesFile& services) {
  ServiceNames names;
  names.names_ = services.names_;
  std::map<uint16_t, std::string> keys;  // port -> the key that named it ("9999", "09999")
  for (const auto& [key, name] : configured) {
    auto port = ParsePort(key);
    if (!port) {
      return Status::Error(fmt::format("service_names: \"{}\" is not a port (1-65535)", key));
    }
    if (auto [it, fresh] = keys.emplace(*port, key); !fresh) {
      return Status::Error(
          fmt::format("service_names: \"{}\" and \"{}\" are both port {}", it->second, key, *port));
    }
    if (Split(name).empty()) {
      return Status::Error(fmt::format("service_names: port {} has an empty name", *port));
    }
    names.names_[Key(*port, false)] = name;
    names.names_[Key(*port, true)] = name;
  }
  return names;
}

Result<ServiceNames> ServiceNames::Build(const std::map<std::string, std::string>& configured) {
  auto services = ServicesFile::Read(HostPath("/etc/services"));
  return Build(configured, services.ok() ? *services : ServicesFile());
}

std::string_view ServiceNames::Name(uint16_t port, bool udp) const {
  auto it = names_.find(Key(port, udp));
  return it == names_.end() ? std::string_view() : std::string_view(it->second);
}

Result<ConnectionFilter> ConnectionFilter::Build(const FilterOptions& options) {
  ConnectionFilter filter;
  Status error;
  const Result<ServicesFile> services = ServicesFile::Read(HostPath("/etc/services"));

  std::bitset<65536> include;
  std::bitset<65536> exclude;
  bool positive = false;
  for (std::string_view raw : Split(options.ports)) {
    auto item = SplitNegation("ports", raw, &error);
    if (!item) return error;
    std::bitset<65536>& set = item->negated ? exclude : include;
    positive |= !item->negated;
    std::string_view body = item->body;
    if (body == "*") {
      set.set();
    } else if (body.find_first_not_of("0123456789-") == std::string_view::npos) {
      size_t dash = body.find('-');
      if (dash == std::string_view::npos) {
        auto port = ParsePort(body);
        if (!port) return Status::Error(fmt::format("ports: \"{}\" is not a port (1-65535)", body));
        set.set(*port);
        continue;
      }
      auto low = ParsePort(body.substr(0, dash));
      auto high = ParsePort(body.substr(dash + 1));
      if (!low || !high) {
        return Status::Error(fmt::format("ports: \"{}\" is not a port range (1-65535)", body));
      }
      if (*low > *high) {
        return Status::Error(
            fmt::format("ports: \"{}\" is not a port range (start after end)", body));
      }
      for (uint32_t port = *low; port <= *high; ++port) set.set(port);
    } else {
      if (!services.ok()) {
        return Status::Error(
            fmt::format("ports: unknown service \"{}\" ({})", body, services.status().message()));
      }
      auto ports = services->Ports(body);
      if (ports.empty()) return Status::Error(fmt::format("ports: unknown service \"{}\"", body));
      for (uint16_t port : ports) set.set(port);
    }
  }
  filter.port_allowed_ = (positive ? include : ~std::bitset<65536>()) & ~exclude;

  for (std::string_view raw : Split(options.ips)) {
    auto item = SplitNegation("ips", raw, &error);
    if (!item) return error;
    filter.remote_positive_ |= !item->negated;
    if (item->body == "*") {
      (item->negated ? filter.remote_none_ : filter.remote_any_) = true;
      continue;
    }
    std::string reason;
    auto range = net::IpRange::Parse(item->body, &reason);
    if (!range) {
      // The reason may already quote the whole item; do not say it twice.
      std::string quoted = fmt::format("\"{}\"", item->body);
      if (reason.starts_with(quoted)) return Status::Error("ips: " + reason);
      return Status::Error(fmt::format("ips: {}: {}", quoted, reason));
    }
    (item->negated ? filter.ip_exclude_ : filter.ip_include_).push_back(*range);
  }

  for (std::string_view raw : Split(options.hostnames)) {
    auto item = SplitNegation("hostnames", raw, &error);
    if (!item) return error;
    filter.remote_positive_ |= !item->negated;
    if (item->body == "*") {
      (item->negated ? filter.remote_none_ : filter.remote_any_) = true;
      continue;
    }
    if (!std::all_of(item->body.begin(), item->body.end(), IsHostnameChar) || item->body == ".") {
      return Status::Error(
          fmt::format("hostnames: \"{}\" is not a hostname or pattern", item->body));
    }
    std::string name = LowerName(item->body);
    (item->negated ? filter.pattern_exclude_ : filter.pattern_include_).push_back(name);
    if (name.find('*') == std::string::npos) {
      filter.hostnames_.push_back(Hostname{std::move(name), item->negated, {}});
    }
  }

  auto service_names =
      ServiceNames::Build(options.service_names, services.ok() ? services.value() : ServicesFile());
  if (!service_names.ok()) return service_names.status();
  filter.service_names_ = std::move(service_names).value();

  (void)filter.Refresh();  // kept in resolve_status()
  return filter;
}

Status ConnectionFilter::Refresh() {
  std::vector<std::string> failures;
  for (Hostname& hostname : hostnames_) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;  // one entry per address instead of one per socket type
    addrinfo* list = nullptr;
    int rc = getaddrinfo(hostname.name.c_str(), nullptr, &hints, &list);
    if (rc != 0) {
      const char* why = rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc);
      failures.push_back(fmt::format("cannot resolve \"{}\": {}", hostname.name, why));
      continue;
    }
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(list, &freeaddrinfo);
    std::vector<net::IpAddress> addresses;
    for (const addrinfo* entry = list; entry != nullptr; entry = entry->ai_next) {
      std::optional<net::IpAddress> address;
      if (entry->ai_family == AF_INET) {
        const auto* sin = reinterpret_cast<const sockaddr_in*>(entry->ai_addr);
        address = net::IpAddress::FromBytes(
            std::span(reinterpret_cast<const uint8_t*>(&sin->sin_addr), 4));
      } else if (entry->ai_family == AF_INET6) {
        const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(entry->ai_addr);
        address = net::IpAddress::FromBytes(
            std::span(reinterpret_cast<const uint8_t*>(&sin6->sin6_addr), 16));
      }
      if (address) addresses.push_back(*address);
    }
    std::sort(addresses.begin(), addresses.end());
    addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
    hostname.addresses = std::move(addresses);
  }
  CollectAddresses();
  resolve_status_ = Status::Ok();
  if (!failures.empty()) {
    resolve_status_ = Status::Error(fmt::format("hostnames: {}", fmt::join(failures, "; ")));
  }
  return resolve_status_;
}

void ConnectionFilter::CollectAddresses() {
  host_include_.clear();
  host_exclude_.clear();
  for (const Hostname& hostname : hostnames_) {
    auto& target = hostname.negated ? host_exclude_ : host_include_;
    target.insert(target.end(), hostname.addresses.begin(), hostname.addresses.end());
  }
  for (auto* list : {&host_include_, &host_exclude_}) {
    std::sort(list->begin(), list->end());
    list->erase(std::unique(list->begin(), list->end()), list->end());
  }
}

bool ConnectionFilter::Allows(uint16_t server_port, const net::IpAddress& remote,
                              std::string_view remote_name) const {
  if (!port_allowed_[server_port] || remote_none_) return false;
  for (const auto& range : ip_exclude_) {
    if (range.Contains(remote)) return false;
  }
  if (std::binary_search(host_exclude_.begin(), host_exclude_.end(), remote)) return false;
  if (!remote_name.empty() && MatchesAny(pattern_exclude_, remote_name)) return false;

  if (!remote_positive_ || remote_any_) return true;
  for (const auto& range : ip_include_) {
    if (range.Contains(remote)) return true;
  }
  if (std::binary_search(host_include_.begin(), host_include_.end(), remote)) return true;
  return !remote_name.empty() && MatchesAny(pattern_include_, remote_name);
}

}  // namespace nodescope::sensor::netflow
