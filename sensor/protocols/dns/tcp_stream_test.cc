// TcpStream on the two byte streams of a real `dig +tcp +keepopen` connection to dnsmasq (two
// queries, two answers), fed whole, in 7-byte chunks and one byte at a time; then broken framing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "sensor/protocols/dns/parser.h"
#include "sensor/protocols/dns/test_util.h"

namespace nodescope::sensor::dns {
namespace {

using ::testing::HasSubstr;
using testing::ReadTestdata;
using Messages = std::vector<std::vector<uint8_t>>;

Messages FeedInChunks(const std::vector<uint8_t>& stream, size_t chunk) {
  TcpStream s;
  Messages out;
  for (size_t pos = 0; pos < stream.size(); pos += chunk) {
    const size_t n = std::min(chunk, stream.size() - pos);
    EXPECT_TRUE(s.Feed(std::span(stream).subspan(pos, n), &out).ok()) << s.error();
  }
  EXPECT_EQ(s.pending_bytes(), 0u);
  EXPECT_EQ(s.stream_offset(), stream.size());
  return out;
}

Message ParseOk(const std::vector<uint8_t>& bytes) {
  Result<Message> m = Parse(bytes);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? *m : Message{};
}

TEST(DnsTcpStream, CapturedConnectionWholeIn7ByteChunksAndByteByByte) {
  for (const char* side : {"tcp_two.client.bin", "tcp_two.server.bin"}) {
    SCOPED_TRACE(side);
    const std::vector<uint8_t> stream = ReadTestdata(side);
    const Messages whole = FeedInChunks(stream, stream.size());
    ASSERT_EQ(whole.size(), 2u);
    EXPECT_EQ(FeedInChunks(stream, 7), whole);
    EXPECT_EQ(FeedInChunks(stream, 1), whole);
    // The prefix is the message length (RFC 1035 4.2.2); the messages fill the stream exactly.
    EXPECT_EQ(whole[0].size() + whole[1].size() + 4, stream.size());

    const Message first = ParseOk(whole[0]);
    const Message second = ParseOk(whole[1]);
    EXPECT_EQ(first.id, 18050);
    EXPECT_EQ(second.id, 1231);
    ASSERT_EQ(first.questions.size(), 1u);
    ASSERT_EQ(second.questions.size(), 1u);
    EXPECT_EQ(first.questions[0], (Question{"example.test", kTypeA, kClassIn}));
    EXPECT_EQ(second.questions[0], (Question{"www.example.test", kTypeA, kClassIn}));
    EXPECT_EQ(first.response, second.response);
    if (first.response) {
      ASSERT_EQ(first.answers.size(), 1u);
      EXPECT_EQ(first.answers[0].Address().size(), 4u);
      EXPECT_EQ(first.answers[0].address[3], 10);
      ASSERT_EQ(second.answers.size(), 1u);
      EXPECT_EQ(second.answers[0].target, "example.test");
    }
  }
}

TEST(DnsTcpStream, PartialFrameStaysPending) {
  const std::vector<uint8_t> stream = ReadTestdata("tcp_two.client.bin");
  TcpStream s;
  Messages out;
  ASSERT_TRUE(s.Feed(std::span(stream).first(60), &out).ok());
  ASSERT_EQ(out.size(), 1u);  // the first frame is 2 + 53 bytes
  EXPECT_EQ(s.stream_offset(), 55u);
  EXPECT_EQ(s.pending_bytes(), 5u);
  ASSERT_TRUE(s.Feed(std::span(stream).subspan(60), &out).ok());
  EXPECT_EQ(out.size(), 2u);
  EXPECT_EQ(s.pending_bytes(), 0u);
}

TEST(DnsTcpStream, LengthBelowAHeaderFailsTheStream) {
  for (size_t chunk : {1, 3, 100}) {
    SCOPED_TRACE(chunk);
    // A valid first message, then a frame of length 0.
    std::vector<uint8_t> stream = ReadTestdata("tcp_two.client.bin");
    stream.resize(55);
    stream.insert(stream.end(), {0, 0, 1, 2, 3});
    TcpStream s;
    Messages out;
    Status last;
    for (size_t pos = 0; pos < stream.size(); pos += chunk) {
      last = s.Feed(std::span(stream).subspan(pos, std::min(chunk, stream.size() - pos)), &out);
    }
    EXPECT_TRUE(s.failed());
    EXPECT_EQ(out.size(), 1u);
    EXPECT_EQ(s.error(),
              "TCP frame at stream offset 55 has length 0, below the 12-byte DNS header: not a "
              "DNS stream or framing lost");
    EXPECT_EQ(last.message(), s.error());
    // A failed stream takes nothing more, even a valid frame.
    EXPECT_FALSE(s.Feed(ReadTestdata("tcp_two.client.bin"), &out).ok());
    EXPECT_EQ(out.size(), 1u);
    EXPECT_EQ(s.pending_bytes(), 0u);
  }
  TcpStream eleven;
  Messages out;
  const Status st = eleven.Feed(std::vector<uint8_t>{0, 11}, &out);
  EXPECT_THAT(st.message(), HasSubstr("offset 0 has length 11"));
}

TEST(DnsTcpStream, GapFailsTheStreamAfterWhatWasWhole) {
  const std::vector<uint8_t> stream = ReadTestdata("tcp_two.server.bin");
  // The capture kept 70 of the 132 bytes one recv() returned: the first message (2 + 57) is
  // whole and delivered; where the second ends cannot be known.
  TcpStream s;
  Messages out;
  Status st = s.Feed(std::span(stream).first(70), stream.size(), &out);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.message(),
            "gap at stream offset 70: the capture holds 70 of the 132 bytes the socket moved; "
            "framing lost");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(ParseOk(out[0]).id, 18050);
  EXPECT_TRUE(s.failed());
  EXPECT_EQ(s.pending_bytes(), 0u);
}

TEST(DnsTcpStream, LargestMessageIsBoundedAndWhole) {
  std::vector<uint8_t> stream = {0xFF, 0xFF};
  stream.resize(2 + 65535, 0xAB);
  stream.insert(stream.end(), {0xFF});  // the first byte of the next prefix
  TcpStream s;
  Messages out;
  for (size_t pos = 0; pos < stream.size(); pos += 4096) {
    ASSERT_TRUE(
        s.Feed(std::span(stream).subspan(pos, std::min<size_t>(4096, stream.size() - pos)), &out)
            .ok());
    EXPECT_LE(s.pending_bytes(), TcpStream::kMaxFrame);
  }
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].size(), 65535u);
  EXPECT_EQ(s.pending_bytes(), 1u);
}

}  // namespace
}  // namespace nodescope::sensor::dns
