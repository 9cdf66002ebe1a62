#include "sensor/proc/container_sink.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/testing/temp_dir.h"

namespace nodescope::sensor::proc {
namespace {

constexpr char kCtr[] = "123cd1db937c3c2d0d7772ef9b0a1c4b0b3dcfcb6b889452a90b2fcb43eae43a";
constexpr char kUid[] = "6dc88073-2128-40d6-9dbc-0ba508da7fe8";
constexpr char kPod[] =
    "/kubepods.slice/kubepods-besteffort.slice/"
    "kubepods-besteffort-pod6dc88073_2128_40d6_9dbc_0ba508da7fe8.slice";

class Recorder : public EventSink {
 public:
  void Emit(v1::Event event) override { events.push_back(std::move(event)); }
  std::vector<v1::Event> events;
};

uint64_t Inode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

class ContainerSinkTest : public ::testing::Test {
 protected:
  ContainerSinkTest() {
    const std::string scope = dir_.path() + kPod + "/cri-containerd-" + kCtr + ".scope";
    std::filesystem::create_directories(scope);
    std::filesystem::create_directories(dir_.path() + "/system.slice/sshd.service");
    container_ = Inode(scope);
    pod_ = Inode(dir_.path() + kPod);
    host_ = Inode(dir_.path() + "/system.slice/sshd.service");
  }

  static void ExpectContainer(const v1::Container& c) {
    EXPECT_EQ(c.id(), kCtr);
    EXPECT_EQ(c.pod_uid(), kUid);
    EXPECT_EQ(c.runtime(), "containerd");
  }

  test::TempDir dir_;
  uint64_t container_ = 0, pod_ = 0, host_ = 0;
  Recorder next_;
  ContainerSink sink_{&next_, CgroupPaths(dir_.path(), "/")};
};

TEST_F(ContainerSinkTest, EveryRecordWithACgroupId) {
  for (uint64_t id : {container_, host_, uint64_t{0}}) {
    v1::Event e;
    e.mutable_process()->set_cgroup_id(id);
    sink_.Emit(e);
    e.mutable_netflow()->set_cgroup_id(id);
    sink_.Emit(e);
    e.mutable_httpflow()->set_cgroup_id(id);
    sink_.Emit(e);
    e.mutable_dnsflow()->set_cgroup_id(id);
    sink_.Emit(e);
    e.mutable_bash()->set_cgroup_id(id);
    sink_.Emit(e);
  }
  ASSERT_EQ(next_.events.size(), 15u);
  for (size_t i = 0; i < 15; ++i) {
    const v1::Event& e = next_.events[i];
    SCOPED_TRACE(e.ShortDebugString());
    const bool in_container = i < 5;
    switch (e.payload_case()) {
      case v1::Event::kProcess:
        EXPECT_EQ(e.process().has_container(), in_container);
        if (in_container) ExpectContainer(e.process().container());
        break;
      case v1::Event::kNetflow:
        EXPECT_EQ(e.netflow().has_container(), in_container);
        if (in_container) ExpectContainer(e.netflow().container());
        break;
      case v1::Event::kHttpflow:
        EXPECT_EQ(e.httpflow().has_container(), in_container);
        if (in_container) ExpectContainer(e.httpflow().container());
        break;
      case v1::Event::kDnsflow:
        EXPECT_EQ(e.dnsflow().has_container(), in_container);
        if (in_container) ExpectContainer(e.dnsflow().container());
        break;
      case v1::Event::kBash:
        EXPECT_EQ(e.bash().has_container(), in_container);
        if (in_container) ExpectContainer(e.bash().container());
        break;
      default:
        ADD_FAILURE() << "unexpected payload";
    }
  }
  EXPECT_EQ(sink_.cached(), 2u);  // the container's and sshd's; 0 is never looked up
}

TEST_F(ContainerSinkTest, KernelSeriesByTheirPath) {
  v1::Event e;
  v1::KernelMetricsEvent* k = e.mutable_kernel();
  k->add_counters()->set_name("host_wide");
  v1::KernelCounter* app = k->add_counters();
  app->mutable_labels()->set_app("nginx");
  // The path as the kernel plugin names it; the id is not on this fake mount, so only the path
  // can say.
  v1::KernelCounter* ctr = k->add_counters();
  ctr->mutable_labels()->set_cgroup_id(1234567);
  ctr->mutable_labels()->set_cgroup(std::string(kPod) + "/cri-containerd-" + kCtr + ".scope");
  v1::KernelGauge* pod = k->add_gauges();
  pod->mutable_labels()->set_cgroup_id(pod_);
  pod->mutable_labels()->set_cgroup("#" + std::to_string(pod_));  // the plugin could not name it
  v1::KernelHistogram* host = k->add_histograms();
  host->mutable_labels()->set_cgroup_id(host_);
  host->mutable_labels()->set_cgroup("/system.slice/sshd.service");
  sink_.Emit(e);

  ASSERT_EQ(next_.events.size(), 1u);
  const v1::KernelMetricsEvent& got = next_.events[0].kernel();
  EXPECT_FALSE(got.counters(0).labels().has_container());
  EXPECT_FALSE(got.counters(1).labels().has_container());
  ExpectContainer(got.counters(2).labels().container());
  EXPECT_EQ(got.gauges(0).labels().container().id(), "");
  EXPECT_EQ(got.gauges(0).labels().container().pod_uid(), kUid);
  EXPECT_FALSE(got.histograms(0).labels().has_container());
}

TEST_F(ContainerSinkTest, ConntrackPassesUntouched) {
  v1::Event e;
  e.set_time_unix_nano(42);
  e.mutable_conntrack()->set_netns(7);
  sink_.Emit(e);
  ASSERT_EQ(next_.events.size(), 1u);
  EXPECT_EQ(next_.events[0].SerializeAsString(), e.SerializeAsString());
}

}  // namespace
}  // namespace nodescope::sensor::proc
