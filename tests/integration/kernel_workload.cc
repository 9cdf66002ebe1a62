// ns-kernel-workload MODE DIR [LOOPDEV MOUNTPOINT]: the operations of kernel_workload.h ("ops")
// or none of them ("base"), so the difference of two runs is exactly those operations. Exits 0
// when every operation behaved as planned (a failing one is a test bug, not a sensor bug), else
// prints what went wrong and exits 1.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/integration/kernel_workload.h"

namespace w = nodescope::test::workload;

namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "ns-kernel-workload: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

void* Nothing(void*) { return nullptr; }

void Files(const std::string& dir) {
  std::vector<int> fds;
  for (int i = 0; i < w::kCreates; ++i) {
    int fd = open((dir + "/f" + std::to_string(i)).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) Fail("open f" + std::to_string(i));
    fds.push_back(fd);
  }
  for (int i = 0; i < w::kOpenFails; ++i) {
    if (open((dir + "/missing/x").c_str(), O_RDONLY) >= 0 || errno != ENOENT) Fail("open missing");
  }
  const int fd = fds[0];
  std::string block(w::kWriteBytes, 'x');
  for (int i = 0; i < w::kWrites; ++i) {
    if (write(fd, block.data(), block.size()) != w::kWriteBytes) Fail("write");
  }
  char buf[w::kReadBytes];
  for (int i = 0; i < w::kReads; ++i) {
    if (pread(fd, buf, sizeof(buf), 0) != w::kReadBytes) Fail("pread");
  }
  char a[50], b[50];
  std::memset(a, 'a', sizeof(a));
  std::memset(b, 'b', sizeof(b));
  for (int i = 0; i < w::kWritevs; ++i) {
    iovec iov[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
    if (writev(fd, iov, 2) != 100) Fail("writev");
  }
  for (int i = 0; i < w::kPreadvs; ++i) {
    iovec iov[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
    if (preadv(fd, iov, 2, 0) != 100) Fail("preadv");
  }
  for (int i = 0; i < w::kFsyncs; ++i) {
    if (fsync(fd) != 0) Fail("fsync");
  }
  for (int i = 0; i < w::kFdatasyncs; ++i) {
    if (fdatasync(fd) != 0) Fail("fdatasync");
  }
  if (sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) != 0) Fail("sync_file_range");
  if (syncfs(fd) != 0) Fail("syncfs");
  for (int i = 0; i < w::kSyncs; ++i) sync();
  // msync needs a shared mapping of a file: fds[1], grown to a page.
  if (ftruncate(fds[1], 4096) != 0) Fail("ftruncate");
  void* map = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0);
  if (map == MAP_FAILED) Fail("mmap");
  static_cast<char*>(map)[0] = 'm';
  if (msync(map, 4096, MS_SYNC) != 0) Fail("msync");
  munmap(map, 4096);
  for (int f : fds) close(f);
  for (int i = 0; i < w::kUnlinks; ++i) {
    if (unlink((dir + "/f" + std::to_string(i)).c_str()) != 0) Fail("unlink");
  }
  for (int i = 0; i < w::kUnlinkFails; ++i) {
    if (unlink((dir + "/missing-file").c_str()) == 0 || errno != ENOENT) Fail("unlink missing");
  }
}

void Tasks() {
  for (int i = 0; i < w::kForks; ++i) {
    pid_t pid = fork();
    if (pid < 0) Fail("fork");
    if (pid == 0) _exit(0);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) Fail("waitpid");
  }
  for (int i = 0; i < w::kThreads; ++i) {
    pthread_t t;
    if (pthread_create(&t, nullptr, Nothing, nullptr) != 0) Fail("pthread_create");
    pthread_join(t, nullptr);
  }
}

void Mounts(const std::string& dev, const std::string& mountpoint) {
  if (mount("/nonexistent-device", mountpoint.c_str(), "ext4", 0, nullptr) == 0) {
    Fail("mount of a missing device succeeded");
  }
  if (mount(dev.c_str(), mountpoint.c_str(), "ext4", 0, nullptr) != 0) Fail("mount " + dev);
  if (umount2(mountpoint.c_str(), 0) != 0) Fail("umount2");
}

void Shm() {
  int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
  if (id < 0) Fail("shmget");
  void* p = shmat(id, nullptr, 0);
  if (p == reinterpret_cast<void*>(-1)) Fail("shmat");
  if (shmdt(p) != 0) Fail("shmdt");
  if (shmctl(id, IPC_RMID, nullptr) != 0) Fail("shmctl");
}

void Sockets() {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) Fail("bind");
  if (listen(listener, 1) != 0) Fail("listen");
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  int client = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) Fail("connect");
  int server = accept(listener, nullptr, nullptr);
  if (server < 0) Fail("accept");
  std::string chunk(w::kTcpChunk, 'c');
  std::vector<char> in(w::kTcpChunk);
  for (int i = 0; i < w::kTcpChunks; ++i) {
    if (send(client, chunk.data(), chunk.size(), 0) != w::kTcpChunk) Fail("send");
    for (int got = 0; got < w::kTcpChunk;) {
      ssize_t n = recv(server, in.data() + got, w::kTcpChunk - got, 0);
      if (n <= 0) Fail("recv");
      got += static_cast<int>(n);
    }
  }
  int udp = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in uaddr{};
  uaddr.sin_family = AF_INET;
  uaddr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  len = sizeof(uaddr);
  if (bind(udp, reinterpret_cast<sockaddr*>(&uaddr), sizeof(uaddr)) != 0) Fail("bind udp");
  getsockname(udp, reinterpret_cast<sockaddr*>(&uaddr), &len);
  char d[w::kUdpBytes] = {};
  for (int i = 0; i < w::kUdpDatagrams; ++i) {
    if (sendto(udp, d, sizeof(d), 0, reinterpret_cast<sockaddr*>(&uaddr), sizeof(uaddr)) !=
        w::kUdpBytes) {
      Fail("sendto");
    }
    if (recvfrom(udp, d, sizeof(d), 0, nullptr, nullptr) != w::kUdpBytes) Fail("recvfrom");
  }
  close(udp);
  close(server);
  close(client);
  close(listener);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: ns-kernel-workload base|ops|oom DIR [LOOPDEV MOUNTPOINT]\n");
    return 2;
  }
  const std::string mode = argv[1];
  if (mode == "oom") {
    // Touch memory until the memory cgroup's limit makes the OOM killer pick this process.
    for (;;) {
      char* p = static_cast<char*>(std::malloc(1 << 20));
      if (p == nullptr) return 3;
      std::memset(p, 1, 1 << 20);
    }
  }
  if (mode != "ops") return 0;
  if (argc < 5) {
    std::fprintf(stderr, "ops needs LOOPDEV and MOUNTPOINT\n");
    return 2;
  }
  Files(argv[2]);
  Tasks();
  Mounts(argv[3], argv[4]);
  Shm();
  Sockets();
  return 0;
}
