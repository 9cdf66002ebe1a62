#include "common/tls/grpc_tls.h"

#include <gtest/gtest.h>

#include "common/testing/temp_dir.h"
#include "tests/integration/pki.h"

namespace nodescope::tls {
namespace {

using test::IssuedCert;
using test::TempDir;
using test::TestCa;

ServerOptions Server(std::string cert, std::string key, std::string client_ca = "") {
  ServerOptions o;
  o.cert = std::move(cert);
  o.key = std::move(key);
  o.client_ca = std::move(client_ca);
  return o;
}

ClientOptions Client(std::string ca, std::string cert = "", std::string key = "",
                     std::string server_name = "") {
  ClientOptions o;
  o.ca = std::move(ca);
  o.cert = std::move(cert);
  o.key = std::move(key);
  o.server_name = std::move(server_name);
  return o;
}

class TlsFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = std::make_unique<TestCa>(dir_.path(), "one");
    server_ = ca_->Issue("server", "aggregator", {"DNS:localhost", "IP:127.0.0.1"}, 10);
    other_ = ca_->Issue("other", "other", {"DNS:other"}, 11);
    dir_.Write("garbage.pem", "not a certificate\n");
  }
  TempDir dir_;
  std::unique_ptr<TestCa> ca_;
  IssuedCert server_, other_;
};

TEST(TlsOptions, ServerNeedsCertAndKeyTogether) {
  EXPECT_TRUE(CheckServerOptions(ServerOptions()).ok());
  Status s = CheckServerOptions(Server("/c", ""));
  EXPECT_EQ(s.message(), "tls_cert is set but tls_key is not (TLS needs both)");
  s = CheckServerOptions(Server("", "/k"));
  EXPECT_EQ(s.message(), "tls_key is set but tls_cert is not (TLS needs both)");
  s = CheckServerOptions(Server("", "", "/ca"));
  EXPECT_EQ(s.message(), "tls_client_ca is set but tls_cert is not (mutual TLS needs TLS)");
  EXPECT_TRUE(CheckServerOptions(Server("/c", "/k", "/ca")).ok());
}

TEST(TlsOptions, ClientCertificateAndServerNameNeedTheCa) {
  EXPECT_TRUE(CheckClientOptions(ClientOptions()).ok());
  EXPECT_TRUE(CheckClientOptions(Client("/ca")).ok());
  Status s = CheckClientOptions(Client("", "/c", "/k"));
  EXPECT_NE(s.message().find("tls_cert is set but tls_ca is not"), std::string::npos)
      << s.message();
  s = CheckClientOptions(Client("", "", "", "aggregator"));
  EXPECT_NE(s.message().find("tls_server_name is set but tls_ca is not"), std::string::npos)
      << s.message();
  s = CheckClientOptions(Client("/ca", "/c"));
  EXPECT_NE(s.message().find("tls_cert is set but tls_key is not"), std::string::npos)
      << s.message();
}

TEST(TlsOptions, MessagesUseTheCallersNames) {
  OptionNames flags;
  flags.ca = "--tls-ca";
  flags.server_name = "--tls-server-name";
  Status s = CheckClientOptions(Client("", "", "", "x"), flags);
  EXPECT_EQ(s.message().rfind("--tls-server-name is set but --tls-ca is not", 0), 0u)
      << s.message();
  s = CheckClientFiles(Client("/nonexistent/ca.pem"), flags);
  EXPECT_EQ(s.message(), "--tls-ca \"/nonexistent/ca.pem\": No such file or directory");
}

TEST_F(TlsFiles, GoodFilesPass) {
  EXPECT_TRUE(CheckServerFiles(Server(server_.cert, server_.key)).ok());
  Status s = CheckServerFiles(Server(server_.cert, server_.key, ca_->cert()));
  EXPECT_TRUE(s.ok()) << s.message();
  s = CheckClientFiles(Client(ca_->cert(), other_.cert, other_.key));
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(TlsFiles, MissingFileNamesOptionAndPath) {
  Status s = CheckServerFiles(Server(dir_.File("nope.crt"), server_.key));
  EXPECT_EQ(s.message(), "tls_cert \"" + dir_.File("nope.crt") + "\": No such file or directory");
  s = CheckServerFiles(Server(server_.cert, dir_.File("nope.key")));
  EXPECT_EQ(s.message(), "tls_key \"" + dir_.File("nope.key") + "\": No such file or directory");
  s = CheckServerFiles(Server(server_.cert, server_.key, dir_.path()));
  // A directory opens but cannot be read.
  EXPECT_EQ(s.message().rfind("tls_client_ca \"" + dir_.path() + "\": ", 0), 0u) << s.message();
}

TEST_F(TlsFiles, NotPemIsRefused) {
  Status s = CheckServerFiles(Server(dir_.File("garbage.pem"), server_.key));
  EXPECT_NE(
      s.message().find("tls_cert \"" + dir_.File("garbage.pem") + "\": holds no PEM certificate"),
      std::string::npos)
      << s.message();
  s = CheckClientFiles(Client(dir_.File("garbage.pem")));
  EXPECT_NE(s.message().find("tls_ca \"" + dir_.File("garbage.pem") + "\": holds no PEM"),
            std::string::npos)
      << s.message();
  // A certificate where the key belongs.
  s = CheckServerFiles(Server(server_.cert, server_.cert));
  EXPECT_NE(
      s.message().find("tls_key \"" + server_.cert + "\": holds no unencrypted PEM private key"),
      std::string::npos)
      << s.message();
}

TEST_F(TlsFiles, KeyOfAnotherCertificateIsRefused) {
  Status s = CheckServerFiles(Server(server_.cert, other_.key));
  EXPECT_EQ(s.message(), "tls_key \"" + other_.key + "\": is not the key of the certificate in " +
                             "tls_cert \"" + server_.cert + "\"");
  s = CheckClientFiles(Client(ca_->cert(), other_.cert, server_.key));
  EXPECT_NE(s.message().find("is not the key of the certificate"), std::string::npos);
}

TEST_F(TlsFiles, CredentialsAreBuiltOnlyFromGoodFiles) {
  auto insecure = MakeServerCredentials({});
  ASSERT_TRUE(insecure.ok());
  EXPECT_NE(*insecure, nullptr);
  auto secure = MakeServerCredentials(Server(server_.cert, server_.key));
  ASSERT_TRUE(secure.ok()) << secure.status().message();
  EXPECT_NE(*secure, nullptr);
  auto bad = MakeServerCredentials(Server(server_.cert, other_.key));
  EXPECT_FALSE(bad.ok());

  auto plain = MakeChannelSecurity({});
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->tls());
  auto tls = MakeChannelSecurity(Client(ca_->cert(), "", "", "aggregator"));
  ASSERT_TRUE(tls.ok()) << tls.status().message();
  EXPECT_TRUE(tls->tls());
  EXPECT_EQ(tls->server_name, "aggregator");
  EXPECT_FALSE(MakeChannelSecurity(Client(dir_.File("garbage.pem"))).ok());
}

TEST(TlsOptions, RefreshIntervalIsWholeSecondsAtLeastOne) {
  using namespace std::chrono_literals;
  EXPECT_EQ(RefreshSeconds(0ns), 1u);
  EXPECT_EQ(RefreshSeconds(300ms), 1u);
  EXPECT_EQ(RefreshSeconds(1s), 1u);
  EXPECT_EQ(RefreshSeconds(1500ms), 2u);
  EXPECT_EQ(RefreshSeconds(std::chrono::hours(1)), 3600u);
}

}  // namespace
}  // namespace nodescope::tls
