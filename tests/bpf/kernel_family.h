// What the probe tests of the ebpf-kernel families (disk, filesystem, hardirq and softirq) check
// the same way: the suite's environment, a source attached as asked, histograms host-wide and well
// formed, counters that are only the family's own losses, a disabled family that loads nothing.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "bpf/abi/hist.h"
#include "nodescope/v1/events.pb.h"
#include "sensor/plugins/kernel/options.h"

namespace nodescope::test {

// A test run once per parameter (a strategy, a family) that needs root and the BPF environment,
// prepared once for the suite.
class KernelFamilyTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite();
};

// Starts `source` with only `family` enabled and checks that it reports that family alone,
// probe "kernel/<family>", attached with `strategy`. Fatal failures: call it in
// ASSERT_NO_FATAL_FAILURE.
void StartAttached(sensor::kernel::FamilySource& source, const std::string& family,
                   const std::string& strategy);

// Starts `source` with `families`, none of them its own: it must report no probe and send
// nothing.
void ExpectDisabledLoadsNothing(sensor::kernel::FamilySource& source,
                                std::set<std::string> families);

// The histograms of `event` summed by the values of `labels`, in that order. Each must be
// `name`, host-wide (no app, no cgroup), labelled with `labels` and nothing else, and have no
// more than NS_HIST_SLOTS slots.
std::map<std::vector<std::string>, ns_hist> HostWideHistograms(
    const v1::KernelMetricsEvent& event, const std::string& name,
    const std::vector<std::string>& labels);

uint64_t Count(const ns_hist& h);

// Every counter of `event` is kernel_events_lost, labelled with a reason of `family`
// ("<family>_...") and moved.
void ExpectOnlyLosses(const v1::KernelMetricsEvent& event, const std::string& family);

}  // namespace nodescope::test
