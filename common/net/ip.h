// IP addresses as the network plugins see them: 4 or 16 raw bytes, with IPv4-mapped IPv6 shown as
// IPv4 (a dual-stack socket talking to 127.0.0.1 reports ::ffff:127.0.0.1).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace nodescope::net {

struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // IPv4 uses bytes[0..3]

  // From 4 or 16 raw bytes (network order); a v4-mapped 16-byte address becomes IPv4.
  // nullopt for any other length.
  static std::optional<IpAddress> FromBytes(std::span<const uint8_t> raw);
  // "198.18.0.1", "fd00:198:18::1", "::ffff:127.0.0.1" (→ IPv4). nullopt when not an address.
  static std::optional<IpAddress> Parse(std::string_view text);

  std::string ToString() const;                     // inet_ntop form
  std::span<const uint8_t> Raw() const;             // 4 or 16 bytes
  bool operator==(const IpAddress&) const = default;
  auto operator<=>(const IpAddress&) const = default;
};

// The ip_type tag of the record model (`src_ip_type`/`dst_ip_type`).
enum class IpType { kOther, kPrivate, kMulticast };
// private: RFC 1918, 100.64/10 (CGNAT), 127/8, 169.254/16, fc00::/7, fe80::/10, ::1;
// multicast: 224/4, ff00::/8 (and 255.255.255.255 broadcast); other: everything else.
IpType Classify(const IpAddress& address);
std::string_view IpTypeName(IpType type);  // "private", "multicast", "other"

// An address block: CIDR ("10.0.0.0/8", "fd00::/8", a bare address = /32 or /128) or an
// inclusive dash range ("198.18.0.1-198.18.0.9"). Both ends of a range are of one family.
class IpRange {
 public:
  // nullopt with `error` set to a one-line reason when `text` is neither form.
  static std::optional<IpRange> Parse(std::string_view text, std::string* error);
  bool Contains(const IpAddress& address) const;
  // The lowest and highest address of the block (a CIDR's host bits cleared / set).
  const IpAddress& first() const { return first_; }
  const IpAddress& last() const { return last_; }

 private:
  IpAddress first_, last_;
};

}  // namespace nodescope::net
