#include "sensor/plugins/conntrack/conntrack_plugin.h"

#include <fcntl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <poll.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "sensor/bpf/clock.h"

namespace nodescope::sensor::conntrack {
namespace {

// The largest datagram ctnetlink sends: a dump fills up to a page-sized skb per recv, events
// are one message each; 64 KiB leaves room for either.
constexpr size_t kBufferBytes = 64 << 10;
constexpr int kMaxPollMs = 1000;

std::string Bytes(const net::IpAddress& ip) {
  auto raw = ip.Raw();
  return std::string(raw.begin(), raw.end());
}

// Every network namespace the node has right now, by inode, with a path to enter it.
std::map<uint32_t, std::string> FindNamespaces(const std::string& own_netns,
                                               const std::string& proc_root,
                                               const std::string& netns_dir) {
  std::map<uint32_t, std::string> found;
  auto add = [&](const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) found.emplace(static_cast<uint32_t>(st.st_ino), path);
  };
  add(own_netns);  // the sensor's, first, so it is the path kept for its inode
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(proc_root, ec)) {
    const std::string name = e.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    add(e.path().string() + "/ns/net");
  }
  for (const auto& e : std::filesystem::directory_iterator(netns_dir, ec)) {
    add(e.path().string());
  }
  return found;
}

}  // namespace

ConntrackPlugin::~ConntrackPlugin() { Stop(); }

void ConntrackPlugin::SetStatus(const std::string& state, const std::string& error) {
  std::lock_guard<std::mutex> lock(status_mu_);
  status_.set_probe(std::string(kProbe));
  status_.set_strategy(std::string(kStrategy));
  status_.set_state(state);
  status_.set_error(error);
}

Result<ConntrackPlugin::SocketPtr> ConntrackPlugin::OpenIn(const std::string& path,
                                                           uint32_t* inode) {
  SocketPtr sock(nullptr, &mnl_socket_close);
  std::string error;
  // setns(CLONE_NEWNET) moves only the calling thread; a socket keeps the namespace it was
  // created in, so the thread can end once the socket exists.
  std::thread opener([&] {
    int ns = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
      error = "open " + path + ": " + std::strerror(errno);
      return;
    }
    struct stat st {};
    if (fstat(ns, &st) != 0 || setns(ns, CLONE_NEWNET) != 0) {
      error = "setns " + path + ": " + std::strerror(errno);
      close(ns);
      return;
    }
    close(ns);
    *inode = static_cast<uint32_t>(st.st_ino);
    mnl_socket* s = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (s == nullptr) {
      error = std::string("netlink socket (NETLINK_NETFILTER): ") + std::strerror(errno);
      return;
    }
    sock.reset(s);
    const unsigned groups =
        (1u << (NFNLGRP_CONNTRACK_NEW - 1)) | (1u << (NFNLGRP_CONNTRACK_DESTROY - 1));
    if (mnl_socket_bind(s, groups, MNL_SOCKET_AUTOPID) != 0) {
      error = std::string("bind to the ctnetlink NEW/DESTROY groups: ") + std::strerror(errno);
      sock.reset();
      return;
    }
    // Best effort: without it the default buffer (~200 KiB) overruns sooner, which is counted.
    int size = options_.receive_buffer;
    (void)setsockopt(mnl_socket_get_fd(s), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
  });
  opener.join();
  if (!sock) return Status::Error(error);
  return sock;
}

Status ConntrackPlugin::Start(EventSink* sink, const ConntrackOptions& options) {
  if (running()) return Status::Error("conntrack probe already started");
  sink_ = sink;
  options_ = options;
  table_ = std::make_unique<TranslationTable>(options_.table);
  buffer_.resize(kBufferBytes);
  uint32_t host = 0;
  Result<SocketPtr> first = OpenIn(options_.own_netns, &host);
  if (!first.ok()) {
    // EPROTONOSUPPORT / ENOENT: no nf_conntrack netlink in this kernel; EPERM: no CAP_NET_ADMIN.
    SetStatus("failed", "nf_conntrack is not available through ctnetlink: " +
                            first.status().message() + "; no DNAT translations");
    spdlog::warn("probe {}: {}", kProbe, probe_status().error());
    return Status::Ok();
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return Status::Error(std::string("eventfd: ") + std::strerror(errno));
  auto sub = std::make_unique<Subscription>(std::move(first).value());
  sub->netns = host;
  RequestDump(*sub);
  subs_.emplace(host, std::move(sub));
  Rescan();
  SetStatus("attached", "");
  spdlog::info("probe {}: attached with strategy {} ({} network namespaces)", kProbe, kStrategy,
               subs_.size());
  stop_ = false;
  reader_ = std::thread([this] { ReaderLoop(); });
  return Status::Ok();
}

void ConntrackPlugin::Subscribe(const std::string& path, uint32_t inode) {
  uint32_t actual = 0;
  Result<SocketPtr> sock = OpenIn(path, &actual);
  if (!sock.ok()) {
    ++socket_errors_;
    if (failed_.insert(inode).second) {
      spdlog::warn("probe {}: netns {}: {}", kProbe, inode, sock.status().message());
    }
    return;
  }
  if (subs_.count(actual)) return;  // the path now leads to a namespace already subscribed
  auto sub = std::make_unique<Subscription>(std::move(sock).value());
  sub->netns = actual;
  RequestDump(*sub);
  subs_.emplace(actual, std::move(sub));
}

void ConntrackPlugin::RequestDump(Subscription& sub) {
  if (sub.dumping) {
    sub.resync_pending = true;  // one dump at a time per socket (the kernel says EBUSY)
    return;
  }
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = ++sub.seq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_UNSPEC;  // IPv4 and IPv6
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  if (mnl_socket_sendto(sub.socket.get(), nlh, nlh->nlmsg_len) < 0) {
    ++socket_errors_;
    spdlog::warn("probe {}: netns {}: conntrack dump request: {}", kProbe, sub.netns,
                 std::strerror(errno));
    return;
  }
  sub.dumping = true;
  sub.resync_pending = false;
  sub.dump_start_ns = bpf::MonotonicNs();
}

void ConntrackPlugin::Rescan() {
  std::map<uint32_t, std::string> found =
      FindNamespaces(options_.own_netns, options_.proc_root, options_.netns_dir);
  for (const auto& [inode, path] : found) {
    if (!subs_.count(inode) && !failed_.count(inode)) Subscribe(path, inode);
  }
  // A socket keeps its namespace alive: one whose namespace has no process and no name left is
  // closed, and its translations expire after the retention time.
  for (auto it = subs_.begin(); it != subs_.end();) {
    if (found.count(it->first)) {
      ++it;
      continue;
    }
    table_->EndDump(it->first, UINT64_MAX, bpf::MonotonicNs());
    it = subs_.erase(it);
  }
  std::erase_if(failed_, [&](uint32_t inode) { return !found.count(inode); });
  namespaces_.store(subs_.size(), std::memory_order_relaxed);
}

void ConntrackPlugin::ReaderLoop() {
  auto next_scan = std::chrono::steady_clock::now() + options_.rescan;
  std::vector<pollfd> fds;
  std::vector<Subscription*> order;
  while (!stop_.load(std::memory_order_relaxed)) {
    auto now = std::chrono::steady_clock::now();
    if (now >= next_scan) {
      Rescan();
      table_->Expire(bpf::MonotonicNs());
      next_scan = now + options_.rescan;
    }
    fds.assign(1, pollfd{wake_fd_, POLLIN, 0});
    order.clear();
    for (auto& [inode, sub] : subs_) {
      fds.push_back(pollfd{mnl_socket_get_fd(sub->socket.get()), POLLIN, 0});
      order.push_back(sub.get());
    }
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_scan - now);
    const int timeout = static_cast<int>(std::clamp<int64_t>(wait.count(), 0, kMaxPollMs));
    if (poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
      ++socket_errors_;
      spdlog::error("probe {}: poll: {}; no more conntrack events", kProbe, std::strerror(errno));
      SetStatus("failed", std::string("poll: ") + std::strerror(errno));
      return;
    }
    uint64_t ignored;
    if (fds[0].revents & POLLIN) (void)!read(wake_fd_, &ignored, sizeof(ignored));
    // Read before draining: what was queued when Sync asked is read by the end of this pass.
    const uint64_t requested = sync_requested_.load();
    bool sync;
    {
      std::lock_guard<std::mutex> lock(sync_mu_);
      sync = requested > synced_;
    }
    for (size_t i = 0; i < order.size(); ++i) {
      if (sync || fds[i + 1].revents != 0) Drain(*order[i]);
    }
    if (sync) {
      std::lock_guard<std::mutex> lock(sync_mu_);
      synced_ = requested;
      sync_cv_.notify_all();
    }
  }
}

void ConntrackPlugin::Drain(Subscription& sub) {
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(sub.socket.get(), buffer_.data(), buffer_.size());
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      if (errno == ENOBUFS) {
        // The socket's buffer overflowed: events are lost. Count it and read the table again.
        ++overruns_;
        ++resyncs_;
        spdlog::warn("probe {}: netns {}: conntrack events lost (ENOBUFS); resyncing with a dump",
                     kProbe, sub.netns);
        RequestDump(sub);
        continue;
      }
      ++socket_errors_;
      spdlog::warn("probe {}: netns {}: recv: {}", kProbe, sub.netns, std::strerror(errno));
      return;
    }
    const uint64_t now = bpf::MonotonicNs();
    Decoded d = DecodeMessages({buffer_.data(), static_cast<size_t>(n)});
    for (const std::string& e : d.errors) {
      // The first one per socket at warn: a stream of them is ABI skew, not news each time.
      if (malformed_.fetch_add(1) == 0) {
        spdlog::warn("probe {}: netns {}: {}", kProbe, sub.netns, e);
      } else {
        spdlog::debug("probe {}: netns {}: {}", kProbe, sub.netns, e);
      }
    }
    for (const Entry& e : d.entries) Apply(sub, e, now);
    if (d.error != 0) {
      ++socket_errors_;
      spdlog::warn("probe {}: netns {}: ctnetlink: {}", kProbe, sub.netns, std::strerror(d.error));
      if (sub.dumping) d.done = true;  // the dump request was refused: nothing more comes
    }
    if (d.done && sub.dumping) {
      sub.dumping = false;
      table_->EndDump(sub.netns, sub.dump_start_ns, now);
      if (sub.resync_pending) RequestDump(sub);
    }
  }
}

void ConntrackPlugin::Apply(Subscription& sub, const Entry& entry, uint64_t now_ns) {
  if (entry.type == Entry::Type::kNew) {
    if (!entry.IsDnat()) return;
    if (table_->Add(sub.netns, entry.protocol, entry.orig, entry.reply, entry.id, now_ns,
                    entry.dump)) {
      EmitEvent(entry.dump ? v1::ConntrackEvent::EXISTING : v1::ConntrackEvent::NEW, sub.netns,
                entry, now_ns);
    }
    return;
  }
  const bool known = table_->Destroy(sub.netns, entry.protocol, entry.orig, entry.id, now_ns);
  if (known || entry.IsDnat()) EmitEvent(v1::ConntrackEvent::DESTROY, sub.netns, entry, now_ns);
}

void ConntrackPlugin::EmitEvent(v1::ConntrackEvent::Kind kind, uint32_t netns, const Entry& e,
                                uint64_t now_ns) {
  switch (kind) {
    case v1::ConntrackEvent::NEW:
      ++new_events_;
      break;
    case v1::ConntrackEvent::DESTROY:
      ++destroy_events_;
      break;
    default:
      ++existing_;
  }
  v1::Event event;
  event.set_time_unix_nano(bpf::NowUnixNano());
  v1::ConntrackEvent* c = event.mutable_conntrack();
  c->set_kind(kind);
  c->set_netns(netns);
  c->set_transport(e.protocol == IPPROTO_TCP   ? v1::NetflowEvent::TCP
                   : e.protocol == IPPROTO_UDP ? v1::NetflowEvent::UDP
                                               : v1::NetflowEvent::TRANSPORT_UNSPECIFIED);
  c->set_orig_src_ip(Bytes(e.orig.src));
  c->set_orig_src_port(e.orig.src_port);
  c->set_orig_dst_ip(Bytes(e.orig.dst));
  c->set_orig_dst_port(e.orig.dst_port);
  c->set_reply_src_ip(Bytes(e.reply.src));
  c->set_reply_src_port(e.reply.src_port);
  c->set_reply_dst_ip(Bytes(e.reply.dst));
  c->set_reply_dst_port(e.reply.dst_port);
  c->set_conntrack_id(e.id);
  c->set_timestamp_ns(now_ns);
  sink_->Emit(std::move(event));
}

std::optional<netflow::NatTarget> ConntrackPlugin::Lookup(const netflow::NatQuery& query) const {
  if (!table_) return std::nullopt;
  return table_->Lookup(query);
}

void ConntrackPlugin::Sync(std::chrono::milliseconds max_wait) {
  if (!running()) return;
  const uint64_t target = sync_requested_.fetch_add(1) + 1;
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  std::unique_lock<std::mutex> lock(sync_mu_);
  sync_cv_.wait_for(lock, max_wait, [&] { return synced_ >= target; });
}

void ConntrackPlugin::Stop() {
  stop_ = true;
  if (reader_.joinable()) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
    reader_.join();
  }
  subs_.clear();
  if (wake_fd_ >= 0) close(wake_fd_);
  wake_fd_ = -1;
}

v1::ProbeStatus ConntrackPlugin::probe_status() const {
  std::lock_guard<std::mutex> lock(status_mu_);
  v1::ProbeStatus s = status_;
  if (s.state() == "attached") {
    s.set_coverage("DNAT'ed entries of the conntrack tables of " +
                   std::to_string(namespaces_.load()) +
                   " network namespaces (ctnetlink NEW/DESTROY events, a dump at subscription "
                   "and after lost events); namespaces are found every " +
                   std::to_string(options_.rescan.count()) + " ms");
  }
  return s;
}

ConntrackPlugin::Counters ConntrackPlugin::counters() const {
  Counters c;
  c.new_events = new_events_.load();
  c.destroy_events = destroy_events_.load();
  c.existing = existing_.load();
  c.namespaces = namespaces_.load();
  c.overruns = overruns_.load();
  c.resyncs = resyncs_.load();
  c.malformed = malformed_.load();
  c.socket_errors = socket_errors_.load();
  if (table_) {
    c.translations = table_->size();
    c.table_full = table_->counters().full;
  }
  return c;
}

}  // namespace nodescope::sensor::conntrack
