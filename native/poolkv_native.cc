// poolkv_native: the node-addon-api addon that will carry the RDMA transport
// for snapshots. Today it answers one question, capabilities(): was this build
// compiled against libibverbs/librdmacm, and what RDMA devices can it see?
// Built by node-gyp (binding.gyp, on `npm install`) or cmake-js
// (native/CMakeLists.txt); both define POOLKV_NO_RDMA when the verbs headers
// are missing so the addon still builds and says why RDMA is unavailable.
#include <napi.h>

#include "modules.h"

#include <cerrno>
#include <cstring>
#include <string>

#ifndef POOLKV_NO_RDMA
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
#endif

namespace {

#ifdef POOLKV_NO_RDMA

Napi::Value Capabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("rdma", false);
  result.Set("reason",
             "built without RDMA support: the libibverbs/librdmacm headers were not found. "
             "Install them (Debian: apt-get install libibverbs-dev librdmacm-dev; at run time "
             "also rdma-core ibverbs-providers) and rebuild the addon (npm rebuild).");
  result.Set("devices", 0);
  result.Set("deviceNames", Napi::Array::New(env, 0));
  result.Set("rdmaCm", false);
  return result;
}

#else

// Whether librdmacm can open its event channel (needs /dev/infiniband/rdma_cm).
bool RdmaCmAvailable(std::string* error) {
  struct rdma_event_channel* channel = rdma_create_event_channel();
  if (channel == nullptr) {
    *error = std::string("rdma_create_event_channel: ") + std::strerror(errno);
    return false;
  }
  rdma_destroy_event_channel(channel);
  return true;
}

Napi::Value Capabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  Napi::Array names = Napi::Array::New(env);
  int count = 0;
  std::string reason = "compiled with libibverbs/librdmacm";

  errno = 0;
  struct ibv_device** list = ibv_get_device_list(&count);
  if (list == nullptr) {
    count = 0;
    reason += std::string("; ibv_get_device_list failed: ") + std::strerror(errno) +
              " (no RDMA support in this kernel/container, or rdma-core ibverbs-providers missing)";
  } else {
    for (int i = 0; i < count; i++) {
      names.Set(static_cast<uint32_t>(i), Napi::String::New(env, ibv_get_device_name(list[i])));
    }
    ibv_free_device_list(list);
    reason += "; " + std::to_string(count) + (count == 1 ? " RDMA device" : " RDMA devices") + " visible";
    if (count == 0) {
      reason += " (install rdma-core ibverbs-providers and load a driver, e.g. rdma_rxe for soft-RoCE)";
    }
  }

  std::string cmError;
  bool cm = RdmaCmAvailable(&cmError);
  if (!cm) reason += "; " + cmError;

  result.Set("rdma", true);
  result.Set("reason", reason);
  result.Set("devices", count);
  result.Set("deviceNames", names);
  result.Set("rdmaCm", cm);
  return result;
}

#endif

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("capabilities", Napi::Function::New(env, Capabilities, "capabilities"));
  poolkv::InitPageIo(env, exports);
  poolkv::InitImageLoad(env, exports);
  poolkv::InitRdma(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(poolkv_native, Init)
