// Packet loss on demand, for tests of retransmission counting (sch_netem is not built on the
// test machines): an nftables table in one namespace that drops every Nth TCP packet on a port
// in one direction, with counters of what it saw and dropped. Removed in the destructor.
//
// "Packet" means what netfilter sees: on veth and loopback with TSO/GSO on, one packet can be a
// super-frame of up to 64 KiB that leaves as many segments, all dropped together.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "tests/integration/netns.h"

namespace nodescope::test {

struct PacketDropOptions {
  const Netns* ns = nullptr;  // nullptr: the root namespace
  int port = 0;
  // Which header field must equal `port`: a server's responses carry it as the source port.
  enum class Match { kSourcePort, kDestinationPort } match = Match::kSourcePort;
  // Where in `ns`: kInput drops packets `ns` receives, which is what loss on the wire looks
  // like to both ends: the sender times out or sees duplicate ACKs and retransmits (counted in
  // TcpRetransSegs). kOutput drops packets `ns` sends, before they leave: TCP sees a local send
  // error (EPERM), keeps the data queued and sends it later as if for the first time, so no
  // retransmission is counted; a dropped pure ACK is simply gone.
  enum class Hook { kInput, kOutput } hook = Hook::kInput;
  // Drops packets N, 2N, 3N, ... of those that match (never the first: a lost SYN would cost a
  // whole second of SYN timeout). Must be >= 2.
  int every_nth = 10;
};

struct PacketDropCounters {
  uint64_t matched_packets = 0;
  uint64_t dropped_packets = 0;
  uint64_t dropped_bytes = 0;
};

class PacketDrop {
 public:
  static Result<std::unique_ptr<PacketDrop>> Create(const PacketDropOptions& options);
  ~PacketDrop();
  PacketDrop(const PacketDrop&) = delete;
  PacketDrop& operator=(const PacketDrop&) = delete;

  const std::string& table() const { return table_; }
  // Reads the table's counters back from the kernel.
  Result<PacketDropCounters> Counters() const;

 private:
  PacketDrop() = default;
  const Netns* ns_ = nullptr;
  std::unique_ptr<Netns> root_;
  std::string table_;
};

}  // namespace nodescope::test
