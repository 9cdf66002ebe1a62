#include "sensor/proc/container.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/testing/temp_dir.h"

namespace nodescope::sensor::proc {
namespace {

// Ids and UIDs as real nodes show them (a MicroShift lab with CRI-O and crun, k3s with
// containerd, GKE's cgroupfs layout, docker hosts).
constexpr char kCtr[] = "123cd1db937c3c2d0d7772ef9b0a1c4b0b3dcfcb6b889452a90b2fcb43eae43a";
constexpr char kCrio[] = "f52987fbdcc7b29175fb52e01c7917e9d6d2e14550e3a2a7abf739da5a067e31";
constexpr char kDocker[] = "9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d";
constexpr char kNode[] = "4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970";
constexpr char kUid[] = "6dc88073-2128-40d6-9dbc-0ba508da7fe8";
constexpr char kUidSystemd[] = "6dc88073_2128_40d6_9dbc_0ba508da7fe8";

std::string S(const char* a) { return a; }

ContainerRef Ref(std::string id, std::string pod, std::string runtime) {
  return {std::move(id), std::move(pod), std::move(runtime)};
}

void Expect(std::string_view path, const ContainerRef& want) {
  SCOPED_TRACE(std::string(path));
  ContainerRef got = ParseCgroupPath(path);
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.pod_uid, want.pod_uid);
  EXPECT_EQ(got.runtime, want.runtime);
  EXPECT_EQ(got.empty(), want.id.empty() && want.pod_uid.empty());
}

TEST(ParseCgroupPath, SystemdDriver) {
  const std::string burstable =
      "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + S(kUidSystemd) + ".slice";
  Expect(burstable + "/cri-containerd-" + kCtr + ".scope", Ref(kCtr, kUid, "containerd"));
  Expect(burstable + "/crio-" + kCrio + ".scope", Ref(kCrio, kUid, "crio"));
  // crun on cgroup v2 runs the container's processes in a "container" child of the scope.
  Expect(burstable + "/crio-" + kCrio + ".scope/container", Ref(kCrio, kUid, "crio"));
  // cri-dockerd.
  Expect(burstable + "/docker-" + kDocker + ".scope", Ref(kDocker, kUid, "docker"));
  // CRI-O's monitor of the container: the pod, not the container.
  Expect(burstable + "/crio-conmon-" + kCrio + ".scope", Ref("", kUid, ""));
  // Besteffort, and guaranteed QoS right under kubepods.slice.
  Expect(
      "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod90b1ecb8_b850_451a_"
      "97c6_c073b5ddbb53.slice/crio-a1c299dc975032f1806601a8cb2fc7be0175969f6018956ade11dc989f"
      "bcd952.scope",
      Ref("a1c299dc975032f1806601a8cb2fc7be0175969f6018956ade11dc989fbcd952",
          "90b1ecb8-b850-451a-97c6-c073b5ddbb53", "crio"));
  Expect("/kubepods.slice/kubepods-pod2d51509a_fcf0_41cc_b535_57cfeeaf73d1.slice/cri-containerd-" +
             S(kCtr) + ".scope",
         Ref(kCtr, "2d51509a-fcf0-41cc-b535-57cfeeaf73d1", "containerd"));
  // Pod level (the slice itself): the pod only.
  Expect(burstable, Ref("", kUid, ""));
  Expect("/kubepods.slice/kubepods-pod2d51509a_fcf0_41cc_b535_57cfeeaf73d1.slice",
         Ref("", "2d51509a-fcf0-41cc-b535-57cfeeaf73d1", ""));
  // A static pod's UID is the 32-hex hash of its manifest.
  Expect(
      "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podb53dfa9e2dc9b890f7fadb277"
      "0857b03.slice/cri-containerd-" +
          S(kCtr) + ".scope",
      Ref(kCtr, "b53dfa9e2dc9b890f7fadb2770857b03", "containerd"));
}

TEST(ParseCgroupPath, CgroupfsDriver) {
  Expect(
      "/kubepods/burstable/pod4a163a05-439d-484b-8e53-2968bc15824f/cde6dfaf5007ed65aad2d6aed72a"
      "f91b0f3d95813492f773286e29ae145d20f4",
      Ref("cde6dfaf5007ed65aad2d6aed72af91b0f3d95813492f773286e29ae145d20f4",
          "4a163a05-439d-484b-8e53-2968bc15824f", ""));
  Expect(
      "/kubepods/besteffort/pod74c13223-5a00-11e9-b385-42010a80018d/34dc0b5e626f2c5c4c5170e34b10"
      "e7654ce36f0fcd532739f4445baabea03376",
      Ref("34dc0b5e626f2c5c4c5170e34b10e7654ce36f0fcd532739f4445baabea03376",
          "74c13223-5a00-11e9-b385-42010a80018d", ""));
  Expect("/kubepods/pod" + S(kUid) + "/" + kCtr, Ref(kCtr, kUid, ""));
  Expect("/kubepods/podb53dfa9e2dc9b890f7fadb2770857b03/crio-" + S(kCrio),
         Ref(kCrio, "b53dfa9e2dc9b890f7fadb2770857b03", "crio"));
  Expect("/kubepods/burstable/pod" + S(kUid) + "/crio-conmon-" + kCrio, Ref("", kUid, ""));
  Expect("/kubepods/burstable/pod" + S(kUid), Ref("", kUid, ""));
}

TEST(ParseCgroupPath, Docker) {
  Expect("/docker/" + S(kNode), Ref(kNode, "", "docker"));
  Expect("/system.slice/docker-" + S(kDocker) + ".scope", Ref(kDocker, "", "docker"));
  // docker-in-docker: the innermost.
  Expect("/docker/" + S(kNode) + "/docker/" + kDocker, Ref(kDocker, "", "docker"));
}

TEST(ParseCgroupPath, NestedRuntimes) {
  // kind on a cgroup v2 host: the node is a docker container, its kubelet runs with
  // --cgroup-root=/kubelet.
  const std::string kind = "/system.slice/docker-" + S(kNode) +
                           ".scope/kubelet.slice/kubelet-kubepods.slice/"
                           "kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" +
                           kUidSystemd + ".slice";
  Expect(kind + "/cri-containerd-" + kCtr + ".scope", Ref(kCtr, kUid, "containerd"));
  // The pod's own cgroup: the kind node's container is not the pod's.
  Expect(kind, Ref("", kUid, ""));
  // The node's kubelet itself runs in the node's container.
  Expect("/system.slice/docker-" + S(kNode) + ".scope/kubelet.slice/kubelet.service",
         Ref(kNode, "", "docker"));
  // kind and k3d on cgroup v1 (cgroupfs inside the node container).
  Expect("/docker/" + S(kNode) + "/kubelet/kubepods/burstable/pod" + kUid + "/" + kCtr,
         Ref(kCtr, kUid, ""));
  Expect("/docker/" + S(kNode) + "/kubepods/besteffort/pod" + kUid + "/" + kCtr,
         Ref(kCtr, kUid, ""));
  Expect("/docker/" + S(kNode) + "/kubepods/besteffort/pod" + kUid, Ref("", kUid, ""));
  // docker inside a pod's container: the innermost container, in that pod.
  Expect("/kubepods/burstable/pod" + S(kUid) + "/" + kCtr + "/docker/" + kDocker,
         Ref(kDocker, kUid, "docker"));
}

TEST(ParseCgroupPath, NotAContainer) {
  for (const std::string& path : {
           S("/"),
           S(""),
           S("/user.slice/user-1000.slice/session-3.scope"),
           S("/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome.scope"),
           S("/system.slice/containerd.service"),
           S("/system.slice/docker.service"),
           S("/init.scope"),
           S("/kubepods.slice"),
           S("/kubepods.slice/kubepods-burstable.slice"),
           S("/kubepods/burstable"),
           S("#4242"),  // CgroupPaths' name for a cgroup it could not find
           S("garbage"),
           S("/docker"),
           // Ids that are not 64 lowercase hex digits.
           "/docker/" + S(kNode).substr(1),
           "/docker/" + S(kNode) + "0",
           S("/docker/4F797C539E6C745DE61A93CA3FF892358ECBCACCD8414D5DB545C38428142970"),
           S("/docker/4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c3842814297g"),
           S("/system.slice/docker-abc123.scope"),
           "/system.slice/cri-containerd-" + S(kCtr),  // a scope without .scope
           // A 64-hex directory that no runtime made.
           "/system.slice/" + S(kCtr),
           // "pod<uid>" outside kubepods, and pod slices outside kubepods.
           "/pod" + S(kUid) + "/" + kCtr,
           "/user.slice/user-pod" + S(kUidSystemd) + ".slice",
           // Malformed UIDs.
           S("/kubepods/burstable/pod6dc88073-2128-40d6-9dbc-0ba508da7fe"),
           S("/kubepods/burstable/pod6dc88073+2128-40d6-9dbc-0ba508da7fe8"),
           S("/kubepods.slice/kubepods-pod.slice"),
       }) {
    Expect(path, {});
  }
  // A pod cgroup whose child is no container's: still the pod.
  Expect("/kubepods/burstable/pod" + S(kUid) + "/" + S(kCtr).substr(2), Ref("", kUid, ""));
}

TEST(ParseProcCgroup, V2Line) {
  EXPECT_EQ(ParseProcCgroup("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" +
                            S(kUidSystemd) + ".slice/cri-containerd-" + kCtr + ".scope\n"),
            Ref(kCtr, kUid, "containerd"));
  // Read from a cgroup namespace: the path is relative to its root.
  EXPECT_EQ(ParseProcCgroup("0::/../../kubepods-besteffort-pod" + S(kUidSystemd) +
                            ".slice/cri-containerd-" + kCtr + ".scope\n"),
            Ref(kCtr, kUid, "containerd"));
  EXPECT_EQ(ParseProcCgroup("0::/user.slice/user-0.slice/session-1.scope\n"), ContainerRef{});
  EXPECT_EQ(ParseProcCgroup(""), ContainerRef{});
  EXPECT_EQ(ParseProcCgroup("garbage\n\n:\n"), ContainerRef{});
}

TEST(ParseProcCgroup, V1Lines) {
  const std::string pod = "/kubepods/besteffort/podd0544205-72df-11e8-b691-080027c5d95e/";
  const std::string id = "84ad0790d137467a41a21d7fb29b4973f68d4d00e67390454d587da8e5cc292b";
  // A cgroup v1 node: no v2 line.
  EXPECT_EQ(ParseProcCgroup("11:pids:" + pod + id + "\n10:memory:" + pod + id +
                            "\n1:name=systemd:" + pod + id + "\n"),
            Ref(id, "d0544205-72df-11e8-b691-080027c5d95e", ""));
  // Hybrid: docker with the cgroupfs driver manages the v1 hierarchies only; the v2 line names
  // the unit that started it.
  EXPECT_EQ(ParseProcCgroup("12:cpuset:/docker/" + S(kNode) + "\n4:memory:/docker/" + kNode +
                            "\n0::/system.slice/containerd.service\n"),
            Ref(kNode, "", "docker"));
  // Hybrid with the systemd driver: every line agrees; the v2 one is taken, even when last.
  const std::string scope =
      "/kubepods.slice/kubepods-pod" + S(kUidSystemd) + ".slice/docker-" + kDocker + ".scope";
  EXPECT_EQ(ParseProcCgroup("10:devices:/system.slice/docker-" + S(kNode) + ".scope\n" +
                            "1:name=systemd:" + scope + "\n0::" + scope + "\n"),
            Ref(kDocker, kUid, "docker"));
  // Controllers that name no container are passed over; the pod is kept when nothing better.
  EXPECT_EQ(ParseProcCgroup("3:cpuset:/\n2:memory:" + pod + "\n0::/\n"),
            Ref("", "d0544205-72df-11e8-b691-080027c5d95e", ""));
  EXPECT_EQ(ParseProcCgroup("3:cpuset:/\n2:cpu,cpuacct:/\n1:name=systemd:/init.scope\n0::/\n"),
            ContainerRef{});
}

uint64_t Inode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

// A fake cgroup2 mount: directories, whose inodes stand for cgroup ids as on the real one.
class ContainerResolverTest : public ::testing::Test {
 protected:
  std::string Make(const std::string& relative) {
    std::filesystem::create_directories(dir_.path() + relative);
    return dir_.path() + relative;
  }
  test::TempDir dir_;
};

TEST_F(ContainerResolverTest, ResolvesAndCachesBothWays) {
  const std::string pod = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" +
                          S(kUidSystemd) + ".slice";
  const uint64_t ctr = Inode(Make(pod + "/cri-containerd-" + kCtr + ".scope"));
  const uint64_t service = Inode(Make("/system.slice/containerd.service"));
  ContainerResolver resolver(CgroupPaths(dir_.path(), "/"));

  EXPECT_EQ(resolver.Resolve(ctr), Ref(kCtr, kUid, "containerd"));
  EXPECT_EQ(resolver.walks(), 1u);
  EXPECT_EQ(resolver.Resolve(Inode(dir_.path() + pod)), Ref("", kUid, ""));
  EXPECT_TRUE(resolver.Resolve(service).empty());
  EXPECT_TRUE(resolver.Resolve(0).empty());
  EXPECT_EQ(resolver.size(), 3u);  // id 0 is never looked up
  // Known ids, with and without a container, cost no more walks.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(resolver.Resolve(ctr).id, kCtr);
    EXPECT_TRUE(resolver.Resolve(service).empty());
  }
  EXPECT_EQ(resolver.walks(), 1u);
}

TEST_F(ContainerResolverTest, NewCgroupsGoneOnesAndNoWalkLeft) {
  const uint64_t first = Inode(Make("/docker/" + S(kNode)));
  ContainerResolver resolver(CgroupPaths(dir_.path(), "/"));
  EXPECT_EQ(resolver.Resolve(first), Ref(kNode, "", "docker"));
  ASSERT_EQ(resolver.walks(), 1u);
  // Made after the walk: the next one finds it.
  const uint64_t second = Inode(Make("/docker/" + S(kDocker)));
  EXPECT_EQ(resolver.Resolve(second), Ref(kDocker, "", "docker"));
  ASSERT_EQ(resolver.walks(), 2u);

  // Ids no walk finds (cgroups gone since) are cached as no container after their walk.
  std::vector<uint64_t> gone;
  for (int i = 2; i < CgroupPaths::kWalkBurst; ++i) gone.push_back((uint64_t{1} << 40) + i);
  for (uint64_t id : gone) EXPECT_TRUE(resolver.Resolve(id).empty());
  EXPECT_EQ(resolver.walks(), static_cast<uint64_t>(CgroupPaths::kWalkBurst));
  EXPECT_EQ(resolver.size(), gone.size() + 2);

  // No walk left: a new cgroup is not named yet, and not cached as no container.
  const uint64_t third = Inode(Make("/kubepods/pod" + S(kUid) + "/" + kCtr));
  EXPECT_TRUE(resolver.Resolve(third).empty());
  EXPECT_EQ(resolver.size(), gone.size() + 2);
  std::this_thread::sleep_for(CgroupPaths::kWalkInterval);
  for (uint64_t id : gone) EXPECT_TRUE(resolver.Resolve(id).empty());  // cached: no walk
  EXPECT_EQ(resolver.walks(), static_cast<uint64_t>(CgroupPaths::kWalkBurst));
  EXPECT_EQ(resolver.Resolve(third), Ref(kCtr, kUid, ""));
  EXPECT_EQ(resolver.walks(), static_cast<uint64_t>(CgroupPaths::kWalkBurst) + 1);
}

TEST_F(ContainerResolverTest, GivenPathsNeedNoWalk) {
  ContainerResolver resolver(CgroupPaths(dir_.path(), "/"));
  EXPECT_EQ(resolver.Resolve(77, "/kubepods/pod" + S(kUid) + "/" + kCtr), Ref(kCtr, kUid, ""));
  EXPECT_EQ(resolver.Resolve(78, "/system.slice/cron.service"), ContainerRef{});
  EXPECT_EQ(resolver.walks(), 0u);
  EXPECT_EQ(resolver.size(), 2u);
  EXPECT_EQ(resolver.Resolve(77).id, kCtr);  // from the cache
  EXPECT_EQ(resolver.walks(), 0u);
  // A path the kernel plugin could not name: looked up like an id.
  const uint64_t id = Inode(Make("/kubepods/pod" + S(kUid)));
  EXPECT_EQ(resolver.Resolve(id, "#" + std::to_string(id)), Ref("", kUid, ""));
  EXPECT_EQ(resolver.walks(), 1u);
}

TEST_F(ContainerResolverTest, ClearsWhenFull) {
  ContainerResolver resolver(CgroupPaths(dir_.path(), "/"), 2);
  resolver.Resolve(1, "/docker/" + S(kNode));
  resolver.Resolve(2, "/docker/" + S(kDocker));
  EXPECT_EQ(resolver.size(), 2u);
  EXPECT_EQ(resolver.Resolve(3, "/kubepods/pod" + S(kUid)).pod_uid, kUid);
  EXPECT_EQ(resolver.size(), 1u);
  EXPECT_EQ(resolver.Resolve(1, "/docker/" + S(kNode)).id, kNode);
  EXPECT_EQ(resolver.size(), 2u);
}

}  // namespace
}  // namespace nodescope::sensor::proc
