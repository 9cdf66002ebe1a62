#include "cli/commands.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>

#include "cli/output.h"
#include "common/config.h"
#include "common/records/record.h"
#include "nodescope/v1/observer.grpc.pb.h"

namespace nodescope::cli {
namespace {

using Clock = std::chrono::system_clock;
// Long enough for a TCP and HTTP/2 handshake across a cluster, short enough for a person waiting.
constexpr auto kConnectTimeout = std::chrono::seconds(5);
constexpr auto kStatusTimeout = std::chrono::seconds(10);

void Error(std::FILE* err, const std::string& message) {
  fmt::print(err, "nodescope: {}\n", message);
  std::fflush(err);
}

// A channel that is READY, or nullptr after printing why not. A refused connection fails at
// once instead of after the timeout.
std::shared_ptr<grpc::Channel> Connect(const std::string& server, std::FILE* err) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // a response carries as many records as the server batches
  auto channel = grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args);
  const auto deadline = Clock::now() + kConnectTimeout;
  grpc_connectivity_state state = channel->GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      Error(err, fmt::format("cannot connect to the aggregator at {} (is nodescope-aggregator "
                             "running and listening there?)",
                             server));
      return nullptr;
    }
    if (!channel->WaitForStateChange(state, deadline)) {
      Error(err,
            fmt::format("no answer from the aggregator at {} within {}s", server,
                        std::chrono::duration_cast<std::chrono::seconds>(kConnectTimeout).count()));
      return nullptr;
    }
    state = channel->GetState(true);
  }
  return channel;
}

bool CheckServerAndOutput(const std::string& server, const std::string& output, std::FILE* err) {
  Status address = config::CheckAddress(server);
  if (!address.ok()) {
    Error(err, "--server: " + address.message());
    return false;
  }
  if (output != "json" && output != "table") {
    Error(err, "-o: expected json or table, got '" + output + "'");
    return false;
  }
  return true;
}

}  // namespace

void Canceller::Attach(grpc::ClientContext* context) {
  std::lock_guard lock(mu_);
  context_ = context;
  if (cancelled_) context_->TryCancel();
}

void Canceller::Detach() {
  std::lock_guard lock(mu_);
  context_ = nullptr;
}

void Canceller::Cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  if (context_ != nullptr) context_->TryCancel();
}

bool Canceller::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}

int RunObserve(const ObserveOptions& options, std::FILE* out, std::FILE* err,
               Canceller* canceller) {
  if (!CheckServerAndOutput(options.server, options.output, err)) return kExitUsage;
  const int64_t now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
  auto request = BuildRequest(options, now);
  if (!request.ok()) {
    Error(err, request.status().message());
    return kExitUsage;
  }
  auto channel = Connect(options.server, err);
  if (channel == nullptr) return kExitServer;

  auto stub = v1::ObserverService::NewStub(channel);
  grpc::ClientContext context;
  if (canceller != nullptr) canceller->Attach(&context);
  auto reader = stub->Subscribe(&context, *request);
  const bool json = options.output == "json";
  bool header_printed = false;
  bool output_closed = false;
  v1::SubscribeResponse response;
  std::string text;
  while (reader->Read(&response)) {
    if (response.has_lost_events() && response.lost_events().count() > 0) {
      fmt::print(err, "{}\n", LostLine(response.lost_events()));
      std::fflush(err);
    }
    if (response.records().empty()) continue;
    text.clear();
    if (!json && !header_printed) {
      text = TableHeader();
      header_printed = true;
    }
    for (const v1::Record& record : response.records()) {
      if (json) {
        records::AppendJsonLine(record, &text);
      } else {
        AppendTableLine(record, &text);
      }
    }
    // A closed pipe (`| head`) ends the subscription quietly, as a finished read would.
    if (std::fwrite(text.data(), 1, text.size(), out) != text.size() || std::fflush(out) != 0) {
      output_closed = true;
      context.TryCancel();
      break;
    }
  }
  const grpc::Status status = reader->Finish();
  if (canceller != nullptr) canceller->Detach();
  if (output_closed || (canceller != nullptr && canceller->cancelled())) return kExitOk;
  if (!status.ok()) {
    Error(err, fmt::format("observe: the aggregator at {} ended the stream: {}", options.server,
                           status.error_message()));
    return kExitServer;
  }
  return kExitOk;
}

int RunStatus(const std::string& server, const std::string& output, std::FILE* out,
              std::FILE* err) {
  if (!CheckServerAndOutput(server, output, err)) return kExitUsage;
  auto channel = Connect(server, err);
  if (channel == nullptr) return kExitServer;
  auto stub = v1::ObserverService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(Clock::now() + kStatusTimeout);
  v1::StatusResponse response;
  const grpc::Status status = stub->Status(&context, v1::StatusRequest(), &response);
  if (!status.ok()) {
    Error(err,
          fmt::format("status: the aggregator at {} answered: {}", server, status.error_message()));
    return kExitServer;
  }
  const std::string text = output == "json" ? StatusJson(response) : StatusTable(response);
  std::fwrite(text.data(), 1, text.size(), out);
  std::fflush(out);
  return kExitOk;
}

}  // namespace nodescope::cli
