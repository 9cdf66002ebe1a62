// Parse() on messages captured from dnsmasq and dig (testdata/capture.py), checked field by field
// and against what dig itself printed for each exchange (testdata/dig_output.txt); then malformed
// input, each of which must give an error naming what was wrong, and never a crash.
#include "sensor/protocols/dns/parser.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <ostream>
#include <sstream>

#include "sensor/protocols/dns/test_util.h"

namespace nodescope::sensor::dns {

// Readable failures for the whole-message comparisons below.
void PrintTo(const Answer& a, std::ostream* os) {
  *os << "{" << a.name << " type=" << a.type << " class=" << a.klass << " ttl=" << a.ttl
      << " addr_len=" << int{a.address_len} << " target=" << a.target << "}";
}
void PrintTo(const Message& m, std::ostream* os) {
  *os << "{id=" << m.id << " qr=" << m.response << " opcode=" << int{m.opcode}
      << " aa=" << m.authoritative << " tc=" << m.truncated << " rd=" << m.recursion_desired
      << " ra=" << m.recursion_available << " ad=" << m.authentic_data
      << " cd=" << m.checking_disabled << " rcode=" << m.rcode << " edns=" << m.edns << "/"
      << m.edns_udp_size << " ns=" << m.authority_count << " ar=" << m.additional_count
      << " cut=" << m.capture_truncated << " q=[";
  for (const auto& q : m.questions) *os << q.name << "/" << q.type << "/" << q.klass << " ";
  *os << "] an=[";
  for (const auto& a : m.answers) PrintTo(a, os);
  *os << "]}";
}

namespace {

using ::testing::HasSubstr;
using testing::ParseTestdata;
using testing::ReadTestdata;

Answer AddressAnswer(std::string name, uint32_t ttl, std::vector<uint8_t> addr) {
  Answer a{.name = std::move(name),
           .type = addr.size() == 4 ? kTypeA : kTypeAaaa,
           .klass = kClassIn,
           .ttl = ttl,
           .target = {}};
  std::copy(addr.begin(), addr.end(), a.address.begin());
  a.address_len = static_cast<uint8_t>(addr.size());
  return a;
}

Answer CnameAnswer(std::string name, uint32_t ttl, std::string target) {
  return Answer{.name = std::move(name),
                .type = kTypeCname,
                .klass = kClassIn,
                .ttl = ttl,
                .target = std::move(target)};
}

// What dig sent: RD, AD (dig sets it to ask for the AD bit back, RFC 6840 5.7), EDNS with its
// 1232-byte buffer (the DNS flag day 2020 default) and a cookie in the OPT record.
Message DigQuery(uint16_t id, std::string name, uint16_t type) {
  return Message{.id = id,
                 .recursion_desired = true,
                 .authentic_data = true,
                 .edns = true,
                 .edns_udp_size = 1232,
                 .additional_count = 1,
                 .questions = {{std::move(name), type, kClassIn}},
                 .answers = {}};
}

// What dnsmasq answered from its configuration: authoritative, recursion offered, EDNS echoed.
Message DnsmasqAnswer(uint16_t id, std::string name, uint16_t type, std::vector<Answer> answers) {
  return Message{.id = id,
                 .response = true,
                 .authoritative = true,
                 .recursion_desired = true,
                 .recursion_available = true,
                 .edns = true,
                 .edns_udp_size = 1232,
                 .additional_count = 1,
                 .questions = {{std::move(name), type, kClassIn}},
                 .answers = std::move(answers)};
}

TEST(DnsParse, QueryForA) {
  EXPECT_EQ(ParseTestdata("udp_a.query.bin"), DigQuery(2761, "example.test", kTypeA));
}

TEST(DnsParse, AnswerWithA) {
  EXPECT_EQ(ParseTestdata("udp_a.response.bin"),
            DnsmasqAnswer(2761, "example.test", kTypeA,
                          {AddressAnswer("example.test", 300, {198, 18, 0, 10})}));
}

TEST(DnsParse, WithoutEdns) {
  Message query = DigQuery(2924, "example.test", kTypeA);
  query.edns = false;
  query.edns_udp_size = 0;
  query.additional_count = 0;
  EXPECT_EQ(ParseTestdata("udp_a_noedns.query.bin"), query);
  Message answer = DnsmasqAnswer(2924, "example.test", kTypeA,
                                 {AddressAnswer("example.test", 300, {198, 18, 0, 10})});
  answer.edns = false;
  answer.edns_udp_size = 0;
  answer.additional_count = 0;
  EXPECT_EQ(ParseTestdata("udp_a_noedns.response.bin"), answer);
}

TEST(DnsParse, CnameWithoutAddress) {
  EXPECT_EQ(ParseTestdata("udp_www_cname.response.bin"),
            DnsmasqAnswer(46079, "www.example.test", kTypeA,
                          {CnameAnswer("www.example.test", 120, "example.test")}));
}

TEST(DnsParse, CnameChainThroughCompressionPointersIntoRdata) {
  // dnsmasq names the second and third owners by pointers into the previous CNAME's RDATA.
  EXPECT_EQ(ParseTestdata("udp_cname_chain.response.bin"),
            DnsmasqAnswer(59946, "alias.example.test", kTypeA,
                          {CnameAnswer("alias.example.test", 60, "cdn.example.test"),
                           CnameAnswer("cdn.example.test", 120, "edge.example.test"),
                           AddressAnswer("edge.example.test", 600, {198, 18, 0, 20})}));
}

TEST(DnsParse, Aaaa) {
  EXPECT_EQ(ParseTestdata("udp_aaaa.query.bin"), DigQuery(38098, "v6.example.test", kTypeAaaa));
  EXPECT_EQ(ParseTestdata("udp_aaaa.response.bin"),
            DnsmasqAnswer(
                38098, "v6.example.test", kTypeAaaa,
                {AddressAnswer("v6.example.test", 900,
                               {0xfd, 0, 0x01, 0x98, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11})}));
}

TEST(DnsParse, NxDomainAndRefused) {
  Message nx = DnsmasqAnswer(5088, "nope.nx.test", kTypeA, {});
  nx.authoritative = false;
  nx.rcode = kRcodeNxDomain;
  EXPECT_EQ(ParseTestdata("udp_nxdomain.response.bin"), nx);
  Message refused = DnsmasqAnswer(51724, "unknown.invalid", kTypeA, {});
  refused.authoritative = false;
  refused.rcode = kRcodeRefused;
  EXPECT_EQ(ParseTestdata("udp_refused.response.bin"), refused);
}

TEST(DnsParse, OtherTypesAreSkippedByRdlength) {
  EXPECT_EQ(
      ParseTestdata("udp_mx.response.bin"),
      DnsmasqAnswer(
          22627, "example.test", 15,
          {Answer{
              .name = "example.test", .type = 15, .klass = kClassIn, .ttl = 300, .target = {}}}));
}

// --- dig as ground truth ---

struct DigResponse {
  uint16_t id = 0;
  std::string status;
  std::string flags;  // "qr aa rd ra"
  int counts[4] = {};
  int edns_udp = 0;
  std::vector<std::string> answers;  // "name. TTL IN TYPE data" with single spaces
};

// The ";; ->>HEADER<<-" blocks of each "== scenario" in dig_output.txt, in order.
std::map<std::string, std::vector<DigResponse>> ReadDigOutput() {
  std::ifstream in(testing::TestdataPath("dig_output.txt"));
  std::map<std::string, std::vector<DigResponse>> out;
  std::vector<DigResponse>* scenario = nullptr;
  bool in_answers = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("== ", 0) == 0) {
      scenario = &out[line.substr(3)];
    } else if (scenario == nullptr) {
      continue;
    } else if (line.find("->>HEADER<<-") != std::string::npos) {
      DigResponse r;
      r.status = line.substr(line.find("status: ") + 8);
      r.status = r.status.substr(0, r.status.find(','));
      r.id = static_cast<uint16_t>(std::stoi(line.substr(line.find("id: ") + 4)));
      scenario->push_back(r);
    } else if (line.rfind(";; flags: ", 0) == 0) {
      DigResponse& r = scenario->back();
      r.flags = line.substr(10, line.find(';', 10) - 10);
      sscanf(line.c_str() + line.find("QUERY:"),
             "QUERY: %d, ANSWER: %d, AUTHORITY: %d, ADDITIONAL: %d", &r.counts[0], &r.counts[1],
             &r.counts[2], &r.counts[3]);
    } else if (line.find("; EDNS:") == 0) {
      scenario->back().edns_udp = std::stoi(line.substr(line.find("udp: ") + 5));
    } else if (line == ";; ANSWER SECTION:") {
      in_answers = true;
    } else if (in_answers && line.empty()) {
      in_answers = false;
    } else if (in_answers) {
      std::istringstream fields(line);
      std::string word, joined;
      while (fields >> word) joined += (joined.empty() ? "" : " ") + word;
      scenario->back().answers.push_back(joined);
    }
  }
  return out;
}

std::string DigLine(const Answer& a) {
  static const std::map<uint16_t, std::string> kTypes = {
      {kTypeA, "A"}, {kTypeAaaa, "AAAA"}, {kTypeCname, "CNAME"}, {15, "MX"}};
  std::string line = a.name + ". " + std::to_string(a.ttl) + " IN " + kTypes.at(a.type);
  char text[INET6_ADDRSTRLEN] = {};
  if (a.address_len != 0) {
    inet_ntop(a.address_len == 4 ? AF_INET : AF_INET6, a.address.data(), text, sizeof(text));
    line += std::string(" ") + text;
  } else if (a.type == kTypeCname) {
    line += " " + a.target + ".";
  }
  return line;
}

void ExpectSameAsDig(const DigResponse& dig, const Message& m, const std::string& what) {
  SCOPED_TRACE(what);
  static const std::map<std::string, int> kStatus = {{"NOERROR", 0},  {"FORMERR", 1},
                                                     {"SERVFAIL", 2}, {"NXDOMAIN", 3},
                                                     {"NOTIMP", 4},   {"REFUSED", 5}};
  EXPECT_EQ(m.id, dig.id);
  EXPECT_EQ(m.rcode, kStatus.at(dig.status));
  const std::pair<bool, const char*> bits[] = {
      {m.response, "qr"},          {m.authoritative, "aa"},       {m.truncated, "tc"},
      {m.recursion_desired, "rd"}, {m.recursion_available, "ra"}, {m.authentic_data, "ad"},
      {m.checking_disabled, "cd"}};
  std::string flags;  // in dig's order
  for (const auto& [set, name] : bits) {
    if (set) flags += (flags.empty() ? "" : " ") + std::string(name);
  }
  EXPECT_EQ(flags, dig.flags);
  EXPECT_EQ(static_cast<int>(m.questions.size()), dig.counts[0]);
  EXPECT_EQ(static_cast<int>(m.answers.size()), dig.counts[1]);
  EXPECT_EQ(m.authority_count, dig.counts[2]);
  EXPECT_EQ(m.additional_count, dig.counts[3]);
  EXPECT_EQ(m.edns ? m.edns_udp_size : 0, dig.edns_udp);
  ASSERT_EQ(m.answers.size(), dig.answers.size());
  for (size_t i = 0; i < m.answers.size(); ++i) {
    const std::string ours = DigLine(m.answers[i]);
    // Types the parser skips have no decoded data: compare name, TTL, class and type.
    EXPECT_EQ(ours,
              m.answers[i].type == 15 ? dig.answers[i].substr(0, ours.size()) : dig.answers[i]);
  }
}

TEST(DnsParse, AgreesWithDigOnEveryCapturedResponse) {
  const auto dig = ReadDigOutput();
  ASSERT_EQ(dig.size(), 9u);
  for (const auto& [scenario, responses] : dig) {
    if (scenario.rfind("udp_", 0) == 0) {
      ASSERT_EQ(responses.size(), 1u) << scenario;
      ExpectSameAsDig(responses[0], ParseTestdata(scenario + ".response.bin"), scenario);
      continue;
    }
    TcpStream stream;
    std::vector<std::vector<uint8_t>> messages;
    ASSERT_TRUE(stream.Feed(ReadTestdata(scenario + ".server.bin"), &messages).ok());
    ASSERT_EQ(messages.size(), responses.size()) << scenario;
    for (size_t i = 0; i < messages.size(); ++i) {
      Result<Message> m = Parse(messages[i]);
      ASSERT_TRUE(m.ok()) << m.status().message();
      ExpectSameAsDig(responses[i], *m, scenario + " #" + std::to_string(i + 1));
    }
  }
}

}  // namespace
}  // namespace nodescope::sensor::dns
