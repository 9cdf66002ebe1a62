#include "aggregator/ingest/dedup.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace nodescope::aggregator::ingest {

namespace {

constexpr std::string_view kPlainSuffix = ".seq";
constexpr std::string_view kHexSuffix = ".hseq";

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

bool IsSafeName(const std::string& id) {
  if (id.empty() || id.size() > kMaxInstanceIdLength || id[0] == '.') return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The instance id a state file name stands for, or "" for a file that is not ours.
std::string IdFromFileName(std::string_view name) {
  if (EndsWith(name, kHexSuffix)) {
    std::string_view hex = name.substr(0, name.size() - kHexSuffix.size());
    if (hex.empty() || hex.size() % 2 != 0) return {};
    std::string id;
    for (size_t i = 0; i < hex.size(); i += 2) {
      unsigned value = 0;
      for (size_t j = i; j < i + 2; ++j) {
        char c = hex[j];
        unsigned digit;
        if (c >= '0' && c <= '9') {
          digit = c - '0';
        } else if (c >= 'a' && c <= 'f') {
          digit = c - 'a' + 10;
        } else {
          return {};
        }
        value = value * 16 + digit;
      }
      id.push_back(static_cast<char>(value));
    }
    return id;
  }
  if (EndsWith(name, kPlainSuffix)) {
    std::string id(name.substr(0, name.size() - kPlainSuffix.size()));
    return IsSafeName(id) ? id : std::string();
  }
  return {};
}

int64_t MtimeUnixNano(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

}  // namespace

struct SeqStore::Instance {
  std::string id;
  std::mutex mu;
  uint64_t last = 0;      // guarded by mu
  int fd = -1;            // guarded by mu; opened on the first commit
  int64_t last_seen = 0;  // guarded by SeqStore::mu_
};

SeqStore::Guard::Guard(std::shared_ptr<Instance> instance, SeqStore* store)
    : instance_(std::move(instance)), lock_(instance_->mu), store_(store) {}

SeqStore::Guard::~Guard() = default;

uint64_t SeqStore::Guard::last() const { return instance_->last; }

Status SeqStore::Guard::Commit(uint64_t seq) {
  instance_->last = seq;
  if (store_->state_dir_.empty()) return Status::Ok();
  return store_->Persist(instance_.get(), seq);
}

std::string SeqStore::FileName(const std::string& sensor_instance) {
  if (IsSafeName(sensor_instance)) return sensor_instance + std::string(kPlainSuffix);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name;
  for (unsigned char c : sensor_instance) {
    name.push_back(kHex[c >> 4]);
    name.push_back(kHex[c & 0xF]);
  }
  return name + std::string(kHexSuffix);
}

SeqStore::SeqStore(std::string state_dir, std::chrono::nanoseconds idle_ttl)
    : state_dir_(std::move(state_dir)), idle_ttl_(idle_ttl) {}

SeqStore::~SeqStore() {
  for (auto& [id, instance] : instances_) {
    if (instance->fd >= 0) close(instance->fd);
  }
}

Result<std::unique_ptr<SeqStore>> SeqStore::Open(const std::string& state_dir,
                                                 std::chrono::nanoseconds idle_ttl) {
  std::unique_ptr<SeqStore> store(new SeqStore(state_dir, idle_ttl));
  if (state_dir.empty()) return store;
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) return Status::Error("state_dir " + state_dir + ": cannot create: " + ec.message());
  auto now = std::chrono::system_clock::now().time_since_epoch();
  Status s = store->Load(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
  if (!s.ok()) return s;
  return store;
}

Status SeqStore::Load(int64_t now_unix_nano) {
  DIR* dir = opendir(state_dir_.c_str());
  if (dir == nullptr) return Status::Error(Errno("state_dir " + state_dir_ + ": cannot open"));
  struct DirCloser {
    void operator()(DIR* d) const { closedir(d); }
  };
  std::unique_ptr<DIR, DirCloser> owner(dir);
  while (struct dirent* entry = readdir(dir)) {
    std::string name = entry->d_name;
    std::string id = IdFromFileName(name);
    if (id.empty()) continue;
    std::string path = state_dir_ + "/" + name;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::Error(Errno("state_dir: cannot open " + path));
    struct stat st {};
    uint64_t seq = 0;
    ssize_t n = -1;
    if (fstat(fd, &st) == 0) n = pread(fd, &seq, sizeof(seq), 0);
    int saved_errno = errno;
    close(fd);
    if (n != static_cast<ssize_t>(sizeof(seq))) {
      // A file created but never written (crash between open and the first pwrite): nothing
      // was committed through it.
      if (n >= 0) {
        spdlog::warn("state_dir: ignoring {} ({} bytes, expected 8)", path, n);
        continue;
      }
      errno = saved_errno;
      return Status::Error(Errno("state_dir: cannot read " + path));
    }
    const int64_t mtime = MtimeUnixNano(st);
    if (now_unix_nano - mtime > idle_ttl_.count()) {
      if (unlink(path.c_str()) != 0) spdlog::warn("{}", Errno("state_dir: cannot remove " + path));
      continue;
    }
    auto instance = std::make_shared<Instance>();
    instance->id = id;
    instance->last = seq;  // files are host byte order: the state never leaves this machine
    instance->last_seen = mtime;
    instances_[id] = std::move(instance);
  }
  if (!instances_.empty()) {
    spdlog::info("state_dir {}: loaded the last committed batch of {} sensor instance(s)",
                 state_dir_, instances_.size());
  }
  return Status::Ok();
}

Status SeqStore::Persist(Instance* instance, uint64_t seq) {
  if (instance->fd < 0) {
    std::string path = state_dir_ + "/" + FileName(instance->id);
    instance->fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (instance->fd < 0) return Status::Error(Errno("state_dir: cannot open " + path));
  }
  // 8 bytes at offset 0 never straddle a page: a crash leaves the old or the new number.
  ssize_t n = pwrite(instance->fd, &seq, sizeof(seq), 0);
  if (n != static_cast<ssize_t>(sizeof(seq))) {
    return Status::Error(Errno("state_dir: cannot write the sequence of " + instance->id));
  }
  return Status::Ok();
}

SeqStore::Guard SeqStore::Lock(const std::string& sensor_instance, int64_t now_unix_nano) {
  std::shared_ptr<Instance> instance;
  {
    std::lock_guard lock(mu_);
    std::shared_ptr<Instance>& slot = instances_[sensor_instance];
    if (!slot) {
      slot = std::make_shared<Instance>();
      slot->id = sensor_instance;
    }
    slot->last_seen = now_unix_nano;
    instance = slot;
  }
  return Guard(std::move(instance), this);
}

size_t SeqStore::ForgetIdle(int64_t now_unix_nano) {
  std::lock_guard lock(mu_);
  size_t forgotten = 0;
  for (auto it = instances_.begin(); it != instances_.end();) {
    Instance& instance = *it->second;
    if (now_unix_nano - instance.last_seen <= idle_ttl_.count() || !instance.mu.try_lock()) {
      ++it;
      continue;
    }
    if (instance.fd >= 0) {
      close(instance.fd);
      instance.fd = -1;
    }
    if (!state_dir_.empty()) {
      std::string path = state_dir_ + "/" + FileName(instance.id);
      if (unlink(path.c_str()) != 0 && errno != ENOENT) {
        spdlog::warn("{}", Errno("state_dir: cannot remove " + path));
      }
    }
    instance.mu.unlock();
    it = instances_.erase(it);
    ++forgotten;
  }
  return forgotten;
}

size_t SeqStore::size() const {
  std::lock_guard lock(mu_);
  return instances_.size();
}

}  // namespace nodescope::aggregator::ingest
