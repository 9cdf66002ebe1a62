// bpf/abi/irq.h: struct ns_hist as C++ and the BPF object lay it out, and the maps user space
// reads have the key and value sizes it reads them with.
#include "bpf/abi/abi_testing.h"
#include "bpf/abi/irq.h"

namespace {

TEST(IrqAbi, HistLayoutIsTheDocumentedOne) {
  nodescope::test::ExpectDocumentedHistLayout();
  EXPECT_EQ(alignof(ns_hist), 8u);
}

TEST(IrqAbi, BpfObjectHistLayoutMatchesCxx) {
  nodescope::test::ExpectBtfLayout(NS_IRQ_BPF_OBJECT, "ns_hist", sizeof(ns_hist),
                                   nodescope::test::HistLayout());
}

TEST(IrqAbi, MapsHaveTheSizesUserSpaceReads) {
  nodescope::test::ExpectMaps(
      NS_IRQ_BPF_OBJECT,
      {{"hardirq_hists", BPF_MAP_TYPE_HASH, 4, sizeof(ns_hist), NS_HARDIRQ_MAX_IRQS},
       {"softirq_hists", BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(ns_hist), NS_SOFTIRQ_VECTORS},
       {"counters", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, NS_IRQ_CNT_MAX}});
}

}  // namespace
