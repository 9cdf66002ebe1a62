// Attach strategies: a probe lists the ways it can hook the kernel, best first; the sensor picks,
// at start and per probe, the first that loads and attaches, and reports what it chose and why
// the others failed.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "nodescope/v1/ingest.pb.h"

namespace nodescope::sensor::bpf {

// Strategy names, in the order a probe should list those it offers. A BPF program belongs to a
// strategy when its name is "<strategy>__<hook>" (see bpf/README.md).
inline constexpr std::string_view kFentry = "fentry";
inline constexpr std::string_view kKprobe = "kprobe";
inline constexpr std::string_view kTpBtf = "tp_btf";
inline constexpr std::string_view kTracepoint = "tracepoint";
// Raw tracepoints: the BTF tracepoints' hooks and arguments, read without BTF types.
inline constexpr std::string_view kRawTp = "raw_tp";
// User-space functions (uprobe/uretprobe), attached per file by the plugin itself.
inline constexpr std::string_view kUprobe = "uprobe";

struct AttachStrategy {
  std::string name;
  // Loads and attaches; on failure leaves nothing loaded, so the next strategy starts fresh.
  std::function<Status()> attach;
};

struct Selection {
  std::string probe;
  std::string strategy;  // the one that attached; empty when none did
  bool attached = false;
  std::string error;               // when none attached: why, for every strategy tried
  std::vector<std::string> tried;  // "name: error" of each failed attempt, in order

  v1::ProbeStatus ToProto() const;
};

// Tries `strategies` in order and stops at the first that attaches. With `forced` not empty only
// that strategy is tried; it must be one of `strategies`.
Selection SelectStrategy(std::string_view probe, std::span<const AttachStrategy> strategies,
                         std::string_view forced = {});

// True when `program` (a BPF program name) belongs to `strategy`.
bool ProgramInStrategy(std::string_view program, std::string_view strategy);

}  // namespace nodescope::sensor::bpf
