// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), as used by iSCSI, ext4 and
// LevelDB. Uses the SSE4.2 crc32 instruction when the CPU has it (about 8 bytes per cycle),
// otherwise a portable slicing-by-8 table (about 1 byte per cycle); both give identical results.
//
//   uint32_t crc = crc32c::Value(data, n);
//   crc = crc32c::Extend(crc, more, m);   // == Value(data ++ more)
#pragma once

#include <cstddef>
#include <cstdint>

namespace tandem::crc32c {

// The CRC of data[0, n) continued from `crc` (the CRC of the bytes before).
uint32_t Extend(uint32_t crc, const void* data, size_t n);

// The CRC of data[0, n).
inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }

// The portable implementation, for tests and benchmarks of the accelerated one.
uint32_t ExtendPortable(uint32_t crc, const void* data, size_t n);

// Whether Extend uses the hardware instruction on this machine.
bool IsHardwareAccelerated();

}  // namespace tandem::crc32c
