#include "sensor/plugins/bash/convert.h"

#include <fmt/format.h>

#include <cstring>
#include <ctime>

namespace nodescope::sensor::bash {

std::optional<ns_bash_event> ParseRecord(std::span<const std::byte> record) {
  if (record.size() != sizeof(ns_bash_event)) return std::nullopt;
  ns_bash_event event;
  std::memcpy(&event, record.data(), sizeof(event));
  if (event.length == 0 || event.length > NS_BASH_LINE_MAX) return std::nullopt;
  return event;
}

std::string TtyName(std::string_view kernel_name) {
  // devpts names its ttys "pts" + index (tty_line_name(), drivers/tty/tty_io.c); the device
  // node, and what ps shows, is /dev/pts/<index>.
  constexpr std::string_view kPts = "pts";
  if (kernel_name.size() > kPts.size() && kernel_name.starts_with(kPts) &&
      kernel_name.find_first_not_of("0123456789", kPts.size()) == std::string_view::npos) {
    return "pts/" + std::string(kernel_name.substr(kPts.size()));
  }
  return std::string(kernel_name);
}

std::string FormatMessage(int64_t time_unix_nano, std::string_view user, uint32_t pid,
                          std::string_view line) {
  const time_t seconds = static_cast<time_t>(time_unix_nano / 1'000'000'000);
  tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[32];
  strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:06d}Z {} {} {}", stamp, (time_unix_nano % 1'000'000'000) / 1000, user,
                     pid, line);
}

v1::Event ConvertEvent(const ns_bash_event& raw, int64_t time_unix_nano, const std::string& user) {
  const std::string_view line(reinterpret_cast<const char*>(raw.line), raw.length);
  const char* tty = reinterpret_cast<const char*>(raw.tty);
  v1::Event event;
  event.set_time_unix_nano(time_unix_nano);
  v1::BashEvent* out = event.mutable_bash();
  out->set_cmd(std::string(line));
  out->set_truncated((raw.flags & NS_BASH_TRUNCATED) != 0);
  out->set_pid(raw.pid);
  out->set_ppid(raw.ppid);
  out->set_uid(raw.uid);
  out->set_user(user);
  out->set_tty(TtyName(std::string_view(tty, strnlen(tty, sizeof(raw.tty)))));
  out->set_cgroup_id(raw.cgroup_id);
  out->set_message(FormatMessage(time_unix_nano, user, raw.pid, line));
  return event;
}

}  // namespace nodescope::sensor::bash
