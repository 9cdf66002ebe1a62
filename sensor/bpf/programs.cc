#include "sensor/bpf/programs.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "sensor/bpf/libbpf_log.h"
#include "sensor/bpf/strategy.h"

namespace nodescope::sensor::bpf {

std::string LibbpfErrorText(int err) {
  std::string text = std::strerror(err < 0 ? -err : err);
  std::string logged = LibbpfLogCapture::Warnings();
  if (!logged.empty()) text += " (libbpf: " + logged + ")";
  return text;
}

Status SelectPrograms(bpf_object* object, std::string_view strategy) {
  int selected = 0;
  bpf_program* program = nullptr;
  bpf_object__for_each_program(program, object) {
    const std::string_view name = bpf_program__name(program);
    bool mine = ProgramInStrategy(name, strategy);
    bool helper = name.starts_with(kCgroupPrefix) || name.starts_with(kRunPrefix);
    if (int err = bpf_program__set_autoload(program, mine || helper); err != 0) {
      return Status::Error(std::string("set autoload of ") + bpf_program__name(program) + ": " +
                           LibbpfErrorText(err));
    }
    selected += mine ? 1 : 0;
  }
  if (selected == 0) {
    return Status::Error(std::string("object ") + bpf_object__name(object) +
                         " has no program for strategy " + std::string(strategy));
  }
  return Status::Ok();
}

std::vector<bpf_program*> StrategyPrograms(bpf_object* object, std::string_view strategy,
                                           bool (*attach_first)(std::string_view program)) {
  std::vector<bpf_program*> first, rest;
  bpf_program* program = nullptr;
  bpf_object__for_each_program(program, object) {
    if (!ProgramInStrategy(bpf_program__name(program), strategy)) continue;
    // A probe's configure step may switch off programs of the strategy it does not need.
    if (!bpf_program__autoload(program)) continue;
    (attach_first != nullptr && attach_first(bpf_program__name(program)) ? first : rest)
        .push_back(program);
  }
  first.insert(first.end(), rest.begin(), rest.end());
  return first;
}

Result<std::vector<LinkPtr>> AttachPrograms(std::span<bpf_program* const> programs) {
  std::vector<LinkPtr> links;
  for (bpf_program* program : programs) {
    bpf_link* link = bpf_program__attach(program);
    if (link == nullptr) {
      int err = errno;
      return Status::Error(std::string("attach ") + bpf_program__name(program) + ": " +
                           LibbpfErrorText(err));
    }
    links.emplace_back(link, &bpf_link__destroy);
  }
  return links;
}

Result<std::vector<LinkPtr>> AttachPrograms(bpf_object* object, std::string_view strategy) {
  return AttachPrograms(StrategyPrograms(object, strategy));
}

Result<ProgramStats> ReadProgramStats(const bpf_program* program) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(bpf_program__fd(program), &info, &len) != 0) {
    return Status::Error(std::string("info of ") + bpf_program__name(program) + ": " +
                         std::strerror(errno));
  }
  return ProgramStats{info.name, info.run_cnt, info.run_time_ns, info.recursion_misses};
}

Result<std::vector<LinkPtr>> AttachCgroupPrograms(bpf_object* object,
                                                  const std::string& cgroup_path) {
  int fd = open(cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::Error("open " + cgroup_path + ": " + std::strerror(errno));
  std::vector<LinkPtr> links;
  Status status = Status::Ok();
  bpf_program* program = nullptr;
  bpf_object__for_each_program(program, object) {
    const std::string_view name = bpf_program__name(program);
    if (name.substr(0, kCgroupPrefix.size()) != kCgroupPrefix) continue;
    bpf_link* link = bpf_program__attach_cgroup(program, fd);
    if (link == nullptr) {
      int err = errno;
      status = Status::Error("attach " + std::string(name) + " to " + cgroup_path + ": " +
                             LibbpfErrorText(err));
      links.clear();
      break;
    }
    links.emplace_back(link, &bpf_link__destroy);
  }
  close(fd);
  if (!status.ok()) return status;
  return links;
}

}  // namespace nodescope::sensor::bpf
