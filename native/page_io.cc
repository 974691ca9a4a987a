// Off-thread page work for the snapshot cut (copy, CRC32, file writes).
#include "modules.h"

namespace poolkv {
void InitPageIo(Napi::Env, Napi::Object) {}
}  // namespace poolkv
