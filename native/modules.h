// Each part of the addon registers its exports from its own file.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace poolkv {
// page_io.cc: off-thread page copy / CRC32 / file writes for the snapshot cut.
void InitPageIo(Napi::Env env, Napi::Object exports);
// page_io.cc: zlib's CRC32 (PCLMULQDQ when the CPU has it), chained through `seed`.
uint32_t Crc32(uint32_t seed, const uint8_t* data, size_t len);
// The same over `len` bytes copied src → dst in the same pass (the CRC is of the bytes stored in dst).
uint32_t CopyCrc32(uint32_t seed, const uint8_t* src, uint8_t* dst, size_t len);
// image_load.cc: reading a pool image file into the pool on several threads.
void InitImageLoad(Napi::Env env, Napi::Object exports);
// rdma.cc: the verbs/rdmacm snapshot transport (a no-op without RDMA headers).
void InitRdma(Napi::Env env, Napi::Object exports);
}  // namespace poolkv
