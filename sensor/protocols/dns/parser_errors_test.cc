// Hostile and broken input: every case must come back as an error that says what was wrong (or,
// for a message cut by its capture or its sender, as what was whole), never as a crash.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

#include "sensor/protocols/dns/parser.h"
#include "sensor/protocols/dns/test_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);  // fuzz.cc

namespace nodescope::sensor::dns {
namespace {

using ::testing::HasSubstr;
using testing::ReadTestdata;

// A message under construction: header with id 0x1234, then whatever the test appends.
struct Bytes {
  std::vector<uint8_t> b;

  Bytes(uint16_t qd, uint16_t an, uint16_t ns = 0, uint16_t ar = 0, uint8_t flags = 0x81) {
    b = {0x12, 0x34, flags, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    Put16(4, qd);
    Put16(6, an);
    Put16(8, ns);
    Put16(10, ar);
  }
  void Put16(size_t at, uint16_t v) {
    b[at] = static_cast<uint8_t>(v >> 8);
    b[at + 1] = static_cast<uint8_t>(v);
  }
  Bytes& Raw(std::initializer_list<uint8_t> v) {
    b.insert(b.end(), v);
    return *this;
  }
  Bytes& U16(uint16_t v) { return Raw({static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)}); }
  Bytes& U32(uint32_t v) {
    return U16(static_cast<uint16_t>(v >> 16)).U16(static_cast<uint16_t>(v));
  }
  Bytes& Label(const std::string& s) {
    b.push_back(static_cast<uint8_t>(s.size()));
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& Name(std::initializer_list<std::string> labels) {
    for (const auto& l : labels) Label(l);
    return Raw({0});
  }
  // TYPE, CLASS (IN) of a question, or TYPE, CLASS, TTL, RDLENGTH of a record.
  Bytes& Q(uint16_t type) { return U16(type).U16(kClassIn); }
  Bytes& Rr(uint16_t type, uint16_t rdlength, uint16_t klass = kClassIn) {
    return U16(type).U16(klass).U32(300).U16(rdlength);
  }
};

std::string ErrorOf(const std::vector<uint8_t>& bytes) {
  Result<Message> m = Parse(bytes);
  EXPECT_FALSE(m.ok()) << "parsed, but should not have";
  return m.status().message();
}

TEST(DnsParseErrors, CompressionLoops) {
  // A pointer to itself, and one back to the start of the labels that led to it.
  EXPECT_THAT(ErrorOf(Bytes(1, 0).Raw({0xC0, 12}).Q(kTypeA).b),
              HasSubstr("question 1: compression pointer at offset 12 points to offset 12, not "
                        "before offset 12"));
  EXPECT_THAT(ErrorOf(Bytes(1, 0).Raw({1, 'a', 0xC0, 12}).Q(kTypeA).b),
              HasSubstr("pointer at offset 14 points to offset 12, not before offset 12"));
  // Two names pointing at each other: the answer's pointer is backwards, the question's forward.
  EXPECT_THAT(
      ErrorOf(Bytes(1, 1).Raw({0xC0, 18}).Q(kTypeA).Raw({0xC0, 12}).Rr(1, 4).Raw({1, 2, 3, 4}).b),
      HasSubstr("question 1: compression pointer at offset 12 points to offset 18"));
  // A CNAME target pointing into its own RDATA.
  Bytes cname(1, 1);
  cname.Name({"a"}).Q(kTypeA).Raw({0xC0, 12}).Rr(kTypeCname, 4).Raw({1, 'b', 0xC0, 31});
  EXPECT_THAT(ErrorOf(cname.b), HasSubstr("answer 1: CNAME target: compression pointer at "
                                          "offset 33 points to offset 31, not before offset 31"));
}

TEST(DnsParseErrors, PointersOutOfBounds) {
  EXPECT_THAT(ErrorOf(Bytes(1, 0).Raw({0xC0, 2}).Q(kTypeA).b),
              HasSubstr("points into the header (offset 2)"));
  EXPECT_THAT(ErrorOf(Bytes(1, 0).Raw({0xFF, 0xFF}).Q(kTypeA).b),
              HasSubstr("points to offset 16383, not before offset 12"));
  EXPECT_THAT(ErrorOf(Bytes(1, 0).Raw({1, 'a', 1, 'b', 0xC0}).b),
              HasSubstr("compression pointer at offset 16 is cut off"));
}

TEST(DnsParseErrors, LabelAndNameLimits) {
  EXPECT_THAT(ErrorOf(Bytes(1, 0).Raw({10, 'a', 'b', 'c', 'd'}).b),
              HasSubstr("label at offset 12 of 10 bytes runs past the end of the 17-byte"));
  EXPECT_THAT(ErrorOf(Bytes(1, 0).Raw({0x40, 'a', 0}).Q(kTypeA).b),
              HasSubstr("label at offset 12 has unsupported type bits 01"));
  EXPECT_THAT(ErrorOf(Bytes(1, 0).Raw({0x80, 'a', 0}).Q(kTypeA).b),
              HasSubstr("unsupported type bits 10"));

  // 255 wire bytes is the limit (RFC 1035 2.3.4): 3 x 63-byte labels + 61 + root.
  const std::string l63(63, 'x');
  Result<Message> max = Parse(Bytes(1, 0).Name({l63, l63, l63, std::string(61, 'y')}).Q(1).b);
  ASSERT_TRUE(max.ok()) << max.status().message();
  EXPECT_EQ(max->questions[0].name.size(), 253u);
  EXPECT_THAT(ErrorOf(Bytes(1, 0).Name({l63, l63, l63, std::string(62, 'y')}).Q(1).b),
              HasSubstr("name at offset 12 is longer than 255 bytes"));
  // The limit holds across pointers: 2 labels here + the question's 3 through a pointer.
  Bytes joined(1, 1);
  joined.Name({l63, l63, l63}).Q(kTypeA).Label(l63).Label(l63).Raw({0xC0, 12}).Rr(1, 4);
  joined.Raw({1, 2, 3, 4});
  EXPECT_THAT(ErrorOf(joined.b), HasSubstr("answer 1: name at offset 209 is longer than 255"));
}

TEST(DnsParseErrors, CutShort) {
  EXPECT_THAT(ErrorOf({}), HasSubstr("message of 0 bytes is shorter than the 12-byte header"));
  EXPECT_THAT(ErrorOf({0x12, 0x34, 1, 0, 0}), HasSubstr("message of 5 bytes"));
  EXPECT_THAT(ErrorOf(Bytes(1, 0).Name({"a"}).Raw({0, 1}).b),
              HasSubstr("question 1: TYPE/CLASS at offset 15 run past the end"));
  EXPECT_THAT(ErrorOf(Bytes(1, 1).Name({"a"}).Q(1).Raw({0xC0, 12}).Rr(1, 4).Raw({1, 2}).b),
              HasSubstr("answer 1: RDATA of 4 bytes at offset 31 runs past the end"));
  EXPECT_THAT(ErrorOf(Bytes(1, 1).Name({"a"}).Q(1).Raw({0xC0, 12, 0, 1, 0, 1, 0, 0, 0}).b),
              HasSubstr("answer 1: TYPE/CLASS/TTL/RDLENGTH at offset 21 run past the end"));
}

TEST(DnsParseErrors, HugeCountsAreBoundedByTheBytesPresent) {
  EXPECT_THAT(ErrorOf(Bytes(65535, 0).Name({"a"}).Q(1).b),
              HasSubstr("section counts (65535 questions, 0 answers, 0 authority, 0 additional) "
                        "need at least 327675 bytes after the header, the message has 7"));
  EXPECT_THAT(ErrorOf(Bytes(1, 65535).Name({"a"}).Q(1).b), HasSubstr("65535 answers"));
  EXPECT_THAT(ErrorOf(Bytes(0, 0, 65535, 65535).b), HasSubstr("65535 additional"));
}

TEST(DnsParseErrors, RdataThatContradictsItsType) {
  EXPECT_THAT(
      ErrorOf(Bytes(1, 1).Name({"a"}).Q(1).Raw({0xC0, 12}).Rr(kTypeA, 5).Raw({1, 2, 3, 4, 5}).b),
      HasSubstr("answer 1: A record with RDLENGTH 5 at offset 31 (an address is 4 bytes)"));
  EXPECT_THAT(
      ErrorOf(Bytes(1, 1).Name({"a"}).Q(1).Raw({0xC0, 12}).Rr(kTypeAaaa, 4).Raw({1, 2, 3, 4}).b),
      HasSubstr("AAAA record with RDLENGTH 4"));
  EXPECT_THAT(
      ErrorOf(
          Bytes(1, 1).Name({"a"}).Q(1).Raw({0xC0, 12}).Rr(kTypeCname, 5).Raw({1, 'b', 0, 9, 9}).b),
      HasSubstr("answer 1: CNAME target at offset 31 ends at 34, RDLENGTH says 36"));
  // In class CH an A record is a 16-bit Chaosnet address (RFC 1035 3.4 makes A Internet-specific):
  // not an IP, and no error.
  Result<Message> chaos =
      Parse(Bytes(1, 1).Name({"a"}).Q(1).Raw({0xC0, 12}).Rr(kTypeA, 2, 3).Raw({1, 2}).b);
  ASSERT_TRUE(chaos.ok()) << chaos.status().message();
  EXPECT_EQ(chaos->answers[0].address_len, 0);
  EXPECT_EQ(chaos->answers[0].klass, 3);
}

TEST(DnsParse, NamesInPresentationForm) {
  Bytes m(3, 0);
  m.Raw({0}).Q(2);                                           // the root
  m.Name({"ExAmPle", "Test"}).Q(1);                          // case as sent (0x20)
  m.Raw({3, 'a', '.', 'b', 4, 0, ' ', 'c', '\\', 0}).Q(16);  // a dot, NUL, space, backslash
  Result<Message> r = Parse(m.b);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->questions[0].name, ".");
  EXPECT_EQ(r->questions[1].name, "ExAmPle.Test");
  EXPECT_EQ(r->questions[2].name, "a\\.b.\\000\\032c\\\\");
}

TEST(DnsParse, ExtendedRcodeFromOpt) {
  // BADCOOKIE (23, RFC 7873): 7 in the header, 1 in the OPT TTL's top byte (RFC 6891 6.1.3).
  std::vector<uint8_t> bytes = ReadTestdata("udp_a.response.bin");
  ASSERT_EQ(bytes.size(), 57u);
  bytes[3] |= 7;
  bytes[57 - 6] = 1;  // OPT is last: TTL (4 bytes) then RDLENGTH (2)
  Result<Message> m = Parse(bytes);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->rcode, 23);
}

TEST(DnsParse, CaptureCutShort) {
  // The CNAME chain answer is 124 bytes: question to 36, answers end at 66, 97 and 113.
  const std::vector<uint8_t> bytes = ReadTestdata("udp_cname_chain.response.bin");
  ASSERT_EQ(bytes.size(), 124u);
  const std::span<const uint8_t> all(bytes);
  const std::pair<size_t, size_t> cuts[] = {{36, 0}, {65, 0}, {66, 1}, {97, 2}, {113, 3}};
  for (const auto& [cut, answers] : cuts) {
    Result<Message> m = Parse(all.first(cut), bytes.size());
    ASSERT_TRUE(m.ok()) << cut << ": " << m.status().message();
    EXPECT_TRUE(m->capture_truncated);
    EXPECT_EQ(m->id, 59946);
    EXPECT_EQ(m->questions.size(), 1u);
    EXPECT_EQ(m->answers.size(), answers) << cut;
    EXPECT_FALSE(m->edns);  // the OPT record was not captured
  }
  Result<Message> cut_question = Parse(all.first(30), bytes.size());
  EXPECT_THAT(cut_question.status().message(),
              HasSubstr("question 1 (capture of 30 of 124 bytes): label at offset 26 of 4"));
  Result<Message> whole = Parse(all, bytes.size());
  ASSERT_TRUE(whole.ok());
  EXPECT_FALSE(whole->capture_truncated);
  EXPECT_TRUE(whole->edns);
}

TEST(DnsParse, TruncatedBySenderKeepsWholeRecords) {
  // TC set (RFC 1035 4.1.1): the answer count promises two records, one is whole.
  Bytes m(1, 2, 0, 0, 0x83);
  m.Name({"a"}).Q(1).Raw({0xC0, 12}).Rr(kTypeA, 4).Raw({198, 18, 0, 1}).Raw({0xC0, 12, 0});
  Result<Message> r = Parse(m.b);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->truncated);
  ASSERT_EQ(r->answers.size(), 1u);
  EXPECT_EQ(r->answers[0].Address().size(), 4u);
  // Without TC the same bytes are an error.
  m.b[2] = 0x81;
  EXPECT_THAT(ErrorOf(m.b), HasSubstr("section counts"));
}

TEST(DnsParse, RegressionCorpus) {
  // Every file the fuzzer was seeded with or found, through the fuzzer's own checks.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(testing::TestdataPath("fuzz"))) {
    const std::vector<uint8_t> bytes = ReadTestdata("fuzz/" + entry.path().filename().string());
    SCOPED_TRACE(entry.path().string());
    EXPECT_EQ(LLVMFuzzerTestOneInput(bytes.data(), bytes.size()), 0);
    ++files;
  }
  EXPECT_GE(files, 18);
}

}  // namespace
}  // namespace nodescope::sensor::dns
