#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace tandem {
namespace {

TEST(Crc32cTest, KnownVectors) {
  // The check value of CRC-32C and the iSCSI test vectors (RFC 3720, B.4).
  EXPECT_EQ(crc32c::Value("123456789", 9), 0xE3069283u);
  std::vector<uint8_t> buf(32, 0);
  EXPECT_EQ(crc32c::Value(buf.data(), buf.size()), 0x8A9136AAu);
  std::fill(buf.begin(), buf.end(), 0xFF);
  EXPECT_EQ(crc32c::Value(buf.data(), buf.size()), 0x62A8AB43u);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(crc32c::Value(buf.data(), buf.size()), 0x46DD794Eu);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<uint8_t>(31 - i);
  EXPECT_EQ(crc32c::Value(buf.data(), buf.size()), 0x113FDB5Cu);
  EXPECT_EQ(crc32c::Value("", 0), 0u);
}

TEST(Crc32cTest, HardwareMatchesPortableAtEveryAlignmentAndLength) {
  std::mt19937 rng(1);
  std::vector<uint8_t> data(4096 + 64);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  for (size_t offset = 0; offset < 9; ++offset) {
    for (size_t len : {0, 1, 7, 8, 9, 31, 32, 33, 100, 1000, 4096}) {
      EXPECT_EQ(crc32c::Value(data.data() + offset, len),
                crc32c::ExtendPortable(0, data.data() + offset, len))
          << offset << " " << len;
    }
  }
}

TEST(Crc32cTest, ExtendEqualsWhole) {
  const std::string s = "The quick brown fox jumps over the lazy dog, many times over.";
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    EXPECT_EQ(crc32c::Extend(crc32c::Value(s.data(), cut), s.data() + cut, s.size() - cut),
              crc32c::Value(s.data(), s.size()));
  }
}

}  // namespace
}  // namespace tandem
