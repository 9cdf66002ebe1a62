#include "cli/commands.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "cli/output.h"
#include "common/config.h"
#include "common/records/record.h"
#include "common/tls/grpc_tls.h"
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

tls::OptionNames FlagNames() {
  tls::OptionNames names;
  names.ca = "--tls-ca";
  names.cert = "--tls-cert";
  names.key = "--tls-key";
  names.server_name = "--tls-server-name";
  return names;
}

std::string Trim(const std::string& s) {
  const char* space = " \t\r\n";
  size_t b = s.find_first_not_of(space);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(space) - b + 1);
}

Result<std::string> ReadToken(const ConnectOptions& connect) {
  if (connect.token_file.empty()) return Trim(connect.token);
  const std::string where = "--token-file \"" + connect.token_file + "\"";
  std::ifstream in(connect.token_file);
  if (!in) return Status::Error(where + ": " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  std::string token = Trim(text.str());
  if (token.empty()) return Status::Error(where + ": the file is empty");
  return token;
}

// gRPC reports a failed handshake inside UNAVAILABLE: "Ssl handshake failed: SSL_ERROR_SSL: ...
// CERTIFICATE_VERIFY_FAILED" (not signed by --tls-ca), "Custom verification check failed with
// error: UNAUTHENTICATED: Hostname Verification Check failed." (another name).
bool TlsFailure(const std::string& message) {
  for (const char* word : {"andshake", "SSL", "ssl", "ertificate", "alert", "erification"}) {
    if (message.find(word) != std::string::npos) return true;
  }
  return false;
}

// With TLS 1.3 the client's side of the handshake ends before the server has checked the client
// certificate; a server that refuses it (none, or one from a CA it does not trust) then just
// closes the connection, and all the client learns is "Socket closed". A plaintext client on a
// TLS port learns the same.
bool ClosedByPeer(const std::string& message) {
  return message.find("Socket closed") != std::string::npos ||
         message.find("Connection reset") != std::string::npos;
}

// "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:...: Socket closed" ->
// "UNAVAILABLE: ipv4:...: Socket closed".
std::string LastError(const std::string& message) {
  const std::string marker = "last error: ";
  const size_t at = message.find(marker);
  return at == std::string::npos ? message : message.substr(at + marker.size());
}

// Why a channel is not READY, as gRPC tells it to a call that does not wait for it.
std::string WhyNotConnected(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::ClientContext context;
  context.set_deadline(Clock::now() + std::chrono::seconds(2));
  v1::StatusResponse response;
  return v1::ObserverService::NewStub(channel)
      ->Status(&context, v1::StatusRequest(), &response)
      .error_message();
}

// What every call carries, and how its failures are reported.
struct Session {
  std::shared_ptr<grpc::Channel> channel;
  std::string server;
  std::string authorization;  // "Bearer <token>", or empty
  bool tls = false;

  void Prepare(grpc::ClientContext* context) const {
    if (!authorization.empty()) context->AddMetadata("authorization", authorization);
  }

  // The exit code for a failed call, after one line on `err`.
  int Failed(std::FILE* err, const std::string& what, const grpc::Status& status) const {
    const grpc::StatusCode code = status.error_code();
    if (code == grpc::StatusCode::UNAUTHENTICATED || code == grpc::StatusCode::PERMISSION_DENIED) {
      Error(err, fmt::format("{}: the aggregator at {} refused the call ({}): {} (bearer token: "
                             "--token-file or NODESCOPE_TOKEN)",
                             what, server,
                             code == grpc::StatusCode::UNAUTHENTICATED ? "UNAUTHENTICATED"
                                                                       : "PERMISSION_DENIED",
                             status.error_message()));
      return kExitRefused;
    }
    if (code == grpc::StatusCode::UNAVAILABLE && tls && TlsFailure(status.error_message())) {
      Error(err, fmt::format("{}: TLS with the aggregator at {} failed: {}", what, server,
                             status.error_message()));
      return kExitRefused;
    }
    Error(err,
          fmt::format("{}: the aggregator at {} {}: {}", what, server,
                      what == "observe" ? "ended the stream" : "answered", status.error_message()));
    return kExitServer;
  }
};

// A session whose channel is READY, or why not with the exit code in *code. A refused
// connection fails at once instead of after the timeout.
Result<Session> Connect(const std::string& server, const ConnectOptions& connect, int* code) {
  *code = kExitUsage;
  auto token = ReadToken(connect);
  if (!token.ok()) return token.status();
  tls::ClientOptions tls_options;
  tls_options.ca = connect.tls_ca;
  tls_options.cert = connect.tls_cert;
  tls_options.key = connect.tls_key;
  tls_options.server_name = connect.tls_server_name;
  auto security = tls::MakeChannelSecurity(tls_options, FlagNames());
  if (!security.ok()) return security.status();

  Session session;
  session.server = server;
  session.tls = security->tls();
  if (!token->empty()) session.authorization = "Bearer " + *token;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // a response carries as many records as the server batches
  session.channel = tls::CreateChannel(server, *security, args);
  const auto deadline = Clock::now() + kConnectTimeout;
  grpc_connectivity_state state = session.channel->GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      const std::string why = WhyNotConnected(session.channel);
      if (session.tls && (TlsFailure(why) || ClosedByPeer(why))) {
        *code = kExitRefused;
        return Status::Error(fmt::format(
            "TLS with the aggregator at {} failed: {}{}", server, LastError(why),
            TlsFailure(why) ? ""
            : connect.tls_cert.empty()
                ? " (it closed the connection: it may require a client certificate, "
                  "--tls-cert and --tls-key; its log says why)"
                : " (it closed the connection: it may not trust the client certificate; its "
                  "log says why)"));
      }
      *code = kExitServer;
      if (ClosedByPeer(why)) {
        return Status::Error(
            fmt::format("cannot connect to the aggregator at {}: {} (does it "
                        "require TLS? then --tls-ca)",
                        server, LastError(why)));
      }
      return Status::Error(
          fmt::format("cannot connect to the aggregator at {} (is "
                      "nodescope-aggregator running and listening there?)",
                      server));
    }
    if (!session.channel->WaitForStateChange(state, deadline)) {
      *code = kExitServer;
      return Status::Error(
          fmt::format("no answer from the aggregator at {} within {}s", server,
                      std::chrono::duration_cast<std::chrono::seconds>(kConnectTimeout).count()));
    }
    state = session.channel->GetState(true);
  }
  return session;
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

int RunObserve(const ObserveOptions& options, std::FILE* out, std::FILE* err, Canceller* canceller,
               const ConnectOptions& connect) {
  if (!CheckServerAndOutput(options.server, options.output, err)) return kExitUsage;
  const int64_t now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
  auto request = BuildRequest(options, now);
  if (!request.ok()) {
    Error(err, request.status().message());
    return kExitUsage;
  }
  int code = kExitOk;
  auto session = Connect(options.server, connect, &code);
  if (!session.ok()) {
    Error(err, session.status().message());
    return code;
  }

  auto stub = v1::ObserverService::NewStub(session->channel);
  grpc::ClientContext context;
  session->Prepare(&context);
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
  if (!status.ok()) return session->Failed(err, "observe", status);
  return kExitOk;
}

int RunStatus(const std::string& server, const std::string& output, std::FILE* out, std::FILE* err,
              const ConnectOptions& connect) {
  if (!CheckServerAndOutput(server, output, err)) return kExitUsage;
  int code = kExitOk;
  auto session = Connect(server, connect, &code);
  if (!session.ok()) {
    Error(err, session.status().message());
    return code;
  }
  auto stub = v1::ObserverService::NewStub(session->channel);
  grpc::ClientContext context;
  session->Prepare(&context);
  context.set_deadline(Clock::now() + kStatusTimeout);
  v1::StatusResponse response;
  const grpc::Status status = stub->Status(&context, v1::StatusRequest(), &response);
  if (!status.ok()) return session->Failed(err, "status", status);
  const std::string text = output == "json" ? StatusJson(response) : StatusTable(response);
  std::fwrite(text.data(), 1, text.size(), out);
  std::fflush(out);
  return kExitOk;
}

}  // namespace nodescope::cli
