#include "tests/integration/dnsmasq.h"

#include <signal.h>

#include <sstream>

#include "tests/integration/nginx.h"  // CanConnect

namespace nodescope::test {

using namespace std::chrono_literals;

Result<std::unique_ptr<Dnsmasq>> Dnsmasq::Start(DnsmasqOptions options) {
  const std::string binary = Which("dnsmasq");
  if (binary.empty()) return Status::Error("dnsmasq not installed (scripts/install-deps.sh)");
  if (options.listen.empty()) return Status::Error("dnsmasq: no listen address");
  std::unique_ptr<Dnsmasq> d(new Dnsmasq());
  d->dir_ = std::make_unique<TempDir>();
  std::vector<std::string> argv = {binary,
                                   "--keep-in-foreground",
                                   "--conf-file=/dev/null",
                                   "--no-resolv",
                                   "--no-hosts",
                                   "--bind-interfaces",
                                   "--listen-address=" + options.listen,
                                   "--port=53",
                                   "--user=root",
                                   "--log-queries",
                                   "--log-facility=" + d->dir_->File("queries.log"),
                                   "--pid-file=" + d->dir_->File("dnsmasq.pid")};
  for (const auto& [name, ip] : options.addresses) argv.push_back("--address=/" + name + "/" + ip);
  // An --address without an address: NXDOMAIN for the name and below.
  for (const auto& name : options.nxdomains) argv.push_back("--address=/" + name + "/");
  std::unique_ptr<Netns> root = Netns::Root();
  const Netns* ns = options.ns != nullptr ? options.ns : root.get();
  d->process_ = std::make_unique<Subprocess>(ns->Exec(DieWithParent(argv, "TERM")),
                                             d->dir_->File("stdout.log"));
  const bool up = WaitFor(
      [&] { return !d->process_->Running() || CanConnect(options.ns, options.listen, 53); }, 10s);
  if (!up || !d->process_->Running()) {
    return Status::Error("dnsmasq did not start on " + options.listen +
                         ":53: " + d->process_->Log() + ReadFile(d->dir_->File("queries.log")));
  }
  return d;
}

Dnsmasq::~Dnsmasq() {
  if (process_) process_->Stop(SIGTERM, 5s);
}

std::string Dnsmasq::Log() const { return ReadFile(dir_->File("queries.log")); }

int Dnsmasq::Queries() const {
  std::istringstream in(Log());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.find(" query[") != std::string::npos ? 1 : 0;
  return n;
}

}  // namespace nodescope::test
