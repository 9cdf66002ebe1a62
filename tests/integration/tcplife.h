// libbpf-tools' tcplife as a peer to check a probe against: it reports every TCP connection
// when it closes, with the kernel's own byte counters (tx = tcp_sock.bytes_acked, rx =
// tcp_sock.bytes_received), printed in KiB with two decimals, i.e. to within 5.12 bytes, and
// counting the SYN and FIN (see TcpLifeMatchesPayload).
// It attaches to the sock/inet_sock_set_state tracepoint and sees every network namespace.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/testing/temp_dir.h"
#include "tests/integration/harness.h"

namespace nodescope::test {

// One line of `tcplife -w`: a connection that closed.
struct TcpLifeConnection {
  pid_t pid = 0;
  std::string comm;
  std::string laddr;
  int lport = 0;
  std::string raddr;
  int rport = 0;
  double tx_kb = 0;  // bytes_acked / 1024
  double rx_kb = 0;  // bytes_received / 1024
  double ms = 0;     // lifetime
};

// Parses one output line of `tcplife -w`; nullopt for the header or anything else.
std::optional<TcpLifeConnection> ParseTcpLifeLine(const std::string& line);

// Whether tcplife's rounded `kb` figure is what `bytes` prints as (%.2f of bytes / 1024).
bool TcpLifeKbMatches(double kb, uint64_t bytes);

// The kernel's counters that tcplife prints count sequence space, not payload: the SYN and the
// FIN take one sequence number each. For a connection closed with a FIN each way, measured on
// Linux 6.18 against exact payload sizes (bytes_acked / bytes_received):
//   the side that connected: tx = payload sent + 2 (its SYN and FIN), rx = received + 1 (FIN)
//   the side that accepted:  tx = payload sent + 1 (its FIN),         rx = received + 1 (FIN)
// (while established, `ss -ti` shows the connector's bytes_acked already one above its payload.)
constexpr uint64_t kConnectorTxExtra = 2;
constexpr uint64_t kAcceptorTxExtra = 1;
constexpr uint64_t kRxExtra = 1;
// Whether `c` is what tcplife prints for a closed connection with these payload byte counts.
bool TcpLifeMatchesPayload(const TcpLifeConnection& c, uint64_t payload_sent,
                           uint64_t payload_received, bool connector);

struct TcpLifeOptions {
  std::vector<int> local_ports;   // -L: only these local ports
  std::vector<int> remote_ports;  // -D: only these remote ports
  int family = 0;                 // 4 or 6 for one family only
  pid_t pid = 0;                  // -p
};

class TcpLife {
 public:
  // Starts tcplife (mounting tracefs if needed) and waits until its probe is attached.
  static Result<std::unique_ptr<TcpLife>> Start(const TcpLifeOptions& options = {});
  ~TcpLife();
  TcpLife(const TcpLife&) = delete;
  TcpLife& operator=(const TcpLife&) = delete;

  // Every connection reported so far.
  std::vector<TcpLifeConnection> Connections() const;
  // Waits until a reported connection satisfies `match`; returns it.
  std::optional<TcpLifeConnection> WaitFor(
      const std::function<bool(const TcpLifeConnection&)>& match,
      std::chrono::milliseconds timeout) const;
  std::string Log() const { return process_->Log(); }

 private:
  TcpLife() = default;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace nodescope::test
