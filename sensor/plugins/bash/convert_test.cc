#include "sensor/plugins/bash/convert.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace nodescope::sensor::bash {
namespace {

ns_bash_event Raw(std::string_view line, std::string_view tty) {
  ns_bash_event raw{};
  raw.ts_ns = 123;
  raw.cgroup_id = 98765432109;
  raw.pid = 4321;
  raw.tid = 4321;
  raw.ppid = 4000;
  raw.uid = 1000;
  raw.length = static_cast<uint32_t>(line.size());
  std::memcpy(raw.line, line.data(), line.size());
  std::memcpy(raw.tty, tty.data(), tty.size());
  return raw;
}

std::vector<std::byte> Bytes(const ns_bash_event& raw, size_t size = sizeof(ns_bash_event)) {
  std::vector<std::byte> out(size);
  std::memcpy(out.data(), &raw, std::min(size, sizeof(raw)));
  return out;
}

TEST(BashParseRecord, TakesTheAbiSizeAndABoundedLength) {
  ns_bash_event raw = Raw("ls -la", "pts3");
  std::optional<ns_bash_event> parsed = ParseRecord(Bytes(raw));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->length, 6u);
  EXPECT_EQ(parsed->pid, 4321u);
  EXPECT_FALSE(ParseRecord(Bytes(raw, sizeof(raw) - 8)));
  EXPECT_FALSE(ParseRecord(Bytes(raw, sizeof(raw) + 8)));
  raw.length = NS_BASH_LINE_MAX + 1;
  EXPECT_FALSE(ParseRecord(Bytes(raw)));
  raw.length = 0;  // the probe never sends an empty line
  EXPECT_FALSE(ParseRecord(Bytes(raw)));
  raw.length = NS_BASH_LINE_MAX;
  EXPECT_TRUE(ParseRecord(Bytes(raw)));
}

TEST(BashTtyName, PtsGetsItsDevicePath) {
  EXPECT_EQ(TtyName("pts3"), "pts/3");
  EXPECT_EQ(TtyName("pts12"), "pts/12");
  EXPECT_EQ(TtyName("tty1"), "tty1");
  EXPECT_EQ(TtyName("ttyS0"), "ttyS0");
  EXPECT_EQ(TtyName("pts"), "pts");
  EXPECT_EQ(TtyName("ptsx1"), "ptsx1");
  EXPECT_EQ(TtyName(""), "");
}

TEST(BashFormatMessage, TimeUserPidLine) {
  // 2026-11-30T14:13:47.123456789Z
  EXPECT_EQ(FormatMessage(1796048027123456789, "alice", 4321, "ls -la"),
            "2026-11-30T14:13:47.123456Z alice 4321 ls -la");
  EXPECT_EQ(FormatMessage(1796048027000001000, "root", 1, "x"),
            "2026-11-30T14:13:47.000001Z root 1 x");
}

TEST(BashConvertEvent, EveryField) {
  const std::string line = "echo h\xc3\xa9llo \xe2\x9c\x93";
  ns_bash_event raw = Raw(line, "pts3");
  raw.flags = NS_BASH_TRUNCATED;
  v1::Event event = ConvertEvent(raw, 1796048027123456789, "alice");
  EXPECT_EQ(event.time_unix_nano(), 1796048027123456789);
  ASSERT_TRUE(event.has_bash());
  const v1::BashEvent& b = event.bash();
  EXPECT_EQ(b.cmd(), line);
  EXPECT_TRUE(b.truncated());
  EXPECT_EQ(b.pid(), 4321u);
  EXPECT_EQ(b.ppid(), 4000u);
  EXPECT_EQ(b.uid(), 1000u);
  EXPECT_EQ(b.user(), "alice");
  EXPECT_EQ(b.tty(), "pts/3");
  EXPECT_EQ(b.cgroup_id(), 98765432109u);
  EXPECT_EQ(b.message(), "2026-11-30T14:13:47.123456Z alice 4321 " + line);
}

TEST(BashConvertEvent, NoTtyAndAFullLine) {
  ns_bash_event raw = Raw("", "");
  std::memset(raw.line, 'x', NS_BASH_LINE_MAX);
  raw.length = NS_BASH_LINE_MAX;
  v1::Event event = ConvertEvent(raw, 0, "root");
  EXPECT_EQ(event.bash().cmd(), std::string(NS_BASH_LINE_MAX, 'x'));
  EXPECT_FALSE(event.bash().truncated());
  EXPECT_EQ(event.bash().tty(), "");
}

}  // namespace
}  // namespace nodescope::sensor::bash
