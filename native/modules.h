// Each part of the addon registers its exports from its own file.
#pragma once
#include <napi.h>

namespace poolkv {
// page_io.cc: off-thread page copy / CRC32 / file writes for the snapshot cut.
void InitPageIo(Napi::Env env, Napi::Object exports);
// rdma.cc: the verbs/rdmacm snapshot transport (a no-op without RDMA headers).
void InitRdma(Napi::Env env, Napi::Object exports);
}  // namespace poolkv
