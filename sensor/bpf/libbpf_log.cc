#include "sensor/bpf/libbpf_log.h"

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <cstdarg>
#include <cstdio>
#include <string_view>
#include <vector>

namespace nodescope::sensor::bpf {
namespace {

thread_local LibbpfLogCapture* active_capture = nullptr;

constexpr std::string_view kLogBegin = "-- BEGIN PROG LOAD LOG --";
constexpr std::string_view kLogEnd = "-- END PROG LOAD LOG --";

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty()) lines.push_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

int Print(enum libbpf_print_level level, const char* format, va_list args) {
  // Most messages are one short line; a rejected program's verifier log can be megabytes, and
  // its last line is the one that says why.
  char buffer[1024];
  va_list copy;
  va_copy(copy, args);
  int n = std::vsnprintf(buffer, sizeof(buffer), format, copy);
  va_end(copy);
  if (n < 0) return 0;
  std::string message;
  if (static_cast<size_t>(n) < sizeof(buffer)) {
    message.assign(buffer, static_cast<size_t>(n));
  } else {
    message.resize(static_cast<size_t>(n) + 1);
    std::vsnprintf(message.data(), message.size(), format, args);
    message.resize(static_cast<size_t>(n));
  }
  for (std::string_view line : Lines(message)) spdlog::debug("libbpf: {}", line);
  LibbpfLogCapture::Record(level, message);
  return n;
}

}  // namespace

void InstallLibbpfLogger() { libbpf_set_print(&Print); }

LibbpfLogCapture::LibbpfLogCapture() : previous_(active_capture) { active_capture = this; }

LibbpfLogCapture::~LibbpfLogCapture() { active_capture = previous_; }

void LibbpfLogCapture::Record(int level, const std::string& message) {
  LibbpfLogCapture* capture = active_capture;
  if (capture == nullptr || level != LIBBPF_WARN) return;
  std::vector<std::string_view> lines = Lines(message);
  if (lines.empty()) return;
  // A rejected program's verifier log comes as one message; its last line says why.
  size_t begin = message.find(kLogBegin);
  if (begin != std::string::npos) {
    if (capture->verifier_reason_.empty()) {
      std::string_view whole = message;
      std::string_view log = whole.substr(begin + kLogBegin.size());
      log = log.substr(0, log.find(kLogEnd));
      // The reason is the last line before the statistics the kernel appends even on failure.
      std::vector<std::string_view> log_lines = Lines(log);
      while (!log_lines.empty() && (log_lines.back().starts_with("processed ") ||
                                    log_lines.back().starts_with("verification time") ||
                                    log_lines.back().starts_with("stack depth"))) {
        log_lines.pop_back();
      }
      if (!log_lines.empty()) capture->verifier_reason_ = std::string(log_lines.back());
    }
    return;
  }
  std::string_view first = lines.front();
  if (first.starts_with("libbpf: ")) first.remove_prefix(8);
  // Trailers that follow every failed load and add nothing to the line before them.
  if (first.starts_with("failed to load object") ||
      first.starts_with("failed to load BPF skeleton")) {
    return;
  }
  if (capture->warnings_.size() < kMaxWarnings) capture->warnings_.emplace_back(first);
}

std::string LibbpfLogCapture::Warnings() {
  LibbpfLogCapture* capture = active_capture;
  if (capture == nullptr) return {};
  std::string text;
  for (const std::string& warning : capture->warnings_) {
    text += (text.empty() ? "" : "; ") + warning;
  }
  if (!capture->verifier_reason_.empty()) {
    text += (text.empty() ? "" : "; ") + std::string("verifier: ") + capture->verifier_reason_;
  }
  return text;
}

}  // namespace nodescope::sensor::bpf
