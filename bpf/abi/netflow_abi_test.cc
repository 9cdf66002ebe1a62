// struct ns_conn and struct ns_conn_close: C++ layout, documented layout and the BPF object's
// BTF agree.
#include "bpf/abi/abi_testing.h"
#include "bpf/abi/l7.h"
#include "bpf/abi/netflow.h"

namespace {

using nodescope::test::AbiMember;

std::vector<AbiMember> ConnLayout() {
  using C = ns_conn;
  return {
      NS_ABI_MEMBER(C, start_ns),      NS_ABI_MEMBER(C, cgroup_id),    NS_ABI_MEMBER(C, bytes_read),
      NS_ABI_MEMBER(C, bytes_written), NS_ABI_MEMBER(C, saddr),        NS_ABI_MEMBER(C, daddr),
      NS_ABI_MEMBER(C, total_retrans), NS_ABI_MEMBER(C, retrans_base), NS_ABI_MEMBER(C, srtt_us),
      NS_ABI_MEMBER(C, mdev_us),       NS_ABI_MEMBER(C, pid),          NS_ABI_MEMBER(C, netns),
      NS_ABI_MEMBER(C, sport),         NS_ABI_MEMBER(C, dport),        NS_ABI_MEMBER(C, family),
      NS_ABI_MEMBER(C, protocol),      NS_ABI_MEMBER(C, direction),    NS_ABI_MEMBER(C, flags),
      NS_ABI_MEMBER(C, comm),          NS_ABI_MEMBER(C, l7_peer),      NS_ABI_MEMBER(C, l7_run_ts),
      NS_ABI_MEMBER(C, l7_run_off)};
}

std::vector<AbiMember> CloseLayout() {
  using E = ns_conn_close;
  return {NS_ABI_MEMBER(E, sk), NS_ABI_MEMBER(E, peer), NS_ABI_MEMBER(E, ts_ns),
          NS_ABI_MEMBER(E, conn)};
}

std::vector<AbiMember> L7EventLayout() {
  using E = ns_l7_event;
  return {NS_ABI_MEMBER(E, sk),        NS_ABI_MEMBER(E, peer),
          NS_ABI_MEMBER(E, sent),      NS_ABI_MEMBER(E, ts_ns),
          NS_ABI_MEMBER(E, cgroup_id), NS_ABI_MEMBER(E, saddr),
          NS_ABI_MEMBER(E, daddr),     NS_ABI_MEMBER(E, pid),
          NS_ABI_MEMBER(E, netns),     NS_ABI_MEMBER(E, len),
          NS_ABI_MEMBER(E, captured),  NS_ABI_MEMBER(E, sport),
          NS_ABI_MEMBER(E, dport),     NS_ABI_MEMBER(E, family),
          NS_ABI_MEMBER(E, protocol),  NS_ABI_MEMBER(E, l7),
          NS_ABI_MEMBER(E, direction), NS_ABI_MEMBER(E, conn_direction),
          NS_ABI_MEMBER(E, flags),     NS_ABI_MEMBER(E, pad),
          NS_ABI_MEMBER(E, offset),    NS_ABI_MEMBER(E, conn_start_ns),
          NS_ABI_MEMBER(E, comm),      NS_ABI_MEMBER(E, runs)};
}

std::vector<AbiMember> L7RunsLayout() {
  using R = ns_l7_runs;
  return {NS_ABI_MEMBER(R, ts), NS_ABI_MEMBER(R, off), NS_ABI_MEMBER(R, moved)};
}

TEST(NetflowAbi, CxxLayoutIsTheDocumentedOne) {
  nodescope::test::ExpectSameMembers(ConnLayout(), {{"start_ns", 0, 8},
                                                    {"cgroup_id", 8, 8},
                                                    {"bytes_read", 16, 8},
                                                    {"bytes_written", 24, 8},
                                                    {"saddr", 32, 16},
                                                    {"daddr", 48, 16},
                                                    {"total_retrans", 64, 4},
                                                    {"retrans_base", 68, 4},
                                                    {"srtt_us", 72, 4},
                                                    {"mdev_us", 76, 4},
                                                    {"pid", 80, 4},
                                                    {"netns", 84, 4},
                                                    {"sport", 88, 2},
                                                    {"dport", 90, 2},
                                                    {"family", 92, 1},
                                                    {"protocol", 93, 1},
                                                    {"direction", 94, 1},
                                                    {"flags", 95, 1},
                                                    {"comm", 96, NS_TASK_COMM_LEN},
                                                    {"l7_peer", 112, 8},
                                                    {"l7_run_ts", 120, 16},
                                                    {"l7_run_off", 136, 16}});
  nodescope::test::ExpectSameMembers(
      CloseLayout(), {{"sk", 0, 8}, {"peer", 8, 8}, {"ts_ns", 16, 8}, {"conn", 24, 152}});
  EXPECT_EQ(alignof(ns_conn), 8u);
  nodescope::test::ExpectSameMembers(L7EventLayout(), {{"sk", 0, 8},
                                                       {"peer", 8, 8},
                                                       {"sent", 8, 8},
                                                       {"ts_ns", 16, 8},
                                                       {"cgroup_id", 24, 8},
                                                       {"saddr", 32, 16},
                                                       {"daddr", 48, 16},
                                                       {"pid", 64, 4},
                                                       {"netns", 68, 4},
                                                       {"len", 72, 4},
                                                       {"captured", 76, 4},
                                                       {"sport", 80, 2},
                                                       {"dport", 82, 2},
                                                       {"family", 84, 1},
                                                       {"protocol", 85, 1},
                                                       {"l7", 86, 1},
                                                       {"direction", 87, 1},
                                                       {"conn_direction", 88, 1},
                                                       {"flags", 89, 1},
                                                       {"pad", 90, 6},
                                                       {"offset", 96, 8},
                                                       {"conn_start_ns", 104, 8},
                                                       {"comm", 112, NS_TASK_COMM_LEN},
                                                       {"runs", 128, 48}});
  nodescope::test::ExpectSameMembers(L7RunsLayout(),
                                     {{"ts", 0, 16}, {"off", 16, 16}, {"moved", 32, 16}});
}

// Written by user space while it sheds load for resource limits.
std::vector<AbiMember> L7LimitLayout() {
  using L = ns_l7_limit;
  return {NS_ABI_MEMBER(L, payload_off), NS_ABI_MEMBER(L, keep_one_in)};
}

TEST(NetflowAbi, L7LimitLayout) {
  nodescope::test::ExpectSameMembers(L7LimitLayout(),
                                     {{"payload_off", 0, 4}, {"keep_one_in", 4, 4}});
}

TEST(NetflowAbi, BpfObjectLayoutMatchesCxx) {
  nodescope::test::ExpectBtfLayout(NS_NETFLOW_BPF_OBJECT, "ns_conn", sizeof(ns_conn), ConnLayout());
  nodescope::test::ExpectBtfLayout(NS_NETFLOW_BPF_OBJECT, "ns_conn_close", sizeof(ns_conn_close),
                                   CloseLayout());
  nodescope::test::ExpectBtfLayout(NS_NETFLOW_BPF_OBJECT, "ns_l7_event", sizeof(ns_l7_event),
                                   L7EventLayout());
  nodescope::test::ExpectBtfLayout(NS_NETFLOW_BPF_OBJECT, "ns_l7_runs", sizeof(ns_l7_runs),
                                   L7RunsLayout());
  nodescope::test::ExpectBtfLayout(NS_NETFLOW_BPF_OBJECT, "ns_l7_limit", sizeof(ns_l7_limit),
                                   L7LimitLayout());
}

}  // namespace
