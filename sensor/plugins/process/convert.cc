#include "sensor/plugins/process/convert.h"

#include <cstring>
#include <string>

namespace nodescope::sensor::process {
namespace {

template <size_t N>
std::string CString(const __u8 (&bytes)[N]) {
  const char* text = reinterpret_cast<const char*>(bytes);
  return std::string(text, strnlen(text, N));
}

v1::ProcessEvent::Kind Kind(uint32_t kind) {
  switch (kind) {
    case NS_PROCESS_EXEC:
      return v1::ProcessEvent::EXEC;
    case NS_PROCESS_FORK:
      return v1::ProcessEvent::FORK;
    case NS_PROCESS_EXIT:
      return v1::ProcessEvent::EXIT;
    default:
      return v1::ProcessEvent::KIND_UNSPECIFIED;
  }
}

}  // namespace

ExitCode DecodeExitCode(uint32_t raw) {
  ExitCode result;
  int32_t signal = static_cast<int32_t>(raw & 0x7f);
  if (signal != 0) {
    result.signal = signal;
    result.code = 128 + signal;
  } else {
    result.code = static_cast<int32_t>((raw >> 8) & 0xff);
  }
  return result;
}

std::optional<ns_process_event> ParseRecord(std::span<const std::byte> record) {
  if (record.size() != sizeof(ns_process_event)) return std::nullopt;
  ns_process_event event;
  std::memcpy(&event, record.data(), sizeof(event));
  return event;
}

v1::Event ConvertEvent(const ns_process_event& raw, const bpf::MonotonicToRealtime& clock,
                       proc::ProcessCache& cache, proc::ProcessCache::Clock::time_point now) {
  proc::ProcessInfo info;
  info.pid = raw.pid;
  info.ppid = raw.ppid;
  info.comm = CString(raw.comm);
  info.uid = raw.uid;
  info.user = cache.users()->Name(raw.uid);
  info.cgroup_id = raw.cgroup_id;
  info.start_time_ns = raw.start_time_ns;

  v1::Event event;
  event.set_time_unix_nano(clock.ToUnixNanos(raw.ts_ns));
  v1::ProcessEvent* out = event.mutable_process();
  out->set_kind(Kind(raw.kind));
  out->set_pid(raw.pid);
  out->set_ppid(raw.ppid);
  out->set_process_name(info.comm);
  out->set_user(info.user);
  out->set_uid(raw.uid);
  out->set_cgroup_id(raw.cgroup_id);

  switch (raw.kind) {
    case NS_PROCESS_EXEC:
      info.filename = CString(raw.filename);
      out->set_filename(info.filename);
      cache.OnExec(std::move(info));
      break;
    case NS_PROCESS_FORK: {
      cache.OnFork(std::move(info));  // inherits the parent's executable
      std::optional<proc::ProcessInfo> child = cache.Lookup(raw.pid);
      if (child) out->set_filename(child->filename);
      break;
    }
    case NS_PROCESS_EXIT: {
      std::optional<proc::ProcessInfo> known = cache.Lookup(raw.pid);
      if (known) out->set_filename(known->filename);
      ExitCode exit = DecodeExitCode(raw.exit_code);
      out->set_exit_code(exit.code);
      out->set_signal(exit.signal);
      if (raw.start_time_ns != 0 && raw.ts_ns >= raw.start_time_ns) {
        out->set_duration_ns(raw.ts_ns - raw.start_time_ns);
      }
      cache.OnExit(raw.pid, now);
      break;
    }
    default:
      break;
  }
  return event;
}

}  // namespace nodescope::sensor::process
