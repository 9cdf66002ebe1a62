#include "common/net/ip.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace nodescope::net {
namespace {

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool IsMapped(const uint8_t* bytes16) {
  return std::memcmp(bytes16, kMappedPrefix, sizeof(kMappedPrefix)) == 0;
}

IpAddress V4(const uint8_t* four) {
  IpAddress address;
  std::copy(four, four + 4, address.bytes.begin());
  return address;
}

// True when the first `bits` bits of `address` equal those of `prefix` (network order).
bool InPrefix(const IpAddress& address, std::initializer_list<uint8_t> prefix, int bits) {
  const uint8_t* p = prefix.begin();
  int i = 0;
  for (; bits >= 8; bits -= 8, ++i) {
    if (address.bytes[i] != p[i]) return false;
  }
  if (bits == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - bits));
  return (address.bytes[i] & mask) == (p[i] & mask);
}

// Clears (`set` false) or sets every bit after the first `bits` of the address.
void FillHostBits(IpAddress* address, int bits, bool set) {
  int total = address->v6 ? 128 : 32;
  for (int bit = bits; bit < total; ++bit) {
    uint8_t mask = static_cast<uint8_t>(0x80 >> (bit % 8));
    if (set) {
      address->bytes[bit / 8] |= mask;
    } else {
      address->bytes[bit / 8] &= static_cast<uint8_t>(~mask);
    }
  }
}

}  // namespace

std::optional<IpAddress> IpAddress::FromBytes(std::span<const uint8_t> raw) {
  if (raw.size() == 4) return V4(raw.data());
  if (raw.size() != 16) return std::nullopt;
  if (IsMapped(raw.data())) return V4(raw.data() + 12);
  IpAddress address;
  address.v6 = true;
  std::copy(raw.begin(), raw.end(), address.bytes.begin());
  return address;
}

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  // Longer than any textual address (INET6_ADDRSTRLEN counts the NUL): not one.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  if (text.find('\0') != std::string_view::npos) return std::nullopt;  // inet_pton would stop there
  char buffer[INET6_ADDRSTRLEN] = {};
  std::memcpy(buffer, text.data(), text.size());
  uint8_t raw[16];
  if (inet_pton(AF_INET, buffer, raw) == 1) return V4(raw);
  if (inet_pton(AF_INET6, buffer, raw) == 1) return FromBytes(raw);
  return std::nullopt;
}

std::string IpAddress::ToString() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buffer, sizeof(buffer)) == nullptr) {
    return {};  // only possible with a too-small buffer, which this one is not
  }
  return buffer;
}

std::span<const uint8_t> IpAddress::Raw() const {
  return std::span<const uint8_t>(bytes.data(), v6 ? 16 : 4);
}

IpType Classify(const IpAddress& address) {
  if (address.v6 && IsMapped(address.bytes.data())) return Classify(V4(address.bytes.data() + 12));
  if (!address.v6) {
    if (InPrefix(address, {10}, 8) || InPrefix(address, {172, 16}, 12) ||
        InPrefix(address, {192, 168}, 16) || InPrefix(address, {100, 64}, 10) ||
        InPrefix(address, {127}, 8) || InPrefix(address, {169, 254}, 16)) {
      return IpType::kPrivate;
    }
    if (InPrefix(address, {224}, 4) || InPrefix(address, {255, 255, 255, 255}, 32)) {
      return IpType::kMulticast;
    }
    return IpType::kOther;
  }
  static constexpr std::array<uint8_t, 16> kLoopback = {0, 0, 0, 0, 0, 0, 0, 0,
                                                        0, 0, 0, 0, 0, 0, 0, 1};
  if (InPrefix(address, {0xfc}, 7) || InPrefix(address, {0xfe, 0x80}, 10) ||
      address.bytes == kLoopback) {
    return IpType::kPrivate;
  }
  if (InPrefix(address, {0xff}, 8)) return IpType::kMulticast;
  return IpType::kOther;
}

std::string_view IpTypeName(IpType type) {
  switch (type) {
    case IpType::kPrivate:
      return "private";
    case IpType::kMulticast:
      return "multicast";
    case IpType::kOther:
      break;
  }
  return "other";
}

std::optional<IpRange> IpRange::Parse(std::string_view text, std::string* error) {
  auto fail = [error](std::string reason) -> std::optional<IpRange> {
    if (error != nullptr) *error = std::move(reason);
    return std::nullopt;
  };
  auto address = [](std::string_view part, std::string* reason) -> std::optional<IpAddress> {
    auto parsed = IpAddress::Parse(part);
    if (!parsed) *reason = fmt::format("\"{}\" is not an IPv4 or IPv6 address", part);
    return parsed;
  };
  if (text.empty()) return fail("empty address range");

  std::string reason;
  size_t slash = text.find('/');
  size_t dash = text.find('-');
  // A '/' makes it CIDR: "10.0.0.0/-1" is a bad prefix length, not a bad range.
  if (slash == std::string_view::npos && dash != std::string_view::npos) {
    auto first = address(text.substr(0, dash), &reason);
    if (!first) return fail(reason);
    auto last = address(text.substr(dash + 1), &reason);
    if (!last) return fail(reason);
    if (first->v6 != last->v6) return fail("the ends of the range are of different families");
    if (*last < *first) return fail("the range starts after it ends");
    IpRange range;
    range.first_ = *first;
    range.last_ = *last;
    return range;
  }

  auto base = address(text.substr(0, slash), &reason);
  if (!base) return fail(reason);
  int max_bits = base->v6 ? 128 : 32;
  int bits = max_bits;
  if (slash != std::string_view::npos) {
    std::string_view length = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(length.data(), length.data() + length.size(), bits);
    // from_chars takes a leading '-', which a prefix length never has.
    bool digits = !length.empty() && length.front() != '-' && end == length.data() + length.size();
    if (digits && (ec == std::errc::result_out_of_range || bits > max_bits)) {
      return fail(fmt::format("prefix length {} is out of range for {} (0-{})", length,
                              base->v6 ? "IPv6" : "IPv4", max_bits));
    }
    if (!digits || ec != std::errc()) {
      return fail(fmt::format("prefix length \"{}\" is not a number", length));
    }
  }
  // Host bits are allowed and ignored: Netdata's own example writes "127.0.0.1/8".
  IpRange range;
  range.first_ = *base;
  range.last_ = *base;
  FillHostBits(&range.first_, bits, false);
  FillHostBits(&range.last_, bits, true);
  return range;
}

bool IpRange::Contains(const IpAddress& address) const {
  return address.v6 == first_.v6 && first_ <= address && address <= last_;
}

}  // namespace nodescope::net
