// struct ns_process_event: C++ layout, documented layout and the BPF object's BTF agree.
#include "bpf/abi/process.h"

#include "bpf/abi/abi_testing.h"

namespace {

using nodescope::test::AbiMember;

std::vector<AbiMember> CxxLayout() {
  using E = ns_process_event;
  return {NS_ABI_MEMBER(E, ts_ns), NS_ABI_MEMBER(E, start_time_ns), NS_ABI_MEMBER(E, cgroup_id),
          NS_ABI_MEMBER(E, kind),  NS_ABI_MEMBER(E, pid),           NS_ABI_MEMBER(E, tid),
          NS_ABI_MEMBER(E, ppid),  NS_ABI_MEMBER(E, uid),           NS_ABI_MEMBER(E, exit_code),
          NS_ABI_MEMBER(E, comm),  NS_ABI_MEMBER(E, filename)};
}

TEST(ProcessAbi, CxxLayoutIsTheDocumentedOne) {
  nodescope::test::ExpectSameMembers(CxxLayout(), {{"ts_ns", 0, 8},
                                                   {"start_time_ns", 8, 8},
                                                   {"cgroup_id", 16, 8},
                                                   {"kind", 24, 4},
                                                   {"pid", 28, 4},
                                                   {"tid", 32, 4},
                                                   {"ppid", 36, 4},
                                                   {"uid", 40, 4},
                                                   {"exit_code", 44, 4},
                                                   {"comm", 48, NS_TASK_COMM_LEN},
                                                   {"filename", 64, NS_FILENAME_LEN}});
  EXPECT_EQ(sizeof(ns_process_event), 320u);
  EXPECT_EQ(alignof(ns_process_event), 8u);
}

TEST(ProcessAbi, BpfObjectLayoutMatchesCxx) {
  nodescope::test::ExpectBtfLayout(NS_PROCESS_BPF_OBJECT, "ns_process_event",
                                   sizeof(ns_process_event), CxxLayout());
}

}  // namespace
