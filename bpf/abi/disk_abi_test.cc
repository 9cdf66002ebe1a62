// bpf/abi/disk.h: struct ns_disk_rq_key and struct ns_hist as C++ and the BPF object lay them
// out, the kernel dev_t decoding, and the maps user space reads have the sizes it reads them with.
#include "bpf/abi/abi_testing.h"
#include "bpf/abi/disk.h"

namespace {

using nodescope::test::AbiMember;
using nodescope::test::HistLayout;

std::vector<AbiMember> KeyLayout() {
  using K = ns_disk_rq_key;
  return {NS_ABI_MEMBER(K, id), NS_ABI_MEMBER(K, dev), NS_ABI_MEMBER(K, pad)};
}

TEST(DiskAbi, CxxLayoutIsTheDocumentedOne) {
  nodescope::test::ExpectSameMembers(KeyLayout(), {{"id", 0, 8}, {"dev", 8, 4}, {"pad", 12, 4}});
  EXPECT_EQ(sizeof(ns_disk_rq_key), 16u);
  nodescope::test::ExpectDocumentedHistLayout();
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
  nodescope::test::ExpectMaps(
      NS_DISK_BPF_OBJECT,
      {{"inflight", BPF_MAP_TYPE_HASH, sizeof(ns_disk_rq_key), 8, NS_DISK_INFLIGHT_MAX},
       {"hists", BPF_MAP_TYPE_HASH, 4, sizeof(ns_hist), NS_DISK_DEVICES_MAX},
       {"counters", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, NS_DISK_CNT_MAX}});
}

}  // namespace
