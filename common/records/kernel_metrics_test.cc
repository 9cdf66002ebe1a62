// The kernel metric catalog is well-formed, and README lists every metric in it.
#include "common/records/kernel_metrics.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace nodescope::records {
namespace {

std::string Exposed(const KernelMetricInfo& m) {
  std::string name = "nodescope_" + std::string(m.name);
  if (m.kind == KernelMetricKind::kCounter) return name + "_total";
  if (m.kind == KernelMetricKind::kHistogram) return name + "_seconds";
  return name;
}

TEST(KernelMetricCatalog, NamesAreUniqueSnakeCaseAndPrefixedByTheirFamily) {
  std::set<std::string_view> names;
  for (const auto& m : kKernelMetrics) {
    EXPECT_TRUE(names.insert(m.name).second) << m.name;
    for (char c : m.name) EXPECT_TRUE((c >= 'a' && c <= 'z') || c == '_') << m.name;
    const std::string_view prefix = m.family == "health" ? "kernel" : m.family;
    EXPECT_EQ(m.name.substr(0, prefix.size()), prefix) << m.name;
    EXPECT_FALSE(m.help.empty()) << m.name;
    EXPECT_EQ(FindKernelMetric(m.name), &m);
  }
  EXPECT_EQ(FindKernelMetric("no_such_metric"), nullptr);
}

TEST(KernelMetricCatalog, ReadmeListsEveryMetric) {
  std::ifstream in(NS_README);
  ASSERT_TRUE(in.good()) << NS_README;
  std::stringstream text;
  text << in.rdbuf();
  for (const auto& m : kKernelMetrics) {
    EXPECT_NE(text.str().find("`" + Exposed(m) + "`"), std::string::npos)
        << Exposed(m) << " is not in README.md";
  }
}

}  // namespace
}  // namespace nodescope::records
