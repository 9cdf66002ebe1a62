// Layout checks for the kernel/user contract: the kernel writes a struct as clang laid it out
// for -target bpf, user space reads it as g++ laid it out for x86_64. Both come from one header in
// bpf/abi/, but only a test shows they agree: every member's offset and size against a fixed
// table and against the BTF clang wrote into the compiled object.
#pragma once

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bpf/abi/hist.h"

namespace nodescope::test {

struct AbiMember {
  std::string name;
  size_t offset;
  size_t size;
};

#define NS_ABI_MEMBER(type, field) \
  ::nodescope::test::AbiMember { #field, offsetof(type, field), sizeof(type::field) }

inline void ExpectSameMembers(const std::vector<AbiMember>& actual,
                              const std::vector<AbiMember>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(actual[i].name, expected[i].name);
    EXPECT_EQ(actual[i].offset, expected[i].offset) << expected[i].name;
    EXPECT_EQ(actual[i].size, expected[i].size) << expected[i].name;
  }
}

// The members of struct or union `type` at `base` bytes, an anonymous union's members in its
// place (C++ names them as members of the enclosing struct too).
inline void BtfMembers(const btf* types, const btf_type* type, size_t base,
                       std::vector<AbiMember>* out) {
  const btf_member* members = btf_members(type);
  for (size_t i = 0; i < btf_vlen(type); ++i) {
    EXPECT_EQ(btf_member_bitfield_size(type, static_cast<uint32_t>(i)), 0u);
    const size_t offset = base + btf_member_bit_offset(type, static_cast<uint32_t>(i)) / 8;
    const std::string name = btf__name_by_offset(types, members[i].name_off);
    const btf_type* member = btf__type_by_id(types, btf__resolve_type(types, members[i].type));
    if (name.empty() && member != nullptr && btf_is_union(member)) {
      BtfMembers(types, member, offset, out);
      continue;
    }
    out->push_back(
        {name, offset, static_cast<size_t>(btf__resolve_size(types, members[i].type))});
  }
}

// `cxx` must list every member of `struct_name` in declaration order.
inline void ExpectBtfLayout(const char* object_path, const char* struct_name, size_t cxx_size,
                            const std::vector<AbiMember>& cxx) {
  std::unique_ptr<btf, decltype(&btf__free)> types(btf__parse_elf(object_path, nullptr),
                                                   &btf__free);
  ASSERT_NE(types, nullptr) << "cannot read BTF of " << object_path;
  int id = btf__find_by_name_kind(types.get(), struct_name, BTF_KIND_STRUCT);
  ASSERT_GT(id, 0) << "struct " << struct_name << " is not in the object's BTF";
  const btf_type* type = btf__type_by_id(types.get(), id);
  EXPECT_EQ(type->size, cxx_size);
  std::vector<AbiMember> bpf;
  BtfMembers(types.get(), type, 0, &bpf);
  ASSERT_EQ(bpf.size(), cxx.size()) << "members added on one side only";
  ExpectSameMembers(bpf, cxx);
}

// struct ns_hist (bpf/abi/hist.h), which every ebpf-kernel family's object lays out again.
inline std::vector<AbiMember> HistLayout() {
  return {NS_ABI_MEMBER(ns_hist, slots), NS_ABI_MEMBER(ns_hist, sum_ns)};
}

inline void ExpectDocumentedHistLayout() {
  ExpectSameMembers(HistLayout(), {{"slots", 0, 8 * NS_HIST_SLOTS}, {"sum_ns", 320, 8}});
  EXPECT_EQ(sizeof(ns_hist), 328u);
}

// A map as user space reads it: the type, and the sizes of the key and value it passes.
struct AbiMap {
  const char* name;
  bpf_map_type type;
  uint32_t key_size, value_size, max_entries;
};

// Every map of `expected` is in the object at `object_path`, defined as listed.
inline void ExpectMaps(const char* object_path, const std::vector<AbiMap>& expected) {
  std::unique_ptr<bpf_object, decltype(&bpf_object__close)> object(
      bpf_object__open_file(object_path, nullptr), &bpf_object__close);
  ASSERT_NE(object, nullptr) << "cannot open " << object_path;
  for (const AbiMap& e : expected) {
    const bpf_map* map = bpf_object__find_map_by_name(object.get(), e.name);
    ASSERT_NE(map, nullptr) << e.name;
    EXPECT_EQ(bpf_map__type(map), e.type) << e.name;
    EXPECT_EQ(bpf_map__key_size(map), e.key_size) << e.name;
    EXPECT_EQ(bpf_map__value_size(map), e.value_size) << e.name;
    EXPECT_EQ(bpf_map__max_entries(map), e.max_entries) << e.name;
  }
}

}  // namespace nodescope::test
