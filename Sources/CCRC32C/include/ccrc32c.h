// CCRC32C: CRC32C with the CPU's own instruction (x86-64 SSE4.2 `crc32`),
// for MeshQStorage's CRC32C, which falls back to its software tables when
// `meshq_crc32c_hardware_available()` says no (another CPU or architecture).
#ifndef MESHQ_CCRC32C_H
#define MESHQ_CCRC32C_H

#include <stddef.h>
#include <stdint.h>

/// 1 when this CPU has the SSE4.2 crc32 instruction, else 0.
int meshq_crc32c_hardware_available(void);

/// Advances a raw (not inverted) CRC32C register over n bytes. Call only when
/// meshq_crc32c_hardware_available() returned 1.
uint32_t meshq_crc32c_hardware(uint32_t state, const uint8_t *bytes, size_t n);

#endif
