// TLS for the gRPC links (sensor -> aggregator, subscriber -> aggregator): certificate files
// named by options become gRPC server or channel credentials that re-read the files every
// reload interval, so a rotated certificate (cert-manager, a renewed Secret) is used for new
// connections without a restart.
//
// gRPC 1.51 offers this through grpc::experimental::FileWatcherCertificateProvider. It logs and
// keeps the previous credentials when a reload finds unusable files, and it starts with none at
// all when the first read fails, so the files are checked here before it is built: a missing,
// unreadable or non-PEM file, or a key that does not belong to its certificate, is one line
// naming the option and the file.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/status.h"

namespace nodescope::tls {

// The option names messages use: config keys by default, flags for the CLI.
struct OptionNames {
  std::string ca = "tls_ca";
  std::string cert = "tls_cert";
  std::string key = "tls_key";
  std::string server_name = "tls_server_name";
  std::string client_ca = "tls_client_ca";
};

// The aggregator's side. TLS is on when cert (and key) are set; client_ca set means mutual TLS:
// every client must present a certificate that chains to it.
struct ServerOptions {
  std::string cert;
  std::string key;
  std::string client_ca;
  std::chrono::nanoseconds reload_interval = std::chrono::minutes(1);
};

// A client's side (sensor, CLI). TLS is on when ca is set: the server's certificate must chain
// to it and name the host of the target, or server_name when set. cert and key are the client
// certificate a mutual-TLS server asks for.
struct ClientOptions {
  std::string ca;
  std::string cert;
  std::string key;
  std::string server_name;
  std::chrono::nanoseconds reload_interval = std::chrono::minutes(1);
};

// What the options say together, without reading any file (--print-config must work on a
// configuration whose files exist only where it will run): cert and key both or neither,
// client_ca / server_name / a client certificate only with TLS on.
Status CheckServerOptions(const ServerOptions& options, const OptionNames& names = {});
Status CheckClientOptions(const ClientOptions& options, const OptionNames& names = {});

// Reads every file that is set: each certificate file holds at least one PEM certificate, the
// key file a PEM private key that matches the first certificate of the cert file.
Status CheckServerFiles(const ServerOptions& options, const OptionNames& names = {});
Status CheckClientFiles(const ClientOptions& options, const OptionNames& names = {});

// The one-file checks, for callers with other file options. `name` is what the message calls
// the file ("tls_cert", "--tls-ca").
Status CheckCertificateFile(const std::string& name, const std::string& path);
Status CheckKeyMatches(const std::string& key_name, const std::string& key_path,
                       const std::string& cert_name, const std::string& cert_path);

// Insecure credentials when TLS is off. Checks the options and files first.
Result<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerOptions& options, const OptionNames& names = {});

// How a client reaches its server: credentials (null: plaintext) and the name the server's
// certificate must hold when it is not the target's host.
struct ChannelSecurity {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::string server_name;
  bool tls() const { return credentials != nullptr; }
};

Result<ChannelSecurity> MakeChannelSecurity(const ClientOptions& options,
                                            const OptionNames& names = {});

// grpc::CreateCustomChannel with the security applied (plaintext when it holds no credentials).
std::shared_ptr<grpc::Channel> CreateChannel(const std::string& target,
                                             const ChannelSecurity& security,
                                             grpc::ChannelArguments args);

// A gRPC log line saying a TLS handshake failed. gRPC 1.51 reports a handshake a server refused
// (no client certificate, one from another CA, plaintext on the TLS port) only there:
// ssl_transport_security.cc, "Handshake failed with fatal error SSL_ERROR_SSL: error:...".
bool IsHandshakeFailure(const char* file, const char* message);

// The reload interval as FileWatcherCertificateProvider takes it: whole seconds, at least 1.
unsigned int RefreshSeconds(std::chrono::nanoseconds interval);

}  // namespace nodescope::tls
