#include "common/tls/grpc_tls.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace nodescope::tls {
namespace {

// A CA bundle (the system's is ~200 KiB) fits many times over; anything larger is not PEM.
constexpr long kMaxFileBytes = 16 << 20;

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

std::string Where(const std::string& name, const std::string& path) {
  return name + " \"" + path + "\"";
}

Result<std::string> ReadSmallFile(const std::string& name, const std::string& path) {
  std::unique_ptr<FILE, decltype(&fclose)> f(fopen(path.c_str(), "rb"), &fclose);
  if (f == nullptr) return Status::Error(Where(name, path) + ": " + std::strerror(errno));
  std::string text;
  char buf[8192];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof(buf), f.get())) > 0) {
    text.append(buf, n);
    if (static_cast<long>(text.size()) > kMaxFileBytes) {
      return Status::Error(Where(name, path) + ": larger than 16 MiB, not a PEM file");
    }
  }
  if (ferror(f.get())) return Status::Error(Where(name, path) + ": " + std::strerror(errno));
  return text;
}

BioPtr MemBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), &BIO_free);
}

// The first certificate of a PEM text, or null.
X509Ptr FirstCertificate(const std::string& pem) {
  BioPtr bio = MemBio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
  ERR_clear_error();
  return cert;
}

Result<X509Ptr> LoadCertificate(const std::string& name, const std::string& path) {
  auto text = ReadSmallFile(name, path);
  if (!text.ok()) return text.status();
  X509Ptr cert = FirstCertificate(*text);
  if (cert == nullptr) {
    return Status::Error(Where(name, path) +
                         ": holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  }
  return cert;
}

Status Need(const std::string& option, const std::string& value, const std::string& needs,
            const std::string& needed_value, const std::string& why) {
  if (!value.empty() && needed_value.empty()) {
    return Status::Error(option + " is set but " + needs + " is not (" + why + ")");
  }
  return Status::Ok();
}

}  // namespace

Status CheckCertificateFile(const std::string& name, const std::string& path) {
  return LoadCertificate(name, path).status();
}

Status CheckKeyMatches(const std::string& key_name, const std::string& key_path,
                       const std::string& cert_name, const std::string& cert_path) {
  auto cert = LoadCertificate(cert_name, cert_path);
  if (!cert.ok()) return cert.status();
  auto text = ReadSmallFile(key_name, key_path);
  if (!text.ok()) return text.status();
  BioPtr bio = MemBio(*text);
  // No passphrase: without a callback OpenSSL would prompt on the terminal for one.
  pem_password_cb* no_passphrase = [](char*, int, int, void*) { return -1; };
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr), &EVP_PKEY_free);
  ERR_clear_error();
  if (key == nullptr) {
    return Status::Error(Where(key_name, key_path) +
                         ": holds no unencrypted PEM private key (-----BEGIN PRIVATE KEY-----)");
  }
  const int match = X509_check_private_key(cert->get(), key.get());
  ERR_clear_error();
  if (match != 1) {
    return Status::Error(Where(key_name, key_path) + ": is not the key of the certificate in " +
                         Where(cert_name, cert_path));
  }
  return Status::Ok();
}

Status CheckServerOptions(const ServerOptions& o, const OptionNames& n) {
  Status s = Need(n.cert, o.cert, n.key, o.key, "TLS needs both");
  if (s.ok()) s = Need(n.key, o.key, n.cert, o.cert, "TLS needs both");
  if (s.ok()) s = Need(n.client_ca, o.client_ca, n.cert, o.cert, "mutual TLS needs TLS");
  return s;
}

Status CheckClientOptions(const ClientOptions& o, const OptionNames& n) {
  Status s = Need(n.cert, o.cert, n.key, o.key, "a client certificate needs its key");
  if (s.ok()) s = Need(n.key, o.key, n.cert, o.cert, "a client certificate needs its key");
  const std::string why = "TLS is on when " + n.ca + " names the CA the server is checked against";
  if (s.ok()) s = Need(n.cert, o.cert, n.ca, o.ca, why);
  if (s.ok()) s = Need(n.server_name, o.server_name, n.ca, o.ca, why);
  return s;
}

Status CheckServerFiles(const ServerOptions& o, const OptionNames& n) {
  Status s = CheckServerOptions(o, n);
  if (s.ok() && !o.cert.empty()) s = CheckKeyMatches(n.key, o.key, n.cert, o.cert);
  if (s.ok() && !o.client_ca.empty()) s = CheckCertificateFile(n.client_ca, o.client_ca);
  return s;
}

Status CheckClientFiles(const ClientOptions& o, const OptionNames& n) {
  Status s = CheckClientOptions(o, n);
  if (s.ok() && !o.ca.empty()) s = CheckCertificateFile(n.ca, o.ca);
  if (s.ok() && !o.cert.empty()) s = CheckKeyMatches(n.key, o.key, n.cert, o.cert);
  return s;
}

bool IsHandshakeFailure(const char* file, const char* message) {
  if (file == nullptr || message == nullptr) return false;
  const std::string_view f(file);
  return f.ends_with("ssl_transport_security.cc") &&
         std::string_view(message).starts_with("Handshake failed");
}

unsigned int RefreshSeconds(std::chrono::nanoseconds interval) {
  const auto seconds = std::chrono::ceil<std::chrono::seconds>(interval).count();
  if (seconds < 1) return 1;
  if (seconds > 86'400) return 86'400;
  return static_cast<unsigned int>(seconds);
}

Result<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const ServerOptions& o,
                                                                       const OptionNames& n) {
  Status s = CheckServerFiles(o, n);
  if (!s.ok()) return s;
  if (o.cert.empty()) return grpc::InsecureServerCredentials();
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      o.key, o.cert, o.client_ca, RefreshSeconds(o.reload_interval));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (o.client_ca.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

Result<ChannelSecurity> MakeChannelSecurity(const ClientOptions& o, const OptionNames& n) {
  Status s = CheckClientFiles(o, n);
  if (!s.ok()) return s;
  ChannelSecurity security;
  if (o.ca.empty()) return security;
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      o.key, o.cert, o.ca, RefreshSeconds(o.reload_interval));
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_root_certs();
  if (!o.cert.empty()) options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  // The chain alone would accept any certificate the CA ever signed; the name check makes it
  // the aggregator's (gRPC 1.51 adds this verifier itself when none is set; said explicitly).
  options.set_certificate_verifier(
      std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  security.credentials = grpc::experimental::TlsCredentials(options);
  security.server_name = o.server_name;
  return security;
}

std::shared_ptr<grpc::Channel> CreateChannel(const std::string& target,
                                             const ChannelSecurity& security,
                                             grpc::ChannelArguments args) {
  if (!security.tls()) {
    return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  }
  if (!security.server_name.empty()) args.SetSslTargetNameOverride(security.server_name);
  return grpc::CreateCustomChannel(target, security.credentials, args);
}

}  // namespace nodescope::tls
