#include "aggregator/sinks/jsonl.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/records/record.h"

namespace nodescope::aggregator::sinks {

namespace {
constexpr size_t kMaxKeptBuffer = 4 << 20;
}  // namespace

Result<int> JsonlSink::OpenFile(const std::string& path) {
  if (path == "-") return STDOUT_FILENO;
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Status::Error("sink jsonl:" + path + ": cannot open: " + std::strerror(errno));
  }
  return fd;
}

Result<std::unique_ptr<JsonlSink>> JsonlSink::Open(const std::string& path) {
  auto fd = OpenFile(path);
  if (!fd.ok()) return fd.status();
  return std::unique_ptr<JsonlSink>(new JsonlSink(path, *fd));
}

JsonlSink::JsonlSink(std::string path, int fd)
    : path_(std::move(path)), name_("jsonl:" + path_), fd_(fd) {}

JsonlSink::~JsonlSink() {
  if (fd_ != STDOUT_FILENO) close(fd_);
}

Status JsonlSink::Write(std::span<const v1::Record* const> records) {
  buffer_.clear();
  for (const v1::Record* record : records) records::AppendJsonLine(*record, &buffer_);
  const char* p = buffer_.data();
  size_t left = buffer_.size();
  // A regular file takes the whole buffer in one write; a pipe may take it in pieces.
  while (left > 0) {
    ssize_t n = write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Error(name_ + ": write failed: " + std::strerror(errno));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (buffer_.capacity() > kMaxKeptBuffer) std::string().swap(buffer_);
  return Status::Ok();
}

Status JsonlSink::Reopen() {
  if (path_ == "-") return Status::Ok();
  auto fd = OpenFile(path_);
  if (!fd.ok()) return fd.status();
  close(fd_);
  fd_ = *fd;
  return Status::Ok();
}

}  // namespace nodescope::aggregator::sinks
