// bpf/abi/irq.h: struct ns_hist as C++ and the BPF object lay it out, and the maps user space
// reads have the key and value sizes it reads them with.
#include <bpf/libbpf.h>

#include <memory>

#include "bpf/abi/abi_testing.h"
#include "bpf/abi/irq.h"

namespace {

using nodescope::test::AbiMember;

std::vector<AbiMember> CxxLayout() {
  return {NS_ABI_MEMBER(ns_hist, slots), NS_ABI_MEMBER(ns_hist, sum_ns)};
}

TEST(IrqAbi, HistLayoutIsTheDocumentedOne) {
  nodescope::test::ExpectSameMembers(CxxLayout(),
                                     {{"slots", 0, 8 * NS_HIST_SLOTS}, {"sum_ns", 320, 8}});
  EXPECT_EQ(sizeof(ns_hist), 328u);
  EXPECT_EQ(alignof(ns_hist), 8u);
}

TEST(IrqAbi, BpfObjectHistLayoutMatchesCxx) {
  nodescope::test::ExpectBtfLayout(NS_IRQ_BPF_OBJECT, "ns_hist", sizeof(ns_hist), CxxLayout());
}

TEST(IrqAbi, MapsHaveTheSizesUserSpaceReads) {
  std::unique_ptr<bpf_object, decltype(&bpf_object__close)> object(
      bpf_object__open_file(NS_IRQ_BPF_OBJECT, nullptr), &bpf_object__close);
  ASSERT_NE(object, nullptr) << "cannot open " << NS_IRQ_BPF_OBJECT;
  struct Expected {
    const char* name;
    bpf_map_type type;
    uint32_t key_size, value_size, max_entries;
  };
  const Expected expected[] = {
      {"hardirq_hists", BPF_MAP_TYPE_HASH, 4, sizeof(ns_hist), NS_HARDIRQ_MAX_IRQS},
      {"softirq_hists", BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(ns_hist), NS_SOFTIRQ_VECTORS},
      {"counters", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, NS_IRQ_CNT_MAX},
  };
  for (const Expected& e : expected) {
    const bpf_map* map = bpf_object__find_map_by_name(object.get(), e.name);
    ASSERT_NE(map, nullptr) << e.name;
    EXPECT_EQ(bpf_map__type(map), e.type) << e.name;
    EXPECT_EQ(bpf_map__key_size(map), e.key_size) << e.name;
    EXPECT_EQ(bpf_map__value_size(map), e.value_size) << e.name;
    EXPECT_EQ(bpf_map__max_entries(map), e.max_entries) << e.name;
  }
}

}  // namespace
