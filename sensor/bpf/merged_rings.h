// Several BPF ring buffers read as one stream, in the order of a timestamp each record carries.
//
// A writer that picks its ring by CPU never waits for another CPU's lock or pulls another CPU's
// ring positions into its cache, but a socket whose calls run on two CPUs then has its records
// in two rings. Reading each ring to its end in turn would hand a later record before an earlier
// one: the earlier one may be committed to the ring read first just after that ring was read.
// Records are therefore handed out oldest first across the rings, and only those that are
// certain to have nothing older still on its way (DrainInTimeOrder).
//
// Not libbpf's ring_buffer: it moves the consumer position past each record as its callback
// returns, so a record cannot wait in the ring for another ring's older ones, and each of those
// stores pulls the writer's cache line of the ring back and forth once per record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace nodescope::sensor::bpf {

// A ring buffer map as its reader sees it (the kernel's layout: kernel/bpf/ringbuf.c and
// BPF_RINGBUF_* in linux/bpf.h): a data area of `size` bytes, a power of 2, mapped twice in a
// row so that a record that wraps around is contiguous, and two positions in bytes since the
// ring was made.
struct RingView {
  const std::byte* data = nullptr;
  uint64_t size = 0;
  unsigned long* consumer_pos = nullptr;        // the reader's; stored once per drain
  const unsigned long* producer_pos = nullptr;  // the kernel's, after the last reserved record
};

using RecordHandler = std::function<void(std::span<const std::byte>)>;

// Hands records of `rings` to `handler`, oldest first by the native-endian u64 at `ts_offset` in
// each record (a record too short to hold it counts as oldest), and stores each ring's consumer
// position once, past what it handed out. Returns how many records it handed out.
//
// Which records, in rounds: let theta be the newest timestamp among records committed when the
// round began (a first look at the first 64 KiB of each ring); a record is handed out when a
// second look, taken after the first, finds it committed and its timestamp is at most theta. A
// record B that depends on record A (A's call returned before B's began) was committed before B's
// timestamp was taken, so when B is handed out, A is too, and before it: A committed before theta's
// record did, so before the second look. Records newer than theta stay in their ring for the next
// round; the rounds go on while they hand out records, up to `rounds` of them. Ring memory is
// prefetched ahead of the reader.
//
// Within one ring records are handed out in the ring's order; a ring stops at a record still
// being written (BPF_RINGBUF_BUSY_BIT); discarded records are passed over.
//
// Batched rings (`batched` not null): each record is a batch of items in time order, each an
// 8-byte header (its length as a u32, then 4 zero bytes) and the item, padded to 8 bytes. Items
// are handed out one by one, each with its own timestamp, and none newer than
// batched->theta_cap: a writer that keeps records in a batch per CPU until it is full or user
// space flushes it, flushed on every CPU after the moment theta_cap, has put every record older
// than that in its ring. A batch handed out in part stays in its ring; batched->resume keeps
// (per ring) how far into it the next drain resumes. An item that does not fit its batch makes
// the rest of the batch one item.
struct BatchedDrain {
  uint64_t theta_cap = UINT64_MAX;
  std::vector<uint64_t> resume;  // sized to the rings on first use
};

size_t DrainInTimeOrder(std::span<const RingView> rings, size_t ts_offset,
                        const RecordHandler& handler, int rounds = 256,
                        BatchedDrain* batched = nullptr);

}  // namespace nodescope::sensor::bpf
