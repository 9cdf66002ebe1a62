#include "tests/helm/render.h"

#include <unistd.h>

#include <sstream>

#include "tests/integration/harness.h"

namespace nodescope::test {

std::string SourceDir() { return NODESCOPE_SOURCE_DIR; }
std::string ChartDir() { return SourceDir() + "/helm/nodescope"; }
std::string RenderBin() { return BinDir() + "/ns-helm-render"; }

YAML::Node Render::Get(const std::string& kind, const std::string& name) const {
  for (const auto& d : docs) {
    if (d["kind"].as<std::string>("") == kind && d["metadata"]["name"].as<std::string>("") == name)
      return d;
  }
  return YAML::Node(YAML::NodeType::Null);
}

std::vector<YAML::Node> Render::OfKind(const std::string& kind) const {
  std::vector<YAML::Node> out;
  for (const auto& d : docs) {
    if (d["kind"].as<std::string>("") == kind) out.push_back(d);
  }
  return out;
}

Render RenderChart(const std::vector<std::string>& value_files) {
  Render r;
  if (access(RenderBin().c_str(), X_OK) != 0) {
    r.error = RenderBin() +
              " is missing: it is built from tests/helm/render/main.go when CMake finds `go` "
              "(golang-go, golang-github-masterminds-sprig-dev and golang-gopkg-yaml.v2-dev; "
              "scripts/install-deps.sh installs them), then reconfigure and rebuild";
    return r;
  }
  std::vector<std::string> argv = {RenderBin(), "--name", kRelease, "-n", kNamespace};
  for (const auto& f : value_files) {
    argv.push_back("-f");
    argv.push_back(f);
  }
  argv.push_back(ChartDir());
  CommandResult run = RunCommand(argv);
  if (run.exit_code != 0) {
    r.error = "ns-helm-render exited " + std::to_string(run.exit_code) + ": " + run.err;
    return r;
  }
  r.text = run.out;
  try {
    for (const auto& doc : YAML::LoadAll(run.out)) {
      if (!doc.IsNull()) r.docs.push_back(doc);
    }
  } catch (const YAML::Exception& e) {
    r.error = std::string("rendered output is not YAML: ") + e.what() + "\n" + run.out;
    return r;
  }
  std::istringstream lines(run.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# Source: ", 0) == 0) r.sources.push_back(line.substr(10));
  }
  r.ok = true;
  return r;
}

std::map<std::string, std::string> StringMap(const YAML::Node& node) {
  std::map<std::string, std::string> out;
  if (!node.IsMap()) return out;
  for (const auto& kv : node) out[kv.first.as<std::string>()] = kv.second.as<std::string>("");
  return out;
}

std::set<std::string> Strings(const YAML::Node& sequence) {
  std::set<std::string> out;
  if (!sequence.IsSequence()) return out;
  for (const auto& item : sequence) out.insert(item.as<std::string>(""));
  return out;
}

bool SameYaml(const YAML::Node& a, const YAML::Node& b, std::string* why, const std::string& at) {
  auto differ = [&](const std::string& what) {
    *why = (at.empty() ? "top" : at) + ": " + what;
    return false;
  };
  if (a.Type() != b.Type()) return differ("different node types");
  if (a.IsScalar()) {
    return a.Scalar() == b.Scalar() ? true : differ("'" + a.Scalar() + "' vs '" + b.Scalar() + "'");
  }
  if (a.IsSequence()) {
    if (a.size() != b.size()) {
      return differ(std::to_string(a.size()) + " items vs " + std::to_string(b.size()));
    }
    for (size_t i = 0; i < a.size(); ++i) {
      if (!SameYaml(a[i], b[i], why, at + "[" + std::to_string(i) + "]")) return false;
    }
    return true;
  }
  if (a.IsMap()) {
    if (a.size() != b.size()) {
      return differ(std::to_string(a.size()) + " keys vs " + std::to_string(b.size()));
    }
    for (const auto& kv : a) {
      const std::string key = kv.first.as<std::string>();
      if (!b[key]) return differ("key '" + key + "' only on one side");
      if (!SameYaml(kv.second, b[key], why, at.empty() ? key : at + "." + key)) return false;
    }
    return true;
  }
  return true;
}

YAML::Node Named(const YAML::Node& sequence, const std::string& name) {
  if (sequence.IsSequence()) {
    for (const auto& item : sequence) {
      if (item["name"].as<std::string>("") == name) return item;
    }
  }
  return YAML::Node(YAML::NodeType::Null);
}

}  // namespace nodescope::test
