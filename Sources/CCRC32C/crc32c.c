// CRC32C (Castagnoli, reflected 0x82F63B78) with the SSE4.2 crc32
// instruction: eight bytes per instruction, one dependent chain. The
// instruction computes exactly the reflected CRC32C register update, so the
// register it leaves equals the software table loop's for the same bytes
// (MeshQStorageTests compare the two). Compiled for SSE4.2 per function only,
// so the binary still runs on a CPU without it; the caller asks
// meshq_crc32c_hardware_available() (cpuid) first.
#include "ccrc32c.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

int meshq_crc32c_hardware_available(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx & bit_SSE4_2) != 0;
}

__attribute__((target("sse4.2")))
uint32_t meshq_crc32c_hardware(uint32_t state, const uint8_t *bytes, size_t n) {
    uint64_t c = state;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, bytes, 8);  // unaligned load; the bytes are little-endian as the CRC wants
        c = __builtin_ia32_crc32di(c, v);
        bytes += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n > 0) {
        c32 = __builtin_ia32_crc32qi(c32, *bytes);
        bytes++;
        n--;
    }
    return c32;
}

#else

int meshq_crc32c_hardware_available(void) { return 0; }

uint32_t meshq_crc32c_hardware(uint32_t state, const uint8_t *bytes, size_t n) {
    (void)bytes;
    (void)n;
    return state;
}

#endif
