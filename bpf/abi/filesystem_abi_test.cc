// bpf/abi/filesystem.h: struct ns_fs_start and struct ns_hist as C++ and the BPF object lay them
// out, the (type, op) index, the names' keys fit, and the maps user space reads have the sizes it
// reads them with.
#include <bpf/libbpf.h>

#include <cstring>
#include <memory>
#include <set>
#include <string>

#include "bpf/abi/abi_testing.h"
#include "bpf/abi/filesystem.h"

namespace {

using nodescope::test::AbiMember;
using nodescope::test::HistLayout;

std::vector<AbiMember> StartLayout() {
  using S = ns_fs_start;
  return {NS_ABI_MEMBER(S, ts), NS_ABI_MEMBER(S, nr), NS_ABI_MEMBER(S, op),
          NS_ABI_MEMBER(S, fstype)};
}

TEST(FilesystemAbi, CxxLayoutIsTheDocumentedOne) {
  nodescope::test::ExpectSameMembers(
      StartLayout(), {{"ts", 0, 8}, {"nr", 8, 4}, {"op", 12, 2}, {"fstype", 14, 2}});
  EXPECT_EQ(sizeof(ns_fs_start), 16u);
  nodescope::test::ExpectDocumentedHistLayout();
}

TEST(FilesystemAbi, BpfObjectLayoutMatchesCxx) {
  nodescope::test::ExpectBtfLayout(NS_FILESYSTEM_BPF_OBJECT, "ns_fs_start", sizeof(ns_fs_start),
                                   StartLayout());
  nodescope::test::ExpectBtfLayout(NS_FILESYSTEM_BPF_OBJECT, "ns_hist", sizeof(ns_hist),
                                   HistLayout());
}

TEST(FilesystemAbi, NamesFitTheirKeysAndAreDistinct) {
  const char* names[] = NS_FS_TYPE_NAMES;
  static_assert(sizeof(names) / sizeof(names[0]) == NS_FS_TYPES);
  std::set<std::string> seen;
  for (const char* name : names) {
    // The NUL must be inside the key, or a longer kernel name would match a truncated one.
    EXPECT_LT(std::strlen(name), static_cast<size_t>(NS_FS_NAME_KEY_LEN)) << name;
    EXPECT_GT(std::strlen(name), 0u);
    EXPECT_TRUE(seen.insert(name).second) << name << " twice";
  }
  const char* ops[] = NS_FS_OP_NAMES;
  static_assert(sizeof(ops) / sizeof(ops[0]) == NS_FS_OPS);
  EXPECT_STREQ(ops[NS_FS_OP_READ], "read");
  EXPECT_STREQ(ops[NS_FS_OP_WRITE], "write");
  EXPECT_STREQ(ops[NS_FS_OP_OPEN], "open");
  EXPECT_STREQ(ops[NS_FS_OP_SYNC], "sync");
  // fstype indices must fit the u16 of ns_fs_start next to the "none" marker.
  EXPECT_LT(NS_FS_TYPES, NS_FS_TYPE_NONE);
}

TEST(FilesystemAbi, HistIndexCoversEveryPairOnce) {
  std::set<uint32_t> indices;
  for (uint32_t t = 0; t < NS_FS_TYPES; ++t) {
    for (uint32_t op = 0; op < NS_FS_OPS; ++op) {
      const uint32_t i = NS_FS_HIST_INDEX(t, op);
      EXPECT_LT(i, static_cast<uint32_t>(NS_FS_HISTS));
      EXPECT_TRUE(indices.insert(i).second);
    }
  }
  EXPECT_EQ(indices.size(), static_cast<size_t>(NS_FS_HISTS));
}

TEST(FilesystemAbi, MapsHaveTheSizesUserSpaceReads) {
  nodescope::test::ExpectMaps(
      NS_FILESYSTEM_BPF_OBJECT,
      {{"inflight", BPF_MAP_TYPE_HASH, 8, sizeof(ns_fs_start), NS_FS_INFLIGHT_MAX},
       {"hists", BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(ns_hist), NS_FS_HISTS},
       {"counters", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, NS_FS_CNT_MAX}});
}

// The names' keys live in .rodata, one u64 per type, where user space writes them.
TEST(FilesystemAbi, RodataHoldsTheNameKeys) {
  std::unique_ptr<bpf_object, decltype(&bpf_object__close)> object(
      bpf_object__open_file(NS_FILESYSTEM_BPF_OBJECT, nullptr), &bpf_object__close);
  ASSERT_NE(object, nullptr) << "cannot open " << NS_FILESYSTEM_BPF_OBJECT;
  const bpf_map* rodata = nullptr;
  const bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object.get()) {
    const std::string name = bpf_map__name(map);
    if (name.size() >= 7 && name.compare(name.size() - 7, 7, ".rodata") == 0) rodata = map;
  }
  ASSERT_NE(rodata, nullptr) << "no .rodata map";
  EXPECT_GE(bpf_map__value_size(rodata), sizeof(uint64_t) * NS_FS_TYPES);
}

}  // namespace
