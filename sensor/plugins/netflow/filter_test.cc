#include "sensor/plugins/netflow/filter.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <optional>
#include <set>
#include <string>

#include "common/testing/temp_dir.h"

namespace nodescope::sensor::netflow {
namespace {

using net::IpAddress;

IpAddress Ip(std::string_view text) {
  auto address = IpAddress::Parse(text);
  EXPECT_TRUE(address.has_value()) << text;
  return address.value_or(IpAddress{});
}

// Sets HOST_ROOT for one test and puts the old value back, even when the test fails.
class HostRoot {
 public:
  explicit HostRoot(const std::string& root) {
    if (const char* old = getenv("HOST_ROOT")) old_ = old;
    if (root.empty()) {
      unsetenv("HOST_ROOT");
    } else {
      setenv("HOST_ROOT", root.c_str(), 1);
    }
  }
  ~HostRoot() {
    if (old_) {
      setenv("HOST_ROOT", old_->c_str(), 1);
    } else {
      unsetenv("HOST_ROOT");
    }
  }

 private:
  std::optional<std::string> old_;
};

// A fake host root with an etc/ directory.
class FakeRoot {
 public:
  FakeRoot() { mkdir(dir_.File("etc").c_str(), 0755); }
  void Write(const std::string& name, const std::string& text) { dir_.Write("etc/" + name, text); }
  const std::string& path() const { return dir_.path(); }

 private:
  test::TempDir dir_;
};

ConnectionFilter Build(const FilterOptions& options) {
  auto filter = ConnectionFilter::Build(options);
  EXPECT_TRUE(filter.ok()) << filter.status().message();
  if (!filter.ok()) return ConnectionFilter::Build({}).value();
  return std::move(filter).value();
}

ConnectionFilter Ports(std::string ports) { return Build({.ports = std::move(ports)}); }
ConnectionFilter Ips(std::string ips) { return Build({.ips = std::move(ips)}); }
ConnectionFilter Hostnames(std::string hostnames) {
  return Build({.hostnames = std::move(hostnames)});
}

std::string BuildError(const FilterOptions& options) {
  auto filter = ConnectionFilter::Build(options);
  EXPECT_FALSE(filter.ok());
  return filter.status().message();
}

const IpAddress kAny = IpAddress::Parse("198.18.0.1").value();

TEST(Ports, EmptyAndStarAllowAll) {
  for (const char* ports : {"", "   ", "*"}) {
    auto filter = Ports(ports);
    for (uint32_t port : {0u, 1u, 80u, 1024u, 65535u}) {
      EXPECT_TRUE(filter.Allows(static_cast<uint16_t>(port), kAny)) << ports << " " << port;
    }
  }
  auto none = Ports("!*");
  EXPECT_FALSE(none.Allows(80, kAny));
  EXPECT_FALSE(none.Allows(65535, kAny));
  auto star_but = Ports("* !22");
  EXPECT_TRUE(star_but.Allows(21, kAny));
  EXPECT_FALSE(star_but.Allows(22, kAny));
}

TEST(Ports, SinglePortsAndRanges) {
  auto filter = Ports("80 443\t1000-2000  65535");
  EXPECT_TRUE(filter.Allows(80, kAny));
  EXPECT_FALSE(filter.Allows(79, kAny));
  EXPECT_FALSE(filter.Allows(81, kAny));
  EXPECT_TRUE(filter.Allows(443, kAny));
  EXPECT_FALSE(filter.Allows(999, kAny));
  EXPECT_TRUE(filter.Allows(1000, kAny));
  EXPECT_TRUE(filter.Allows(1500, kAny));
  EXPECT_TRUE(filter.Allows(2000, kAny));
  EXPECT_FALSE(filter.Allows(2001, kAny));
  EXPECT_TRUE(filter.Allows(65535, kAny));
  EXPECT_FALSE(filter.Allows(0, kAny));
  auto one = Ports("7-7");
  EXPECT_TRUE(one.Allows(7, kAny));
  EXPECT_FALSE(one.Allows(8, kAny));
}

TEST(Ports, OnlyNegationsLetTheRestThrough) {
  auto filter = Ports("!22 !8000-8010");
  EXPECT_FALSE(filter.Allows(22, kAny));
  EXPECT_FALSE(filter.Allows(8000, kAny));
  EXPECT_FALSE(filter.Allows(8010, kAny));
  EXPECT_TRUE(filter.Allows(7999, kAny));
  EXPECT_TRUE(filter.Allows(8011, kAny));
  EXPECT_TRUE(filter.Allows(80, kAny));
  EXPECT_TRUE(filter.Allows(21, kAny));
}

TEST(Ports, NetdataExampleWithRealServices) {
  HostRoot root("");
  auto services = ServicesFile::Read("/etc/services");
  ASSERT_TRUE(services.ok()) << services.status().message();
  ASSERT_EQ(services->Ports("domain"), std::vector<uint16_t>{53});  // what the example relies on

  auto filter = Ports("1-1024 !145 !domain");
  EXPECT_FALSE(filter.Allows(53, kAny));
  EXPECT_FALSE(filter.Allows(145, kAny));
  EXPECT_TRUE(filter.Allows(80, kAny));
  EXPECT_FALSE(filter.Allows(2000, kAny));
  EXPECT_TRUE(filter.Allows(1, kAny));
  EXPECT_TRUE(filter.Allows(52, kAny));
  EXPECT_TRUE(filter.Allows(144, kAny));
  EXPECT_TRUE(filter.Allows(1024, kAny));
  EXPECT_FALSE(filter.Allows(1025, kAny));
}

TEST(Ports, RealServicesHttp) {
  HostRoot root("");
  auto services = ServicesFile::Read("/etc/services");
  ASSERT_TRUE(services.ok()) << services.status().message();
  EXPECT_EQ(services->Ports("http"), std::vector<uint16_t>{80});
  EXPECT_EQ(services->Ports("www"), std::vector<uint16_t>{80});  // alias of http
  EXPECT_EQ(services->Name(80, false), "http");
  EXPECT_EQ(services->Name(53, true), "domain");

  auto filter = Ports("http");
  EXPECT_TRUE(filter.Allows(80, kAny));
  EXPECT_FALSE(filter.Allows(443, kAny));
  EXPECT_FALSE(filter.Allows(8080, kAny));
  auto alias = Ports("www https");
  EXPECT_TRUE(alias.Allows(80, kAny));
  EXPECT_TRUE(alias.Allows(443, kAny));
  EXPECT_FALSE(alias.Allows(81, kAny));
}

constexpr const char* kFakeServices =
    "# fake services\n"
    "\n"
    "nsfoo\t4444/tcp\tnsalias  # a comment\n"
    "nsfoo\t4445/udp\n"
    "nsbar\t5555/sctp\n"  // not tcp/udp: ignored
    "http\t8080/tcp\twww\n"
    "second\t8080/tcp\n"  // a second name for 8080/tcp: the first wins
    "broken 99999/tcp\n"
    "noport\n"
    "bad\tx/tcp\n";

TEST(Ports, ServicesFromHostRoot) {
  FakeRoot fake;
  fake.Write("services", kFakeServices);
  HostRoot root(fake.path() + "/");  // a trailing slash does not matter
  EXPECT_EQ(HostPath("/etc/services"), fake.path() + "/etc/services");

  auto filter = Ports("nsfoo");
  EXPECT_TRUE(filter.Allows(4444, kAny));
  EXPECT_TRUE(filter.Allows(4445, kAny));
  EXPECT_FALSE(filter.Allows(4446, kAny));
  auto alias = Ports("nsalias");
  EXPECT_TRUE(alias.Allows(4444, kAny));
  EXPECT_FALSE(alias.Allows(4445, kAny));
  auto http = Ports("http");  // the fake host's http, not the real one
  EXPECT_TRUE(http.Allows(8080, kAny));
  EXPECT_FALSE(http.Allows(80, kAny));
  EXPECT_EQ(BuildError({.ports = "nsbar"}), "ports: unknown service \"nsbar\"");
  EXPECT_EQ(BuildError({.ports = "domain"}), "ports: unknown service \"domain\"");

  auto names = ServiceNames::Build({{"19999", "Netdata"}});
  ASSERT_TRUE(names.ok()) << names.status().message();
  EXPECT_EQ(names->Name(8080, false), "http");
  EXPECT_EQ(names->Name(8080, true), "");
  EXPECT_EQ(names->Name(4445, true), "nsfoo");
  EXPECT_EQ(names->Name(4445, false), "");
  EXPECT_EQ(names->Name(80, false), "");
  EXPECT_EQ(names->Name(5555, false), "");
  EXPECT_EQ(names->Name(19999, false), "Netdata");
}

TEST(Ports, MissingServicesFile) {
  FakeRoot fake;  // no etc/services
  HostRoot root(fake.path());
  EXPECT_EQ(BuildError({.ports = "80 http"}), "ports: unknown service \"http\" (cannot read " +
                                                  fake.path() +
                                                  "/etc/services: No such file or directory)");
  auto numeric = Ports("80");
  EXPECT_TRUE(numeric.Allows(80, kAny));
  auto names = ServiceNames::Build({{"19999", "Netdata"}});
  ASSERT_TRUE(names.ok()) << names.status().message();
  EXPECT_EQ(names->Name(19999, true), "Netdata");
  EXPECT_EQ(names->Name(80, false), "");
}

TEST(ServicesFile, Parse) {
  auto file = ServicesFile::Parse(kFakeServices);
  EXPECT_EQ(file.Ports("nsfoo"), (std::vector<uint16_t>{4444, 4445}));
  EXPECT_EQ(file.Ports("nsalias"), std::vector<uint16_t>{4444});
  EXPECT_EQ(file.Ports("www"), std::vector<uint16_t>{8080});
  EXPECT_EQ(file.Ports("second"), std::vector<uint16_t>{8080});
  EXPECT_TRUE(file.Ports("nsbar").empty());
  EXPECT_TRUE(file.Ports("broken").empty());
  EXPECT_TRUE(file.Ports("bad").empty());
  EXPECT_TRUE(file.Ports("NSFOO").empty());  // case-sensitive, as getservbyname
  EXPECT_EQ(file.Name(8080, false), "http");
  EXPECT_EQ(file.Name(4444, false), "nsfoo");
  EXPECT_EQ(file.Name(4444, true), "");
}

TEST(ServiceNames, ConfiguredOverRealServices) {
  HostRoot root("");
  auto names = ServiceNames::Build({{"19999", "Netdata"}, {"80", "web"}});
  ASSERT_TRUE(names.ok()) << names.status().message();
  EXPECT_EQ(names->Name(19999, false), "Netdata");
  EXPECT_EQ(names->Name(19999, true), "Netdata");
  EXPECT_EQ(names->Name(80, false), "web");  // configured beats /etc/services
  EXPECT_EQ(names->Name(443, false), "https");
  EXPECT_EQ(names->Name(53, true), "domain");
  EXPECT_EQ(names->Name(19998, false), "");
  EXPECT_EQ(ServiceNames().Name(80, false), "");

  auto filter = Build({.service_names = {{"19999", "Netdata"}}});
  EXPECT_EQ(filter.service_names().Name(19999, false), "Netdata");
  EXPECT_EQ(filter.service_names().Name(80, false), "http");
}

TEST(Ips, IncludeExcludeRanges) {
  auto filter =
      Ips("198.18.0.0/15 !198.18.0.5 fd00:198:18::/48 !fd00:198:18::1 198.20.0.1-198.20.0.9");
  EXPECT_TRUE(filter.Allows(80, Ip("198.18.0.1")));
  EXPECT_FALSE(filter.Allows(80, Ip("198.18.0.5")));
  EXPECT_TRUE(filter.Allows(80, Ip("198.18.0.6")));
  EXPECT_TRUE(filter.Allows(80, Ip("198.19.255.255")));
  EXPECT_FALSE(filter.Allows(80, Ip("198.17.255.255")));
  EXPECT_TRUE(filter.Allows(80, Ip("fd00:198:18::2")));
  EXPECT_FALSE(filter.Allows(80, Ip("fd00:198:18::1")));
  EXPECT_FALSE(filter.Allows(80, Ip("fd00:198:19::2")));
  EXPECT_FALSE(filter.Allows(80, Ip("198.20.0.0")));
  EXPECT_TRUE(filter.Allows(80, Ip("198.20.0.1")));
  EXPECT_TRUE(filter.Allows(80, Ip("198.20.0.9")));
  EXPECT_FALSE(filter.Allows(80, Ip("198.20.0.10")));
  EXPECT_FALSE(filter.Allows(80, Ip("127.0.0.1")));
  const uint8_t mapped[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 5};
  EXPECT_FALSE(filter.Allows(80, IpAddress::FromBytes(mapped).value()));
}

TEST(Ips, NegationsOnly) {
  auto filter = Ips("!127.0.0.1/8 !::1");
  EXPECT_FALSE(filter.Allows(80, Ip("127.0.0.1")));
  EXPECT_FALSE(filter.Allows(80, Ip("127.255.255.255")));
  EXPECT_TRUE(filter.Allows(80, Ip("128.0.0.0")));
  EXPECT_TRUE(filter.Allows(80, Ip("126.255.255.255")));
  EXPECT_FALSE(filter.Allows(80, Ip("::1")));
  EXPECT_TRUE(filter.Allows(80, Ip("::2")));
}

TEST(Ips, NetdataExample) {
  auto filter = Ips("!127.0.0.1/8 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7");
  EXPECT_FALSE(filter.Allows(80, Ip("127.0.0.1")));
  EXPECT_TRUE(filter.Allows(80, Ip("10.1.2.3")));
  EXPECT_TRUE(filter.Allows(80, Ip("172.31.0.1")));
  EXPECT_FALSE(filter.Allows(80, Ip("172.32.0.1")));
  EXPECT_TRUE(filter.Allows(80, Ip("192.168.1.1")));
  EXPECT_TRUE(filter.Allows(80, Ip("fd00::1")));
  EXPECT_FALSE(filter.Allows(80, Ip("fe00::1")));
  EXPECT_FALSE(filter.Allows(80, Ip("198.18.0.1")));
}

TEST(Ips, Stars) {
  EXPECT_TRUE(Ips("*").Allows(80, Ip("::")));
  EXPECT_FALSE(Ips("!*").Allows(80, Ip("198.18.0.1")));
  auto but = Ips("* !198.18.0.0/16");
  EXPECT_FALSE(but.Allows(80, Ip("198.18.3.3")));
  EXPECT_TRUE(but.Allows(80, Ip("198.19.3.3")));
  EXPECT_TRUE(Ips("198.18.0.1 *").Allows(80, Ip("8.8.8.8")));  // "*" is a positive item too
}

TEST(Filter, PortsAndIpsBothApply) {
  auto filter = Build({.ports = "80", .ips = "198.18.0.0/15"});
  EXPECT_TRUE(filter.Allows(80, Ip("198.18.0.1")));
  EXPECT_FALSE(filter.Allows(81, Ip("198.18.0.1")));
  EXPECT_FALSE(filter.Allows(80, Ip("8.8.8.8")));
}

std::set<IpAddress> HostsAddressesOf(std::string_view name) {
  auto hosts = ReadHosts("/etc/hosts");
  EXPECT_TRUE(hosts.ok()) << hosts.status().message();
  std::set<IpAddress> addresses;
  if (!hosts.ok()) return addresses;
  for (const auto& [address, names] : *hosts) {
    for (const auto& n : names) {
      if (n == name) addresses.insert(address);
    }
  }
  return addresses;
}

TEST(Hostnames, LocalhostResolvesThroughEtcHosts) {
  HostRoot root("");
  std::set<IpAddress> truth = HostsAddressesOf("localhost");
  // This machine's /etc/hosts names 127.0.0.1 localhost; ::1 only when the file says so.
  ASSERT_TRUE(truth.contains(Ip("127.0.0.1")));

  auto filter = Hostnames("localhost");
  EXPECT_TRUE(filter.resolve_status().ok()) << filter.resolve_status().message();
  for (const auto& address : truth) EXPECT_TRUE(filter.Allows(80, address)) << address.ToString();
  EXPECT_EQ(filter.Allows(80, Ip("::1")), truth.contains(Ip("::1")));
  EXPECT_FALSE(filter.Allows(80, Ip("198.18.0.1")));
  EXPECT_FALSE(filter.Allows(80, Ip("127.0.0.2")));
  // A plain name also matches a name the caller knows, whatever its case or a trailing dot.
  EXPECT_TRUE(filter.Allows(80, Ip("198.18.0.1"), "LocalHost."));
  EXPECT_FALSE(filter.Allows(80, Ip("198.18.0.1"), "localhost2"));

  auto negated = Hostnames("!localhost");
  EXPECT_FALSE(negated.Allows(80, Ip("127.0.0.1")));
  EXPECT_TRUE(negated.Allows(80, Ip("198.18.0.1")));
  EXPECT_FALSE(negated.Allows(80, Ip("198.18.0.1"), "localhost"));

  EXPECT_TRUE(filter.Refresh().ok());
  EXPECT_TRUE(filter.Allows(80, Ip("127.0.0.1")));
}

TEST(Hostnames, UnresolvedNameIsReportedAndKeepsOthers) {
  auto filter = Hostnames("localhost nosuchhost.invalid");
  ASSERT_FALSE(filter.resolve_status().ok());
  const std::string prefix = "hostnames: cannot resolve \"nosuchhost.invalid\": ";
  EXPECT_EQ(filter.resolve_status().message().substr(0, prefix.size()), prefix);
  EXPECT_GT(filter.resolve_status().message().size(), prefix.size());  // with a reason
  EXPECT_TRUE(filter.Allows(80, Ip("127.0.0.1")));
  EXPECT_FALSE(filter.Allows(80, Ip("198.18.0.1")));
  EXPECT_TRUE(filter.Allows(80, Ip("198.18.0.1"), "nosuchhost.invalid"));
  Status again = filter.Refresh();
  EXPECT_EQ(again.message(), filter.resolve_status().message());
  EXPECT_TRUE(filter.Allows(80, Ip("127.0.0.1")));
}

TEST(Hostnames, WildcardPatterns) {
  auto filter = Hostnames("*.example.com !bad*.example.com db*.internal *cache* a*b*c");
  EXPECT_TRUE(filter.resolve_status().ok()) << filter.resolve_status().message();
  const IpAddress remote = Ip("8.8.8.8");
  EXPECT_TRUE(filter.Allows(80, remote, "www.example.com"));
  EXPECT_TRUE(filter.Allows(80, remote, "a.b.example.com"));
  EXPECT_TRUE(filter.Allows(80, remote, "WWW.Example.COM."));
  EXPECT_FALSE(filter.Allows(80, remote, "example.com"));
  EXPECT_FALSE(filter.Allows(80, remote, "www.example.community"));
  EXPECT_FALSE(filter.Allows(80, remote, "bad.example.com"));
  EXPECT_FALSE(filter.Allows(80, remote, "BAD.example.com."));
  EXPECT_FALSE(filter.Allows(80, remote, "bad2.example.com"));
  EXPECT_TRUE(filter.Allows(80, remote, "db1.internal"));
  EXPECT_TRUE(filter.Allows(80, remote, "db.internal"));
  EXPECT_FALSE(filter.Allows(80, remote, "xdb1.internal"));
  EXPECT_TRUE(filter.Allows(80, remote, "mycachehost"));
  EXPECT_TRUE(filter.Allows(80, remote, "cache"));
  EXPECT_TRUE(filter.Allows(80, remote, "aXbYc"));
  EXPECT_TRUE(filter.Allows(80, remote, "abc"));
  EXPECT_FALSE(filter.Allows(80, remote, "aXbY"));
  EXPECT_FALSE(filter.Allows(80, remote, "other.org"));
  EXPECT_FALSE(filter.Allows(80, remote));  // no name known: no positive item matches

  auto negated = Hostnames("!*.example.com");
  EXPECT_FALSE(negated.Allows(80, remote, "www.example.com"));
  EXPECT_TRUE(negated.Allows(80, remote, "example.org"));
  EXPECT_TRUE(negated.Allows(80, remote));

  EXPECT_TRUE(Hostnames("*").Allows(80, remote));
  EXPECT_FALSE(Hostnames("!*").Allows(80, remote, "x"));
}

TEST(Hostnames, UnionWithIps) {
  auto filter = Build({.ips = "198.18.0.0/15", .hostnames = "*.example.com"});
  EXPECT_TRUE(filter.Allows(80, Ip("198.18.0.1")));
  EXPECT_TRUE(filter.Allows(80, Ip("8.8.8.8"), "www.example.com"));
  EXPECT_FALSE(filter.Allows(80, Ip("8.8.8.8")));
  EXPECT_FALSE(filter.Allows(80, Ip("8.8.8.8"), "www.example.org"));
  auto excluded = Build({.ips = "198.18.0.0/15", .hostnames = "!*.example.com"});
  EXPECT_FALSE(excluded.Allows(80, Ip("198.18.0.1"), "www.example.com"));
  EXPECT_TRUE(excluded.Allows(80, Ip("198.18.0.1"), "www.example.org"));
  EXPECT_FALSE(excluded.Allows(80, Ip("8.8.8.8"), "www.example.org"));
}

TEST(Hosts, Parse) {
  auto hosts = ParseHosts(
      "127.0.0.1\tlocalhost loopback # comment\n"
      "# 10.0.0.1 commented\n"
      "\n"
      "198.18.0.1 web.test web\n"
      "198.18.0.1 web2.test web\n"  // repeated address: names joined, duplicates dropped
      "fd00:198:18::1 v6.test\n"
      "::ffff:198.18.0.2 mapped.test\n"
      "fe80::1%lo0 zoned.test\n"
      "not-an-address foo\n"
      "198.18.0.3\n");
  EXPECT_EQ(hosts.size(), 4u);
  EXPECT_EQ(hosts[Ip("127.0.0.1")], (std::vector<std::string>{"localhost", "loopback"}));
  EXPECT_EQ(hosts[Ip("198.18.0.1")], (std::vector<std::string>{"web.test", "web", "web2.test"}));
  EXPECT_EQ(hosts[Ip("fd00:198:18::1")], std::vector<std::string>{"v6.test"});
  EXPECT_EQ(hosts[Ip("198.18.0.2")], std::vector<std::string>{"mapped.test"});
}

TEST(Hosts, ReadFromHostRoot) {
  FakeRoot fake;
  fake.Write("hosts", "198.18.0.7 node7.test\n");
  HostRoot root(fake.path());
  auto hosts = ReadHosts();
  ASSERT_TRUE(hosts.ok()) << hosts.status().message();
  EXPECT_EQ(hosts->size(), 1u);
  EXPECT_EQ(hosts->at(Ip("198.18.0.7")), std::vector<std::string>{"node7.test"});

  FakeRoot empty;
  HostRoot empty_root(empty.path());
  auto missing = ReadHosts();
  EXPECT_EQ(missing.status().message(),
            "cannot read " + empty.path() + "/etc/hosts: No such file or directory");
}

TEST(Errors, EveryMessage) {
  HostRoot root("");
  const std::pair<FilterOptions, std::string> cases[] = {
      {{.ports = "70000"}, "ports: \"70000\" is not a port (1-65535)"},
      {{.ports = "80 0"}, "ports: \"0\" is not a port (1-65535)"},
      {{.ports = "!99999"}, "ports: \"99999\" is not a port (1-65535)"},
      {{.ports = "1-70000"}, "ports: \"1-70000\" is not a port range (1-65535)"},
      {{.ports = "0-10"}, "ports: \"0-10\" is not a port range (1-65535)"},
      {{.ports = "10-"}, "ports: \"10-\" is not a port range (1-65535)"},
      {{.ports = "-5"}, "ports: \"-5\" is not a port range (1-65535)"},
      {{.ports = "1-2-3"}, "ports: \"1-2-3\" is not a port range (1-65535)"},
      {{.ports = "1024-1"}, "ports: \"1024-1\" is not a port range (start after end)"},
      {{.ports = "nosuchsvc"}, "ports: unknown service \"nosuchsvc\""},
      {{.ports = "80 !nosuchsvc"}, "ports: unknown service \"nosuchsvc\""},
      {{.ports = "80 !"}, "ports: \"!\" has nothing after \"!\""},
      {{.ips = "10.0.0.0/33"},
       "ips: \"10.0.0.0/33\": prefix length 33 is out of range for IPv4 (0-32)"},
      {{.ips = "!fd00::/200"},
       "ips: \"fd00::/200\": prefix length 200 is out of range for IPv6 (0-128)"},
      {{.ips = "10.0.0.0/x"}, "ips: \"10.0.0.0/x\": prefix length \"x\" is not a number"},
      {{.ips = "example.com"}, "ips: \"example.com\" is not an IPv4 or IPv6 address"},
      {{.ips = "1.2.3.4-1.2.3.300"},
       "ips: \"1.2.3.4-1.2.3.300\": \"1.2.3.300\" is not an IPv4 or IPv6 address"},
      {{.ips = "1.2.3.9-1.2.3.1"}, "ips: \"1.2.3.9-1.2.3.1\": the range starts after it ends"},
      {{.ips = "1.2.3.4-::1"},
       "ips: \"1.2.3.4-::1\": the ends of the range are of different families"},
      {{.ips = "!"}, "ips: \"!\" has nothing after \"!\""},
      {{.hostnames = "a/b"}, "hostnames: \"a/b\" is not a hostname or pattern"},
      {{.hostnames = "ok.test !x@y"}, "hostnames: \"x@y\" is not a hostname or pattern"},
      {{.hostnames = "."}, "hostnames: \".\" is not a hostname or pattern"},
      {{.hostnames = "!"}, "hostnames: \"!\" has nothing after \"!\""},
      {{.service_names = {{"70000", "x"}}}, "service_names: \"70000\" is not a port (1-65535)"},
      {{.service_names = {{"http", "x"}}}, "service_names: \"http\" is not a port (1-65535)"},
      {{.service_names = {{"0", "x"}}}, "service_names: \"0\" is not a port (1-65535)"},
      {{.service_names = {{"19999", ""}}}, "service_names: port 19999 has an empty name"},
      {{.service_names = {{"19999", " \t"}}}, "service_names: port 19999 has an empty name"},
      // Found by fuzz_netflow_filter: two keys of one port, the later silently winning.
      {{.service_names = {{"9999", "a"}, {"09999", "b"}}},
       "service_names: \"09999\" and \"9999\" are both port 9999"},
  };
  for (const auto& [options, want] : cases) EXPECT_EQ(BuildError(options), want);
}

}  // namespace
}  // namespace nodescope::sensor::netflow
