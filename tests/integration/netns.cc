#include "tests/integration/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/harness.h"

namespace nodescope::test {
namespace {

constexpr char kNetnsPrefix[] = "nst-";
constexpr char kNetnsDir[] = "/run/netns";

std::atomic<int> next_tag{0};

std::string JoinArgs(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
  return out;
}

// Deletes namespaces "nst-<pid>-..." whose pid is gone: what a test killed mid-run left behind,
// and kills what still runs in them (its servers). A live pid, even a recycled one, keeps its
// namespaces, so a concurrent test is never touched.
void SweepStaleNamespaces() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(kNetnsDir, ec)) {
    const std::string name = entry.path().filename();
    if (name.rfind(kNetnsPrefix, 0) != 0) continue;
    const pid_t pid = std::atoi(name.c_str() + std::strlen(kNetnsPrefix));
    if (pid <= 0 || pid == getpid() || PidAlive(pid)) continue;
    std::istringstream pids(RunCommand({Which("ip"), "netns", "pids", name}).out);
    for (pid_t p; pids >> p;) kill(p, SIGKILL);
    (void)Run({"ip", "netns", "del", name});
  }
}

}  // namespace

std::string Which(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/sbin:/usr/bin:/bin";
  std::istringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

Status Run(std::vector<std::string> argv) {
  const std::string path = Which(argv.at(0));
  if (path.empty()) return Status::Error(argv[0] + ": not found on PATH");
  argv[0] = path;
  CommandResult r = RunCommand(argv);
  if (r.exit_code == 0) return Status::Ok();
  return Status::Error(JoinArgs(argv) + ": exit " + std::to_string(r.exit_code) + ": " + r.err);
}

bool PidAlive(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  return stat[paren + 2] != 'Z';
}

std::vector<std::string> DieWithParent(std::vector<std::string> argv, const std::string& signal) {
  argv.insert(argv.begin(), {Which("setpriv"), "--pdeathsig", signal, "--"});
  return argv;
}

std::string UniqueTag() { return std::to_string(getpid()) + "-" + std::to_string(next_tag++); }

Result<std::unique_ptr<Netns>> Netns::Create(const std::string& role) {
  static std::once_flag swept;
  std::call_once(swept, SweepStaleNamespaces);
  std::unique_ptr<Netns> ns(new Netns(kNetnsPrefix + UniqueTag() + "-" + role));
  if (Status s = Run({"ip", "netns", "add", ns->name_}); !s.ok()) {
    ns->name_.clear();  // nothing to delete
    return s;
  }
  if (Status s = ns->Ip({"link", "set", "lo", "up"}); !s.ok()) return s;
  return ns;
}

std::unique_ptr<Netns> Netns::Root() { return std::unique_ptr<Netns>(new Netns("")); }

Netns::~Netns() {
  if (!is_root()) (void)Run({"ip", "netns", "del", name_});
}

std::vector<std::string> Netns::Exec(std::vector<std::string> argv) const {
  if (is_root()) {
    argv.at(0) = Which(argv.at(0));
    return argv;
  }
  argv.insert(argv.begin(), {Which("ip"), "netns", "exec", name_});
  return argv;
}

Status Netns::RunIn(const std::function<void()>& fn) const {
  Status status;
  // setns(CLONE_NEWNET) moves only the calling thread, so a throwaway thread keeps the test's
  // own threads in the namespace they started in.
  std::thread worker([&] {
    if (!is_root()) {
      const std::string path = std::string(kNetnsDir) + "/" + name_;
      int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        status = Status::Error("open " + path + ": " + std::strerror(errno));
        return;
      }
      int rc = setns(fd, CLONE_NEWNET);
      int err = errno;
      close(fd);
      if (rc != 0) {
        status = Status::Error("setns " + path + ": " + std::strerror(err));
        return;
      }
    }
    fn();
  });
  worker.join();
  return status;
}

Status Netns::Ip(std::vector<std::string> args) const {
  if (!is_root()) args.insert(args.begin(), {"-n", name_});
  args.insert(args.begin(), "ip");
  return Run(std::move(args));
}

Status Netns::Sysctl(const std::string& key, const std::string& value) const {
  return Run(Exec({"sysctl", "-q", "-w", key + "=" + value}));
}

int AllocateSubnet() {
  static std::mutex mu;
  static std::set<int> taken_here;
  std::lock_guard<std::mutex> lock(mu);
  const std::string root_addrs = RunCommand({Which("ip"), "-o", "addr", "show"}).out;
  const int start = static_cast<int>((getpid() * 31L + next_tag * 7L) % 254);
  for (int i = 0; i < 254; ++i) {
    const int x = (start + i) % 254 + 1;
    if (taken_here.count(x)) continue;
    if (root_addrs.find(" 198.18." + std::to_string(x) + ".") != std::string::npos) continue;
    if (root_addrs.find(" fd00:198:18:" + std::to_string(x) + ":") != std::string::npos) continue;
    taken_here.insert(x);
    return x;
  }
  // Every /24 is in use in the root namespace: reuse one; only root-side links can then clash.
  return start + 1;
}

std::string SubnetIpv4(int x, int host) {
  return "198.18." + std::to_string(x) + "." + std::to_string(host);
}

std::string SubnetIpv6(int x, int host) {
  // Written in decimal digits, which read as the hex group of the same spelling: unique per x.
  return "fd00:198:18:" + std::to_string(x) + "::" + std::to_string(host);
}

Status AddVeth(const Netns& a, const std::string& a_dev, const Netns& b, const std::string& b_dev) {
  std::vector<std::string> cmd = {"ip", "link", "add", a_dev};
  if (!a.is_root()) cmd.insert(cmd.end(), {"netns", a.name()});
  cmd.insert(cmd.end(), {"type", "veth", "peer", "name", b_dev});
  if (!b.is_root()) cmd.insert(cmd.end(), {"netns", b.name()});
  if (Status s = Run(cmd); !s.ok()) return s;
  if (Status s = a.Ip({"link", "set", a_dev, "up"}); !s.ok()) return s;
  return b.Ip({"link", "set", b_dev, "up"});
}

Status AddAddresses(const Netns& ns, const std::string& dev, int x, int host) {
  if (Status s = ns.Ip({"addr", "add", SubnetIpv4(x, host) + "/24", "dev", dev}); !s.ok()) return s;
  return ns.Ip({"-6", "addr", "add", SubnetIpv6(x, host) + "/64", "dev", dev, "nodad"});
}

std::string UniqueIfName(const std::string& suffix) {
  // IFNAMSIZ is 16: "v" + pid (<= 7 digits) + "x" + counter + a short suffix stays within 15.
  std::string tag = UniqueTag();
  tag[tag.find('-')] = 'x';
  return "v" + tag + suffix;
}

Result<std::unique_ptr<NetnsPair>> NetnsPair::Create(Mode mode) {
  std::unique_ptr<NetnsPair> pair(new NetnsPair());
  auto a = Netns::Create("a");
  if (!a.ok()) return a.status();
  pair->ns_a_ = std::move(*a);
  if (mode == Mode::kTwoNamespaces) {
    auto b = Netns::Create("b");
    if (!b.ok()) return b.status();
    pair->ns_b_ = std::move(*b);
  } else {
    pair->ns_b_ = Netns::Root();
  }
  pair->subnet_ = AllocateSubnet();
  const std::string base = UniqueIfName("");
  pair->a_ = {pair->ns_a_.get(), base + "a", SubnetIpv4(pair->subnet_, 1),
              SubnetIpv6(pair->subnet_, 1)};
  pair->b_ = {pair->ns_b_.get(), base + "b", SubnetIpv4(pair->subnet_, 2),
              SubnetIpv6(pair->subnet_, 2)};
  if (Status s = AddVeth(*pair->ns_a_, pair->a_.veth, *pair->ns_b_, pair->b_.veth); !s.ok())
    return s;
  if (Status s = AddAddresses(*pair->ns_a_, pair->a_.veth, pair->subnet_, 1); !s.ok()) return s;
  if (Status s = AddAddresses(*pair->ns_b_, pair->b_.veth, pair->subnet_, 2); !s.ok()) return s;
  return pair;
}

NetnsPair::~NetnsPair() {
  // Deleting namespace A takes the veth pair with it; a root-side end is removed explicitly in
  // case A was never created and the link exists alone.
  ns_a_.reset();
  if (ns_b_ && ns_b_->is_root() && !b_.veth.empty()) {
    if (RunCommand({Which("ip"), "link", "show", b_.veth}).exit_code == 0)
      (void)Run({"ip", "link", "del", b_.veth});
  }
}

}  // namespace nodescope::test
