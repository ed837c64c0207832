// A cursor over a fuzz input that hands out small integers and length-prefixed byte strings, so
// that one input can describe a sequence of operations. Reading past the end yields zeros and
// empty strings (libFuzzer's FuzzedDataProvider is clang-only; the replay build uses GCC).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tandem::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t U16() {
    const uint16_t lo = Byte();
    return static_cast<uint16_t>(lo | (Byte() << 8));
  }
  // A 2-byte length, then that many bytes (fewer at the end of the input).
  std::string Bytes() {
    size_t n = U16();
    if (n > size_ - pos_) n = size_ - pos_;
    std::string out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace tandem::fuzz
