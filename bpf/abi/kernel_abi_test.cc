// bpf/abi/kernel.h: C++ layout, documented layout and the BPF object's BTF agree, and the
// syscall numbers the sys_exit hook dispatches on are this architecture's.
#include <sys/syscall.h>

#include "bpf/abi/abi_testing.h"
#include "bpf/abi/kernel.h"

namespace {

using nodescope::test::AbiMember;

std::vector<AbiMember> KeyLayout() {
  using K = ns_kernel_proc_key;
  return {NS_ABI_MEMBER(K, cgroup_id), NS_ABI_MEMBER(K, tgid), NS_ABI_MEMBER(K, exec_id)};
}

std::vector<AbiMember> ProcLayout() {
  using P = ns_kernel_proc;
  return {NS_ABI_MEMBER(P, v), NS_ABI_MEMBER(P, comm)};
}

TEST(KernelAbi, CxxLayoutIsTheDocumentedOne) {
  nodescope::test::ExpectSameMembers(KeyLayout(),
                                     {{"cgroup_id", 0, 8}, {"tgid", 8, 4}, {"exec_id", 12, 4}});
  nodescope::test::ExpectSameMembers(
      ProcLayout(), {{"v", 0, 8 * NS_K_SLOTS}, {"comm", 8 * NS_K_SLOTS, NS_KERNEL_COMM_LEN}});
  EXPECT_EQ(sizeof(ns_kernel_proc_key), 16u);
  EXPECT_EQ(sizeof(ns_kernel_host), 8u * NS_K_SLOTS);
  EXPECT_EQ(sizeof(ns_kernel_exit_event), 16u);
}

TEST(KernelAbi, BpfObjectLayoutMatchesCxx) {
  nodescope::test::ExpectBtfLayout(NS_KERNEL_BPF_OBJECT, "ns_kernel_proc_key",
                                   sizeof(ns_kernel_proc_key), KeyLayout());
  nodescope::test::ExpectBtfLayout(NS_KERNEL_BPF_OBJECT, "ns_kernel_proc", sizeof(ns_kernel_proc),
                                   ProcLayout());
}

TEST(KernelAbi, SyscallNumbersAreThisArchitecturesOnes) {
  const std::pair<long, long> numbers[] = {
      {NS_SYS_READ, SYS_read},         {NS_SYS_WRITE, SYS_write},
      {NS_SYS_OPEN, SYS_open},         {NS_SYS_CLOSE, SYS_close},
      {NS_SYS_PREAD64, SYS_pread64},   {NS_SYS_PWRITE64, SYS_pwrite64},
      {NS_SYS_READV, SYS_readv},       {NS_SYS_WRITEV, SYS_writev},
      {NS_SYS_MSYNC, SYS_msync},       {NS_SYS_SHMGET, SYS_shmget},
      {NS_SYS_SHMAT, SYS_shmat},       {NS_SYS_SHMCTL, SYS_shmctl},
      {NS_SYS_ACCEPT, SYS_accept},     {NS_SYS_CLONE, SYS_clone},
      {NS_SYS_FORK, SYS_fork},         {NS_SYS_VFORK, SYS_vfork},
      {NS_SYS_SHMDT, SYS_shmdt},       {NS_SYS_FSYNC, SYS_fsync},
      {NS_SYS_FDATASYNC, SYS_fdatasync}, {NS_SYS_CREAT, SYS_creat},
      {NS_SYS_UNLINK, SYS_unlink},     {NS_SYS_MKNOD, SYS_mknod},
      {NS_SYS_SYNC, SYS_sync},         {NS_SYS_MOUNT, SYS_mount},
      {NS_SYS_UMOUNT2, SYS_umount2},   {NS_SYS_OPENAT, SYS_openat},
      {NS_SYS_MKNODAT, SYS_mknodat},   {NS_SYS_UNLINKAT, SYS_unlinkat},
      {NS_SYS_SYNC_FILE_RANGE, SYS_sync_file_range}, {NS_SYS_ACCEPT4, SYS_accept4},
      {NS_SYS_PREADV, SYS_preadv},     {NS_SYS_PWRITEV, SYS_pwritev},
      {NS_SYS_SYNCFS, SYS_syncfs},     {NS_SYS_PREADV2, SYS_preadv2},
      {NS_SYS_PWRITEV2, SYS_pwritev2}, {NS_SYS_CLONE3, SYS_clone3},
      {NS_SYS_OPENAT2, SYS_openat2},
  };
  for (const auto& [ours, libc] : numbers) EXPECT_EQ(ours, libc);
}

}  // namespace
