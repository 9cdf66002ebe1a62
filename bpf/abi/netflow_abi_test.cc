// struct ns_conn and struct ns_conn_close: C++ layout, documented layout and the BPF object's
// BTF agree.
#include "bpf/abi/netflow.h"

#include "bpf/abi/abi_testing.h"

namespace {

using nodescope::test::AbiMember;

std::vector<AbiMember> ConnLayout() {
  using C = ns_conn;
  return {NS_ABI_MEMBER(C, start_ns),      NS_ABI_MEMBER(C, cgroup_id),
          NS_ABI_MEMBER(C, bytes_read),    NS_ABI_MEMBER(C, bytes_written),
          NS_ABI_MEMBER(C, saddr),         NS_ABI_MEMBER(C, daddr),
          NS_ABI_MEMBER(C, total_retrans), NS_ABI_MEMBER(C, retrans_base),
          NS_ABI_MEMBER(C, srtt_us),       NS_ABI_MEMBER(C, mdev_us),
          NS_ABI_MEMBER(C, pid),           NS_ABI_MEMBER(C, netns),
          NS_ABI_MEMBER(C, sport),         NS_ABI_MEMBER(C, dport),
          NS_ABI_MEMBER(C, family),        NS_ABI_MEMBER(C, protocol),
          NS_ABI_MEMBER(C, direction),     NS_ABI_MEMBER(C, flags),
          NS_ABI_MEMBER(C, comm)};
}

std::vector<AbiMember> CloseLayout() {
  using E = ns_conn_close;
  return {NS_ABI_MEMBER(E, sk), NS_ABI_MEMBER(E, ts_ns), NS_ABI_MEMBER(E, conn)};
}

TEST(NetflowAbi, CxxLayoutIsTheDocumentedOne) {
  nodescope::test::ExpectSameMembers(
      ConnLayout(), {{"start_ns", 0, 8},        {"cgroup_id", 8, 8},      {"bytes_read", 16, 8},
                     {"bytes_written", 24, 8},  {"saddr", 32, 16},        {"daddr", 48, 16},
                     {"total_retrans", 64, 4},  {"retrans_base", 68, 4},  {"srtt_us", 72, 4},
                     {"mdev_us", 76, 4},        {"pid", 80, 4},           {"netns", 84, 4},
                     {"sport", 88, 2},          {"dport", 90, 2},         {"family", 92, 1},
                     {"protocol", 93, 1},       {"direction", 94, 1},     {"flags", 95, 1},
                     {"comm", 96, NS_TASK_COMM_LEN}});
  nodescope::test::ExpectSameMembers(CloseLayout(),
                                     {{"sk", 0, 8}, {"ts_ns", 8, 8}, {"conn", 16, 112}});
  EXPECT_EQ(alignof(ns_conn), 8u);
}

TEST(NetflowAbi, BpfObjectLayoutMatchesCxx) {
  nodescope::test::ExpectBtfLayout(NS_NETFLOW_BPF_OBJECT, "ns_conn", sizeof(ns_conn),
                                   ConnLayout());
  nodescope::test::ExpectBtfLayout(NS_NETFLOW_BPF_OBJECT, "ns_conn_close", sizeof(ns_conn_close),
                                   CloseLayout());
}

}  // namespace
