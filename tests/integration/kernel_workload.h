// What ns-kernel-workload does in "ops" mode: known numbers of each operation the per-process
// ebpf-kernel families count, so kernel_test can hold the sensor's per-application and
// per-cgroup deltas against them. "base" mode runs the same program without the operations.
#pragma once

namespace nodescope::test::workload {

inline constexpr int kCreates = 15;      // open(O_CREAT) of new files, all succeed
inline constexpr int kOpenFails = 5;     // open of a missing path: fail with ENOENT
inline constexpr int kWrites = 30;       // write() calls of kWriteBytes
inline constexpr int kWriteBytes = 1000;
inline constexpr int kReads = 7;         // pread64() calls of kReadBytes
inline constexpr int kReadBytes = 100;
inline constexpr int kWritevs = 3;       // writev() of two 50-byte buffers
inline constexpr int kPreadvs = 2;       // preadv() of two 50-byte buffers
inline constexpr int kFsyncs = 4;
inline constexpr int kFdatasyncs = 2;
inline constexpr int kSyncs = 3;
inline constexpr int kUnlinks = 2;       // of created files
inline constexpr int kUnlinkFails = 1;   // of a missing file
inline constexpr int kForks = 6;         // children that _exit at once
inline constexpr int kThreads = 5;
inline constexpr int kTcpChunks = 10;    // send() calls of kTcpChunk bytes over one connection
inline constexpr int kTcpChunk = 10000;
inline constexpr int kUdpDatagrams = 5;  // sendto()/recvfrom() of kUdpBytes
inline constexpr int kUdpBytes = 100;
// Besides: one msync, one syncfs, one sync_file_range (on an mmap'ed file opened with O_CREAT),
// one mount of the loop device that succeeds and one that fails, one umount2, one
// shmget/shmat/shmdt/shmctl each, one TCP connect and its accept.

}  // namespace nodescope::test::workload
