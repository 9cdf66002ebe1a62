// Test helpers shared by the dns *_test.cc files: captured bytes from testdata/.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "sensor/protocols/dns/parser.h"

namespace nodescope::sensor::dns::testing {

inline std::string TestdataPath(const std::string& name) {
  return std::string(NS_DNS_TESTDATA) + "/" + name;
}

// The bytes of testdata/<name>; an empty vector (and a test failure) when the file is missing.
inline std::vector<uint8_t> ReadTestdata(const std::string& name) {
  std::ifstream in(TestdataPath(name), std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << TestdataPath(name);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Parses a captured message that is known to be valid.
inline Message ParseTestdata(const std::string& name) {
  const std::vector<uint8_t> bytes = ReadTestdata(name);
  Result<Message> m = Parse(bytes);
  EXPECT_TRUE(m.ok()) << name << ": " << m.status().message();
  return m.ok() ? *m : Message{};
}

}  // namespace nodescope::sensor::dns::testing
