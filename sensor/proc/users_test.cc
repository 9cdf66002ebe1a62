#include "common/testing/temp_dir.h"
#include "sensor/proc/users.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <cstdlib>
#include <fstream>

namespace nodescope::sensor::proc {
namespace {

TEST(ParsePasswd, Lines) {
  auto users = UserResolver::ParsePasswd(
      "root:x:0:0:root:/root:/bin/bash\n"
      "# comment\n"
      "\n"
      "daemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n"
      "toor:x:0:0::/:/bin/sh\n"  // a second name for uid 0: the first wins
      "broken:x:notanumber:0::/:\n"
      "huge:x:99999999999:0::/:\n"
      "nouid:x\n"
      ":x:5:5::/:\n"
      "last:x:65534:65534::/:");
  EXPECT_EQ(users.size(), 3u);
  EXPECT_EQ(users[0], "root");
  EXPECT_EQ(users[1], "daemon");
  EXPECT_EQ(users[65534], "last");
}

class TempRoot {
 public:
  TempRoot() { mkdir((dir_.path() + "/etc").c_str(), 0755); }
  void WritePasswd(const std::string& text, time_t mtime_sec) {
    std::string file = dir_.File("etc/passwd");
    std::ofstream(file) << text;
    timeval times[2] = {{mtime_sec, 0}, {mtime_sec, 0}};
    utimes(file.c_str(), times);
  }
  const std::string& path() const { return dir_.path(); }

 private:
  nodescope::test::TempDir dir_;
};

TEST(UserResolver, HostRootPasswd) {
  TempRoot root;
  root.WritePasswd("root:x:0:0::/:\nalice:x:1000:1000::/:\n", 1000);
  UserResolver users(root.path());
  EXPECT_EQ(users.Name(0), "root");
  EXPECT_EQ(users.Name(1000), "alice");
  EXPECT_EQ(users.Name(1001), "1001");  // unknown: the number
}

TEST(UserResolver, HostRootPasswdRereadWhenItChanges) {
  TempRoot root;
  root.WritePasswd("root:x:0:0::/:\n", 1000);
  UserResolver users(root.path());
  EXPECT_EQ(users.Name(0), "root");
  root.WritePasswd("root:x:0:0::/:\nbob:x:1002:1002::/:\n", 2000);
  // A uid never asked before is found in the new file.
  EXPECT_EQ(users.Name(1002), "bob");
}

TEST(UserResolver, SystemDatabase) {
  UserResolver users;
  EXPECT_EQ(users.Name(0), "root");
  passwd* nobody = getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  EXPECT_EQ(users.Name(nobody->pw_uid), "nobody");
  EXPECT_EQ(users.Name(3999999999u), "3999999999");
}

TEST(UserResolver, HostRootFromEnv) {
  setenv("HOST_ROOT", "/host", 1);
  EXPECT_EQ(UserResolver::HostRootFromEnv(), "/host");
  unsetenv("HOST_ROOT");
  EXPECT_EQ(UserResolver::HostRootFromEnv(), "");
}

}  // namespace
}  // namespace nodescope::sensor::proc
