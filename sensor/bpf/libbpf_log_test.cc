#include "sensor/bpf/libbpf_log.h"

#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <thread>

#include "sensor/bpf/programs.h"

namespace nodescope::sensor::bpf {
namespace {

TEST(LibbpfLogCapture, KeepsWarningsWithoutTrailers) {
  LibbpfLogCapture capture;
  LibbpfLogCapture::Record(LIBBPF_DEBUG, "libbpf: loading object\n");
  LibbpfLogCapture::Record(LIBBPF_INFO, "libbpf: info\n");
  LibbpfLogCapture::Record(LIBBPF_WARN, "libbpf: Error in bpf_create_map_xattr(c). Retrying\n");
  LibbpfLogCapture::Record(LIBBPF_WARN, "libbpf: map 'c': failed to create: Invalid argument\n");
  LibbpfLogCapture::Record(LIBBPF_WARN, "libbpf: failed to load object 'x'\n");
  LibbpfLogCapture::Record(LIBBPF_WARN, "libbpf: failed to load BPF skeleton 'x': -22\n");
  EXPECT_EQ(LibbpfLogCapture::Warnings(),
            "Error in bpf_create_map_xattr(c). Retrying; map 'c': failed to create: Invalid "
            "argument");
}

TEST(LibbpfLogCapture, AtMostThreeWarnings) {
  LibbpfLogCapture capture;
  for (const char* w : {"libbpf: a\n", "libbpf: b\n", "libbpf: c\n", "libbpf: d\n"}) {
    LibbpfLogCapture::Record(LIBBPF_WARN, w);
  }
  EXPECT_EQ(LibbpfLogCapture::Warnings(), "a; b; c");
}

TEST(LibbpfLogCapture, QuotesTheVerifierReason) {
  LibbpfLogCapture capture;
  LibbpfLogCapture::Record(LIBBPF_WARN,
                           "libbpf: prog 'p': BPF program load failed: Permission denied\n");
  LibbpfLogCapture::Record(
      LIBBPF_WARN,
      "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --\n0: (b7) r0 = 0\n"
      "R1 invalid mem access 'scalar'\nprocessed 4 insns (limit 1000000) max_states_per_insn 0\n"
      "verification time 10 usec\nstack depth 0\n-- END PROG LOAD LOG --\n");
  LibbpfLogCapture::Record(LIBBPF_WARN, "libbpf: prog 'p': failed to load: -13\n");
  EXPECT_EQ(LibbpfLogCapture::Warnings(),
            "prog 'p': BPF program load failed: Permission denied; prog 'p': failed to load: -13; "
            "verifier: R1 invalid mem access 'scalar'");
}

TEST(LibbpfLogCapture, NothingOutsideACaptureAndCapturesNest) {
  LibbpfLogCapture::Record(LIBBPF_WARN, "libbpf: lost\n");
  EXPECT_EQ(LibbpfLogCapture::Warnings(), "");
  LibbpfLogCapture outer;
  LibbpfLogCapture::Record(LIBBPF_WARN, "libbpf: outer\n");
  {
    LibbpfLogCapture inner;
    EXPECT_EQ(LibbpfLogCapture::Warnings(), "");
    LibbpfLogCapture::Record(LIBBPF_WARN, "libbpf: inner\n");
    EXPECT_EQ(LibbpfLogCapture::Warnings(), "inner");
  }
  EXPECT_EQ(LibbpfLogCapture::Warnings(), "outer");
}

TEST(LibbpfLogCapture, PerThread) {
  LibbpfLogCapture capture;
  std::thread other([] { LibbpfLogCapture::Record(LIBBPF_WARN, "libbpf: other thread\n"); });
  other.join();
  EXPECT_EQ(LibbpfLogCapture::Warnings(), "");
}

// Through the real callback: libbpf's own complaint about a file that is not there.
TEST(LibbpfLogCapture, RealLibbpfMessage) {
  InstallLibbpfLogger();
  LibbpfLogCapture capture;
  bpf_object* object = bpf_object__open_file("/nonexistent/nodescope.bpf.o", nullptr);
  int err = errno;
  ASSERT_EQ(object, nullptr);
  std::string text = LibbpfErrorText(err);
  EXPECT_NE(text.find("No such file or directory"), std::string::npos) << text;
  EXPECT_NE(text.find("/nonexistent/nodescope.bpf.o"), std::string::npos) << text;
}

}  // namespace
}  // namespace nodescope::sensor::bpf
