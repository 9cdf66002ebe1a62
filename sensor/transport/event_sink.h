// Where probes hand their events: the transport batches them towards the aggregator.
#pragma once

#include "nodescope/v1/events.pb.h"

namespace nodescope::sensor {

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Takes the event; never blocks on the network. Events that cannot be kept are counted.
  virtual void Emit(v1::Event event) = 0;
};

}  // namespace nodescope::sensor
