#include "sensor/bpf/ring_buffer.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "sensor/bpf/programs.h"

namespace nodescope::sensor::bpf {

Result<std::unique_ptr<RingBuffer>> RingBuffer::Open(int map_fd, Handler handler) {
  std::unique_ptr<RingBuffer> reader(new RingBuffer());
  reader->handlers_.push_back(std::make_unique<Handler>(std::move(handler)));
  reader->rb_ =
      ring_buffer__new(map_fd, &RingBuffer::OnRecord, reader->handlers_.back().get(), nullptr);
  if (reader->rb_ == nullptr) {
    return Status::Error("ring buffer: " + LibbpfErrorText(errno));
  }
  // libbpf's own epoll fd is one of the fds Poll waits for; the merged groups' maps are others.
  reader->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  epoll_event libbpf{.events = EPOLLIN, .data = {.fd = ring_buffer__epoll_fd(reader->rb_)}};
  if (reader->epoll_fd_ < 0 ||
      epoll_ctl(reader->epoll_fd_, EPOLL_CTL_ADD, libbpf.data.fd, &libbpf) != 0) {
    return Status::Error(std::string("ring buffer epoll: ") + std::strerror(errno));
  }
  return reader;
}

Status RingBuffer::Add(int map_fd, Handler handler) {
  auto owned = std::make_unique<Handler>(std::move(handler));
  if (int err = ring_buffer__add(rb_, map_fd, &RingBuffer::OnRecord, owned.get()); err != 0) {
    return Status::Error("ring buffer: " + LibbpfErrorText(err));
  }
  handlers_.push_back(std::move(owned));
  return Status::Ok();
}

Result<size_t> RingBuffer::AddMerged(const std::vector<int>& map_fds, size_t ts_offset,
                                     Handler handler, std::function<uint64_t()> flush) {
  // Appended first, so the destructor unmaps the rings mapped before a failure.
  groups_.emplace_back(Group{{}, {}, ts_offset, std::move(handler), std::move(flush), {}});
  const size_t group = groups_.size() - 1;
  for (int map_fd : map_fds) {
    if (Status mapped = MapInto(group, map_fd); !mapped.ok()) return mapped;
  }
  return group;
}

Status RingBuffer::AddToMerged(size_t group, int map_fd) {
  if (group >= groups_.size()) {
    return Status::Error("ring buffer: no merged group " + std::to_string(group));
  }
  return MapInto(group, map_fd);
}

Status RingBuffer::MapInto(size_t group, int map_fd) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  Group& g = groups_[group];
  const int fd = fcntl(map_fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return Status::Error(std::string("ring buffer dup: ") + std::strerror(errno));
  g.fds.push_back(fd);
  bpf_map_info info{};
  uint32_t info_len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &info_len) != 0) {
    return Status::Error(std::string("ring buffer info: ") + std::strerror(errno));
  }
  // As libbpf maps a ring: the consumer page read-write, then the producer page and the data
  // twice in a row read-only.
  void* consumer = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (consumer == MAP_FAILED) {
    return Status::Error(std::string("ring buffer mmap: ") + std::strerror(errno));
  }
  void* producer = mmap(nullptr, page + 2 * size_t{info.max_entries}, PROT_READ, MAP_SHARED, fd,
                        static_cast<off_t>(page));
  if (producer == MAP_FAILED) {
    const int err = errno;
    munmap(consumer, page);
    return Status::Error(std::string("ring buffer mmap: ") + std::strerror(err));
  }
  g.views.push_back(RingView{
      .data = static_cast<const std::byte*>(producer) + page,
      .size = info.max_entries,
      .consumer_pos = static_cast<unsigned long*>(consumer),
      .producer_pos = static_cast<const unsigned long*>(producer),
  });
  epoll_event ev{.events = EPOLLIN | EPOLLET, .data = {.fd = fd}};
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return Status::Error(std::string("ring buffer epoll: ") + std::strerror(errno));
  }
  return Status::Ok();
}

RingBuffer::~RingBuffer() {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (const Group& g : groups_) {
    for (const RingView& v : g.views) {
      munmap(v.consumer_pos, page);
      munmap(const_cast<unsigned long*>(v.producer_pos), page + 2 * v.size);
    }
    for (int fd : g.fds) close(fd);
  }
  if (epoll_fd_ >= 0) close(epoll_fd_);
  ring_buffer__free(rb_);
}

int RingBuffer::OnRecord(void* ctx, void* data, size_t size) {
  (*static_cast<Handler*>(ctx))(
      std::span<const std::byte>(static_cast<const std::byte*>(data), size));
  return 0;
}

Result<int> RingBuffer::Poll(std::chrono::milliseconds timeout) {
  epoll_event events[8];
  if (epoll_wait(epoll_fd_, events, 8, static_cast<int>(timeout.count())) < 0 && errno != EINTR) {
    return Status::Error(std::string("ring buffer poll: ") + std::strerror(errno));
  }
  // Every ring is read to its end, not only those epoll reported: records submitted with
  // BPF_RB_NO_WAKEUP do not make epoll return (no system call).
  int n = ring_buffer__consume(rb_);
  if (n < 0) return Status::Error(std::string("ring buffer consume: ") + std::strerror(-n));
  for (Group& g : groups_) {
    if (g.flush) g.batched.theta_cap = g.flush();
    n += static_cast<int>(
        DrainInTimeOrder(g.views, g.ts_offset, g.handler, 256, g.flush ? &g.batched : nullptr));
  }
  return n;
}

Result<uint64_t> ReadPerCpuSum(int map_fd, uint32_t key) {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) {
    return Status::Error(std::string("possible CPUs: ") + std::strerror(cpus < 0 ? -cpus : EINVAL));
  }
  std::vector<uint64_t> values(static_cast<size_t>(cpus));
  if (bpf_map_lookup_elem(map_fd, &key, values.data()) != 0) {
    return Status::Error("read per-CPU counter " + std::to_string(key) + ": " +
                         std::strerror(errno));
  }
  uint64_t sum = 0;
  for (uint64_t v : values) sum += v;
  return sum;
}

}  // namespace nodescope::sensor::bpf
