#include "sensor/bpf/ring_buffer.h"

#include <bpf/bpf.h>

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

RingBuffer::~RingBuffer() { ring_buffer__free(rb_); }

int RingBuffer::OnRecord(void* ctx, void* data, size_t size) {
  (*static_cast<Handler*>(ctx))(
      std::span<const std::byte>(static_cast<const std::byte*>(data), size));
  return 0;
}

Result<int> RingBuffer::Poll(std::chrono::milliseconds timeout) {
  int n = ring_buffer__poll(rb_, static_cast<int>(timeout.count()));
  if (n == -EINTR) n = 0;
  if (n < 0) return Status::Error(std::string("ring buffer poll: ") + std::strerror(-n));
  // Records submitted with BPF_RB_NO_WAKEUP do not make epoll return, and ring_buffer__poll
  // consumes only rings epoll reported: read the rest directly (no system call).
  int rest = ring_buffer__consume(rb_);
  if (rest < 0) return Status::Error(std::string("ring buffer consume: ") + std::strerror(-rest));
  return n + rest;
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
