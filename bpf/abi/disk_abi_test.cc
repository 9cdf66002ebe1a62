// bpf/abi/disk.h: struct ns_disk_rq_key and struct ns_hist as C++ and the BPF object lay them
// out, the kernel dev_t decoding, and the maps user space reads have the sizes it reads them with.
#include <bpf/libbpf.h>

#include <memory>

#include "bpf/abi/abi_testing.h"
#include "bpf/abi/disk.h"

namespace {

using nodescope::test::AbiMember;

std::vector<AbiMember> KeyLayout() {
  using K = ns_disk_rq_key;
  return {NS_ABI_MEMBER(K, id), NS_ABI_MEMBER(K, dev), NS_ABI_MEMBER(K, pad)};
}

std::vector<AbiMember> HistLayout() {
  return {NS_ABI_MEMBER(ns_hist, slots), NS_ABI_MEMBER(ns_hist, sum_ns)};
}

TEST(DiskAbi, CxxLayoutIsTheDocumentedOne) {
  nodescope::test::ExpectSameMembers(KeyLayout(), {{"id", 0, 8}, {"dev", 8, 4}, {"pad", 12, 4}});
  EXPECT_EQ(sizeof(ns_disk_rq_key), 16u);
  nodescope::test::ExpectSameMembers(HistLayout(),
                                     {{"slots", 0, 8 * NS_HIST_SLOTS}, {"sum_ns", 320, 8}});
  EXPECT_EQ(sizeof(ns_hist), 328u);
}

TEST(DiskAbi, BpfObjectLayoutMatchesCxx) {
  nodescope::test::ExpectBtfLayout(NS_DISK_BPF_OBJECT, "ns_disk_rq_key", sizeof(ns_disk_rq_key),
                                   KeyLayout());
  nodescope::test::ExpectBtfLayout(NS_DISK_BPF_OBJECT, "ns_hist", sizeof(ns_hist), HistLayout());
}

TEST(DiskAbi, KernelDevTDecodes) {
  // MKDEV(259, 3) as the kernel encodes it (include/linux/kdev_t.h): nvme0n1p3 style numbers.
  const uint32_t dev = (259u << 20) | 3u;
  EXPECT_EQ(NS_DISK_MAJOR(dev), 259u);
  EXPECT_EQ(NS_DISK_MINOR(dev), 3u);
  EXPECT_EQ(NS_DISK_MINOR((7u << 20) | 0xfffffu), 0xfffffu);
}

TEST(DiskAbi, MapsHaveTheSizesUserSpaceReads) {
  std::unique_ptr<bpf_object, decltype(&bpf_object__close)> object(
      bpf_object__open_file(NS_DISK_BPF_OBJECT, nullptr), &bpf_object__close);
  ASSERT_NE(object, nullptr) << "cannot open " << NS_DISK_BPF_OBJECT;
  struct Expected {
    const char* name;
    bpf_map_type type;
    uint32_t key_size, value_size, max_entries;
  };
  const Expected expected[] = {
      {"inflight", BPF_MAP_TYPE_HASH, sizeof(ns_disk_rq_key), 8, NS_DISK_INFLIGHT_MAX},
      {"hists", BPF_MAP_TYPE_HASH, 4, sizeof(ns_hist), NS_DISK_DEVICES_MAX},
      {"counters", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, NS_DISK_CNT_MAX},
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
