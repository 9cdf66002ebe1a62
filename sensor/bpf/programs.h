// Loading one strategy's programs out of an object that holds several: one program the kernel
// rejects fails the whole object load, so programs of other strategies must not be loaded.
#pragma once

#include <bpf/libbpf.h>

#include <memory>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace nodescope::sensor::bpf {

using LinkPtr = std::unique_ptr<bpf_link, decltype(&bpf_link__destroy)>;

// Before load: autoload exactly the programs named "<strategy>__*". Fails if there are none.
Status SelectPrograms(bpf_object* object, std::string_view strategy);

// After load: attaches every program of `strategy`; on failure the links made so far are
// destroyed. The links must be destroyed before the object.
Result<std::vector<LinkPtr>> AttachPrograms(bpf_object* object, std::string_view strategy);

// "Permission denied (libbpf: prog 'x': BPF program load failed: ...)": the error of a libbpf
// call plus the root cause libbpf logged on this thread under the innermost LibbpfLogCapture.
std::string LibbpfErrorText(int err);

}  // namespace nodescope::sensor::bpf
