// libFuzzer target for what the aggregator reads from the Kubernetes API (registered with
// nodescope_fuzz in CMake): an API server is a peer whose bytes are input like any other. The
// unit test links this file too and replays testdata/fuzz/ through CheckFuzzInput().
//
// The input is one JSON text as a list page, a watch event line or an object; every reader is
// run on it, on its `object` and on each of its `items`. Invariants: no crash or sanitizer report
// (the fuzzer's job); an object a reader accepts has the fields it cannot be without; a bad one
// is refused with a message.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "aggregator/enrich/k8s/objects.h"

namespace nodescope::aggregator::enrich::k8s {

std::string CheckFuzzInput(const uint8_t* data, size_t size);  // the unit test calls this too

namespace {

std::string CheckObject(const nlohmann::json& object) {
  Result<PodObject> pod = PodFrom(object);
  if (pod.ok() && (pod->uid.empty() || pod->name.empty())) return "a pod without uid or name";
  if (!pod.ok() && pod.status().message().empty()) return "a pod refused without a message";
  Result<ServiceObject> service = ServiceFrom(object);
  if (service.ok() && service->key.name.empty()) return "a service without a name";
  Result<EndpointSliceObject> slice = EndpointSliceFrom(object);
  if (slice.ok() && slice->key.name.empty()) return "a slice without a name";
  Result<NodeObject> node = NodeFrom(object);
  if (node.ok() && node->name.empty()) return "a node without a name";
  Result<WorkloadObject> workload = WorkloadFrom(object);
  if (workload.ok() && workload->key.name.empty()) return "a workload without a name";
  return "";
}

}  // namespace

std::string CheckFuzzInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)ParseTimestamp(text);
  (void)ContainerIdOf(text);
  Result<nlohmann::json> value = ParseSlim(text);
  if (!value.ok()) return value.status().message().empty() ? "refused without a message" : "";
  std::string why = CheckObject(*value);
  if (!why.empty() || !value->is_object()) return why;
  if (auto object = value->find("object"); object != value->end()) {
    why = CheckObject(*object);
    if (!why.empty()) return why;
  }
  if (auto items = value->find("items"); items != value->end() && items->is_array()) {
    for (const nlohmann::json& item : *items) {
      why = CheckObject(item);
      if (!why.empty()) return why;
    }
  }
  return "";
}

}  // namespace nodescope::aggregator::enrich::k8s

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string why = nodescope::aggregator::enrich::k8s::CheckFuzzInput(data, size);
  if (!why.empty()) {
    std::fprintf(stderr, "invariant broken: %s\n", why.c_str());
    std::abort();
  }
  return 0;
}
