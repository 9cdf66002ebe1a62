// Loading bpf/progs/bash.bpf.c and attaching its uretprobe to one bash file: for the plugin and
// the probe test, which load the same object the same way.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bash.skel.h"
#include "bpf/abi/bash.h"
#include "common/status.h"
#include "sensor/bpf/loaded_probe.h"

namespace nodescope::sensor::bash {

// Functions whose return value is the line readline() returns, tried in this order on each file.
// readline() returns what readline_internal_teardown() made of the line (a copy, NULL at end of
// input), and that call starts only when Enter is pressed: a uretprobe on it also sees the line a
// shell was already waiting for when its file got the probe, which one on readline() misses (a
// uretprobe hooks calls that begin after it is attached). Debian's bash bundles readline and
// exports both symbols (`nm -D /usr/bin/bash`); a build that lacks the first falls back to
// readline itself.
inline constexpr const char* kReadlineFunctions[] = {"readline_internal_teardown", "readline"};

// Opens and loads the object with the programs of `strategy` (only "uprobe" exists), opens its
// ring buffer with `handler`, and hands all of it to `probe`. Attaches nothing: the uretprobe
// has no file until AttachReadline gives it one. Returns the skeleton, owned by `probe`.
Result<bash_bpf*> LoadBashProbe(bpf::LoadedProbe& probe, std::string_view strategy,
                                bpf::RingBuffer::Handler handler);

struct ReadlineLink {
  bpf::LinkPtr link;
  std::string function;  // the one of kReadlineFunctions it is on
};

// Attaches the loaded uretprobe to the first of kReadlineFunctions the executable `binary` has,
// for every process (pid -1); libbpf finds the symbol's offset in the file's ELF symbol tables.
// `cookie` (not 0, one per attachment) tells the program which attachment fired, so two
// attachments that reach the same real file send each line once (bpf/progs/bash.bpf.c).
Result<ReadlineLink> AttachReadline(bash_bpf* skel, const std::string& binary, uint64_t cookie);

}  // namespace nodescope::sensor::bash
