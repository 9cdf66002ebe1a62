#include "aggregator/enrich/k8s/watcher.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <random>

#include "aggregator/clock.h"
#include "aggregator/metrics.h"

namespace nodescope::aggregator::enrich::k8s {

namespace {

using nlohmann::json;

constexpr int kPageSize = 500;
constexpr auto kMinBackoff = std::chrono::milliseconds(500);
constexpr auto kMaxBackoff = std::chrono::milliseconds(30'000);

std::string UrlEncoded(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string VersionOf(const json& object) {
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return {};
  auto rv = meta->find("resourceVersion");
  return rv != meta->end() && rv->is_string() ? rv->get<std::string>() : std::string();
}

// The one-line reason of a Status body ("too old resource version: 5 (9)"), or the status code.
std::string StatusText(int code, const std::string& body) {
  Result<json> status = ParseSlim(body);
  if (status.ok() && status->is_object() && status->contains("message") &&
      (*status)["message"].is_string()) {
    return "HTTP " + std::to_string(code) + ": " + (*status)["message"].get<std::string>();
  }
  return "HTTP " + std::to_string(code);
}

}  // namespace

struct Watcher::Follower {
  Resource resource;
  std::unique_ptr<ApiClient> client;
  std::thread thread;
  std::string version;  // "" → list first
  int64_t count = 0;
  std::atomic<bool> synced{false};
  bool failing = false;  // since its last error, nothing succeeded
  prometheus::Gauge* objects = nullptr;
  prometheus::Gauge* synced_gauge = nullptr;
};

Watcher::Watcher(ClusterState* state, prometheus::Registry& registry)
    : state_(state),
      objects_(GaugeFamily(registry, "nodescope_k8s_objects",
                           "Kubernetes objects the aggregator holds, by resource")),
      synced_gauge_(GaugeFamily(registry, "nodescope_k8s_synced",
                                "1 once the resource has been listed; enrichment is complete "
                                "only when every resource is")),
      events_(CounterFamily(registry, "nodescope_k8s_watch_events_total",
                            "watch events received, by resource and type (added, modified, "
                            "deleted, bookmark, error)")),
      restarts_(CounterFamily(registry, "nodescope_k8s_watch_restarts_total",
                              "watches that ended, by resource and reason (timeout: the server "
                              "closed it; expired: 410 Gone, relisted; unauthorized; error)")),
      bad_objects_(CounterFamily(registry, "nodescope_k8s_bad_objects_total",
                                 "objects or event lines that could not be read and were "
                                 "skipped, by resource")) {}

Result<std::unique_ptr<Watcher>> Watcher::Start(const ApiConfig& config, ClusterState* state,
                                                prometheus::Registry& registry) {
  std::unique_ptr<Watcher> w(new Watcher(state, registry));
  auto token = std::make_shared<TokenSource>(config.token, config.token_file);
  for (Resource r : kAllResources) {
    auto client = ApiClient::Create(config, token);
    if (!client.ok()) return client.status();
    auto f = std::make_unique<Follower>();
    f->resource = r;
    f->client = std::move(client).value();
    const std::string name(ResourceName(r));
    f->objects = &w->objects_.Add({{"resource", name}});
    f->synced_gauge = &w->synced_gauge_.Add({{"resource", name}});
    w->followers_.push_back(std::move(f));
  }
  for (auto& f : w->followers_) {
    Follower* raw = f.get();
    f->thread = std::thread([self = w.get(), raw] { self->Run(raw); });
  }
  spdlog::info("kubernetes: following {} resources at {}:{} ({})", w->followers_.size(),
               config.host, config.port, config.origin);
  return w;
}

Watcher::~Watcher() { Stop(); }

void Watcher::Stop() {
  if (stopping_.exchange(true)) return;
  { std::lock_guard lock(mu_); }
  cv_.notify_all();
  for (auto& f : followers_) f->client->Abort();
  for (auto& f : followers_) {
    if (f->thread.joinable()) f->thread.join();
  }
}

bool Watcher::synced() const {
  for (const auto& f : followers_) {
    if (!f->synced) return false;
  }
  return true;
}

bool Watcher::WaitSynced(std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mu_);
  return cv_.wait_until(lock, deadline, [this] { return synced() || stopping_; }) && synced();
}

int64_t Watcher::Now() const { return NowUnixNano(); }

// An unreachable API server fails every resource the same way: one line, not nine, until the
// reason changes or one of them gets through.
void Watcher::Failed(const std::string& resource, const std::string& why) {
  std::lock_guard lock(mu_);
  if (why == logged_error_) return;
  spdlog::warn("kubernetes {}: {}; retrying with backoff", resource, why);
  logged_error_ = why;
}

void Watcher::Recovered(const std::string& resource) {
  std::lock_guard lock(mu_);
  if (logged_error_.empty()) return;
  spdlog::info("kubernetes {}: the API server answers again", resource);
  logged_error_.clear();
}

bool Watcher::Sleep(std::chrono::milliseconds duration) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, duration, [this] { return stopping_.load(); });
}

void Watcher::Run(Follower* f) {
  const std::string name(ResourceName(f->resource));
  std::mt19937 jitter(std::random_device{}());
  auto backoff = kMinBackoff;
  bool initial = true;
  auto failed = [&](const std::string& why) {
    Failed(name, why);
    f->failing = true;
    const auto wait =
        backoff / 2 + std::chrono::milliseconds(
                          std::uniform_int_distribution<int64_t>(0, backoff.count() / 2)(jitter));
    backoff = std::min(backoff * 2, kMaxBackoff);
    Sleep(wait);
  };
  while (!stopping_) {
    if (f->version.empty()) {
      std::string why;
      if (!List(f, initial, &why)) {
        if (!stopping_) failed(why);
        continue;
      }
      initial = false;
      if (!f->synced.exchange(true)) {
        f->synced_gauge->Set(1);
        std::lock_guard lock(mu_);
        cv_.notify_all();
      }
    }
    std::string ended = Watch(f);
    if (stopping_) break;
    if (ended == "timeout" || ended == "expired") {
      restarts_.Add({{"resource", name}, {"reason", ended}}).Increment();
      if (f->failing) Recovered(name);
      f->failing = false;
      backoff = kMinBackoff;
      continue;
    }
    const bool unauthorized =
        ended.find("HTTP 401") != std::string::npos || ended.find("HTTP 403") != std::string::npos;
    restarts_.Add({{"resource", name}, {"reason", unauthorized ? "unauthorized" : "error"}})
        .Increment();
    failed(ended);
  }
}

// One list's objects, typed page by page: a page's JSON (a few MiB for 500 pods, several times
// that as a DOM) is gone before the next is read, so a large cluster never sits in memory as
// JSON at once.
struct Watcher::Snapshot {
  std::vector<PodObject> pods;
  std::vector<ServiceObject> services;
  std::vector<EndpointSliceObject> slices;
  std::vector<NodeObject> nodes;
  std::vector<WorkloadObject> workloads;
  uint64_t objects = 0;
  uint64_t bad = 0;

  void Add(Resource resource, const json& items, std::string_view name) {
    auto each = [&](auto from, auto& out) {
      for (const json& item : items) {
        auto object = from(item);
        if (object.ok()) {
          out.push_back(std::move(object).value());
          ++objects;
        } else {
          ++bad;
          spdlog::debug("kubernetes {}: {}", name, object.status().message());
        }
      }
    };
    switch (resource) {
      case Resource::kPods:
        each(PodFrom, pods);
        break;
      case Resource::kServices:
        each(ServiceFrom, services);
        break;
      case Resource::kEndpointSlices:
        each(EndpointSliceFrom, slices);
        break;
      case Resource::kNodes:
        each(NodeFrom, nodes);
        break;
      default:
        each(WorkloadFrom, workloads);
        break;
    }
  }

  void Replace(Resource resource, ClusterState* state, bool initial, int64_t now) {
    switch (resource) {
      case Resource::kPods:
        state->ReplacePods(std::move(pods), initial, now);
        break;
      case Resource::kServices:
        state->ReplaceServices(std::move(services), initial, now);
        break;
      case Resource::kEndpointSlices:
        state->ReplaceEndpointSlices(std::move(slices));
        break;
      case Resource::kNodes:
        state->ReplaceNodes(std::move(nodes));
        break;
      default:
        state->ReplaceWorkloads(ResourceKind(resource), std::move(workloads));
        break;
    }
  }
};

bool Watcher::List(Follower* f, bool initial, std::string* why) {
  const std::string name(ResourceName(f->resource));
  Snapshot snapshot;
  std::string continue_token;
  std::string version;
  do {
    std::string target =
        std::string(ResourcePath(f->resource)) + "?limit=" + std::to_string(kPageSize);
    if (!continue_token.empty()) target += "&continue=" + UrlEncoded(continue_token);
    Result<ApiClient::Response> response = f->client->Get(target);
    if (!response.ok()) {
      *why = "list: " + response.status().message();
      return false;
    }
    if (response->status == 410) {  // the continue token's snapshot was compacted away
      snapshot = Snapshot();
      continue_token.clear();
      continue;
    }
    if (response->status != 200) {
      *why = "list: " + StatusText(response->status, response->body);
      return false;
    }
    Result<json> page = ParseSlim(response->body);
    response->body = std::string();
    if (!page.ok() || !page->is_object() || !page->contains("items") ||
        !(*page)["items"].is_array()) {
      *why = "list: the answer is not a " + name + " list" +
             (page.ok() ? std::string() : ": " + page.status().message());
      return false;
    }
    version = VersionOf(*page);
    auto meta = page->find("metadata");
    continue_token.clear();
    if (meta != page->end() && meta->is_object() && meta->contains("continue") &&
        (*meta)["continue"].is_string()) {
      continue_token = (*meta)["continue"].get<std::string>();
    }
    snapshot.Add(f->resource, (*page)["items"], name);
  } while (!continue_token.empty() && !stopping_);
  if (stopping_) {
    *why = "stopped";
    return false;
  }
  if (version.empty()) {
    *why = "list: the answer has no metadata.resourceVersion";
    return false;
  }
  snapshot.Replace(f->resource, state_, initial, Now());
  if (snapshot.bad > 0) {
    bad_objects_.Add({{"resource", name}}).Increment(static_cast<double>(snapshot.bad));
    spdlog::warn("kubernetes {}: {} object(s) of the list could not be read and were skipped", name,
                 snapshot.bad);
  }
  f->count = static_cast<int64_t>(snapshot.objects);
  f->objects->Set(static_cast<double>(f->count));
  f->version = version;
  if (f->failing) Recovered(name);
  f->failing = false;
  // The pages' JSON was freed in this thread's malloc arena, which glibc keeps for reuse; a
  // list happens at start and after a 410, so hand it back to the system.
  malloc_trim(0);
  return true;
}

std::string Watcher::Watch(Follower* f) {
  // client-go picks 5-10 minutes so that a fleet of watchers does not reconnect at once.
  static thread_local std::mt19937 rng(std::random_device{}());
  const int timeout_s = std::uniform_int_distribution<int>(300, 600)(rng);
  const std::string target =
      std::string(ResourcePath(f->resource)) +
      "?watch=1&allowWatchBookmarks=true&resourceVersion=" + UrlEncoded(f->version) +
      "&timeoutSeconds=" + std::to_string(timeout_s);
  std::string restart;
  Result<ApiClient::Response> response =
      f->client->Stream(target, std::chrono::seconds(timeout_s + 60),
                        [&](std::string_view line) { return OnEvent(f, line, &restart); });
  if (!response.ok()) return "watch: " + response.status().message();
  if (response->status == 410) {
    f->version.clear();
    return "expired";
  }
  if (response->status != 200) return "watch: " + StatusText(response->status, response->body);
  return restart.empty() ? "timeout" : restart;
}

bool Watcher::OnEvent(Follower* f, std::string_view line, std::string* restart) {
  const std::string name(ResourceName(f->resource));
  Result<json> event = ParseSlim(line);
  if (!event.ok() || !event->is_object() || !(*event)["type"].is_string() ||
      !(*event)["object"].is_object()) {
    bad_objects_.Add({{"resource", name}}).Increment();
    // A line that is not an event means the stream itself is broken; resume from the last
    // version rather than guess.
    *restart = "watch: unreadable event line" +
               (event.ok() ? std::string() : ": " + event.status().message());
    return false;
  }
  const std::string type = (*event)["type"].get<std::string>();
  const json& object = (*event)["object"];
  std::string lower = type;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  events_.Add({{"resource", name}, {"type", lower}}).Increment();
  if (type == "ERROR") {
    const json* code = object.contains("code") ? &object["code"] : nullptr;
    if (code != nullptr && code->is_number_integer() && code->get<int>() == 410) {
      f->version.clear();  // relist
      *restart = "expired";
    } else {
      *restart = "watch: ERROR event: " +
                 StatusText(code != nullptr && code->is_number_integer() ? code->get<int>() : 0,
                            object.dump());
    }
    return false;
  }
  const std::string version = VersionOf(object);
  if (type == "BOOKMARK") {
    if (!version.empty()) f->version = version;
    return true;
  }
  const bool deleted = type == "DELETED";
  if (!deleted && type != "ADDED" && type != "MODIFIED") {
    *restart = "watch: unknown event type \"" + type + "\"";
    return false;
  }
  const int64_t now = Now();
  Status bad;
  auto apply = [&](auto object_result, auto upsert, auto remove) {
    if (!object_result.ok()) {
      bad = object_result.status();
      return;
    }
    if (deleted) {
      remove(object_result.value());
    } else {
      upsert(std::move(object_result).value());
    }
  };
  switch (f->resource) {
    case Resource::kPods:
      apply(
          PodFrom(object), [&](PodObject p) { state_->UpsertPod(std::move(p), now); },
          [&](const PodObject& p) { state_->DeletePod(p.uid, now); });
      break;
    case Resource::kServices:
      apply(
          ServiceFrom(object), [&](ServiceObject s) { state_->UpsertService(std::move(s), now); },
          [&](const ServiceObject& s) { state_->DeleteService(s.key, now); });
      break;
    case Resource::kEndpointSlices:
      apply(
          EndpointSliceFrom(object),
          [&](EndpointSliceObject s) { state_->UpsertEndpointSlice(std::move(s)); },
          [&](const EndpointSliceObject& s) { state_->DeleteEndpointSlice(s.key); });
      break;
    case Resource::kNodes:
      apply(
          NodeFrom(object), [&](NodeObject n) { state_->UpsertNode(std::move(n)); },
          [&](const NodeObject& n) { state_->DeleteNode(n.name); });
      break;
    default: {
      const std::string_view kind = ResourceKind(f->resource);
      apply(
          WorkloadFrom(object),
          [&](WorkloadObject w) { state_->UpsertWorkload(kind, std::move(w)); },
          [&](const WorkloadObject& w) { state_->DeleteWorkload(kind, w.key); });
      break;
    }
  }
  if (!bad.ok()) {
    bad_objects_.Add({{"resource", name}}).Increment();
    spdlog::warn("kubernetes {}: {} event skipped: {}", name, type, bad.message());
  } else {
    f->count += deleted ? -1 : (type == "ADDED" ? 1 : 0);
    f->objects->Set(static_cast<double>(f->count));
  }
  if (!version.empty()) f->version = version;
  return true;
}

}  // namespace nodescope::aggregator::enrich::k8s
