#include "tests/integration/packet_drop.h"

#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/testing/temp_dir.h"
#include "tests/integration/harness.h"

namespace nodescope::test {
namespace {

constexpr char kTablePrefix[] = "nst_drop_";

// A table left in the root namespace by a test that was killed would go on dropping packets on
// a shared machine: delete those whose pid is gone. Tables inside namespaces die with them.
void SweepStaleRootTables() {
  std::istringstream lines(RunCommand({Which("nft"), "list", "tables"}).out);
  for (std::string line; std::getline(lines, line);) {
    const size_t at = line.find(kTablePrefix);
    if (line.rfind("table inet ", 0) != 0 || at == std::string::npos) continue;
    const pid_t pid = std::atoi(line.c_str() + at + sizeof(kTablePrefix) - 1);
    if (pid > 0 && pid != getpid() && !PidAlive(pid))
      (void)Run({"nft", "delete", "table", "inet", line.substr(at)});
  }
}

}  // namespace

Result<std::unique_ptr<PacketDrop>> PacketDrop::Create(const PacketDropOptions& o) {
  if (o.every_nth < 2) return Status::Error("PacketDrop: every_nth must be >= 2");
  if (o.port <= 0 || o.port > 65535) return Status::Error("PacketDrop: no port");
  static std::once_flag swept;
  std::call_once(swept, SweepStaleRootTables);
  std::unique_ptr<PacketDrop> drop(new PacketDrop());
  drop->root_ = Netns::Root();
  drop->ns_ = o.ns ? o.ns : drop->root_.get();
  std::string tag = UniqueTag();
  tag[tag.find('-')] = '_';
  const std::string table = kTablePrefix + tag;
  const bool output = o.hook == PacketDropOptions::Hook::kOutput;
  const bool sport = o.match == PacketDropOptions::Match::kSourcePort;
  std::ostringstream rules;
  // numgen counts only the packets that reach it, i.e. those that matched the port.
  rules << "table inet " << table << " {\n"
        << "  counter matched {\n  }\n  counter dropped {\n  }\n"
        << "  chain filter {\n"
        << "    type filter hook " << (output ? "output" : "input")
        << " priority filter; policy accept;\n"
        << "    tcp " << (sport ? "sport " : "dport ") << o.port
        << " counter name \"matched\" numgen inc mod " << o.every_nth << " " << o.every_nth - 1
        << " counter name \"dropped\" drop\n"
        << "  }\n}\n";
  TempDir dir;
  dir.Write("rules.nft", rules.str());
  if (Status s = Run(drop->ns_->Exec({"nft", "-f", dir.File("rules.nft")})); !s.ok()) return s;
  drop->table_ = table;
  return drop;
}

PacketDrop::~PacketDrop() {
  if (!table_.empty()) (void)Run(ns_->Exec({"nft", "delete", "table", "inet", table_}));
}

Result<PacketDropCounters> PacketDrop::Counters() const {
  PacketDropCounters out;
  for (const char* name : {"matched", "dropped"}) {
    CommandResult r = RunCommand(ns_->Exec({"nft", "-j", "list", "counter", "inet", table_, name}));
    if (r.exit_code != 0) return Status::Error("nft list counter " + table_ + ": " + r.err);
    auto doc = nlohmann::json::parse(r.out, nullptr, false);
    if (doc.is_discarded()) return Status::Error("nft -j: not JSON: " + r.out);
    bool found = false;
    for (const auto& item : doc.value("nftables", nlohmann::json::array())) {
      if (!item.contains("counter")) continue;
      const auto& c = item["counter"];
      found = true;
      if (std::string(name) == "matched") {
        out.matched_packets = c.value("packets", uint64_t{0});
      } else {
        out.dropped_packets = c.value("packets", uint64_t{0});
        out.dropped_bytes = c.value("bytes", uint64_t{0});
      }
    }
    if (!found) return Status::Error("nft -j: no counter " + std::string(name) + ": " + r.out);
  }
  return out;
}

}  // namespace nodescope::test
