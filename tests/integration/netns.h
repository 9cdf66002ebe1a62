// Network namespaces for tests with real traffic between hosts: a namespace owned by one test,
// and a pair of them (or one and the root namespace) joined by a veth pair with IPv4 and IPv6
// addresses. Everything is created under names that carry the test's pid, so concurrent tests on
// a shared machine never collide, and is deleted by the destructors even when a test fails.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace nodescope::test {

// The absolute path of `program` found on PATH (plus /usr/sbin and /sbin, which a non-login root
// shell may lack), or "" when it is nowhere. A name that already holds a '/' is returned as is.
std::string Which(const std::string& program);

// Runs argv (argv[0] looked up with Which) to completion; an error carries the command line,
// the exit code and stderr.
Status Run(std::vector<std::string> argv);

// "<pid>-<n>": unique for this process's lifetime and across concurrent test processes.
std::string UniqueTag();

// Whether `pid` is a live process (a zombie counts as dead: its test is over).
bool PidAlive(pid_t pid);

// argv prefixed so that the program gets `signal` when the thread that started it exits
// (PR_SET_PDEATHSIG through util-linux's setpriv): a test killed midway leaves no server or
// tracer running. Start such programs from the test's main thread, not from a short-lived one.
std::vector<std::string> DieWithParent(std::vector<std::string> argv,
                                       const std::string& signal = "KILL");

// One network namespace, or the root namespace (which is never created or deleted).
class Netns {
 public:
  // A fresh namespace named "nst-<pid>-<n>-<role>" with lo up. Namespaces that an earlier test
  // process (now dead) left behind under that scheme are deleted first, with whatever still
  // runs inside them.
  static Result<std::unique_ptr<Netns>> Create(const std::string& role);
  // The namespace this process runs in.
  static std::unique_ptr<Netns> Root();
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  bool is_root() const { return name_.empty(); }
  // The name for `ip netns`; "" for the root namespace.
  const std::string& name() const { return name_; }

  // argv made to run inside this namespace: prefixed with `ip netns exec NAME`, or for the root
  // namespace returned with argv[0] resolved to an absolute path (Subprocess needs one).
  std::vector<std::string> Exec(std::vector<std::string> argv) const;
  // Runs `fn` on a fresh thread that has joined this namespace (setns), and waits for it. Only
  // the network namespace changes: files and the mount namespace stay the caller's.
  Status RunIn(const std::function<void()>& fn) const;
  // `ip -n NAME args...` (plain `ip args...` for the root namespace).
  Status Ip(std::vector<std::string> args) const;
  // Writes a sysctl (key with dots, e.g. "net.ipv6.conf.all.forwarding") inside the namespace.
  Status Sysctl(const std::string& key, const std::string& value) const;

 private:
  explicit Netns(std::string name) : name_(std::move(name)) {}
  std::string name_;
};

// One end of a link between namespaces.
struct Endpoint {
  const Netns* ns = nullptr;
  std::string veth;  // interface name inside `ns`
  std::string ipv4;  // 198.18.x.y, without the prefix length (/24)
  std::string ipv6;  // fd00:198:18:x::y, without the prefix length (/64)
};

// A /24 + /64 for one link: x in 198.18.x.0/24 and fd00:198:18:x::/64, derived from the pid and
// a per-process counter, skipping any x the root namespace already has an address in (only the
// root namespace is shared; addresses inside private namespaces cannot clash). x is 1..254.
int AllocateSubnet();
std::string SubnetIpv4(int x, int host);  // "198.18.x.host"
std::string SubnetIpv6(int x, int host);  // "fd00:198:18:x::host"

// A veth pair from `a` (interface a_dev) to `b` (b_dev), both ends up, no addresses.
Status AddVeth(const Netns& a, const std::string& a_dev, const Netns& b, const std::string& b_dev);
// Gives `dev` in `ns` 198.18.x.host/24 and fd00:198:18:x::host/64, the IPv6 one without
// duplicate address detection (nodad) so it works at once.
Status AddAddresses(const Netns& ns, const std::string& dev, int x, int host);
// A name for a veth end, unique on the machine and within IFNAMSIZ: "v<pid>x<n><suffix>".
std::string UniqueIfName(const std::string& suffix);

// Two hosts on one link: side A is always a fresh namespace; side B is a second fresh namespace
// or the root namespace. A holds the .1 / ::1 addresses, B the .2 / ::2 ones.
class NetnsPair {
 public:
  enum class Mode { kTwoNamespaces, kNamespaceAndRoot };
  enum class Side { kA, kB };

  static Result<std::unique_ptr<NetnsPair>> Create(Mode mode = Mode::kTwoNamespaces);
  ~NetnsPair();
  NetnsPair(const NetnsPair&) = delete;
  NetnsPair& operator=(const NetnsPair&) = delete;

  const Endpoint& a() const { return a_; }
  const Endpoint& b() const { return b_; }
  const Endpoint& end(Side side) const { return side == Side::kA ? a_ : b_; }
  const Netns& ns(Side side) const { return *end(side).ns; }
  int subnet() const { return subnet_; }
  std::vector<std::string> Exec(Side side, std::vector<std::string> argv) const {
    return ns(side).Exec(std::move(argv));
  }
  Status RunIn(Side side, const std::function<void()>& fn) const { return ns(side).RunIn(fn); }

 private:
  NetnsPair() = default;
  std::unique_ptr<Netns> ns_a_;
  std::unique_ptr<Netns> ns_b_;
  Endpoint a_;
  Endpoint b_;
  int subnet_ = -1;
};

}  // namespace nodescope::test
