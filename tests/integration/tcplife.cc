#include "tests/integration/tcplife.h"

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <sstream>

#include "tests/integration/netns.h"

namespace nodescope::test {
namespace {

using namespace std::chrono_literals;

std::string JoinPorts(const std::vector<int>& ports) {
  std::string out;
  for (int p : ports) out += (out.empty() ? "" : ",") + std::to_string(p);
  return out;
}

Status EnsureTracefs() {
  if (access("/sys/kernel/tracing/events", F_OK) == 0) return Status::Ok();
  if (mount("nodev", "/sys/kernel/tracing", "tracefs", 0, nullptr) != 0) {
    return Status::Error("tcplife needs tracefs: mount -t tracefs nodev /sys/kernel/tracing");
  }
  return Status::Ok();
}

}  // namespace

std::optional<TcpLifeConnection> ParseTcpLifeLine(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> t;
  for (std::string tok; in >> tok;) t.push_back(tok);
  // PID COMM... LADDR LPORT RADDR RPORT TX_KB RX_KB MS; a comm may hold spaces.
  if (t.size() < 9) return std::nullopt;
  const size_t n = t.size();
  TcpLifeConnection c;
  try {
    size_t used = 0;
    c.pid = std::stoi(t[0], &used);
    if (used != t[0].size()) return std::nullopt;
    for (size_t i = 1; i + 7 < n; ++i) c.comm += (i > 1 ? " " : "") + t[i];
    c.laddr = t[n - 7];
    c.lport = std::stoi(t[n - 6]);
    c.raddr = t[n - 5];
    c.rport = std::stoi(t[n - 4]);
    c.tx_kb = std::stod(t[n - 3]);
    c.rx_kb = std::stod(t[n - 2]);
    c.ms = std::stod(t[n - 1]);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return c;
}

bool TcpLifeKbMatches(double kb, uint64_t bytes) {
  char printed[64];
  std::snprintf(printed, sizeof(printed), "%.2f", static_cast<double>(bytes) / 1024);
  return std::fabs(std::stod(printed) - kb) < 0.001;
}

bool TcpLifeMatchesPayload(const TcpLifeConnection& c, uint64_t payload_sent,
                           uint64_t payload_received, bool connector) {
  const uint64_t tx_extra = connector ? kConnectorTxExtra : kAcceptorTxExtra;
  return TcpLifeKbMatches(c.tx_kb, payload_sent + tx_extra) &&
         TcpLifeKbMatches(c.rx_kb, payload_received + kRxExtra);
}

Result<std::unique_ptr<TcpLife>> TcpLife::Start(const TcpLifeOptions& options) {
  const std::string binary = Which("tcplife");
  if (binary.empty()) return Status::Error("tcplife not installed: apt-get install libbpf-tools");
  const std::string stdbuf = Which("stdbuf");
  if (stdbuf.empty()) return Status::Error("stdbuf (coreutils) not found");
  if (Status s = EnsureTracefs(); !s.ok()) return s;
  // stdout is a file, so tcplife's stdio would buffer whole blocks and lose them on a kill:
  // stdbuf makes it flush every line.
  std::vector<std::string> argv = {stdbuf, "-oL", binary, "-w"};
  if (!options.local_ports.empty()) argv.insert(argv.end(), {"-L", JoinPorts(options.local_ports)});
  if (!options.remote_ports.empty())
    argv.insert(argv.end(), {"-D", JoinPorts(options.remote_ports)});
  if (options.family == 4) argv.push_back("-4");
  if (options.family == 6) argv.push_back("-6");
  if (options.pid > 0) argv.insert(argv.end(), {"-p", std::to_string(options.pid)});
  std::unique_ptr<TcpLife> t(new TcpLife());
  t->dir_ = std::make_unique<TempDir>();
  t->process_ =
      std::make_unique<Subprocess>(DieWithParent(argv, "INT"), t->dir_->File("tcplife.log"));
  // The header is printed after the BPF program is attached: from then on nothing is missed.
  Subprocess* p = t->process_.get();
  if (!nodescope::test::WaitFor(
          [&] { return !p->Running() || p->Log().find("RX_KB") != std::string::npos; }, 20s) ||
      !p->Running()) {
    return Status::Error("tcplife did not start: " + p->Log());
  }
  return t;
}

TcpLife::~TcpLife() {
  if (process_ && process_->Stop(SIGINT, 5s) < 0) process_->Stop(SIGKILL, 5s);
}

std::vector<TcpLifeConnection> TcpLife::Connections() const {
  std::vector<TcpLifeConnection> out;
  for (const std::string& line : CompleteLines(dir_->File("tcplife.log"))) {
    if (auto c = ParseTcpLifeLine(line)) out.push_back(*c);
  }
  return out;
}

std::optional<TcpLifeConnection> TcpLife::WaitFor(
    const std::function<bool(const TcpLifeConnection&)>& match,
    std::chrono::milliseconds timeout) const {
  std::optional<TcpLifeConnection> found;
  nodescope::test::WaitFor(
      [&] {
        for (const auto& c : Connections()) {
          if (match(c)) {
            found = c;
            return true;
          }
        }
        return false;
      },
      timeout);
  return found;
}

}  // namespace nodescope::test
