// The images' runtime stage installs `scripts/install-deps.sh --runtime`; this checks that list
// against what the built binaries really load (ldd -> dpkg -S), and that both Dockerfiles build
// with the same scripts CI runs, so the images cannot drift from CI.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "tests/integration/harness.h"

namespace nodescope::test {
namespace {

std::string SourceDir() { return NODESCOPE_SOURCE_DIR; }

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::set<std::string> RuntimePackages() {
  CommandResult r =
      RunCommand({"/bin/bash", SourceDir() + "/scripts/install-deps.sh", "--list-runtime"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::set<std::string> out;
  for (const auto& line : Lines(r.out)) {
    if (!line.empty()) out.insert(line);
  }
  return out;
}

// library -> the package owning it, with one dpkg call for all of them (one call per library
// takes half a second each). dpkg knows each file by the path its package ships, which on a
// merged-/usr system may differ from ldd's (/lib vs /usr/lib) and from the symlink's target, so
// every spelling is asked for.
std::map<std::string, std::string> OwningPackages(const std::set<std::string>& libraries) {
  std::map<std::string, std::vector<std::string>> spellings;
  std::vector<std::string> argv = {"/usr/bin/dpkg", "-S"};
  for (const auto& library : libraries) {
    std::error_code ec;
    for (std::string p : {library, std::filesystem::canonical(library, ec).string()}) {
      if (p.empty()) continue;
      for (const std::string& s : {p, p.rfind("/usr/", 0) == 0 ? p.substr(4) : "/usr" + p}) {
        spellings[library].push_back(s);
        argv.push_back(s);
      }
    }
  }
  // Exit status 1 when some spelling is unknown; the known ones are still printed.
  CommandResult r = RunCommand(argv, std::chrono::seconds(120));
  std::map<std::string, std::string> by_path;  // "libssl3:amd64: /usr/lib/.../libssl.so.3"
  for (const auto& line : Lines(r.out)) {
    size_t sep = line.find(": /");
    if (sep == std::string::npos || line.rfind("diversion by ", 0) == 0) continue;
    std::string package = line.substr(0, line.find_first_of(":,"));
    by_path[line.substr(sep + 2)] = package;
  }
  std::map<std::string, std::string> out;
  for (const auto& [library, paths] : spellings) {
    for (const auto& p : paths) {
      if (by_path.count(p)) {
        out[library] = by_path[p];
        break;
      }
    }
  }
  return out;
}

TEST(RuntimeDeps, EveryLoadedLibraryComesFromARuntimePackage) {
  const auto runtime = RuntimePackages();
  ASSERT_FALSE(runtime.empty());
  // "libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x...)" or "/lib64/ld-linux... (0x...)"
  const std::regex mapped(R"(^\s*\S+ => (/\S+) \(0x[0-9a-f]+\)$)");
  const std::regex direct(R"(^\s*(/\S+) \(0x[0-9a-f]+\)$)");
  std::map<std::string, std::set<std::string>> loaded;  // binary -> libraries
  std::set<std::string> all;
  for (const char* binary : {"nodescope-sensor", "nodescope-aggregator", "nodescope"}) {
    CommandResult r = RunCommand({"/usr/bin/ldd", BinDir() + "/" + binary});
    ASSERT_EQ(r.exit_code, 0) << binary << ": " << r.out << r.err;
    for (const auto& line : Lines(r.out)) {
      EXPECT_EQ(line.find("not found"), std::string::npos) << binary << ": " << line;
      std::smatch m;
      if (!std::regex_match(line, m, mapped) && !std::regex_match(line, m, direct)) continue;
      loaded[binary].insert(m[1]);
      all.insert(m[1]);
    }
    EXPECT_GT(loaded[binary].size(), 5u) << binary << ": ldd output not understood:\n" << r.out;
  }
  const auto owners = OwningPackages(all);
  for (const auto& [binary, libraries] : loaded) {
    for (const auto& library : libraries) {
      auto it = owners.find(library);
      if (it == owners.end()) {
        ADD_FAILURE() << binary << " loads " << library << ", which no Debian package owns";
      } else {
        EXPECT_TRUE(runtime.count(it->second))
            << binary << " loads " << library << " from package " << it->second
            << ", missing from runtime_packages in scripts/install-deps.sh";
      }
    }
  }
}

struct Dockerfile {
  std::string name;
  std::string binary;
  bool non_root;
};
void PrintTo(const Dockerfile& d, std::ostream* os) { *os << d.name; }

class Image : public ::testing::TestWithParam<Dockerfile> {};

TEST_P(Image, BuildsWithCiScriptsAndInstallsTheRuntimeList) {
  const Dockerfile& d = GetParam();
  const std::string text = ReadFile(SourceDir() + "/docker/" + d.name);
  ASSERT_FALSE(text.empty()) << "docker/" << d.name << " missing";
  // Stages: the text from each FROM to the next.
  std::vector<std::string> stages;
  for (const auto& line : Lines(text)) {
    if (line.rfind("FROM ", 0) == 0) stages.emplace_back();
    if (!stages.empty()) stages.back() += line + "\n";
  }
  ASSERT_EQ(stages.size(), 2u) << "expected a build stage and a runtime stage";
  const std::string& build = stages[0];
  const std::string& run = stages[1];
  EXPECT_TRUE(std::regex_search(build, std::regex(R"(^FROM debian:bookworm AS build\n)")));
  EXPECT_TRUE(std::regex_search(build, std::regex(R"(\nRUN \./scripts/install-deps\.sh\n)")))
      << "the build stage must install with the script CI runs, without arguments";
  EXPECT_TRUE(std::regex_search(build, std::regex(R"(\nRUN [^\n]*\./scripts/build\.sh)")))
      << "the build stage must build with scripts/build.sh";
  EXPECT_TRUE(std::regex_search(run, std::regex(R"(^FROM debian:bookworm-slim\n)")));
  EXPECT_TRUE(std::regex_search(run, std::regex(R"(\nRUN [^\n]*install-deps\.sh --runtime)")))
      << "the runtime stage must install the runtime list from scripts/install-deps.sh";
  EXPECT_TRUE(std::regex_search(run, std::regex("COPY --from=build \\S+/bin/" + d.binary + " ")))
      << "the runtime stage must copy " << d.binary << " from the build stage";
  std::smatch user;
  const bool has_user = std::regex_search(run, user, std::regex(R"(\nUSER (\d+))"));
  if (d.non_root) {
    ASSERT_TRUE(has_user) << d.name << " must set a numeric non-root USER";
    EXPECT_NE(user[1], "0");
    // The chart's runAsUser is the image's user: a mismatch breaks file ownership.
    const std::string values = ReadFile(SourceDir() + "/helm/nodescope/values.yaml");
    EXPECT_NE(values.find("runAsUser: " + user[1].str() + "\n"), std::string::npos)
        << "values.yaml aggregator.runAsUser differs from the image's USER " << user[1];
  } else {
    EXPECT_TRUE(!has_user || user[1] == "0") << d.name << ": the sensor loads BPF as root";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Dockerfiles, Image,
    ::testing::Values(Dockerfile{"sensor.Dockerfile", "nodescope-sensor", false},
                      Dockerfile{"aggregator.Dockerfile", "nodescope-aggregator", true}),
    [](const auto& info) { return info.param.non_root ? "Aggregator" : "Sensor"; });

}  // namespace
}  // namespace nodescope::test
