#include "aggregator/api/bearer_token.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/testing/temp_dir.h"

namespace nodescope::aggregator::api {
namespace {

using test::TempDir;

std::string Bearer(const std::string& token) { return "Bearer " + token; }

TEST(BearerToken, AcceptsOnlyTheTokenOfTheFile) {
  TempDir dir;
  dir.Write("token", "s3cret-token\n");
  auto token = BearerToken::Open("api_token", dir.File("token"));
  ASSERT_TRUE(token.ok()) << token.status().message();
  BearerToken& t = **token;
  const std::string good = Bearer("s3cret-token");
  EXPECT_TRUE(t.Check(&good).ok());
  const std::string lower = "bearer s3cret-token";
  EXPECT_TRUE(t.Check(&lower).ok()) << "the scheme is case-insensitive (RFC 7235)";

  EXPECT_EQ(t.Check(nullptr).message(),
            "missing bearer token (metadata authorization: Bearer <token>)");
  for (const std::string bad : {"s3cret-token", "Basic s3cret-token", "Bearer ", "Bearer"}) {
    EXPECT_EQ(t.Check(&bad).message(), "authorization metadata is not \"Bearer <token>\"") << bad;
  }
  for (const std::string bad : {"s3cret-tokeN", "s3cret-token2", "s3cret-toke", "x"}) {
    const std::string header = Bearer(bad);
    EXPECT_EQ(t.Check(&header).message(), "wrong bearer token") << bad;
  }
}

TEST(BearerToken, RereadsTheFileWhenItChanges) {
  TempDir dir;
  dir.Write("token", "first\n");
  auto token = BearerToken::Open("api_token", dir.File("token"));
  ASSERT_TRUE(token.ok());
  const std::string first = Bearer("first"), second = Bearer("second");
  EXPECT_TRUE((*token)->Check(&first).ok());

  // How kubelet updates a Secret volume: a new file, renamed over the old name.
  dir.Write("token.new", "second\n");
  std::filesystem::rename(dir.File("token.new"), dir.File("token"));
  EXPECT_TRUE((*token)->Check(&second).ok());
  EXPECT_FALSE((*token)->Check(&first).ok());

  // Emptied or removed: the last good token stays.
  dir.Write("token", "");
  EXPECT_TRUE((*token)->Check(&second).ok());
  std::filesystem::remove(dir.File("token"));
  EXPECT_TRUE((*token)->Check(&second).ok());
  dir.Write("token", "third");
  const std::string third = Bearer("third");
  EXPECT_TRUE((*token)->Check(&third).ok());
  EXPECT_FALSE((*token)->Check(&second).ok());
}

TEST(BearerToken, BadFilesAreOneLineNamingOptionAndPath) {
  TempDir dir;
  auto missing = BearerToken::Open("api_token", dir.File("none"));
  EXPECT_EQ(missing.status().message(),
            "api_token \"" + dir.File("none") + "\": No such file or directory");
  dir.Write("empty", " \n");
  EXPECT_EQ(BearerToken::Open("api_token", dir.File("empty")).status().message(),
            "api_token \"" + dir.File("empty") + "\": the file is empty");
  dir.Write("two", "a b\n");
  EXPECT_NE(BearerToken::Open("api_token", dir.File("two"))
                .status()
                .message()
                .find("holds more than one word"),
            std::string::npos);
  EXPECT_EQ(BearerToken::Open("api_token", dir.path()).status().message(),
            "api_token \"" + dir.path() + "\": not a regular file");
}

}  // namespace
}  // namespace nodescope::aggregator::api
