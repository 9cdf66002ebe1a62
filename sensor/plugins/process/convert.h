// Kernel process events (bpf/abi/process.h) -> nodescope::v1::Event, keeping the process cache
// current on the way.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "bpf/abi/process.h"
#include "nodescope/v1/events.pb.h"
#include "sensor/bpf/clock.h"
#include "sensor/proc/process_cache.h"

namespace nodescope::sensor::process {

struct ExitCode {
  int32_t code = 0;    // 0-255 for exit(), 128 + signal when killed, as a shell reports it
  int32_t signal = 0;  // the terminating signal, 0 when the process exited itself
};

// Decodes a raw task->exit_code (a wait(2) status: exit status << 8, or the signal number in the
// low 7 bits, 0x80 when it dumped core).
ExitCode DecodeExitCode(uint32_t raw);

// A ring-buffer record as the kernel wrote it; nullopt when its size is not the ABI's.
std::optional<ns_process_event> ParseRecord(std::span<const std::byte> record);

// Applies `raw` to `cache` (exec: new executable; fork: new process; exit: marks it exited at
// `now`) and returns the event to emit. fork and exit carry the process's last exec'd filename
// from the cache, empty when it is unknown.
v1::Event ConvertEvent(const ns_process_event& raw, const bpf::MonotonicToRealtime& clock,
                       proc::ProcessCache& cache, proc::ProcessCache::Clock::time_point now);

}  // namespace nodescope::sensor::process
