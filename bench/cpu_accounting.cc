#include "bench/cpu_accounting.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/bpf.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace nodescope::bench {

Result<MachineCpu> ReadMachineCpu() {
  std::ifstream file("/proc/stat");
  std::string label;
  // user nice system idle iowait irq softirq steal; guest time is already inside user.
  uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  if (!(file >> label >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) ||
      label != "cpu") {
    return Status::Error("cannot parse the cpu line of /proc/stat");
  }
  const long ticks = sysconf(_SC_CLK_TCK);
  if (ticks <= 0) return Status::Error("sysconf(_SC_CLK_TCK) failed");
  const auto seconds = [&](uint64_t t) { return static_cast<double>(t) / ticks; };
  return MachineCpu{seconds(user + nice + system + irq + softirq + steal), seconds(irq + softirq),
                    seconds(steal)};
}

double ReapedChildrenCpuSeconds() {
  struct rusage usage;
  if (getrusage(RUSAGE_CHILDREN, &usage) != 0) return 0;
  const auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

std::map<pid_t, ThreadCpu> AllProcessesCpu() {
  std::map<pid_t, ThreadCpu> processes;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto cpu = StatCpuSeconds(entry.path().string() + "/stat");
    if (!cpu.ok()) continue;  // it exited meanwhile
    std::ifstream comm(entry.path().string() + "/comm");
    std::string command;
    std::getline(comm, command);
    processes[static_cast<pid_t>(std::stol(name))] = {command, *cpu};
  }
  return processes;
}

namespace {

// The kernel keeps 15 characters of a program's name; its BTF has the whole function name.
std::string FullName(int prog_fd, const bpf_prog_info& info) {
  static std::map<uint32_t, std::string> known;  // by program id; a bench is single-threaded
  if (const auto it = known.find(info.id); it != known.end()) return it->second;
  std::string name = info.name;
  bpf_func_info func{};
  bpf_prog_info more{};
  more.nr_func_info = 1;
  more.func_info_rec_size = sizeof(func);
  more.func_info = reinterpret_cast<uint64_t>(&func);
  uint32_t length = sizeof(more);
  if (info.btf_id != 0 && info.nr_func_info > 0 &&
      bpf_obj_get_info_by_fd(prog_fd, &more, &length) == 0) {
    if (btf* types = btf__load_from_kernel_by_id(info.btf_id); types != nullptr) {
      const btf_type* type = btf__type_by_id(types, func.type_id);
      if (type != nullptr) name = btf__name_by_offset(types, type->name_off);
      btf__free(types);
    }
  }
  known[info.id] = name;
  return name;
}

}  // namespace

Result<std::map<uint32_t, BpfProgramRun>> BpfProgramsOf(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  std::map<uint32_t, BpfProgramRun> programs;
  std::error_code error;
  std::filesystem::directory_iterator fds(proc + "/fd", error);
  if (error) return Status::Error("cannot list " + proc + "/fd: " + error.message());
  for (const auto& fd : fds) {
    std::error_code link_error;
    if (std::filesystem::read_symlink(fd.path(), link_error).string() != "anon_inode:bpf-prog") {
      continue;
    }
    // The id comes from the holder's fdinfo; the statistics and the name from the kernel by id,
    // which needs no access to the holder's fd.
    std::ifstream info_file(proc + "/fdinfo/" + fd.path().filename().string());
    uint32_t id = 0;
    for (std::string line; std::getline(info_file, line);) {
      if (line.rfind("prog_id:", 0) == 0) id = static_cast<uint32_t>(std::stoul(line.substr(8)));
    }
    if (id == 0 || programs.count(id) != 0) continue;
    const int prog_fd = bpf_prog_get_fd_by_id(id);
    if (prog_fd < 0) continue;  // unloaded meanwhile
    bpf_prog_info info{};
    uint32_t length = sizeof(info);
    const int got = bpf_obj_get_info_by_fd(prog_fd, &info, &length);
    if (got != 0) {
      close(prog_fd);
      return Status::Error("bpf_obj_get_info_by_fd for program " + std::to_string(id) + ": " +
                           std::strerror(-got));
    }
    programs[id] = {FullName(prog_fd, info), info.run_time_ns, info.run_cnt};
    close(prog_fd);
  }
  return programs;
}

Result<std::unique_ptr<BpfStatsOn>> BpfStatsOn::Enable() {
  const int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (fd < 0) return Status::Error(std::string("BPF_ENABLE_STATS: ") + std::strerror(-fd));
  return std::unique_ptr<BpfStatsOn>(new BpfStatsOn(fd));
}

BpfStatsOn::~BpfStatsOn() { close(fd_); }

}  // namespace nodescope::bench
