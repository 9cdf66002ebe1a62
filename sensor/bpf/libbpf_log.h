// libbpf's own messages: routed to spdlog at debug level (a failed strategy is expected on many
// kernels, and the sensor reports it in one line), and captured per thread so that the Status of
// a failed attempt can quote libbpf's root cause instead of only an errno.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace nodescope::sensor::bpf {

// Installs the print callback (idempotent). Every libbpf level goes to spdlog debug.
void InstallLibbpfLogger();

// While alive, records what libbpf logs at warning level on this thread. Captures nest; the
// innermost one records.
class LibbpfLogCapture {
 public:
  LibbpfLogCapture();
  ~LibbpfLogCapture();
  LibbpfLogCapture(const LibbpfLogCapture&) = delete;
  LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;

  // What libbpf warned about on this thread under the innermost capture, in one line: up to
  // kMaxWarnings warning lines joined with "; " (without the generic "failed to load object"
  // trailers), plus the verifier's last line when a program was rejected. Empty without a
  // capture or a warning.
  static std::string Warnings();

  // Called by the print callback; public for tests.
  static void Record(int level, const std::string& message);

 private:
  static constexpr size_t kMaxWarnings = 3;

  LibbpfLogCapture* previous_;
  std::vector<std::string> warnings_;
  std::string verifier_reason_;
};

}  // namespace nodescope::sensor::bpf
