// Reading /proc/interrupts and /proc/softirqs: the handler names the hardirq series are labelled
// with, and the kernel's own counts the probe tests compare against.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "bpf/abi/irq.h"
#include "common/status.h"

namespace nodescope::sensor::kernel::irq {

// softirq_to_name[] (kernel/softirq.c): the row names of /proc/softirqs, by vector number.
inline constexpr std::array<std::string_view, NS_SOFTIRQ_VECTORS> kSoftirqNames = {
    "HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU"};

// One numbered line of /proc/interrupts ("  36:  0  427354  PCI-MSIX-0000:00:02.0  1-edge
// virtio1-req.0"): an IRQ line with the handlers (irqaction) requested on it.
struct InterruptLine {
  uint64_t count = 0;                // times the line fired, summed over the CPU columns
  std::vector<std::string> actions;  // the handlers' names; more than one on a shared line
  std::string name;                  // the actions as /proc/interrupts shows them: "a, b"
};

struct Interrupts {
  std::map<uint32_t, InterruptLine> lines;  // by IRQ number
  // The named rows (LOC, RES, CAL, TLB, NMI, ...): architecture interrupts and IPIs that no
  // request_irq() handler serves, so irq_handler_entry never fires for them.
  std::map<std::string, uint64_t> arch;
};

// Parses the whole text of /proc/interrupts (show_interrupts() in kernel/irq/proc.c). After a
// line's CPU columns come the chip name, the hardware IRQ number joined to the flow handler's
// name ("4-edge", "9-fasteoi"; on ARM "27 Level") and then the actions, separated by ", ".
Result<Interrupts> ParseInterrupts(std::string_view text);

// Parses /proc/softirqs: per vector, the count summed over CPUs. Fails when a row of
// kSoftirqNames is missing.
Result<std::array<uint64_t, NS_SOFTIRQ_VECTORS>> ParseSoftirqs(std::string_view text);

// The whole file; /proc files report size 0, so it is read until EOF.
Result<std::string> ReadProcFile(const std::string& path);

}  // namespace nodescope::sensor::kernel::irq
