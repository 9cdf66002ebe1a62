// Renders helm/nodescope with ns-helm-render (the offline `helm template`, render/main.go) and
// gives the tests the objects as YAML nodes.
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace nodescope::test {

inline constexpr char kRelease[] = "obs";
inline constexpr char kNamespace[] = "monitoring";
// What the chart names things for release "obs" ("<release>-<chart>").
inline constexpr char kFullname[] = "obs-nodescope";

std::string SourceDir();
std::string ChartDir();
std::string RenderBin();

struct Render {
  bool ok = false;
  std::string error;  // why it failed: the renderer's stderr, or that it is missing
  std::string text;
  std::vector<YAML::Node> docs;
  std::vector<std::string> sources;  // the "# Source:" line of each document

  // The one object of `kind` named `name`; a Null node when absent.
  YAML::Node Get(const std::string& kind, const std::string& name) const;
  std::vector<YAML::Node> OfKind(const std::string& kind) const;
};

// Renders the chart with `value_files` (-f, in order) as release kRelease in kNamespace.
Render RenderChart(const std::vector<std::string>& value_files = {});

// A map node as string -> scalar (labels, annotations, selectors).
std::map<std::string, std::string> StringMap(const YAML::Node& node);
std::set<std::string> Strings(const YAML::Node& sequence);
// Deep equality of two YAML trees, scalars compared as text; `why` says where they differ.
bool SameYaml(const YAML::Node& a, const YAML::Node& b, std::string* why,
              const std::string& at = "");
// The element of a sequence of maps whose "name" is `name`; Null when absent.
YAML::Node Named(const YAML::Node& sequence, const std::string& name);

}  // namespace nodescope::test
