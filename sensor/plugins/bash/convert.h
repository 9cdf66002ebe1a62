// Kernel bash records (bpf/abi/bash.h) -> nodescope::v1::Event (BashEvent).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "bpf/abi/bash.h"
#include "nodescope/v1/events.pb.h"

namespace nodescope::sensor::bash {

// A ring-buffer record as the kernel wrote it; nullopt when its size is not the ABI's or its
// length is beyond the line buffer.
std::optional<ns_bash_event> ParseRecord(std::span<const std::byte> record);

// The kernel's tty name as ps and who write it: "pts3" -> "pts/3"; others ("tty1", "ttyS0",
// "console") as they are.
std::string TtyName(std::string_view kernel_name);

// The record's `message`: "<UTC time, microseconds> <user> <pid> <line>", e.g.
// "2026-11-30T14:13:47.123456Z root 4321 ls -la".
std::string FormatMessage(int64_t time_unix_nano, std::string_view user, uint32_t pid,
                          std::string_view line);

// The event of one line; `user` is the name of raw.uid, `time_unix_nano` when it was read.
v1::Event ConvertEvent(const ns_bash_event& raw, int64_t time_unix_nano, const std::string& user);

}  // namespace nodescope::sensor::bash
