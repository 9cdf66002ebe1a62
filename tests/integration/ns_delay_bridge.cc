// ns-delay-bridge: joins two interfaces at layer 2 and holds every frame for a fixed time before
// passing it on, both ways. It stands in for sch_netem (not built on the test machines): run in
// a namespace between two veth legs, it gives the hosts on either side an RTT of twice the delay.
//
//   ns-delay-bridge --delay-us 10000 LEG_A LEG_B
//
// Prints "ready" once both sockets are bound, and on SIGTERM or SIGINT one line of counters.
//
// Frames are read with PACKET_VNET_HDR so that veth's offloads survive the trip: a TSO super-
// frame (up to 64 KiB) or a frame whose checksum is still to be filled in (CHECKSUM_PARTIAL) is
// written out with the same GSO and checksum metadata it came with. Without that header such a
// frame would go out with a wrong checksum or be refused as larger than the MTU.
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

namespace {

// Above the largest frame veth hands over (64 KiB of GSO payload plus headers).
constexpr size_t kMaxFrame = 256 * 1024;
// What one direction may hold: 25 ms at 10 Gbit/s is 31 MB; beyond this frames are dropped.
constexpr size_t kMaxQueuedBytes = 64u << 20;
// struct virtio_net_hdr (linux/virtio_net.h, which does not compile as C++: a member is named
// `class`): flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.
constexpr size_t kVnetHeaderSize = 10;
// Frames read from one leg per wake-up, so a flood one way cannot starve sends the other way.
constexpr int kReadBatch = 64;
// A frame sent this long after its due time counts as late in the closing counters.
constexpr int64_t kLateNs = 1'000'000;

volatile sig_atomic_t stop_requested = 0;
void OnSignal(int) { stop_requested = 1; }

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

struct Frame {
  int64_t due_ns;
  std::vector<char> bytes;  // virtio header + Ethernet frame
};

struct Leg {
  explicit Leg(std::string n) : name(std::move(n)) {}
  std::string name;
  int fd = -1;
  std::deque<Frame> out;  // frames waiting to leave through this leg
  size_t queued_bytes = 0;
  uint64_t sent_frames = 0;
  uint64_t sent_bytes = 0;  // Ethernet bytes, without the virtio header
  uint64_t dropped = 0;
  uint64_t late_frames = 0;  // sent more than kLateNs after their due time
  int64_t max_late_ns = 0;
};

bool OpenLeg(Leg& leg) {
  const unsigned index = if_nametoindex(leg.name.c_str());
  if (index == 0) {
    std::fprintf(stderr, "ns-delay-bridge: no interface %s\n", leg.name.c_str());
    return false;
  }
  // Protocol 0 receives nothing until bind() narrows the socket to one interface.
  leg.fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (leg.fd < 0) {
    std::perror("ns-delay-bridge: socket(AF_PACKET)");
    return false;
  }
  const int one = 1;
  const int rcvbuf = 16 << 20;
  // Frames this bridge writes to a leg would come back on the same leg's socket as outgoing.
  if (setsockopt(leg.fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) != 0 ||
      setsockopt(leg.fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) != 0 ||
      setsockopt(leg.fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) != 0 ||
      setsockopt(leg.fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0) {
    std::perror("ns-delay-bridge: setsockopt");
    return false;
  }
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = static_cast<int>(index);
  if (bind(leg.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::perror("ns-delay-bridge: bind");
    return false;
  }
  return true;
}

// Reads what `from` has ready and queues it on `to`, due `delay_ns` after the kernel received it.
bool Receive(Leg& from, Leg& to, int64_t delay_ns, std::vector<char>& buf) {
  for (int i = 0; i < kReadBatch; ++i) {
    sockaddr_ll src{};
    char control[CMSG_SPACE(sizeof(timespec))];
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_name = &src;
    msg.msg_namelen = sizeof(src);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t n = recvmsg(from.fd, &msg, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return true;
      std::perror("ns-delay-bridge: recvmsg");
      return false;
    }
    if (src.sll_pkttype == PACKET_OUTGOING) continue;
    if (static_cast<size_t>(n) > buf.size() || to.queued_bytes + n > kMaxQueuedBytes) {
      ++to.dropped;
      continue;
    }
    int64_t arrived = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        timespec ts{};
        std::memcpy(&ts, CMSG_DATA(c), sizeof(ts));
        arrived = ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
      }
    }
    if (arrived < 0) arrived = NowNs();
    to.out.push_back(Frame{arrived + delay_ns, std::vector<char>(buf.data(), buf.data() + n)});
    to.queued_bytes += n;
  }
  return true;
}

// Sends every frame of `leg` that is due.
void SendDue(Leg& leg, int64_t now) {
  while (!leg.out.empty() && leg.out.front().due_ns <= now) {
    Frame& f = leg.out.front();
    leg.max_late_ns = std::max(leg.max_late_ns, now - f.due_ns);
    if (now - f.due_ns > kLateNs) ++leg.late_frames;
    const ssize_t n = send(leg.fd, f.bytes.data(), f.bytes.size(), 0);
    if (n == static_cast<ssize_t>(f.bytes.size())) {
      ++leg.sent_frames;
      leg.sent_bytes += f.bytes.size() - kVnetHeaderSize;
    } else {
      ++leg.dropped;  // the peer's backlog was full (ENOBUFS): as a wire under load would
    }
    leg.queued_bytes -= f.bytes.size();
    leg.out.pop_front();
  }
}

}  // namespace

int main(int argc, char** argv) {
  int64_t delay_us = -1;
  std::vector<std::string> legs;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--delay-us") == 0 && i + 1 < argc) {
      delay_us = std::atoll(argv[++i]);
    } else {
      legs.push_back(argv[i]);
    }
  }
  if (delay_us < 0 || legs.size() != 2) {
    std::fprintf(stderr, "usage: ns-delay-bridge --delay-us MICROSECONDS LEG_A LEG_B\n");
    return 2;
  }
  // The default 50 us timer slack would add up to that much to every hold.
  if (prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0) != 0) std::perror("ns-delay-bridge: timerslack");
  // On a machine busy compiling, a normal thread can wait tens of ms for a CPU and every frame
  // due meanwhile leaves late. The loop sleeps in ppoll between frames, so a real-time priority
  // costs the machine nothing; without CAP_SYS_NICE the bridge still runs, less precisely.
  sched_param rt{};
  rt.sched_priority = 10;
  if (sched_setscheduler(0, SCHED_FIFO, &rt) != 0) std::perror("ns-delay-bridge: SCHED_FIFO");
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  if (sigaction(SIGTERM, &sa, nullptr) != 0 || sigaction(SIGINT, &sa, nullptr) != 0) {
    std::perror("ns-delay-bridge: sigaction");
    return 1;
  }
  Leg a{legs[0]};
  Leg b{legs[1]};
  if (!OpenLeg(a) || !OpenLeg(b)) return 1;
  std::printf("ready\n");
  std::fflush(stdout);

  const int64_t delay_ns = delay_us * 1000;
  std::vector<char> buf(kMaxFrame);
  while (!stop_requested) {
    int64_t now = NowNs();
    SendDue(a, now);
    SendDue(b, now);
    int64_t next = now + 100'000'000;  // wake now and then to notice a stop request
    if (!a.out.empty()) next = std::min(next, a.out.front().due_ns);
    if (!b.out.empty()) next = std::min(next, b.out.front().due_ns);
    const int64_t wait_ns = std::max<int64_t>(0, next - now);
    timespec timeout{wait_ns / 1'000'000'000, wait_ns % 1'000'000'000};
    pollfd fds[2] = {{a.fd, POLLIN, 0}, {b.fd, POLLIN, 0}};
    const int ready = ppoll(fds, 2, &timeout, nullptr);
    if (ready < 0 && errno != EINTR) {
      std::perror("ns-delay-bridge: ppoll");
      return 1;
    }
    if (ready <= 0) continue;
    if ((fds[0].revents & POLLIN) && !Receive(a, b, delay_ns, buf)) return 1;
    if ((fds[1].revents & POLLIN) && !Receive(b, a, delay_ns, buf)) return 1;
    if ((fds[0].revents | fds[1].revents) & (POLLERR | POLLNVAL)) {
      std::fprintf(stderr, "ns-delay-bridge: a leg went away\n");
      return 1;
    }
  }
  std::printf(
      "a_to_b_frames=%llu a_to_b_bytes=%llu b_to_a_frames=%llu b_to_a_bytes=%llu dropped=%llu "
      "late_frames=%llu max_late_us=%lld\n",
      static_cast<unsigned long long>(b.sent_frames), static_cast<unsigned long long>(b.sent_bytes),
      static_cast<unsigned long long>(a.sent_frames), static_cast<unsigned long long>(a.sent_bytes),
      static_cast<unsigned long long>(a.dropped + b.dropped),
      static_cast<unsigned long long>(a.late_frames + b.late_frames),
      static_cast<long long>(std::max(a.max_late_ns, b.max_late_ns) / 1000));
  std::fflush(stdout);
  close(a.fd);
  close(b.fd);
  return 0;
}
