// Follows the Kubernetes API into a ClusterState the way client-go's informers do: list (paged)
// then watch from the list's resourceVersion with bookmarks; a watch that ends is resumed from
// the last version seen; 410 Gone (the version was compacted away) relists; errors back off
// exponentially up to 30 s. One thread per resource: a watch is a long blocking read.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "aggregator/enrich/k8s/api_client.h"
#include "aggregator/enrich/k8s/cluster_state.h"

namespace nodescope::aggregator::enrich::k8s {

class Watcher {
 public:
  // Starts following every resource of kAllResources; errors only for a configuration that
  // cannot work at all (a bad CA or client key). An unreachable server is retried, not an error.
  static Result<std::unique_ptr<Watcher>> Start(const ApiConfig& config, ClusterState* state,
                                                prometheus::Registry& registry);
  ~Watcher();
  void Stop();

  // Whether every resource has been listed once (so enrichment can be trusted).
  bool synced() const;
  bool WaitSynced(std::chrono::milliseconds timeout) const;

 private:
  struct Follower;
  struct Snapshot;
  Watcher(ClusterState* state, prometheus::Registry& registry);
  void Run(Follower* f);
  // One list, all pages; false (with `why`) when it failed.
  bool List(Follower* f, bool initial, std::string* why);
  // Watches from f->version until the stream ends; the reason it ended.
  std::string Watch(Follower* f);
  // Applies one watch event line; false when the stream must be abandoned (`restart` says why).
  bool OnEvent(Follower* f, std::string_view line, std::string* restart);
  bool Sleep(std::chrono::milliseconds duration);
  void Failed(const std::string& resource, const std::string& why);
  void Recovered(const std::string& resource);
  int64_t Now() const;

  ClusterState* const state_;
  prometheus::Family<prometheus::Gauge>& objects_;
  prometheus::Family<prometheus::Gauge>& synced_gauge_;
  prometheus::Family<prometheus::Counter>& events_;
  prometheus::Family<prometheus::Counter>& restarts_;
  prometheus::Family<prometheus::Counter>& bad_objects_;

  std::vector<std::unique_ptr<Follower>> followers_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::string logged_error_;  // guarded by mu_
};

}  // namespace nodescope::aggregator::enrich::k8s
