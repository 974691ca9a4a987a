// The RDMA snapshot transport (libibverbs + librdmacm).
#include "modules.h"

namespace poolkv {
void InitRdma(Napi::Env, Napi::Object) {}
}  // namespace poolkv
