#include "tests/integration/delay_line.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>

namespace nodescope::test {
namespace {

using namespace std::chrono_literals;

Result<std::string> MacOf(const Netns& ns, const std::string& dev) {
  std::vector<std::string> argv = {Which("ip"), "-br", "link", "show", "dev", dev};
  if (!ns.is_root()) argv.insert(argv.begin() + 1, {"-n", ns.name()});
  CommandResult r = RunCommand(argv);
  std::istringstream in(r.out);
  std::string name, state, mac;
  if (r.exit_code != 0 || !(in >> name >> state >> mac) || mac.size() != 17) {
    return Status::Error("no MAC address for " + dev + ": " + r.out + r.err);
  }
  return mac;
}

// Permanent entries: the first packet of a test does not wait two delays for ARP / ND.
Status PinNeighbour(const Endpoint& from, const Endpoint& to, const std::string& mac) {
  for (const std::string& ip : {to.ipv4, to.ipv6}) {
    if (Status s = from.ns->Ip(
            {"neigh", "replace", ip, "lladdr", mac, "dev", from.veth, "nud", "permanent"});
        !s.ok())
      return s;
  }
  return Status::Ok();
}

}  // namespace

bool ParseDelayBridgeStats(const std::string& line, DelayBridgeStats* stats) {
  long long max_late = 0;
  unsigned long long v[6] = {};
  if (std::sscanf(line.c_str(),
                  "a_to_b_frames=%llu a_to_b_bytes=%llu b_to_a_frames=%llu b_to_a_bytes=%llu "
                  "dropped=%llu late_frames=%llu max_late_us=%lld",
                  &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &max_late) != 7) {
    return false;
  }
  *stats = {v[0], v[1], v[2], v[3], v[4], v[5], max_late};
  return true;
}

Result<std::unique_ptr<DelayLine>> DelayLine::Create(std::chrono::microseconds delay) {
  const std::string binary = BinDir() + "/ns-delay-bridge";
  if (access(binary.c_str(), X_OK) != 0) {
    return Status::Error(binary + " missing: build the ns-delay-bridge target");
  }
  std::unique_ptr<DelayLine> line(new DelayLine());
  line->delay_ = delay;
  for (auto [slot, role] : {std::pair{&line->ns_a_, "a"}, std::pair{&line->middle_, "m"},
                            std::pair{&line->ns_b_, "b"}}) {
    auto ns = Netns::Create(role);
    if (!ns.ok()) return ns.status();
    *slot = std::move(*ns);
  }
  // The legs in the middle carry no addresses; without IPv6 there they also send nothing of
  // their own (router solicitations, MLD reports) into the test's traffic.
  for (const char* key : {"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"}) {
    if (Status s = line->middle_->Sysctl(key, "1"); !s.ok()) return s;
  }
  const int x = AllocateSubnet();
  const std::string base = UniqueIfName("");
  line->a_ = {line->ns_a_.get(), base + "a", SubnetIpv4(x, 1), SubnetIpv6(x, 1)};
  line->b_ = {line->ns_b_.get(), base + "b", SubnetIpv4(x, 2), SubnetIpv6(x, 2)};
  const std::string leg_a = base + "ma";
  const std::string leg_b = base + "mb";
  if (Status s = AddVeth(*line->ns_a_, line->a_.veth, *line->middle_, leg_a); !s.ok()) return s;
  if (Status s = AddVeth(*line->ns_b_, line->b_.veth, *line->middle_, leg_b); !s.ok()) return s;
  if (Status s = AddAddresses(*line->ns_a_, line->a_.veth, x, 1); !s.ok()) return s;
  if (Status s = AddAddresses(*line->ns_b_, line->b_.veth, x, 2); !s.ok()) return s;
  auto mac_a = MacOf(*line->ns_a_, line->a_.veth);
  if (!mac_a.ok()) return mac_a.status();
  auto mac_b = MacOf(*line->ns_b_, line->b_.veth);
  if (!mac_b.ok()) return mac_b.status();
  if (Status s = PinNeighbour(line->a_, line->b_, *mac_b); !s.ok()) return s;
  if (Status s = PinNeighbour(line->b_, line->a_, *mac_a); !s.ok()) return s;

  line->dir_ = std::make_unique<TempDir>();
  line->bridge_ = std::make_unique<Subprocess>(
      line->middle_->Exec(DieWithParent(
          {binary, "--delay-us", std::to_string(delay.count()), leg_a, leg_b}, "TERM")),
      line->dir_->File("bridge.log"));
  Subprocess* bridge = line->bridge_.get();
  if (!WaitFor([&] { return !bridge->Running() || bridge->Log().find("ready\n") == 0; }, 5s) ||
      !bridge->Running()) {
    return Status::Error("ns-delay-bridge did not start: " + bridge->Log());
  }
  return line;
}

Result<DelayBridgeStats> DelayLine::Stop() {
  if (!bridge_) return Status::Error("ns-delay-bridge already stopped");
  const int code = bridge_->Stop(SIGTERM, 5s);
  const std::string log = bridge_->Log();
  bridge_.reset();
  DelayBridgeStats stats;
  std::istringstream lines(log);
  for (std::string l; std::getline(lines, l);) {
    if (ParseDelayBridgeStats(l, &stats)) return stats;
  }
  return Status::Error("ns-delay-bridge exited " + std::to_string(code) +
                       " without counters: " + log);
}

DelayLine::~DelayLine() {
  bridge_.reset();  // before the legs it reads from disappear
}

}  // namespace nodescope::test
