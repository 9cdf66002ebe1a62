#include "sensor/plugins/kernel/apps.h"

#include <gtest/gtest.h>

namespace nodescope::sensor::kernel {
namespace {

TEST(GlobMatch, StarsAndLiterals) {
  EXPECT_TRUE(GlobMatch("nginx", "nginx"));
  EXPECT_FALSE(GlobMatch("nginx", "nginx2"));
  EXPECT_TRUE(GlobMatch("kworker/*", "kworker/0:1H"));
  EXPECT_FALSE(GlobMatch("kworker/*", "kworker"));
  EXPECT_TRUE(GlobMatch("*sql*", "mysqld"));
  EXPECT_TRUE(GlobMatch("a*b*c", "aXXbYYc"));
  EXPECT_FALSE(GlobMatch("a*b*c", "aXXbYY"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_FALSE(GlobMatch("", "x"));
}

TEST(AppGroups, FirstMatchingGroupElseTheName) {
  auto groups = AppGroups::Build({{"db", "mysqld mariadb*"}, {"web", "nginx* apache2"}});
  ASSERT_TRUE(groups.ok());
  EXPECT_EQ(groups->GroupOf("mariadbd"), "db");
  EXPECT_EQ(groups->GroupOf("nginx"), "web");
  EXPECT_EQ(groups->GroupOf("curl"), "curl");
  EXPECT_EQ(groups->GroupOf("curl"), "curl");  // from the cache
}

TEST(AppGroups, DefaultGroupsKernelThreads) {
  auto groups = AppGroups::Build(kDefaultAppsGroups);
  ASSERT_TRUE(groups.ok());
  EXPECT_EQ(groups->GroupOf("kworker/u8:2"), "kernel");
  EXPECT_EQ(groups->GroupOf("ksoftirqd/1"), "kernel");
  EXPECT_EQ(groups->GroupOf("bash"), "bash");
}

TEST(AppGroups, RejectsEmptyGroups) {
  auto no_patterns = AppGroups::Build({{"web", "   "}});
  ASSERT_FALSE(no_patterns.ok());
  EXPECT_NE(no_patterns.status().message().find("web"), std::string::npos);
  EXPECT_FALSE(AppGroups::Build({{"", "x"}}).ok());
}

}  // namespace
}  // namespace nodescope::sensor::kernel
