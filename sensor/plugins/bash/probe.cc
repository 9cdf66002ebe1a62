#include "sensor/plugins/bash/probe.h"

#include <cerrno>
#include <memory>

#include "sensor/bpf/libbpf_log.h"
#include "sensor/bpf/programs.h"

namespace nodescope::sensor::bash {

Result<bash_bpf*> LoadBashProbe(bpf::LoadedProbe& probe, std::string_view strategy,
                                bpf::RingBuffer::Handler handler) {
  bpf::LibbpfLogCapture capture;
  std::unique_ptr<bash_bpf, decltype(&bash_bpf__destroy)> skel(bash_bpf__open(),
                                                               &bash_bpf__destroy);
  if (!skel) return Status::Error("open: " + bpf::LibbpfErrorText(errno));
  if (Status s = bpf::SelectPrograms(skel->obj, strategy); !s.ok()) return s;
  if (int err = bash_bpf__load(skel.get()); err != 0) {
    return Status::Error("load: " + bpf::LibbpfErrorText(err));
  }
  Result<std::unique_ptr<bpf::RingBuffer>> ring =
      bpf::RingBuffer::Open(bpf_map__fd(skel->maps.events), std::move(handler));
  if (!ring.ok()) return ring.status();
  const int counters_fd = bpf_map__fd(skel->maps.counters);
  bash_bpf* raw = skel.release();
  probe.Adopt([raw] { bash_bpf__destroy(raw); }, {}, std::move(ring).value(), counters_fd);
  return raw;
}

Result<ReadlineLink> AttachReadline(bash_bpf* skel, const std::string& binary, uint64_t cookie) {
  std::string errors;
  for (const char* function : kReadlineFunctions) {
    bpf::LibbpfLogCapture capture;
    LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = cookie, .retprobe = true,
                .func_name = function);
    bpf_link* link = bpf_program__attach_uprobe_opts(skel->progs.uprobe__readline_ret, -1,
                                                     binary.c_str(), 0, &opts);
    if (link != nullptr) return ReadlineLink{bpf::LinkPtr(link, &bpf_link__destroy), function};
    const int err = errno;
    errors += (errors.empty() ? "" : "; ") + std::string("uretprobe on ") + function + ": " +
              bpf::LibbpfErrorText(err);
  }
  return Status::Error(errors);
}

}  // namespace nodescope::sensor::bash
