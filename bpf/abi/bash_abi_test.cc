// struct ns_bash_event: C++ layout, documented layout and the BPF object's BTF agree.
#include "bpf/abi/abi_testing.h"
#include "bpf/abi/bash.h"

namespace {

using nodescope::test::AbiMember;

std::vector<AbiMember> CxxLayout() {
  using E = ns_bash_event;
  return {NS_ABI_MEMBER(E, ts_ns),  NS_ABI_MEMBER(E, cgroup_id), NS_ABI_MEMBER(E, pid),
          NS_ABI_MEMBER(E, tid),    NS_ABI_MEMBER(E, ppid),      NS_ABI_MEMBER(E, uid),
          NS_ABI_MEMBER(E, length), NS_ABI_MEMBER(E, flags),     NS_ABI_MEMBER(E, tty),
          NS_ABI_MEMBER(E, line)};
}

TEST(BashAbi, CxxLayoutIsTheDocumentedOne) {
  nodescope::test::ExpectSameMembers(CxxLayout(), {{"ts_ns", 0, 8},
                                                   {"cgroup_id", 8, 8},
                                                   {"pid", 16, 4},
                                                   {"tid", 20, 4},
                                                   {"ppid", 24, 4},
                                                   {"uid", 28, 4},
                                                   {"length", 32, 4},
                                                   {"flags", 36, 4},
                                                   {"tty", 40, NS_BASH_TTY_LEN},
                                                   {"line", 104, NS_BASH_LINE_BUF}});
  EXPECT_EQ(sizeof(ns_bash_event), 4208u);
  EXPECT_EQ(alignof(ns_bash_event), 8u);
  // The probe reads one byte past NS_BASH_LINE_MAX, plus the NUL: both must fit.
  EXPECT_GE(NS_BASH_LINE_BUF, NS_BASH_LINE_MAX + 1);
}

TEST(BashAbi, BpfObjectLayoutMatchesCxx) {
  nodescope::test::ExpectBtfLayout(NS_BASH_BPF_OBJECT, "ns_bash_event", sizeof(ns_bash_event),
                                   CxxLayout());
}

}  // namespace
