// The gRPC links secured: the real aggregator with mutual TLS and a bearer token, the real sensor
// and CLI with certificates from a throwaway CA (openssl), on loopback. What gets in, what is
// refused and why, certificate rotation, and the message-size and request-rate limits.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/tls/grpc_tls.h"
#include "nodescope/v1/ingest.grpc.pb.h"
#include "nodescope/v1/observer.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/integration/pki.h"

namespace nodescope::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kToken[] = "it-token-6f1c2a";
constexpr char kHost[] = "tls-node";

class Tls : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = std::make_unique<TestCa>(dir_.path(), "main");
    rogue_ = std::make_unique<TestCa>(dir_.path(), "rogue");
    server_ = ca_->Issue("server", "aggregator",
                         {"DNS:localhost", "IP:127.0.0.1", "DNS:aggregator.test"}, 100);
    client_ = ca_->Issue("client", kHost, {"DNS:" + std::string(kHost)}, 200);
    rogue_client_ = rogue_->Issue("rogue-client", "intruder", {"DNS:intruder"}, 300);
    dir_.Write("token", std::string(kToken) + "\n");
    grpc_port_ = FreePort();
    http_port_ = FreePort();
  }

  void TearDown() override {
    for (auto& sensor : sensors_) sensor->Stop(SIGTERM, 20s);
    if (aggregator_) aggregator_->Stop(SIGTERM, 20s);
  }

  void StartAggregator(const std::string& extra = "") {
    dir_.Write("aggregator.yaml",
               "listen: 127.0.0.1:" + std::to_string(grpc_port_) + "\n" +
                   "http_listen: 127.0.0.1:" + std::to_string(http_port_) + "\n" +
                   "tls_cert: " + server_.cert + "\n" + "tls_key: " + server_.key + "\n" +
                   "tls_client_ca: " + ca_->cert() + "\n" + "tls_reload_interval: 1s\n" +
                   "api_token: " + dir_.File("token") + "\n" + extra);
    bool ready = false;
    aggregator_ = nodescope::test::StartAggregator(dir_.File("aggregator.yaml"),
                                                   dir_.File("aggregator.log"), http_port_, &ready);
    ASSERT_TRUE(ready) << aggregator_->Log();
  }

  // A sensor named `node` with `tls_yaml` (its tls_* options), sending to the aggregator.
  Subprocess* StartSensor(const std::string& node, const std::string& tls_yaml) {
    const std::string config = dir_.File(node + ".yaml");
    dir_.Write(node + ".yaml", "trace_server: 127.0.0.1:" + std::to_string(grpc_port_) + "\n" +
                                   "pprof_port: " + std::to_string(FreePort()) + "\n" +
                                   "hostname: " + node + "\n" + "enabled_plugins: []\n" + tls_yaml);
    sensors_.push_back(std::make_unique<Subprocess>(
        std::vector<std::string>{BinDir() + "/nodescope-sensor", "--config", config},
        dir_.File(node + ".log")));
    return sensors_.back().get();
  }

  std::string MutualTlsYaml() const {
    return "tls_ca: " + ca_->cert() + "\ntls_cert: " + client_.cert + "\ntls_key: " + client_.key +
           "\n";
  }

  std::string Server() const { return "127.0.0.1:" + std::to_string(grpc_port_); }

  // `nodescope <args> --server ...` with the client certificate and the token file; `env` entries
  // ("NAME=value") go before it through /usr/bin/env.
  CommandResult Cli(std::vector<std::string> args, bool cert = true, bool token = true,
                    std::vector<std::string> env = {}) {
    std::vector<std::string> argv = {"/usr/bin/env", "-u", "NODESCOPE_TOKEN"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.push_back(BinDir() + "/nodescope");
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--server", Server(), "--tls-ca", ca_->cert()});
    if (cert) argv.insert(argv.end(), {"--tls-cert", client_.cert, "--tls-key", client_.key});
    if (token) argv.insert(argv.end(), {"--token-file", dir_.File("token")});
    return RunCommand(argv, 30s);
  }

  // The sensors the aggregator lists as connected, by node.
  std::set<std::string> ConnectedNodes() {
    CommandResult r = Cli({"status", "-o", "json"});
    std::set<std::string> nodes;
    auto status = json::parse(r.out, nullptr, false);
    if (r.exit_code != 0 || status.is_discarded()) return nodes;
    for (const auto& sensor : status.value("sensors", json::array())) {
      if (sensor.value("connected", false)) nodes.insert(sensor.value("node", ""));
    }
    return nodes;
  }

  double Refused(const std::string& reason) {
    return MetricValue(HttpGet(http_port_, "/metrics"),
                       "nodescope_api_refused_total{reason=\"" + reason + "\"}");
  }

  std::shared_ptr<grpc::Channel> Channel() {
    tls::ClientOptions options;
    options.ca = ca_->cert();
    options.cert = client_.cert;
    options.key = client_.key;
    auto security = tls::MakeChannelSecurity(options);
    EXPECT_TRUE(security.ok()) << security.status().message();
    return tls::CreateChannel(Server(), *security, grpc::ChannelArguments());
  }

  TempDir dir_;
  std::unique_ptr<TestCa> ca_, rogue_;
  IssuedCert server_, client_, rogue_client_;
  int grpc_port_ = 0, http_port_ = 0;
  std::unique_ptr<Subprocess> aggregator_;
  std::vector<std::unique_ptr<Subprocess>> sensors_;
};

pid_t RunTrue() {
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/true", "/bin/true", nullptr);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return pid;
}

TEST_F(Tls, MutualTlsCarriesRecordsAndObserveReadsThemWithTheToken) {
  StartAggregator();
  EXPECT_NE(aggregator_->Log().find("mutual TLS, bearer token required"), std::string::npos)
      << aggregator_->Log();
  Subprocess* sensor = StartSensor(kHost, MutualTlsYaml());
  ASSERT_TRUE(WaitFor([&] { return ConnectedNodes().count(kHost) == 1; }, 60s))
      << "sensor log:\n"
      << sensor->Log() << "\naggregator log:\n"
      << aggregator_->Log();

  const pid_t pid = RunTrue();
  auto exec_of_pid = [&] {
    CommandResult r = Cli({"observe", "--source", "process", "--last", "100000", "-o", "json",
                           "--filter", "pid=" + std::to_string(pid)});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      json record = json::parse(line, nullptr, false);
      if (!record.is_discarded() && record["fields"].value("event", "") == "exec" &&
          record["fields"].value("filename", "") == "/bin/true") {
        EXPECT_EQ(record["host"], kHost);
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(WaitFor(exec_of_pid, 30s)) << "no exec record of /bin/true pid " << pid;

  // The certificate names aggregator.test too; --tls-server-name checks that name instead.
  CommandResult named = Cli({"status", "--tls-server-name", "aggregator.test"});
  EXPECT_EQ(named.exit_code, 0) << named.err;
  CommandResult wrong_name = Cli({"status", "--tls-server-name", "elsewhere.test"});
  EXPECT_EQ(wrong_name.exit_code, 3) << wrong_name.err;
  EXPECT_EQ(
      wrong_name.err.rfind("nodescope: TLS with the aggregator at " + Server() + " failed: ", 0),
      0u)
      << wrong_name.err;
  EXPECT_EQ(std::count(wrong_name.err.begin(), wrong_name.err.end(), '\n'), 1) << wrong_name.err;
}

TEST_F(Tls, SensorsWithoutAValidClientCertificateAreRefused) {
  StartAggregator();
  Subprocess* no_cert = StartSensor("no-cert", "tls_ca: " + ca_->cert() + "\n");
  Subprocess* rogue =
      StartSensor("rogue", "tls_ca: " + ca_->cert() + "\ntls_cert: " + rogue_client_.cert +
                               "\ntls_key: " + rogue_client_.key + "\n");
  Subprocess* plaintext = StartSensor("plaintext", "");
  // A sensor with the right certificate gets in meanwhile: the refusals are about certificates.
  Subprocess* good = StartSensor(kHost, MutualTlsYaml());
  ASSERT_TRUE(WaitFor([&] { return ConnectedNodes().count(kHost) == 1; }, 60s)) << good->Log();

  for (Subprocess* sensor : {no_cert, rogue, plaintext}) {
    EXPECT_TRUE(WaitFor(
        [&] {
          return sensor->Log().find("transport: cannot reach aggregator") != std::string::npos;
        },
        30s))
        << sensor->Log();
    EXPECT_TRUE(sensor->Running()) << "keeps retrying:\n" << sensor->Log();
  }
  EXPECT_NE(no_cert->Log().find("no client certificate"), std::string::npos) << no_cert->Log();
  EXPECT_EQ(ConnectedNodes(), std::set<std::string>{kHost});
  // The aggregator says why it refused each (with TLS 1.3 the client only sees the connection
  // closed after its side of the handshake, so the reason is on the server's side).
  for (const char* reason :
       {"peer did not return a certificate", "certificate verify failed", "wrong version number"}) {
    EXPECT_TRUE(WaitFor(
        [&] {
          const std::string log = aggregator_->Log();
          const size_t at = log.find(reason);
          return at != std::string::npos &&
                 log.rfind("TLS handshake refused: ", at) != std::string::npos;
        },
        10s))
        << reason << " not in the aggregator's log:\n"
        << aggregator_->Log();
  }
}

TEST_F(Tls, ObserverWithoutTheRightTokenOrCertificateIsRefused) {
  StartAggregator();
  CommandResult missing = Cli({"status"}, /*cert=*/true, /*token=*/false);
  EXPECT_EQ(missing.exit_code, 3) << missing.err;
  EXPECT_EQ(missing.err, "nodescope: status: the aggregator at " + Server() +
                             " refused the call (UNAUTHENTICATED): missing bearer token (metadata "
                             "authorization: Bearer <token>) (bearer token: --token-file or "
                             "NODESCOPE_TOKEN)\n");
  CommandResult wrong = Cli({"observe", "--last", "1"}, true, false, {"NODESCOPE_TOKEN=guess"});
  EXPECT_EQ(wrong.exit_code, 3) << wrong.err;
  EXPECT_NE(wrong.err.find("refused the call (UNAUTHENTICATED): wrong bearer token"),
            std::string::npos)
      << wrong.err;
  CommandResult env_token =
      Cli({"status"}, true, false, {std::string("NODESCOPE_TOKEN=") + kToken});
  EXPECT_EQ(env_token.exit_code, 0) << env_token.err;
  CommandResult file_token = Cli({"status"});
  EXPECT_EQ(file_token.exit_code, 0) << file_token.err;
  EXPECT_EQ(Refused("unauthenticated"), 2);

  // The token file is re-read when it changes.
  dir_.Write("token.new", "rotated-token\n");
  std::filesystem::rename(dir_.File("token.new"), dir_.File("token"));
  CommandResult old_token =
      Cli({"status"}, true, false, {std::string("NODESCOPE_TOKEN=") + kToken});
  EXPECT_EQ(old_token.exit_code, 3) << old_token.err;
  EXPECT_EQ(Cli({"status"}).exit_code, 0);

  // No client certificate: the aggregator ends the handshake.
  CommandResult no_cert = Cli({"status"}, /*cert=*/false);
  EXPECT_EQ(no_cert.exit_code, 3) << no_cert.err;
  EXPECT_NE(no_cert.err.find("TLS with the aggregator at " + Server()), std::string::npos)
      << no_cert.err;
  EXPECT_EQ(std::count(no_cert.err.begin(), no_cert.err.end(), '\n'), 1) << no_cert.err;

  // An aggregator certificate from a CA the client does not trust.
  CommandResult untrusted =
      RunCommand({BinDir() + "/nodescope", "status", "--server", Server(), "--tls-ca",
                  rogue_->cert(), "--token-file", dir_.File("token")});
  EXPECT_EQ(untrusted.exit_code, 3) << untrusted.err;
  EXPECT_NE(untrusted.err.find("TLS with the aggregator at " + Server() + " failed: "),
            std::string::npos)
      << untrusted.err;
  EXPECT_EQ(std::count(untrusted.err.begin(), untrusted.err.end(), '\n'), 1) << untrusted.err;

  // Plaintext against the TLS listener.
  CommandResult plaintext = RunCommand({BinDir() + "/nodescope", "status", "--server", Server()});
  EXPECT_NE(plaintext.exit_code, 0);
  EXPECT_EQ(std::count(plaintext.err.begin(), plaintext.err.end(), '\n'), 1) << plaintext.err;
}

TEST_F(Tls, RotatedServerCertificateIsServedToNewConnections) {
  StartAggregator();
  std::string output;
  EXPECT_EQ(PresentedSerial(grpc_port_, ca_->cert(), client_.cert, client_.key, &output), 100u)
      << output;
  // The new pair is written next to the old one and renamed over it, key first: the watcher may
  // see the new key with the old certificate for a moment and keeps the old pair until both fit.
  IssuedCert renewed = ca_->Issue("server-renewed", "aggregator", {"IP:127.0.0.1"}, 101);
  std::filesystem::rename(renewed.key, server_.key);
  std::filesystem::rename(renewed.cert, server_.cert);
  EXPECT_TRUE(WaitFor(
      [&] {
        return PresentedSerial(grpc_port_, ca_->cert(), client_.cert, client_.key, &output) == 101u;
      },
      15s))
      << output;
  CommandResult after = Cli({"status"});
  EXPECT_EQ(after.exit_code, 0) << after.err;
}

TEST_F(Tls, OversizedMessagesAndRequestFloodsAreRefusedAndCounted) {
  StartAggregator("max_message_size: 4096\nmax_requests_per_second: 2\n");
  auto channel = Channel();

  // A sensor stream: a small batch is acknowledged, one over 4096 bytes ends the stream.
  auto stub = v1::SensorService::NewStub(channel);
  grpc::ClientContext context;
  auto stream = stub->Stream(&context);
  v1::SensorMessage message;
  message.set_node("size-node");
  message.set_sensor_instance("00000000000000000000000000000001");
  message.mutable_batch()->set_seq(1);
  ASSERT_TRUE(stream->Write(message));
  v1::AggregatorMessage reply;
  ASSERT_TRUE(stream->Read(&reply));
  EXPECT_EQ(reply.ack().seq(), 1u);
  message.mutable_batch()->set_seq(2);
  v1::Tag* tag = message.mutable_batch()->add_extra_tags();
  tag->set_key("padding");
  tag->set_value(std::string(5000, 'x'));
  stream->Write(message);
  EXPECT_FALSE(stream->Read(&reply));
  grpc::Status ended = stream->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << ended.error_message();
  EXPECT_NE(ended.error_message().find("over max_message_size (4096)"), std::string::npos)
      << ended.error_message();
  EXPECT_EQ(Refused("message_too_large"), 1);

  // An observer request over the limit, through the CLI: a long filter value.
  CommandResult big = Cli({"observe", "--filter", "process_name=" + std::string(5000, 'p')});
  EXPECT_EQ(big.exit_code, 1) << big.err;
  EXPECT_NE(big.err.find("over max_message_size (4096)"), std::string::npos) << big.err;
  EXPECT_EQ(Refused("message_too_large"), 2);

  // Requests as fast as they go: 2 at once and 2 a second get through, the rest are refused.
  sleep(1);  // the CLI above took tokens
  auto observer = v1::ObserverService::NewStub(channel);
  int ok = 0, limited = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    grpc::ClientContext call;
    call.AddMetadata("authorization", std::string("Bearer ") + kToken);
    v1::StatusResponse response;
    grpc::Status s = observer->Status(&call, v1::StatusRequest(), &response);
    if (s.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
      EXPECT_NE(s.error_message().find("too many requests from ipv4:127.0.0.1"), std::string::npos)
          << s.error_message();
      ++limited;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(ok, 2);
  EXPECT_LE(ok, 2 + static_cast<int>(2 * seconds) + 1) << seconds << " s";
  EXPECT_GT(limited, 0);
  EXPECT_EQ(Refused("rate_limited"), limited);
  EXPECT_EQ(Refused("unauthenticated"), 0);
}

// Bad TLS and token files stop each binary with exit code 2 and one line naming the option and the
// file; --print-config does not read them (they may exist only where the configuration will run).
TEST_F(Tls, BadFilesAreOneLineAndExitTwo) {
  dir_.Write("garbage.pem", "not PEM\n");
  struct Case {
    std::string binary;
    std::string yaml;
    std::string line;
  };
  const std::string missing = dir_.File("missing.pem");
  const std::vector<Case> cases = {
      {"nodescope-aggregator", "tls_cert: " + missing + "\ntls_key: " + server_.key + "\n",
       "nodescope-aggregator: tls_cert \"" + missing + "\": No such file or directory\n"},
      {"nodescope-aggregator", "tls_cert: " + server_.cert + "\ntls_key: " + client_.key + "\n",
       "nodescope-aggregator: tls_key \"" + client_.key +
           "\": is not the key of the certificate in tls_cert \"" + server_.cert + "\"\n"},
      {"nodescope-aggregator",
       "tls_cert: " + server_.cert + "\ntls_key: " + server_.key +
           "\ntls_client_ca: " + dir_.File("garbage.pem") + "\n",
       "nodescope-aggregator: tls_client_ca \"" + dir_.File("garbage.pem") +
           "\": holds no PEM certificate (-----BEGIN CERTIFICATE-----)\n"},
      {"nodescope-aggregator", "tls_cert: " + server_.cert + "\n",
       "nodescope-aggregator: config: tls_cert is set but tls_key is not (TLS needs both)\n"},
      {"nodescope-aggregator", "api_token: " + missing + "\n",
       "nodescope-aggregator: api_token \"" + missing + "\": No such file or directory\n"},
      {"nodescope-sensor", "tls_ca: " + dir_.File("garbage.pem") + "\n",
       "nodescope-sensor: tls_ca \"" + dir_.File("garbage.pem") +
           "\": holds no PEM certificate (-----BEGIN CERTIFICATE-----)\n"},
      {"nodescope-sensor", "tls_cert: " + client_.cert + "\ntls_key: " + client_.key + "\n",
       "nodescope-sensor: config: tls_cert is set but tls_ca is not (TLS is on when tls_ca names "
       "the CA the server is checked against)\n"},
  };
  for (const Case& c : cases) {
    dir_.Write("bad.yaml", c.yaml);
    CommandResult r = RunCommand({BinDir() + "/" + c.binary, "--config", dir_.File("bad.yaml")});
    EXPECT_EQ(r.exit_code, 2) << c.yaml << r.err;
    EXPECT_EQ(r.err, c.line) << c.yaml;
  }
  dir_.Write("print.yaml", "tls_cert: " + missing + "\ntls_key: " + missing + "\n");
  CommandResult printed = RunCommand(
      {BinDir() + "/nodescope-aggregator", "--config", dir_.File("print.yaml"), "--print-config"});
  EXPECT_EQ(printed.exit_code, 0) << printed.err;
  EXPECT_NE(printed.out.find(missing), std::string::npos) << printed.out;

  CommandResult cli = RunCommand(
      {BinDir() + "/nodescope", "status", "--server", "127.0.0.1:1", "--tls-ca", missing});
  EXPECT_EQ(cli.exit_code, 2);
  EXPECT_EQ(cli.err, "nodescope: --tls-ca \"" + missing + "\": No such file or directory\n");
  CommandResult token = RunCommand(
      {BinDir() + "/nodescope", "status", "--server", "127.0.0.1:1", "--token-file", missing});
  EXPECT_EQ(token.exit_code, 2);
  EXPECT_EQ(token.err, "nodescope: --token-file \"" + missing + "\": No such file or directory\n");
}

}  // namespace
}  // namespace nodescope::test
