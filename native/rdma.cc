// The RDMA snapshot transport (libibverbs + librdmacm) for JS: thin N-API
// wrappers around rdma_engine.{h,cc}. Every engine thread reports to JS through
// a Napi::ThreadSafeFunction; nothing here blocks the JS thread on the network
// (connection set-up and completion polling run on the engine's threads, region
// registration on the libuv pool).
//
// Exports (typed in src/transport/native.ts, used by src/transport/rdma-link.ts):
//   rdmaUnavailableReason(): string | null
//   rdmaConnect(host, port, timeoutMs): External   -> new RdmaConnection(external)
//   RdmaConnection: start(cb), send(buf), expose(id, views), write(id, offset, parts),
//                   close(reason), stagingArena()
//   RdmaListener(host, port, cb): close()
//   rdmaRegisterRegion(views, hostForDevice): Promise<{device, bytes, registered}>
//   rdmaStats(): {...counters}
//   rdmaStagingAcquire(device, bytes) / rdmaStagingRelease(device, offset): slices of
//                   the device's staging arena, allocated here for all JS environments
// Built without the verbs headers (POOLKV_NO_RDMA), the same names exist and
// fail with the packages to install.
#include "modules.h"

#ifndef POOLKV_NO_RDMA
#include "rdma_engine.h"

#include <cinttypes>
#include <cstdio>
#include <map>
#include <memory>
#include <utility>
#endif

#include <string>

namespace poolkv {
namespace {

#ifdef POOLKV_NO_RDMA

const char kNotCompiled[] =
    "RDMA support is not compiled into the poolkv_native addon: the libibverbs/librdmacm headers were "
    "missing at build time. Install them (Debian: apt-get install libibverbs-dev librdmacm-dev; at run "
    "time also rdma-core ibverbs-providers) and rebuild the addon (npm rebuild).";

Napi::Value UnavailableReasonJs(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), kNotCompiled); }

Napi::Value NotCompiled(const Napi::CallbackInfo& info) {
  Napi::Error::New(info.Env(), kNotCompiled).ThrowAsJavaScriptException();
  return info.Env().Undefined();
}

Napi::Value RegisterRegionJs(const Napi::CallbackInfo& info) {
  auto deferred = Napi::Promise::Deferred::New(info.Env());
  deferred.Reject(Napi::Error::New(info.Env(), kNotCompiled).Value());
  return deferred.Promise();
}

Napi::Value StatsJs(const Napi::CallbackInfo& info) {
  Napi::Object stats = Napi::Object::New(info.Env());
  for (const char* key : {"registrations", "reuseHits", "regionMrs", "regionBytes", "pinnedBytes",
                          "connectionsOpen", "listenersOpen", "stagingBytes", "writeBytesZeroCopy",
                          "writeBytesCopied"}) {
    stats.Set(key, 0);
  }
  return stats;
}

class NotCompiledClass : public Napi::ObjectWrap<NotCompiledClass> {
 public:
  explicit NotCompiledClass(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NotCompiledClass>(info) {
    Napi::Error::New(info.Env(), kNotCompiled).ThrowAsJavaScriptException();
  }
};

#else  // RDMA compiled in

using rdma::Connection;
using rdma::LinkEvent;
using rdma::Listener;
using rdma::ListenerEvent;
using ConnectionRef = std::shared_ptr<Connection>;

Napi::Value ThrowError(Napi::Env env, const std::string& message) {
  Napi::Error::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowTypeError(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

std::string Hex(uintptr_t value) {
  char text[32];
  std::snprintf(text, sizeof text, "0x%" PRIxPTR, value);
  return text;
}

// A region given as Buffer views that must form one contiguous range (the
// pool's 1 GiB views of one mapping do: view[i] starts where view[i-1] ends).
bool RegionOf(const Napi::Value& value, const uint8_t** start, uint64_t* length, std::string* error) {
  if (!value.IsArray()) {
    *error = "region must be an array of Buffers";
    return false;
  }
  Napi::Array views = value.As<Napi::Array>();
  *start = nullptr;
  *length = 0;
  for (uint32_t i = 0; i < views.Length(); i++) {
    Napi::Value view = views.Get(i);
    if (!view.IsTypedArray()) {
      *error = "region view " + std::to_string(i) + " is not a Buffer";
      return false;
    }
    Napi::Uint8Array bytes = view.As<Napi::Uint8Array>();
    if (bytes.ByteLength() == 0) continue;
    const uint8_t* data = bytes.Data();
    if (*start == nullptr) {
      *start = data;
    } else if (data != *start + *length) {
      *error = "region is not contiguous: view " + std::to_string(i) + " starts at " +
               Hex(reinterpret_cast<uintptr_t>(data)) + " but the views before it end at " +
               Hex(reinterpret_cast<uintptr_t>(*start + *length));
      return false;
    }
    *length += bytes.ByteLength();
  }
  if (*length == 0) {
    *error = "region is empty";
    return false;
  }
  return true;
}

// Builds JS values with plain N-API calls. Event deliveries (TSFN callbacks)
// and the registration worker's completion can run while an environment is
// being torn down (a worker thread terminated mid-transfer): node-addon-api
// would then abort the process (it cannot throw its "cannot run JS" error), so
// these paths check each status and quietly give up instead.
class JsBuilder {
 public:
  explicit JsBuilder(napi_env env) : env_(env) {}
  bool ok() const { return ok_; }

  napi_value Object() {
    napi_value value = nullptr;
    Check(ok_ && napi_create_object(env_, &value) == napi_ok);
    return value;
  }
  napi_value Array(size_t length) {
    napi_value value = nullptr;
    Check(ok_ && napi_create_array_with_length(env_, length, &value) == napi_ok);
    return value;
  }
  napi_value String(const std::string& text) {
    napi_value value = nullptr;
    Check(ok_ && napi_create_string_utf8(env_, text.data(), text.size(), &value) == napi_ok);
    return value;
  }
  napi_value Number(double number) {
    napi_value value = nullptr;
    Check(ok_ && napi_create_double(env_, number, &value) == napi_ok);
    return value;
  }
  napi_value Boolean(bool flag) {
    napi_value value = nullptr;
    Check(ok_ && napi_get_boolean(env_, flag, &value) == napi_ok);
    return value;
  }
  napi_value BufferCopy(const std::vector<uint8_t>& bytes) {
    napi_value value = nullptr;
    void* data = nullptr;
    Check(ok_ && napi_create_buffer_copy(env_, bytes.size(), bytes.data(), &data, &value) == napi_ok);
    return value;
  }
  napi_value External(ConnectionRef conn) {
    napi_value value = nullptr;
    auto* ref = new ConnectionRef(std::move(conn));
    if (ok_ && napi_create_external(
                   env_, ref, [](napi_env, void* data, void*) { delete static_cast<ConnectionRef*>(data); }, nullptr,
                   &value) == napi_ok) {
      return value;
    }
    delete ref;  // not handed to JS: dropping it releases the connection
    ok_ = false;
    return nullptr;
  }
  void Set(napi_value object, const char* key, napi_value value) {
    Check(ok_ && value != nullptr && napi_set_named_property(env_, object, key, value) == napi_ok);
  }
  void SetIndex(napi_value array, uint32_t index, napi_value value) {
    Check(ok_ && value != nullptr && napi_set_element(env_, array, index, value) == napi_ok);
  }
  // Calls `function(argument)`. A JS exception stays pending for Node to report
  // as usual; a failure to run JS at all is ignored.
  void Call(napi_value function, napi_value argument) {
    if (!ok_ || function == nullptr) return;
    napi_value undefined = nullptr;
    if (napi_get_undefined(env_, &undefined) != napi_ok) return;
    napi_call_function(env_, undefined, function, 1, &argument, nullptr);
  }

 private:
  void Check(bool good) {
    if (!good) ok_ = false;
  }
  napi_env env_;
  bool ok_ = true;
};

napi_value EventToJs(JsBuilder& js, LinkEvent& event) {
  napi_value object = js.Object();
  switch (event.kind) {
    case LinkEvent::kEstablished:
      js.Set(object, "type", js.String("established"));
      js.Set(object, "device", js.String(event.text));
      js.Set(object, "local", js.String(event.local));
      js.Set(object, "remote", js.String(event.remote));
      break;
    case LinkEvent::kMessage:
      js.Set(object, "type", js.String("message"));
      js.Set(object, "data", js.BufferCopy(event.data));
      break;
    case LinkEvent::kCompleted:
      js.Set(object, "type", js.String("completed"));
      js.Set(object, "token", js.Number(static_cast<double>(event.token)));
      break;
    case LinkEvent::kOpFailed:
      js.Set(object, "type", js.String("opFailed"));
      js.Set(object, "token", js.Number(static_cast<double>(event.token)));
      js.Set(object, "error", js.String(event.text));
      break;
    case LinkEvent::kClosed:
      js.Set(object, "type", js.String("closed"));
      js.Set(object, "reason", js.String(event.text));
      break;
  }
  return object;
}

// The staging arena of a device as one external Buffer per (env, device),
// created once and kept: the memory lives for the process, so no finalizer.
std::map<std::pair<napi_env, rdma::Device*>, napi_ref>& ArenaBuffers() {
  static auto* buffers = new std::map<std::pair<napi_env, rdma::Device*>, napi_ref>();
  return *buffers;
}

class ConnectionWrap : public Napi::ObjectWrap<ConnectionWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RdmaConnection",
                       {
                           InstanceMethod<&ConnectionWrap::Start>("start"),
                           InstanceMethod<&ConnectionWrap::Send>("send"),
                           InstanceMethod<&ConnectionWrap::Expose>("expose"),
                           InstanceMethod<&ConnectionWrap::Write>("write"),
                           InstanceMethod<&ConnectionWrap::Close>("close"),
                           InstanceMethod<&ConnectionWrap::StagingArena>("stagingArena"),
                       });
  }

  explicit ConnectionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ConnectionWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) {
      ThrowTypeError(info.Env(), "RdmaConnection is created by rdmaConnect() or an RdmaListener");
      return;
    }
    conn_ = std::move(*info[0].As<Napi::External<ConnectionRef>>().Data());  // single use
    if (conn_ == nullptr) ThrowError(info.Env(), "this RDMA connection handle was already used");
  }

  ~ConnectionWrap() override {
    // A finalizer must not call into JS; waking the engine thread is all it does.
    if (conn_ != nullptr) conn_->RequestShutdown();
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (conn_ == nullptr) return ThrowError(env, "the RDMA connection is gone");
    if (started_) return ThrowError(env, "the RDMA connection was already started");
    if (info.Length() < 1 || !info[0].IsFunction()) return ThrowTypeError(env, "start(callback) needs a function");
    started_ = true;
    // The TSFN's finalizer owns a reference until the engine thread is joined,
    // so the Connection outlives its thread however the JS side lets go.
    auto* holder = new ConnectionRef(conn_);
    Napi::ThreadSafeFunction tsfn = Napi::ThreadSafeFunction::New(
        env, info[0].As<Napi::Function>(), "poolkv-rdma-link", 0, 1,
        [](Napi::Env, ConnectionRef* owned) {
          (*owned)->RequestShutdown();
          (*owned)->Join();
          delete owned;
        },
        holder);
    Connection* conn = conn_.get();
    conn_->Start(
        [tsfn, conn]() {
          tsfn.NonBlockingCall([conn](Napi::Env env, Napi::Function callback) {
            std::vector<LinkEvent> events = conn->TakeEvents();
            if (events.empty() || env == nullptr) return;
            JsBuilder js(env);
            napi_value array = js.Array(events.size());
            for (size_t i = 0; i < events.size(); i++) js.SetIndex(array, static_cast<uint32_t>(i), EventToJs(js, events[i]));
            js.Call(callback, array);
          });
        },
        [tsfn]() mutable { tsfn.Release(); });
    return env.Undefined();
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (conn_ == nullptr) return ThrowError(env, "the RDMA link is closed");
    if (info.Length() < 1 || !info[0].IsTypedArray()) return ThrowTypeError(env, "send(message) needs a Buffer");
    Napi::Uint8Array message = info[0].As<Napi::Uint8Array>();
    std::string error;
    uint64_t token = conn_->Send(message.Data(), message.ByteLength(), &error);
    if (token == 0) return ThrowError(env, error);
    return Napi::Number::New(env, static_cast<double>(token));
  }

  Napi::Value Expose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (conn_ == nullptr) return ThrowError(env, "the RDMA link is closed");
    if (info.Length() < 2 || !info[0].IsNumber()) return ThrowTypeError(env, "expose(id, region) needs an id");
    double id = info[0].As<Napi::Number>().DoubleValue();
    if (!(id >= 0 && id <= 4294967295.0 && id == static_cast<double>(static_cast<uint32_t>(id)))) {
      return ThrowTypeError(env, "region id must be an integer in [0, 2^32)");
    }
    const uint8_t* start = nullptr;
    uint64_t length = 0;
    std::string error;
    if (!RegionOf(info[1], &start, &length, &error)) return ThrowError(env, error);
    uint64_t token = conn_->Expose(static_cast<uint32_t>(id), start, length, &error);
    if (token == 0) return ThrowError(env, error);
    return Napi::Number::New(env, static_cast<double>(token));
  }

  // write(id, offset, parts) -> token, or 0 when there is nothing to move.
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (conn_ == nullptr) return ThrowError(env, "the RDMA link is closed");
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsArray()) {
      return ThrowTypeError(env, "write(id, offset, parts) needs a number, a number and an array of Buffers");
    }
    double id = info[0].As<Napi::Number>().DoubleValue();
    double offset = info[1].As<Napi::Number>().DoubleValue();
    if (!(id >= 0 && id <= 4294967295.0 && id == static_cast<double>(static_cast<uint32_t>(id)))) {
      return ThrowTypeError(env, "region id must be an integer in [0, 2^32)");
    }
    if (!(offset >= 0 && offset <= 9007199254740991.0 && offset == static_cast<double>(static_cast<uint64_t>(offset)))) {
      return ThrowTypeError(env, "write offset must be a non-negative safe integer");
    }
    Napi::Array parts = info[2].As<Napi::Array>();
    std::vector<rdma::Segment> segments;
    segments.reserve(parts.Length());
    for (uint32_t i = 0; i < parts.Length(); i++) {
      Napi::Value part = parts.Get(i);
      if (!part.IsTypedArray()) return ThrowTypeError(env, "write part " + std::to_string(i) + " is not a Buffer");
      Napi::Uint8Array bytes = part.As<Napi::Uint8Array>();
      if (bytes.ByteLength() > 0) segments.push_back(rdma::Segment{bytes.Data(), bytes.ByteLength()});
    }
    std::string error;
    uint64_t token = conn_->Write(static_cast<uint32_t>(id), static_cast<uint64_t>(offset), std::move(segments), &error);
    if (token == 0 && !error.empty()) return ThrowError(env, error);
    return Napi::Number::New(env, static_cast<double>(token));
  }

  // close(reason?): what was already asked for and a CLOSE message with the
  // reason go out first (for at most 2 s), as the TCP link does.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (conn_ != nullptr) {
      if (!started_) {
        conn_.reset();  // an accepted connection nobody took: release it now
      } else {
        std::string reason = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "closed";
        conn_->Close(reason);
      }
    }
    return info.Env().Undefined();
  }

  // The device's registered staging arena as a Buffer, or a string saying why there is none.
  Napi::Value StagingArena(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    rdma::Device* device = conn_ ? conn_->device() : nullptr;
    if (device == nullptr) return Napi::String::New(env, "the RDMA link is not established");
    if (!rdma::EnsureStagingArena(device)) return Napi::String::New(env, device->staging_error);
    auto key = std::make_pair(static_cast<napi_env>(env), device);
    auto& buffers = ArenaBuffers();
    auto found = buffers.find(key);
    if (found != buffers.end()) {
      napi_value value;
      if (napi_get_reference_value(env, found->second, &value) == napi_ok && value != nullptr) {
        return Napi::Value(env, value);
      }
    }
    Napi::Buffer<uint8_t> buffer = Napi::Buffer<uint8_t>::New(env, device->staging, device->staging_bytes);
    napi_ref ref;
    if (napi_create_reference(env, buffer, 1, &ref) == napi_ok) {
      bool first_for_env = true;
      for (const auto& entry : buffers) first_for_env = first_for_env && entry.first.first != static_cast<napi_env>(env);
      buffers[key] = ref;
      // A worker's environment goes away with its references and the staging
      // slices it held; forget both, so a later environment at the same
      // address never sees a stale reference and the memory is reused.
      if (first_for_env) {
        napi_add_env_cleanup_hook(
            env,
            [](void* arg) {
              napi_env gone = static_cast<napi_env>(arg);
              auto& all = ArenaBuffers();
              for (auto it = all.begin(); it != all.end();) it = it->first.first == gone ? all.erase(it) : std::next(it);
              rdma::StagingReleaseOwner(gone);
            },
            static_cast<napi_env>(env));
      }
    }
    return buffer;
  }

  ConnectionRef conn_;
  bool started_ = false;
};

Napi::Value ConnectJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber()) {
    return ThrowTypeError(env, "rdmaConnect(host, port, timeoutMs)");
  }
  std::string host = info[0].As<Napi::String>().Utf8Value();
  int port = info[1].As<Napi::Number>().Int32Value();
  int timeout_ms = info[2].As<Napi::Number>().Int32Value();
  if (port < 0 || port > 65535) return ThrowError(env, "port " + std::to_string(port) + " is out of range");
  return Napi::External<ConnectionRef>::New(env, new ConnectionRef(Connection::Active(host, port, timeout_ms)),
                                            [](Napi::Env, ConnectionRef* ref) { delete ref; });
}

class ListenerWrap : public Napi::ObjectWrap<ListenerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RdmaListener", {InstanceMethod<&ListenerWrap::Close>("close")});
  }

  explicit ListenerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ListenerWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsFunction()) {
      ThrowTypeError(env, "new RdmaListener(host, port, callback)");
      return;
    }
    int port = info[1].As<Napi::Number>().Int32Value();
    if (port < 0 || port > 65535) {
      ThrowError(env, "port " + std::to_string(port) + " is out of range");
      return;
    }
    listener_ = std::make_shared<Listener>(info[0].As<Napi::String>().Utf8Value(), port);
    auto* holder = new std::shared_ptr<Listener>(listener_);
    Napi::ThreadSafeFunction tsfn = Napi::ThreadSafeFunction::New(
        env, info[2].As<Napi::Function>(), "poolkv-rdma-listener", 0, 1,
        [](Napi::Env, std::shared_ptr<Listener>* owned) {
          (*owned)->RequestShutdown();
          (*owned)->Join();
          delete owned;
        },
        holder);
    Listener* listener = listener_.get();
    listener_->Start(
        [tsfn, listener]() {
          tsfn.NonBlockingCall([listener](Napi::Env env, Napi::Function callback) {
            std::vector<ListenerEvent> events = listener->TakeEvents();
            if (events.empty() || env == nullptr) return;
            JsBuilder js(env);
            napi_value array = js.Array(events.size());
            for (size_t i = 0; i < events.size(); i++) {
              ListenerEvent& event = events[i];
              napi_value object = js.Object();
              switch (event.kind) {
                case ListenerEvent::kListening:
                  js.Set(object, "type", js.String("listening"));
                  js.Set(object, "port", js.Number(event.port));
                  js.Set(object, "address", js.String(event.text));
                  break;
                case ListenerEvent::kConnection:
                  js.Set(object, "type", js.String("connection"));
                  js.Set(object, "handle", js.External(std::move(event.connection)));
                  break;
                case ListenerEvent::kError:
                  js.Set(object, "type", js.String("error"));
                  js.Set(object, "message", js.String(event.text));
                  break;
                case ListenerEvent::kClosed:
                  js.Set(object, "type", js.String("closed"));
                  break;
              }
              js.SetIndex(array, static_cast<uint32_t>(i), object);
            }
            js.Call(callback, array);
          });
        },
        [tsfn]() mutable { tsfn.Release(); });
  }

  ~ListenerWrap() override {
    if (listener_ != nullptr) listener_->RequestShutdown();
  }

 private:
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (listener_ != nullptr) listener_->RequestShutdown();
    return info.Env().Undefined();
  }

  std::shared_ptr<Listener> listener_;
};

// Registers a region (normally the whole pool) on the libuv pool: pinning
// gigabytes takes long enough that it must not run on the JS thread.
class RegisterWorker : public Napi::AsyncWorker {
 public:
  RegisterWorker(Napi::Env env, napi_deferred deferred, Napi::Object views, std::string host, const uint8_t* start,
                 uint64_t length)
      : Napi::AsyncWorker(env, "poolkv-rdma-register"),
        deferred_(deferred),
        views_(Napi::Persistent(views)),
        host_(std::move(host)),
        start_(start),
        length_(length) {}

  void Execute() override {
    rdma::Device* device = rdma::DeviceForHost(host_, &failure_);
    if (device == nullptr) {
      SetError(failure_);
      return;
    }
    device_ = device->name;
    if (rdma::RegisterRegion(device, start_, length_, "pool memory", &registered_now_, &failure_) == nullptr) {
      SetError(failure_);
      return;
    }
    // The staging arena now too, not at the first connection: the first BGSAVE then pays no registration.
    rdma::EnsureStagingArena(device);
  }

  // Settled with plain N-API calls: this can run while the environment is torn down.
  void OnOK() override {
    JsBuilder js(Env());
    napi_value result = js.Object();
    js.Set(result, "device", js.String(device_));
    js.Set(result, "bytes", js.Number(static_cast<double>(length_)));
    js.Set(result, "registered", js.Boolean(registered_now_));
    if (js.ok()) napi_resolve_deferred(Env(), deferred_, result);
  }

  void OnError(const Napi::Error&) override {
    napi_value message = nullptr;
    napi_value error = nullptr;
    if (napi_create_string_utf8(Env(), failure_.data(), failure_.size(), &message) == napi_ok &&
        napi_create_error(Env(), nullptr, message, &error) == napi_ok) {
      napi_reject_deferred(Env(), deferred_, error);
    }
  }

 private:
  napi_deferred deferred_;
  Napi::ObjectReference views_;  // keeps the memory alive while the worker runs
  std::string host_;
  const uint8_t* start_;
  uint64_t length_;
  std::string device_;
  std::string failure_;
  bool registered_now_ = false;
};

Napi::Value RegisterRegionJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto reject = [&](const std::string& message) {
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Reject(Napi::Error::New(env, message).Value());
    return deferred.Promise();
  };
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsString()) {
    return reject("rdmaRegisterRegion(views, hostForDevice): an array of Buffers and an address");
  }
  const uint8_t* start = nullptr;
  uint64_t length = 0;
  std::string error;
  if (!RegionOf(info[0], &start, &length, &error)) return reject(error);
  napi_deferred deferred = nullptr;
  napi_value promise = nullptr;
  if (napi_create_promise(env, &deferred, &promise) != napi_ok) return reject("napi_create_promise failed");
  auto* worker = new RegisterWorker(env, deferred, info[0].As<Napi::Object>(), info[1].As<Napi::String>().Utf8Value(),
                                    start, length);
  worker->Queue();
  return Napi::Value(env, promise);
}

// rdmaStagingAcquire(deviceName, bytes): offset of a slice of that device's
// staging arena (the arena Buffer from stagingArena()), or -1 when none is free.
Napi::Value StagingAcquireJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    return ThrowTypeError(env, "rdmaStagingAcquire(deviceName, bytes)");
  }
  rdma::Device* device = rdma::DeviceNamed(info[0].As<Napi::String>().Utf8Value());
  double bytes = info[1].As<Napi::Number>().DoubleValue();
  if (device == nullptr || !(bytes >= 1 && bytes <= static_cast<double>(rdma::kStagingArenaBytes))) {
    return Napi::Number::New(env, -1);
  }
  return Napi::Number::New(
      env, static_cast<double>(rdma::StagingAcquire(device, static_cast<uint64_t>(bytes), static_cast<napi_env>(env))));
}

// rdmaStagingRelease(deviceName, offset): false when that slice is not this environment's.
Napi::Value StagingReleaseJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    return ThrowTypeError(env, "rdmaStagingRelease(deviceName, offset)");
  }
  rdma::Device* device = rdma::DeviceNamed(info[0].As<Napi::String>().Utf8Value());
  double offset = info[1].As<Napi::Number>().DoubleValue();
  bool released = device != nullptr && offset >= 0 &&
                  rdma::StagingRelease(device, static_cast<uint64_t>(offset), static_cast<napi_env>(env));
  return Napi::Boolean::New(env, released);
}

Napi::Value UnavailableReasonJs(const Napi::CallbackInfo& info) {
  std::string reason = rdma::UnavailableReason();
  if (reason.empty()) return info.Env().Null();
  return Napi::String::New(info.Env(), reason);
}

Napi::Value StatsJs(const Napi::CallbackInfo& info) {
  rdma::RegistryStats stats = rdma::Stats();
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("registrations", static_cast<double>(stats.registrations));
  result.Set("reuseHits", static_cast<double>(stats.reuse_hits));
  result.Set("regionMrs", static_cast<double>(stats.region_mrs));
  result.Set("regionBytes", static_cast<double>(stats.region_bytes));
  result.Set("pinnedBytes", static_cast<double>(stats.pinned_bytes));
  result.Set("connectionsOpen", static_cast<double>(stats.connections_open));
  result.Set("listenersOpen", static_cast<double>(stats.listeners_open));
  result.Set("stagingBytes", static_cast<double>(stats.staging_bytes));
  result.Set("writeBytesZeroCopy", static_cast<double>(stats.write_bytes_zero_copy));
  result.Set("writeBytesCopied", static_cast<double>(stats.write_bytes_copied));
  return result;
}

#endif  // POOLKV_NO_RDMA

}  // namespace

void InitRdma(Napi::Env env, Napi::Object exports) {
  exports.Set("rdmaUnavailableReason", Napi::Function::New(env, UnavailableReasonJs, "rdmaUnavailableReason"));
  exports.Set("rdmaRegisterRegion", Napi::Function::New(env, RegisterRegionJs, "rdmaRegisterRegion"));
  exports.Set("rdmaStats", Napi::Function::New(env, StatsJs, "rdmaStats"));
#ifdef POOLKV_NO_RDMA
  exports.Set("rdmaStagingAcquire", Napi::Function::New(env, NotCompiled, "rdmaStagingAcquire"));
  exports.Set("rdmaStagingRelease", Napi::Function::New(env, NotCompiled, "rdmaStagingRelease"));
  exports.Set("rdmaConnect", Napi::Function::New(env, NotCompiled, "rdmaConnect"));
  exports.Set("RdmaConnection", NotCompiledClass::DefineClass(env, "RdmaConnection", {}));
  exports.Set("RdmaListener", NotCompiledClass::DefineClass(env, "RdmaListener", {}));
#else
  exports.Set("rdmaStagingAcquire", Napi::Function::New(env, StagingAcquireJs, "rdmaStagingAcquire"));
  exports.Set("rdmaStagingRelease", Napi::Function::New(env, StagingReleaseJs, "rdmaStagingRelease"));
  exports.Set("rdmaConnect", Napi::Function::New(env, ConnectJs, "rdmaConnect"));
  exports.Set("RdmaConnection", ConnectionWrap::Define(env));
  exports.Set("RdmaListener", ListenerWrap::Define(env));
#endif
}

}  // namespace poolkv
