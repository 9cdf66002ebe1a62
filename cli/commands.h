// The CLI's subcommands as functions that write to given streams and return the exit code:
// 0 done, 1 the aggregator could not be reached or failed the request, 2 bad usage.
#pragma once

#include <cstdio>
#include <mutex>
#include <string>

#include "cli/filter.h"

namespace grpc {
class ClientContext;
}

namespace nodescope::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitServer = 1;
inline constexpr int kExitUsage = 2;

// Lets a signal-handling thread end a blocking call: Cancel() cancels the attached call, or the
// next one attached.
class Canceller {
 public:
  void Attach(grpc::ClientContext* context);
  void Detach();
  void Cancel();
  bool cancelled() const;

 private:
  mutable std::mutex mu_;
  grpc::ClientContext* context_ = nullptr;
  bool cancelled_ = false;
};

int RunObserve(const ObserveOptions& options, std::FILE* out, std::FILE* err, Canceller* canceller);
int RunStatus(const std::string& server, const std::string& output, std::FILE* out, std::FILE* err);

}  // namespace nodescope::cli
