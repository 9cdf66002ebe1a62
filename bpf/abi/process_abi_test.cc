// The kernel writes struct ns_process_event as clang laid it out for -target bpf; user space
// reads it as g++ laid it out for x86_64. Both come from bpf/abi/process.h, but only this test
// shows they agree: every member's offset and size here, against a fixed table and against the
// BTF of the compiled BPF object.
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "bpf/abi/process.h"

namespace {

struct Member {
  std::string name;
  size_t offset;
  size_t size;
};

#define NS_MEMBER(field) \
  Member { #field, offsetof(ns_process_event, field), sizeof(ns_process_event::field) }

std::vector<Member> CxxLayout() {
  return {NS_MEMBER(ts_ns),     NS_MEMBER(start_time_ns), NS_MEMBER(cgroup_id), NS_MEMBER(kind),
          NS_MEMBER(pid),       NS_MEMBER(tid),           NS_MEMBER(ppid),      NS_MEMBER(uid),
          NS_MEMBER(exit_code), NS_MEMBER(comm),          NS_MEMBER(filename)};
}

TEST(ProcessAbi, CxxLayoutIsTheDocumentedOne) {
  const std::vector<Member> expected = {{"ts_ns", 0, 8},
                                        {"start_time_ns", 8, 8},
                                        {"cgroup_id", 16, 8},
                                        {"kind", 24, 4},
                                        {"pid", 28, 4},
                                        {"tid", 32, 4},
                                        {"ppid", 36, 4},
                                        {"uid", 40, 4},
                                        {"exit_code", 44, 4},
                                        {"comm", 48, NS_TASK_COMM_LEN},
                                        {"filename", 64, NS_FILENAME_LEN}};
  std::vector<Member> actual = CxxLayout();
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(actual[i].name, expected[i].name);
    EXPECT_EQ(actual[i].offset, expected[i].offset) << expected[i].name;
    EXPECT_EQ(actual[i].size, expected[i].size) << expected[i].name;
  }
  EXPECT_EQ(sizeof(ns_process_event), 320u);
  EXPECT_EQ(alignof(ns_process_event), 8u);
}

TEST(ProcessAbi, BpfObjectLayoutMatchesCxx) {
  std::unique_ptr<btf, decltype(&btf__free)> types(btf__parse_elf(NS_PROCESS_BPF_OBJECT, nullptr),
                                                   &btf__free);
  ASSERT_NE(types, nullptr) << "cannot read BTF of " << NS_PROCESS_BPF_OBJECT;
  int id = btf__find_by_name_kind(types.get(), "ns_process_event", BTF_KIND_STRUCT);
  ASSERT_GT(id, 0) << "struct ns_process_event is not in the object's BTF";
  const btf_type* type = btf__type_by_id(types.get(), id);
  EXPECT_EQ(type->size, sizeof(ns_process_event));

  std::vector<Member> cxx = CxxLayout();
  ASSERT_EQ(btf_vlen(type), cxx.size()) << "members added on one side only";
  const btf_member* members = btf_members(type);
  for (size_t i = 0; i < cxx.size(); ++i) {
    std::string name = btf__name_by_offset(types.get(), members[i].name_off);
    EXPECT_EQ(name, cxx[i].name);
    EXPECT_EQ(btf_member_bit_offset(type, i), cxx[i].offset * 8) << name;
    EXPECT_EQ(btf_member_bitfield_size(type, i), 0u) << name;
    EXPECT_EQ(static_cast<size_t>(btf__resolve_size(types.get(), members[i].type)), cxx[i].size)
        << name;
  }
}

}  // namespace
