// What the converter tests share: a batch context, a record's tags in order, raw address bytes.
#pragma once

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "aggregator/ingest/convert.h"

namespace nodescope::aggregator::ingest::testing {

using P = std::pair<std::string, std::string>;

struct Fixture {
  std::string node = "node-1";
  google::protobuf::RepeatedPtrField<v1::Tag> extra;
  BatchContext context() const { return {node, extra}; }
  void Extra(const std::string& key, const std::string& value) {
    v1::Tag* t = extra.Add();
    t->set_key(key);
    t->set_value(value);
  }
};

inline std::vector<P> Tags(const v1::Record& r) {
  std::vector<P> out;
  for (const v1::Tag& t : r.tags()) out.emplace_back(t.key(), t.value());
  return out;
}

inline std::string Bytes(std::initializer_list<int> octets) {
  std::string out;
  for (int o : octets) out.push_back(static_cast<char>(o));
  return out;
}

// The tuple the converter tests use for every flow kind (the three events name these fields
// alike): curl (pid 3121) on 127.0.0.1 to 198.18.0.2:80, the ephemeral source port folded.
template <typename FlowEvent>
void SetCurlTuple(FlowEvent* e) {
  e->set_transport(v1::NetflowEvent::TCP);
  e->set_direction(v1::NetflowEvent::OUTGOING);
  e->set_src_ip(Bytes({127, 0, 0, 1}));
  e->set_dst_ip(Bytes({198, 18, 0, 2}));
  e->set_src_port(0);
  e->set_dst_port(80);
  e->set_pid(3121);
  e->set_process_name("curl");
  e->set_netns(4026531840);
}

}  // namespace nodescope::aggregator::ingest::testing
