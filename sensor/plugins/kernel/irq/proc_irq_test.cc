#include "sensor/plugins/kernel/irq/proc_irq.h"

#include <gtest/gtest.h>

namespace nodescope::sensor::kernel::irq {
namespace {

// Captured on the project's machine kind (Linux 6.18, 2 vCPUs, virtio devices).
constexpr char kInterrupts618[] =
    "           CPU0       CPU1       \n"
    " 24:          1          0  IO-APIC   5-edge      ACPI:Ged\n"
    " 26:          0         15  IO-APIC   4-edge      ttyS0\n"
    " 28:          0          0 PCI-MSIX-0000:00:01.0   0-edge      virtio0-config\n"
    " 32:       1538          0 PCI-MSIX-0000:00:01.0   4-edge      virtio0-reporting_vq\n"
    " 36:          0     427354 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0\n"
    " 42:          0      23225 PCI-MSIX-0000:00:04.0   2-edge      virtio3-tx\n"
    "NMI:          0          0   Non-maskable interrupts\n"
    "LOC:    7630812    8007639   Local timer interrupts\n"
    "RES:    3821151    3758923   Rescheduling interrupts\n"
    "CAL:     785939     625149   Function call interrupts\n"
    "ERR:          0\n"
    "MIS:          0\n"
    "PIW:          0          0   Posted-interrupt wakeup event\n";

constexpr char kSoftirqs618[] =
    "                    CPU0       CPU1       \n"
    "          HI:          0          0\n"
    "       TIMER:     583188     716297\n"
    "      NET_TX:        737        941\n"
    "      NET_RX:  206601637  205276758\n"
    "       BLOCK:        126     427379\n"
    "    IRQ_POLL:          0          0\n"
    "     TASKLET:        140        168\n"
    "       SCHED:     583991     558394\n"
    "     HRTIMER:    4311385    4364084\n"
    "         RCU:    2389124    2481323\n";

TEST(ParseInterrupts, CapturedVirtioMachine) {
  Result<Interrupts> parsed = ParseInterrupts(kInterrupts618);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  ASSERT_EQ(parsed->lines.size(), 6u);
  const InterruptLine& disk = parsed->lines.at(36);
  EXPECT_EQ(disk.count, 427354u);
  EXPECT_EQ(disk.name, "virtio1-req.0");
  EXPECT_EQ(disk.actions, std::vector<std::string>{"virtio1-req.0"});
  EXPECT_EQ(parsed->lines.at(24).name, "ACPI:Ged");
  EXPECT_EQ(parsed->lines.at(24).count, 1u);
  EXPECT_EQ(parsed->lines.at(26).count, 15u);
  EXPECT_EQ(parsed->lines.at(28).count, 0u);
  EXPECT_EQ(parsed->lines.at(28).name, "virtio0-config");
  EXPECT_EQ(parsed->lines.at(32).name, "virtio0-reporting_vq");
  EXPECT_EQ(parsed->arch.at("LOC"), 7630812u + 8007639u);
  EXPECT_EQ(parsed->arch.at("RES"), 3821151u + 3758923u);
  EXPECT_EQ(parsed->arch.at("ERR"), 0u);
  EXPECT_EQ(parsed->arch.count("PIW"), 1u);
  EXPECT_EQ(parsed->lines.count(0), 0u);
}

// Lines written with show_interrupts()'s format (kernel/irq/proc.c) for what other machines
// show: a shared line, a line without a handler, no IRQ domain, ARM's "Level" column.
TEST(ParseInterrupts, OtherLayouts) {
  constexpr char kText[] =
      "           CPU0       CPU1       CPU2       CPU3       \n"
      "  0:         16          0          0          0   IO-APIC   2-edge      timer\n"
      "  9:          0          4          0          0   IO-APIC   9-fasteoi   acpi\n"
      " 16:         10         20         30         40   IO-APIC  16-fasteoi   "
      "ehci_hcd:usb1, i801_smbus\n"
      " 17:          0          0          0          0   IO-APIC  17-fasteoi\n"
      " 20:          5          0          0          0      None -fasteoi   xen-pirq\n"
      " 11:        100        200          0          0     GICv3  27 Level     arch_timer\n"
      "124:          7          0          0          0  IR-PCI-MSI 512000-edge      "
      "ahci[0000:00:1f.2]\n";
  Result<Interrupts> parsed = ParseInterrupts(kText);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->lines.at(0).name, "timer");
  EXPECT_EQ(parsed->lines.at(9).name, "acpi");
  EXPECT_EQ(parsed->lines.at(9).count, 4u);
  EXPECT_EQ(parsed->lines.at(16).count, 100u);
  EXPECT_EQ(parsed->lines.at(16).name, "ehci_hcd:usb1, i801_smbus");
  EXPECT_EQ(parsed->lines.at(16).actions,
            (std::vector<std::string>{"ehci_hcd:usb1", "i801_smbus"}));
  EXPECT_EQ(parsed->lines.at(17).name, "");
  EXPECT_TRUE(parsed->lines.at(17).actions.empty());
  EXPECT_EQ(parsed->lines.at(20).name, "xen-pirq");
  EXPECT_EQ(parsed->lines.at(11).name, "arch_timer");
  EXPECT_EQ(parsed->lines.at(11).count, 300u);
  EXPECT_EQ(parsed->lines.at(124).name, "ahci[0000:00:1f.2]");
}

TEST(ParseInterrupts, RejectsTextWithoutHeader) {
  EXPECT_FALSE(ParseInterrupts("").ok());
  EXPECT_FALSE(ParseInterrupts(" 24:  1  0  IO-APIC   5-edge  ACPI:Ged\n").ok());
}

TEST(ParseSoftirqs, CapturedVirtioMachine) {
  Result<std::array<uint64_t, NS_SOFTIRQ_VECTORS>> parsed = ParseSoftirqs(kSoftirqs618);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  const std::array<uint64_t, NS_SOFTIRQ_VECTORS> expected = {
      0, 583188 + 716297, 737 + 941,       206601637 + 205276758, 126 + 427379,
      0, 140 + 168,       583991 + 558394, 4311385 + 4364084,     2389124 + 2481323};
  EXPECT_EQ(*parsed, expected);
}

TEST(ParseSoftirqs, FailsWhenAVectorIsMissing) {
  std::string text = kSoftirqs618;
  text.erase(text.find("    IRQ_POLL"), text.find("     TASKLET") - text.find("    IRQ_POLL"));
  Result<std::array<uint64_t, NS_SOFTIRQ_VECTORS>> parsed = ParseSoftirqs(text);
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("IRQ_POLL"), std::string::npos);
}

TEST(SoftirqNames, MatchTheRunningKernel) {
  // The table is what this kernel prints, in vector order.
  Result<std::string> text = ReadProcFile("/proc/softirqs");
  ASSERT_TRUE(text.ok()) << text.status().message();
  size_t pos = 0;
  for (std::string_view name : kSoftirqNames) {
    pos = text->find(std::string(name) + ":", pos);
    ASSERT_NE(pos, std::string::npos) << name << " missing or out of order";
  }
  EXPECT_TRUE(ParseSoftirqs(*text).ok());
  Result<std::string> interrupts = ReadProcFile("/proc/interrupts");
  ASSERT_TRUE(interrupts.ok());
  EXPECT_TRUE(ParseInterrupts(*interrupts).ok());
}

}  // namespace
}  // namespace nodescope::sensor::kernel::irq
