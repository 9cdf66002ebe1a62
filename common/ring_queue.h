// A first-in first-out queue in one growable array, for queues that are filled and drained in
// step: an HTTP connection's requests waiting for their responses, a loopback client's runs of
// calls. std::deque frees and allocates a block every few elements as such a queue moves through
// memory (a malloc and a free every other request on keep-alive traffic); this one allocates only
// when it grows past its largest size since it last emptied with more than 64 slots. Standard
// library only: the HTTP/1.x parser, which the fuzz target builds with clang as it is, uses it.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace nodescope {

template <typename T>
class RingQueue {
 public:
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  size_t capacity() const { return slots_.size(); }

  // Element i from the front; i < size().
  T& operator[](size_t i) { return slots_[Slot(i)]; }
  const T& operator[](size_t i) const { return slots_[Slot(i)]; }
  T& front() { return (*this)[0]; }
  T& back() { return (*this)[size_ - 1]; }

  // Appends a value-initialized element and returns it.
  T& emplace_back() {
    if (size_ == slots_.size()) Grow();
    T& slot = slots_[Slot(size_)];
    ++size_;
    return slot;
  }
  void push_back(T value) { emplace_back() = std::move(value); }

  // The front element is reset (what it holds is released) and leaves the queue. A queue that
  // empties with more than kKeptSlots slots frees them: a burst (a deep pipeline, a client that
  // stopped reading) does not pin its peak for the life of a long connection.
  void pop_front() {
    slots_[head_] = T{};
    head_ = (head_ + 1) & (slots_.size() - 1);
    if (--size_ == 0 && slots_.size() > kKeptSlots) {
      slots_ = std::vector<T>();
      head_ = 0;
    }
  }
  void clear() {
    while (!empty()) pop_front();
    head_ = 0;
  }

 private:
  static constexpr size_t kKeptSlots = 64;

  size_t Slot(size_t i) const { return (head_ + i) & (slots_.size() - 1); }

  // Twice the room (a power of two, so a slot is a mask away), the elements in order from 0.
  void Grow() {
    std::vector<T> bigger(slots_.empty() ? 4 : 2 * slots_.size());
    for (size_t i = 0; i < size_; ++i) bigger[i] = std::move(slots_[Slot(i)]);
    slots_ = std::move(bigger);
    head_ = 0;
  }

  std::vector<T> slots_;  // empty, or a power of two; slots not in the queue hold T{}
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace nodescope
