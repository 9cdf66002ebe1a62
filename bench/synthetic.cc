#include "bench/synthetic.h"

#include <iterator>

namespace nodescope::bench {
namespace {

struct Program {
  const char* comm;
  const char* path;
};

constexpr Program kPrograms[] = {
    {"bash", "/usr/bin/bash"},
    {"python3", "/usr/bin/python3.11"},
    {"java", "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"},
    {"containerd-shim", "/usr/bin/containerd-shim-runc-v2"},
    {"nginx", "/usr/sbin/nginx"},
    {"postgres", "/usr/lib/postgresql/15/bin/postgres"},
    {"sshd", "/usr/sbin/sshd"},
    {"node", "/usr/local/lib/nodejs/node-v20.10.0-linux-x64/bin/node"},
    {"cc1plus", "/usr/lib/gcc/x86_64-linux-gnu/12/cc1plus"},
    {"git", "/usr/bin/git"},
    {"kubelet", "/usr/local/bin/kubelet"},
    {"systemd-journal", "/usr/lib/systemd/systemd-journald"},
};
constexpr const char* kUsers[] = {"root", "www-data", "postgres", "1000", "nobody"};

}  // namespace

uint64_t SyntheticProcessEvents::Random() {
  // xorshift64*: a few cycles per draw.
  state_ ^= state_ >> 12;
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  return state_ * 0x2545F4914F6CDD1DULL;
}

void SyntheticProcessEvents::Next(int64_t time_unix_nano, v1::Event* event) {
  const uint64_t r = Random();
  const Program& program = kPrograms[r % std::size(kPrograms)];
  const uint32_t user = (r >> 8) % std::size(kUsers);
  event->set_time_unix_nano(time_unix_nano);
  v1::ProcessEvent* process = event->mutable_process();
  const uint64_t step = count_++ % 3;
  process->set_kind(step == 0   ? v1::ProcessEvent::FORK
                    : step == 1 ? v1::ProcessEvent::EXEC
                                : v1::ProcessEvent::EXIT);
  process->set_pid(static_cast<uint32_t>(1000 + (r >> 16) % 4'000'000));
  process->set_ppid(static_cast<uint32_t>(1 + (r >> 40) % 50'000));
  process->set_process_name(program.comm);
  process->set_user(kUsers[user]);
  process->set_uid(user == 0 ? 0 : 33 + user);
  process->set_cgroup_id(4'000 + (r >> 20) % 60'000);
  process->set_filename(program.path);
  if (step == 2) {
    const bool killed = (r >> 50) % 16 == 0;
    process->set_exit_code(killed ? 137 : static_cast<int32_t>((r >> 56) % 2));
    process->set_signal(killed ? 9 : 0);
    process->set_duration_ns(1'000'000 + (r >> 24) % 10'000'000'000);
  }
}

}  // namespace nodescope::bench
