#include "sensor/transport/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "fmt/format.h"

namespace nodescope::sensor {
namespace {

// Version 2: the CRC-32 covers the header's magic, seq and event count too, so a damaged count
// is found like a damaged message (version 1 files read as "not a spooled batch").
constexpr char kMagic[8] = {'N', 'S', 'S', 'P', 'O', 'O', 'L', '2'};
constexpr size_t kCheckedHeader = 20;  // magic, seq, events: what the CRC covers before the message
constexpr char kSuffix[] = ".batch";
constexpr char kLockFile[] = ".lock";
// Instance ids are ours (hex) or an operator's `instance`; anything else is not a spool.
constexpr size_t kMaxInstance = 120;

std::string Errno() { return std::strerror(errno); }

void PutLe(char* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

uint64_t GetLe(const char* in, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= uint64_t(static_cast<uint8_t>(in[i])) << (8 * i);
  return value;
}

uint32_t Crc(uint32_t crc, std::string_view piece) {
  return static_cast<uint32_t>(
      crc32(crc, reinterpret_cast<const Bytef*>(piece.data()), static_cast<uInt>(piece.size())));
}

bool ValidInstance(std::string_view name) {
  if (name.empty() || name.size() > kMaxInstance || name[0] == '.') return false;
  for (char c : name) {
    if (c == '/' || c == '\0') return false;
  }
  return true;
}

// Parses "<20 digits>.batch"; 0 when the name is something else (seq 0 is never used).
uint64_t SeqOfFileName(std::string_view name) {
  if (name.size() != 20 + sizeof(kSuffix) - 1 || name.substr(20) != kSuffix) return 0;
  uint64_t seq = 0;
  for (char c : name.substr(0, 20)) {
    if (c < '0' || c > '9') return 0;
    const uint64_t digit = uint64_t(c - '0');
    if (seq > (UINT64_MAX - digit) / 10) return 0;  // above 2^64 - 1: not a name we write
    seq = seq * 10 + digit;
  }
  return seq;
}

bool ReadAll(int fd, char* out, size_t size) {
  while (size > 0) {
    const ssize_t n = read(fd, out, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Locks `path`/.lock without waiting. The fd, or -1 with errno set (EWOULDBLOCK: held).
int TryLock(const std::string& path) {
  const int fd = open((path + "/" + kLockFile).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

}  // namespace

std::string Spool::FileName(uint64_t seq) { return fmt::format("{:020d}{}", seq, kSuffix); }

Result<std::unique_ptr<Spool>> Spool::Open(const std::string& dir, const std::string& instance,
                                           uint64_t max_bytes) {
  if (!ValidInstance(instance)) {
    return Status::Error(fmt::format("spool: \"{}\" cannot name a spool directory", instance));
  }
  std::error_code error;
  const std::string path = dir + "/" + instance;
  std::filesystem::create_directories(path, error);
  if (error) {
    return Status::Error(
        fmt::format("spool_dir {}: cannot create {}: {}", dir, path, error.message()));
  }
  chmod(path.c_str(), 0700);  // the events name processes, users and connections
  const int fd = TryLock(path);
  if (fd < 0) {
    return Status::Error(
        fmt::format("spool_dir {}: cannot lock {}: {}", dir, path,
                    errno == EWOULDBLOCK ? "another nodescope-sensor is using it" : Errno()));
  }
  std::unique_ptr<Spool> spool(new Spool(path, fd, max_bytes));
  Status indexed = spool->Index();
  if (!indexed.ok()) return indexed;
  return spool;
}

std::vector<std::string> Spool::Orphans(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename();
    if (!entry.is_directory(error) || !ValidInstance(name)) continue;
    const int fd = TryLock(entry.path());
    if (fd < 0) continue;  // a live sensor's, or not ours to write
    close(fd);
    out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Spool::Spool(std::string path, int lock_fd, uint64_t max_bytes)
    : path_(std::move(path)), lock_fd_(lock_fd), max_bytes_(max_bytes) {}

Spool::~Spool() {
  if (files_.empty()) {
    // Everything was acknowledged: nothing to replay, so nothing to leave behind.
    unlink((path_ + "/" + kLockFile).c_str());
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(path_, error)) {
      if (entry.path().filename().string().ends_with(".tmp")) unlink(entry.path().c_str());
    }
    rmdir(path_.c_str());
  }
  close(lock_fd_);
}

Status Spool::Index() {
  DIR* dir = opendir(path_.c_str());
  if (dir == nullptr)
    return Status::Error(fmt::format("spool: cannot read {}: {}", path_, Errno()));
  while (dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name.ends_with(".tmp")) {  // a write the previous sensor did not finish
      unlinkat(dirfd(dir), name.c_str(), 0);
      continue;
    }
    const uint64_t seq = SeqOfFileName(name);
    if (seq == 0) continue;
    const int fd = openat(dirfd(dir), name.c_str(), O_RDONLY | O_CLOEXEC);
    char header[kHeaderSize];
    struct stat st {};
    File file;
    if (fd >= 0 && fstat(fd, &st) == 0 && ReadAll(fd, header, kHeaderSize) &&
        std::memcmp(header, kMagic, sizeof(kMagic)) == 0) {
      file.events = static_cast<size_t>(GetLe(header + 16, 4));
    }
    if (fd >= 0) close(fd);
    // Unreadable files are indexed too: Load() reports and removes them in their turn.
    file.bytes = static_cast<uint64_t>(st.st_size);
    files_[seq] = file;
    unloaded_.insert(seq);
    bytes_ += file.bytes;
    unloaded_events_ += file.events;
  }
  closedir(dir);
  return Status::Ok();
}

Status Spool::Append(uint64_t seq, size_t events, const std::vector<std::string_view>& pieces) {
  uint64_t size = kHeaderSize;
  for (std::string_view piece : pieces) size += piece.size();
  if (bytes_ + size > max_bytes_) {
    return Status::Error(
        fmt::format("spool {} is full ({} of {} bytes)", path_, bytes_, max_bytes_));
  }
  char header[kHeaderSize];
  std::memcpy(header, kMagic, sizeof(kMagic));
  PutLe(header + 8, seq, 8);
  PutLe(header + 16, events, 4);
  uint32_t crc = Crc(Crc(0, {}), std::string_view(header, kCheckedHeader));
  for (std::string_view piece : pieces) crc = Crc(crc, piece);
  PutLe(header + 20, crc, 4);
  std::vector<iovec> iov;
  iov.push_back({header, kHeaderSize});
  for (std::string_view piece : pieces) {
    iov.push_back({const_cast<char*>(piece.data()), piece.size()});
  }

  const std::string final_path = path_ + "/" + FileName(seq);
  const std::string tmp_path = final_path + ".tmp";
  const int fd = open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Error(fmt::format("spool: cannot create {}: {}", tmp_path, Errno()));
  size_t first = 0;
  bool ok = true;
  while (first < iov.size()) {
    const ssize_t n = writev(fd, iov.data() + first, static_cast<int>(iov.size() - first));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    // Skip the pieces written whole; trim the one written in part.
    size_t left = static_cast<size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (left > 0) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  const std::string write_error = ok ? std::string() : Errno();
  if (close(fd) != 0) ok = false;
  if (!ok || rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    const std::string why = write_error.empty() ? Errno() : write_error;
    unlink(tmp_path.c_str());
    return Status::Error(
        fmt::format("spool: cannot write {} ({} bytes): {}", final_path, size, why));
  }
  files_[seq] = File{events, size};
  unloaded_.insert(seq);
  bytes_ += size;
  unloaded_events_ += events;
  return Status::Ok();
}

std::optional<Spool::Loaded> Spool::Load() {
  if (unloaded_.empty()) return std::nullopt;
  const uint64_t seq = *unloaded_.begin();
  unloaded_.erase(unloaded_.begin());
  File& file = files_[seq];
  unloaded_events_ -= file.events;
  Loaded out;
  const std::string path = path_ + "/" + FileName(seq);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  char header[kHeaderSize];
  std::string message;
  if (fd < 0) {
    out.error = fmt::format("spool: cannot open {}: {}", path, Errno());
  } else if (file.bytes < kHeaderSize || !ReadAll(fd, header, kHeaderSize) ||
             std::memcmp(header, kMagic, sizeof(kMagic)) != 0 || GetLe(header + 8, 8) != seq) {
    out.error = fmt::format("spool: {} is not a spooled batch", path);
  } else {
    message.resize(file.bytes - kHeaderSize);
    if (!ReadAll(fd, message.data(), message.size())) {
      out.error = fmt::format("spool: {} is shorter than when it was written", path);
    } else if (Crc(Crc(Crc(0, {}), std::string_view(header, kCheckedHeader)), message) !=
               GetLe(header + 20, 4)) {
      out.error = fmt::format("spool: {} is damaged (checksum mismatch)", path);
    }
  }
  if (fd >= 0) close(fd);
  if (!out.error.empty()) {
    out.lost_seq = seq;
    out.lost_events = file.events;
    Remove(files_.find(seq));
    return out;
  }
  out.batch = Batch{seq, file.events, std::move(message)};
  return out;
}

void Spool::Release(uint64_t seq) {
  for (auto it = files_.begin(); it != files_.end() && it->first <= seq;) {
    auto next = std::next(it);
    if (unloaded_.count(it->first) == 0) Remove(it);
    it = next;
  }
}

void Spool::Remove(std::map<uint64_t, File>::iterator it) {
  unlink((path_ + "/" + FileName(it->first)).c_str());
  bytes_ -= it->second.bytes;
  files_.erase(it);
}

}  // namespace nodescope::sensor
