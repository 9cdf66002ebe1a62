// The one place events get their container: every plugin hands its events to the transport
// through this sink, which sets `container` on each record whose cgroup is a container's or a
// pod's (left unset otherwise) and passes the event on.
#pragma once

#include <mutex>

#include "sensor/proc/container.h"
#include "sensor/transport/event_sink.h"

namespace nodescope::sensor::proc {

class ContainerSink : public EventSink {
 public:
  ContainerSink(EventSink* next, CgroupPaths paths) : next_(next), resolver_(std::move(paths)) {}

  // Process, netflow, httpflow, dnsflow and bash records by their cgroup_id; kernel metrics by the
  // cgroup path the kernel plugin put in each per-cgroup series' labels.
  void Emit(v1::Event event) override;

  size_t cached() const;
  uint64_t walks() const;

 private:
  EventSink* const next_;
  // Plugins emit from threads of their own. Held for a cache lookup per record, and for a walk
  // of the cgroup tree when a cgroup made since the last one shows up (CgroupPaths rations them).
  mutable std::mutex mu_;
  ContainerResolver resolver_;
};

}  // namespace nodescope::sensor::proc
