// The chart's ConfigMaps against the real binaries: values.yaml holds every option the binaries
// have (no more, no fewer), and the rendered config.yaml files are accepted and read back as the
// values said.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "common/testing/temp_dir.h"
#include "tests/helm/render.h"
#include "tests/integration/harness.h"

namespace nodescope::test {
namespace {

const std::string kSensorBin = "nodescope-sensor";
const std::string kAggregatorBin = "nodescope-aggregator";

// The binary's effective configuration for `config_file` ("" = defaults), as YAML.
YAML::Node PrintConfig(const std::string& binary, const std::string& config_file,
                       std::string* error) {
  std::vector<std::string> argv = {BinDir() + "/" + binary, "--print-config"};
  if (!config_file.empty()) argv.insert(argv.begin() + 1, {"--config", config_file});
  CommandResult r = RunCommand(argv);
  if (r.exit_code != 0) {
    *error = binary + " exited " + std::to_string(r.exit_code) + ": " + r.err;
    return YAML::Node();
  }
  return YAML::Load(r.out);
}

std::set<std::string> Keys(const YAML::Node& map) {
  std::set<std::string> keys;
  for (const auto& kv : map) keys.insert(kv.first.as<std::string>());
  return keys;
}

// The items the binary accepts for a list option, from the error it gives for a bad one
// ("... is not one of: a, b, c"), so a plugin added to the binary must be added to the test too.
std::set<std::string> AcceptedItems(const std::string& option) {
  TempDir dir;
  dir.Write("c.yaml", option + ": [no-such-item]\n");
  CommandResult r =
      RunCommand({BinDir() + "/" + kSensorBin, "--config", dir.File("c.yaml"), "--print-config"});
  std::set<std::string> items;
  const std::string marker = "is not one of: ";
  size_t at = r.err.find(marker);
  if (r.exit_code != 2 || at == std::string::npos) return items;
  std::istringstream list(r.err.substr(at + marker.size()));
  for (std::string item; std::getline(list, item, ',');) {
    item.erase(0, item.find_first_not_of(" "));
    item.erase(item.find_last_not_of(" \n") + 1);
    items.insert(item);
  }
  return items;
}

TEST(ChartValues, HoldExactlyTheOptionsOfEachBinary) {
  const YAML::Node values = YAML::LoadFile(ChartDir() + "/values.yaml");
  for (const auto& [binary, section] :
       {std::pair{kSensorBin, "sensor"}, std::pair{kAggregatorBin, "aggregator"}}) {
    std::string error;
    const YAML::Node printed = PrintConfig(binary, "", &error);
    ASSERT_TRUE(error.empty()) << error;
    ASSERT_TRUE(values[section]["config"].IsMap()) << section << ".config missing";
    const auto want = Keys(printed);
    const auto have = Keys(values[section]["config"]);
    for (const auto& k : want) {
      EXPECT_TRUE(have.count(k)) << binary << " has option '" << k << "' but values.yaml has no "
                                 << section << ".config." << k;
    }
    for (const auto& k : have) {
      EXPECT_TRUE(want.count(k)) << "values.yaml " << section << ".config." << k << " is not an "
                                 << "option of " << binary << " (--print-config)";
    }
  }
}

class RenderedConfig : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    std::vector<std::string> files;
    if (GetParam()) files.push_back(SourceDir() + "/tests/helm/all-plugins.yaml");
    r_ = RenderChart(files);
    ASSERT_TRUE(r_.ok) << r_.error;
  }
  // Writes the ConfigMap's config.yaml, runs the binary on it and compares the effective
  // configuration with the file key by key. Returns what the binary printed.
  YAML::Node Check(const std::string& configmap, const std::string& binary) {
    const YAML::Node cm = r_.Get("ConfigMap", configmap);
    EXPECT_TRUE(cm["data"]["config.yaml"].IsScalar()) << configmap;
    if (!cm["data"]["config.yaml"].IsScalar()) return YAML::Node();
    dir_.Write(binary + ".yaml", cm["data"]["config.yaml"].as<std::string>());
    std::string error;
    YAML::Node printed = PrintConfig(binary, dir_.File(binary + ".yaml"), &error);
    EXPECT_TRUE(error.empty()) << "the rendered config.yaml is refused: " << error;
    if (!error.empty()) return printed;
    const YAML::Node file = YAML::LoadFile(dir_.File(binary + ".yaml"));
    EXPECT_EQ(Keys(file), Keys(printed)) << binary << ": config.yaml should set every option";
    for (const auto& kv : file) {
      const std::string key = kv.first.as<std::string>();
      std::string why;
      EXPECT_TRUE(printed[key] && SameYaml(kv.second, printed[key], &why))
          << binary << " read " << key << " differently from config.yaml (" << why << ")";
    }
    return printed;
  }
  Render r_;
  TempDir dir_;
};

TEST_P(RenderedConfig, SensorAcceptsItsConfigMap) {
  const YAML::Node printed = Check(std::string(kFullname) + "-sensor", kSensorBin);
  ASSERT_TRUE(printed.IsMap());
  EXPECT_EQ(printed["trace_server"].as<std::string>(""),
            std::string(kFullname) + "-aggregator." + kNamespace + ".svc:9970");
  if (!GetParam()) return;
  // all-plugins.yaml must switch on everything the binary knows, including what it learns later.
  for (const char* option : {"enabled_plugins", "l7net_enabled", "ebpf_programs"}) {
    const auto accepted = AcceptedItems(option);
    EXPECT_GE(accepted.size(), 2u) << "cannot read the accepted items of " << option;
    EXPECT_EQ(Strings(printed[option]), accepted) << option;
  }
  EXPECT_EQ(printed["ebpf_load_mode"].as<std::string>(""), "return");
  EXPECT_EQ(StringMap(printed["tags"])["cluster"], "test");
  // tls.enabled (mutual by default): the mounted Secret's files.
  EXPECT_EQ(printed["tls_ca"].as<std::string>(""), "/etc/nodescope/tls/ca.crt");
  EXPECT_EQ(printed["tls_cert"].as<std::string>(""), "/etc/nodescope/tls/tls.crt");
  EXPECT_EQ(printed["tls_key"].as<std::string>(""), "/etc/nodescope/tls/tls.key");
}

TEST_P(RenderedConfig, AggregatorAcceptsItsConfigMap) {
  const YAML::Node printed = Check(std::string(kFullname) + "-aggregator", kAggregatorBin);
  ASSERT_TRUE(printed.IsMap());
  // The Service and probes use these ports; the listeners must be on them, on every address.
  EXPECT_EQ(printed["listen"].as<std::string>(""), "0.0.0.0:9970");
  EXPECT_EQ(printed["http_listen"].as<std::string>(""), "0.0.0.0:9971");
  if (!GetParam()) return;
  // Quoted in the values: unquoted, YAML 1.1 (Helm) would turn it into false.
  EXPECT_EQ(printed["kubernetes_enrich"].as<std::string>(""), "off");
  EXPECT_EQ(printed["state_dir"].as<std::string>(""), "/var/lib/nodescope");
  // tls.enabled (mutual by default) and apiToken.secretName: the mounted Secrets' files.
  EXPECT_EQ(printed["tls_cert"].as<std::string>(""), "/etc/nodescope/tls/tls.crt");
  EXPECT_EQ(printed["tls_key"].as<std::string>(""), "/etc/nodescope/tls/tls.key");
  EXPECT_EQ(printed["tls_client_ca"].as<std::string>(""), "/etc/nodescope/tls/ca.crt");
  EXPECT_EQ(printed["api_token"].as<std::string>(""), "/etc/nodescope/api-token/token");
}

INSTANTIATE_TEST_SUITE_P(Values, RenderedConfig, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "AllPlugins" : "Defaults"; });

}  // namespace
}  // namespace nodescope::test
