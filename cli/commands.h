// The CLI's subcommands as functions that write to given streams and return the exit code:
// 0 done, 1 the aggregator could not be reached or failed the request, 2 bad usage, 3 refused:
// the aggregator wants a (different) bearer token, or the TLS handshake failed (certificates).
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
inline constexpr int kExitRefused = 3;

// How to reach the aggregator: TLS files (--tls-*) and the bearer token (--token-file, else the
// token itself from NODESCOPE_TOKEN).
struct ConnectOptions {
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;
  std::string token_file;
  std::string token;
};

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

int RunObserve(const ObserveOptions& options, std::FILE* out, std::FILE* err, Canceller* canceller,
               const ConnectOptions& connect = {});
int RunStatus(const std::string& server, const std::string& output, std::FILE* out, std::FILE* err,
              const ConnectOptions& connect = {});

}  // namespace nodescope::cli
