// Off-thread page work for the snapshot cut (src/snapshot/cut.ts) and the file
// sink (src/transport/file.ts): copy a page and CRC32 it in one pass, CRC32 a
// buffer, and write blocks to a file with pwritev. Each call returns a Promise;
// the work runs on dedicated, lower-priority I/O threads (see IoThread), so
// none of it runs on the event loop.
//
// CRC32 is zlib's (reflected polynomial 0xEDB88320, pre/post inversion): the
// results equal zlib.crc32 exactly, seeds chain the same way. x86-64 CPUs with
// PCLMULQDQ fold 64 bytes per step ("Fast CRC Computation for Generic
// Polynomials Using PCLMULQDQ Instruction", Gopal et al., Intel 2009; the
// bit-reflected constants as in Chromium's zlib crc32_simd.c), storing each
// 64-byte block to the destination as it is folded so a page is read once
// (~14 GB/s here, zlib.crc32 ~2.6 GB/s); other CPUs (or
// POOLKV_PAGEIO_NO_SIMD=1) use slicing-by-8 tables.
//
// Reading live pool memory off-thread: the cut hands the live page to
// copyPageCrc while the main thread may still write it. The copy may then be
// torn, but the CRC always describes exactly the bytes stored in the
// destination (the fold hashes the registers it stores), and the cut discards
// a copy whose page was written meanwhile. A CopyGroup lets the cut stop its
// jobs before the pool can be unmapped: cancel() makes queued jobs skip their
// work and waits for a running one to finish.
//
// Every Buffer handed to a job is held by a persistent reference until the
// job's promise has settled, so it can be neither collected nor reused under it.
#include "modules.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#define POOLKV_PCLMUL 1
#endif

namespace poolkv {
namespace {

// ------------------------------------------------------------------ CRC32

struct CrcTables {
  uint32_t t[8][256];
  CrcTables() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
      for (int k = 1; k < 8; k++) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
    }
  }
};

const CrcTables& Tables() {
  static const CrcTables tables;
  return tables;
}

// Slicing-by-8 over the inverted state `c` (the caller inverts before and after). With kCopy it also
// stores each 8 bytes it hashes to dst as it goes: one pass and no separate memcpy. Where this path is
// chosen (PCLMULQDQ slow or missing: an emulated CPU, typically) memcpy's `rep movsb` is slow too, while
// plain 8-byte moves are not. Each byte is read once, so dst and the CRC always see the same bytes.
template <bool kCopy>
uint32_t CrcTableT(uint32_t c, const uint8_t* p, uint8_t* dst, size_t n) {
  const CrcTables& T = Tables();
  auto byte = [&](uint8_t b) {
    if (kCopy) *dst++ = b;
    c = T.t[0][(c ^ b) & 0xff] ^ (c >> 8);
  };
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    byte(*p++);
    n--;
  }
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    if (kCopy) {
      std::memcpy(dst, &v, 8);
      dst += 8;
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    v ^= c;
    c = T.t[7][v & 0xff] ^ T.t[6][(v >> 8) & 0xff] ^ T.t[5][(v >> 16) & 0xff] ^ T.t[4][(v >> 24) & 0xff] ^
        T.t[3][(v >> 32) & 0xff] ^ T.t[2][(v >> 40) & 0xff] ^ T.t[1][(v >> 48) & 0xff] ^ T.t[0][v >> 56];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    byte(*p++);
    n--;
  }
  return c;
}

uint32_t CrcTable(uint32_t c, const uint8_t* p, size_t n) { return CrcTableT<false>(c, p, nullptr, n); }

#ifdef POOLKV_PCLMUL
bool CpuHasPclmul() {
  const char* off = std::getenv("POOLKV_PAGEIO_NO_SIMD");  // tests: exercise the table path
  if (off != nullptr && *off != '\0' && *off != '0') return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}

// Fold `len` bytes (len >= 64, a multiple of 16) into the inverted state `c`;
// with kCopy, each 16-byte block loaded is also stored to dst.
template <bool kCopy>
__attribute__((target("pclmul,sse4.1"))) uint32_t FoldPclmul(uint32_t c, const uint8_t* src, uint8_t* dst,
                                                             size_t len) {
  alignas(16) static const uint64_t k1k2[] = {0x0154442bd4, 0x01c6e41596};
  alignas(16) static const uint64_t k3k4[] = {0x01751997d0, 0x00ccaa009e};
  alignas(16) static const uint64_t k5k0[] = {0x0163cd6124, 0x0000000000};
  alignas(16) static const uint64_t poly[] = {0x01db710641, 0x01f7011641};
  __m128i x0, x1, x2, x3, x4, x5, x6, x7, x8, y5, y6, y7, y8;

  x1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 0x00));
  x2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 0x10));
  x3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 0x20));
  x4 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 0x30));
  if (kCopy) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 0x00), x1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 0x10), x2);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 0x20), x3);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 0x30), x4);
    dst += 64;
  }
  x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128(static_cast<int>(c)));
  x0 = _mm_load_si128(reinterpret_cast<const __m128i*>(k1k2));
  src += 64;
  len -= 64;

  while (len >= 64) {
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x6 = _mm_clmulepi64_si128(x2, x0, 0x00);
    x7 = _mm_clmulepi64_si128(x3, x0, 0x00);
    x8 = _mm_clmulepi64_si128(x4, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x2 = _mm_clmulepi64_si128(x2, x0, 0x11);
    x3 = _mm_clmulepi64_si128(x3, x0, 0x11);
    x4 = _mm_clmulepi64_si128(x4, x0, 0x11);
    y5 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 0x00));
    y6 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 0x10));
    y7 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 0x20));
    y8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 0x30));
    if (kCopy) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 0x00), y5);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 0x10), y6);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 0x20), y7);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 0x30), y8);
      dst += 64;
    }
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), y5);
    x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), y6);
    x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), y7);
    x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), y8);
    src += 64;
    len -= 64;
  }

  // Fold the four lanes into one.
  x0 = _mm_load_si128(reinterpret_cast<const __m128i*>(k3k4));
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
  x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
  x1 = _mm_xor_si128(_mm_xor_si128(x1, x3), x5);
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
  x1 = _mm_xor_si128(_mm_xor_si128(x1, x4), x5);

  // Remaining 16-byte blocks.
  while (len >= 16) {
    x2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
    if (kCopy) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), x2);
      dst += 16;
    }
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
    src += 16;
    len -= 16;
  }

  // 128 → 64 bits.
  x2 = _mm_clmulepi64_si128(x1, x0, 0x10);
  x3 = _mm_setr_epi32(~0, 0, ~0, 0);
  x1 = _mm_srli_si128(x1, 8);
  x1 = _mm_xor_si128(x1, x2);
  x0 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(k5k0));
  x2 = _mm_srli_si128(x1, 4);
  x1 = _mm_and_si128(x1, x3);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_xor_si128(x1, x2);

  // Barrett reduction to 32 bits.
  x0 = _mm_load_si128(reinterpret_cast<const __m128i*>(poly));
  x2 = _mm_and_si128(x1, x3);
  x2 = _mm_clmulepi64_si128(x2, x0, 0x10);
  x2 = _mm_and_si128(x2, x3);
  x2 = _mm_clmulepi64_si128(x2, x0, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  return static_cast<uint32_t>(_mm_extract_epi32(x1, 1));
}
#endif

#ifdef POOLKV_PCLMUL
// Whether to fold with PCLMULQDQ: the CPU has it and it is actually the faster
// path. Under an emulator (QEMU TCG, as in the soft-RoCE test VM) the
// instruction is emulated and ran at half the speed of the table CRC, so the
// first use times both over 256 KiB (best of 3, well under 1 ms on real
// hardware, where PCLMULQDQ wins ~3x) and keeps PCLMULQDQ unless the table is
// clearly faster.
bool HavePclmul() {
  static const bool ok = [] {
    if (!CpuHasPclmul()) return false;
    const char* force = std::getenv("POOLKV_PAGEIO_SIMD");  // "force": skip the timing
    if (force != nullptr && std::strcmp(force, "force") == 0) return true;
    std::vector<uint8_t> buf(256 * 1024);
    for (size_t i = 0; i < buf.size(); i++) buf[i] = static_cast<uint8_t>(i * 131 + (i >> 8));
    auto best = [&](auto&& run) {
      double fastest = 1e30;
      for (int round = 0; round < 3; round++) {
        auto t0 = std::chrono::steady_clock::now();
        volatile uint32_t sink = run();
        (void)sink;
        fastest = std::min(fastest, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      return fastest;
    };
    double fold = best([&] { return FoldPclmul<false>(~0u, buf.data(), nullptr, buf.size()); });
    double table = best([&] { return CrcTable(~0u, buf.data(), buf.size()); });
    return !(table * 1.25 < fold);
  }();
  return ok;
}
#endif

// Copy n bytes src → dst (dst null: no copy) and return zlib's crc32(seed, the bytes).
// The CRC always covers the bytes as stored in dst, even if src changes meanwhile.
uint32_t CopyCrc(uint32_t seed, const uint8_t* src, uint8_t* dst, size_t n) {
  uint32_t c = ~seed;
#ifdef POOLKV_PCLMUL
  if (HavePclmul() && n >= 64) {
    size_t bulk = n & ~static_cast<size_t>(15);
    c = dst ? FoldPclmul<true>(c, src, dst, bulk) : FoldPclmul<false>(c, src, nullptr, bulk);
    src += bulk;
    if (dst) dst += bulk;
    n -= bulk;
  }
#endif
  c = dst ? CrcTableT<true>(c, src, dst, n) : CrcTable(c, src, n);
  return ~c;
}

// ------------------------------------------------------------------ argument helpers

bool Bytes(const Napi::Value& v, uint8_t** data, size_t* len) {
  if (!v.IsTypedArray()) return false;
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_uint8_array) return false;
  Napi::Uint8Array u8 = v.As<Napi::Uint8Array>();
  *data = u8.Data();
  *len = u8.ByteLength();
  return true;
}

Napi::Value ThrowType(Napi::Env env, const char* message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

bool Seed(const Napi::CallbackInfo& info, size_t i, uint32_t* seed) {
  if (info.Length() <= i || info[i].IsUndefined()) {
    *seed = 0;
    return true;
  }
  if (!info[i].IsNumber()) return false;
  *seed = info[i].As<Napi::Number>().Uint32Value();
  return true;
}

std::string ErrnoText(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

// ------------------------------------------------------------------ the I/O thread
//
// Jobs run on dedicated threads per addon instance (started on first use), not
// on the libuv threadpool, and below the event loop's priority: on a small
// machine a snapshot must not delay the loop's wake-ups, and then never keeps
// more than one core busy (like Redis's forked child).
//
// By default (POOLKV_PAGEIO_NICE unset or "idle") jobs are taken by a worker in
// the SCHED_IDLE class: the kernel runs it only on CPU time nothing else wants,
// and preempts it at once for any other task, so a waking event loop never
// waits behind a page copy. (On the 2-core reference VM, PING p99.9 during a
// 1.2 GiB BGSAVE came out at 1-3 ms whether the copies ran idle-class or at
// nice +5, +10 or +19: there disk traffic and vCPU wake-ups weigh more, and a
// plain O_DIRECT dd next to an idle server doubles its PING p50 too.) An idle-class worker can
// starve on a busy machine (a 1.2 GiB save took 10 s at nice +19 next to a busy
// VM), and an unprivileged thread cannot raise its priority again, so a second
// worker at nice +5 takes any job that has waited kRescueAfter in the queue: a
// save goes at least at nice +5's pace.
// POOLKV_PAGEIO_NICE=N instead runs one worker at nice +N (the old behaviour).
// Jobs may therefore complete out of order; every caller awaits its own.
// Completions come back through a threadsafe function (unref'd while idle).

constexpr int kDefaultNice = 5;
constexpr auto kRescueAfter = std::chrono::milliseconds(2);

// Jobs of one cut: cancel() stops queued ones and waits for a running one, so
// the pool they read can be unmapped right after.
struct GroupState {
  std::mutex mu;
  std::condition_variable idle;
  bool cancelled = false;
  int running = 0;
  uint64_t jobs = 0;
};

class Job {
 public:
  Job(Napi::Env env, std::shared_ptr<GroupState> group)
      : deferred_(Napi::Promise::Deferred::New(env)), group_(std::move(group)) {}
  virtual ~Job() = default;
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Hold(const Napi::Value& v) { refs_.push_back(Napi::Persistent(v.As<Napi::Object>())); }

  std::chrono::steady_clock::time_point queued;  // set by IoThread::Submit

  // On the I/O thread.
  void Execute() {
    if (group_) {
      std::lock_guard<std::mutex> lock(group_->mu);
      if (group_->cancelled) {
        error_ = "cancelled";
        return;
      }
      group_->running++;
      group_->jobs++;
    }
    Run();
    if (group_) {
      std::lock_guard<std::mutex> lock(group_->mu);
      if (--group_->running == 0) group_->idle.notify_all();
    }
  }

  // On the main thread.
  void Settle(Napi::Env env) {
    if (error_.empty()) {
      deferred_.Resolve(Result(env));
      return;
    }
    Napi::Error error = Napi::Error::New(env, error_);
    if (errno_ != 0) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
      const char* name = strerrorname_np(errno_);
      if (name != nullptr) error.Set("code", Napi::String::New(env, name));
#endif
      error.Set("errno", Napi::Number::New(env, errno_));
    }
    deferred_.Reject(error.Value());
  }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;
  void Fail(const char* what, int err) {
    errno_ = err;
    error_ = ErrnoText(what, err);
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> refs_;
  std::shared_ptr<GroupState> group_;
  std::string error_;
  int errno_ = 0;
};

class IoThread {
 public:
  explicit IoThread(napi_env env) : env_(env) {
    const char* e = std::getenv("POOLKV_PAGEIO_NICE");
    idle_ = e == nullptr || *e == '\0' || std::strcmp(e, "idle") == 0;
    nice_ = idle_ ? kDefaultNice : std::atoi(e);
    napi_add_env_cleanup_hook(env, Cleanup, this);
  }

  // Main thread: queue a job (its promise is already in JS hands).
  bool Submit(Job* job) {
    if (!Start()) return false;
    if (pending_++ == 0) napi_ref_threadsafe_function(env_, tsfn_);
    job->queued = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(job);
    }
    wake_.notify_all();
    return true;
  }

  int nice() const { return nice_; }

  // {mode: 'idle' | 'nice+N', rescued}: rescued = jobs the rescuer took because the idle worker was starved.
  Napi::Value Stats(Napi::Env env) {
    Napi::Object out = Napi::Object::New(env);
    out.Set("mode", idle_ ? std::string("idle") : "nice+" + std::to_string(nice_));
    std::lock_guard<std::mutex> lock(mu_);
    out.Set("rescued", Napi::Number::New(env, static_cast<double>(rescued_)));
    return out;
  }

 private:
  bool Start() {
    if (started_) return true;
    napi_value name;
    if (napi_create_string_utf8(env_, "poolkv.pageio", NAPI_AUTO_LENGTH, &name) != napi_ok) return false;
    if (napi_create_threadsafe_function(env_, nullptr, nullptr, name, 0, 1, nullptr, nullptr, this, CallJs, &tsfn_) != napi_ok) {
      return false;
    }
    napi_unref_threadsafe_function(env_, tsfn_);
    threads_.emplace_back([this] { Loop(idle_ ? kIdle : kNice); });
    if (idle_) threads_.emplace_back([this] { Loop(kRescuer); });
    started_ = true;
    return true;
  }

  enum Role { kIdle, kNice, kRescuer };

  void Loop(Role role) {
#ifdef __linux__
    pthread_setname_np(pthread_self(), role == kRescuer ? "poolkv-pageio+" : "poolkv-pageio");
#endif
    // Lower this thread's priority only (Linux: nice and policy are per thread), relative to the process's.
    if (role == kIdle) {
      sched_param param{};
      (void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
    } else if (nice_ > 0) {
      id_t tid = static_cast<id_t>(syscall(SYS_gettid));
      errno = 0;
      int base = getpriority(PRIO_PROCESS, tid);
      if (errno == 0) (void)setpriority(PRIO_PROCESS, tid, std::min(19, base + nice_));
    }
    for (;;) {
      Job* job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (role == kRescuer) {
          // Only jobs the idle worker has left waiting for kRescueAfter.
          for (;;) {
            if (stop_) return;
            if (queue_.empty()) {
              wake_.wait(lock);
              continue;
            }
            auto due = queue_.front()->queued + kRescueAfter;
            if (std::chrono::steady_clock::now() >= due) break;
            wake_.wait_until(lock, due);
          }
          rescued_++;
        } else {
          wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
          if (stop_) return;
        }
        job = queue_.front();
        queue_.pop_front();
      }
      job->Execute();
      if (napi_call_threadsafe_function(tsfn_, job, napi_tsfn_blocking) != napi_ok) {
        // The environment is going away: nothing to settle, the job leaks with it.
      }
    }
  }

  static void CallJs(napi_env env, napi_value, void* context, void* data) {
    auto* self = static_cast<IoThread*>(context);
    auto* job = static_cast<Job*>(data);
    if (env == nullptr) return;  // teardown: JS is gone
    Napi::HandleScope scope(env);
    job->Settle(Napi::Env(env));
    delete job;
    if (--self->pending_ == 0) napi_unref_threadsafe_function(env, self->tsfn_);
  }

  static void Cleanup(void* arg) {
    auto* self = static_cast<IoThread*>(arg);
    if (self->started_) {
      {
        std::lock_guard<std::mutex> lock(self->mu_);
        self->stop_ = true;
      }
      self->wake_.notify_all();
      for (std::thread& t : self->threads_) t.join();
      for (Job* job : self->queue_) delete job;
      self->queue_.clear();
      napi_release_threadsafe_function(self->tsfn_, napi_tsfn_abort);
    }
    delete self;
  }

  napi_env env_;
  napi_threadsafe_function tsfn_ = nullptr;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Job*> queue_;
  uint64_t rescued_ = 0;  // jobs the rescuer took (guarded by mu_)
  bool stop_ = false;
  bool started_ = false;
  int nice_ = 0;
  bool idle_ = true;  // SCHED_IDLE worker + rescuer (default), else one worker at nice +nice_
  int pending_ = 0;  // main thread only
};

IoThread* ThreadOf(const Napi::CallbackInfo& info) { return static_cast<IoThread*>(info.Data()); }

Napi::Value Queue(Napi::Env env, IoThread* io, Job* job) {
  Napi::Promise promise = job->Promise();
  if (!io->Submit(job)) {
    delete job;
    Napi::Error::New(env, "poolkv_native: could not start the page I/O thread").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return promise;
}

// copy (dst != null) or hash (dst == null); resolves with the CRC.
class CopyCrcJob : public Job {
 public:
  CopyCrcJob(Napi::Env env, std::shared_ptr<GroupState> group, const uint8_t* src, uint8_t* dst, size_t len, uint32_t seed)
      : Job(env, std::move(group)), src_(src), dst_(dst), len_(len), crc_(seed) {}

 protected:
  void Run() override { crc_ = CopyCrc(crc_, src_, dst_, len_); }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, crc_); }

 private:
  const uint8_t* src_;
  uint8_t* dst_;
  size_t len_;
  uint32_t crc_;
};

// Write every byte of the buffers at `position`; then optionally start writeback
// of [wbOffset, wbOffset + wbLength) (sync_file_range, SYNC_FILE_RANGE_WRITE).
class PwritevJob : public Job {
 public:
  PwritevJob(Napi::Env env, int fd, int64_t position, int64_t wbOffset, int64_t wbLength)
      : Job(env, nullptr), fd_(fd), position_(position), wbOffset_(wbOffset), wbLength_(wbLength) {}

  void Add(const Napi::Value& buffer, uint8_t* data, size_t len) {
    Hold(buffer);
    if (len == 0) return;
    iov_.push_back({data, len});
    total_ += len;
  }

 protected:
  void Run() override {
    size_t idx = 0;
    int64_t at = position_;
    while (idx < iov_.size()) {
      int count = static_cast<int>(std::min<size_t>(iov_.size() - idx, IOV_MAX));
      ssize_t n = pwritev(fd_, &iov_[idx], count, at);
      if (n < 0) {
        if (errno == EINTR) continue;
        Fail("pwritev", errno);
        return;
      }
      if (n == 0) {
        Fail("pwritev", EIO);
        return;
      }
      at += n;
      size_t left = static_cast<size_t>(n);
      while (idx < iov_.size() && left >= iov_[idx].iov_len) {
        left -= iov_[idx].iov_len;
        idx++;
      }
      if (left > 0) {
        iov_[idx].iov_base = static_cast<uint8_t*>(iov_[idx].iov_base) + left;
        iov_[idx].iov_len -= left;
      }
    }
#ifdef SYNC_FILE_RANGE_WRITE
    // Only a hint to start writeback early (fsync at commit is what makes it durable).
    if (wbLength_ > 0) (void)sync_file_range(fd_, wbOffset_, wbLength_, SYNC_FILE_RANGE_WRITE);
#endif
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, static_cast<double>(total_)); }

 private:
  int fd_;
  int64_t position_;
  int64_t wbOffset_;
  int64_t wbLength_;
  std::vector<iovec> iov_;
  size_t total_ = 0;
};

// copyPageCrc(src, dst, seed) / crc32Async(buf, seed), with or without a group.
Napi::Value QueueCopy(const Napi::CallbackInfo& info, IoThread* io, std::shared_ptr<GroupState> group, bool copy) {
  Napi::Env env = info.Env();
  uint8_t* src;
  size_t srcLen;
  if (info.Length() < 1 || !Bytes(info[0], &src, &srcLen)) return ThrowType(env, "source must be a Buffer or Uint8Array");
  uint8_t* dst = nullptr;
  size_t dstLen = 0;
  size_t seedAt = 1;
  if (copy) {
    if (info.Length() < 2 || !Bytes(info[1], &dst, &dstLen)) {
      return ThrowType(env, "destination must be a Buffer or Uint8Array");
    }
    if (dstLen < srcLen) return ThrowType(env, "destination is shorter than the source");
    if (src < dst + dstLen && dst < src + srcLen) return ThrowType(env, "source and destination overlap");
    seedAt = 2;
  }
  uint32_t seed;
  if (!Seed(info, seedAt, &seed)) return ThrowType(env, "seed must be a number");
  auto* job = new CopyCrcJob(env, std::move(group), src, dst, srcLen, seed);
  job->Hold(info[0]);
  if (copy) job->Hold(info[1]);
  return Queue(env, io, job);
}

Napi::Value CopyPageCrc(const Napi::CallbackInfo& info) { return QueueCopy(info, ThreadOf(info), nullptr, true); }
Napi::Value PageIoStats(const Napi::CallbackInfo& info) { return ThreadOf(info)->Stats(info.Env()); }
Napi::Value Crc32Async(const Napi::CallbackInfo& info) { return QueueCopy(info, ThreadOf(info), nullptr, false); }

// crc32(buf, seed?) → number, on this thread.
Napi::Value Crc32Js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* data;
  size_t len;
  if (info.Length() < 1 || !Bytes(info[0], &data, &len)) return ThrowType(env, "crc32: expected a Buffer or Uint8Array");
  uint32_t seed;
  if (!Seed(info, 1, &seed)) return ThrowType(env, "crc32: seed must be a number");
  return Napi::Number::New(env, CopyCrc(seed, data, nullptr, len));
}

// copyPageCrcSync(src, dst, seed?) → number, on this thread (SAVE blocks anyway).
Napi::Value CopyPageCrcSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* src;
  uint8_t* dst;
  size_t srcLen;
  size_t dstLen;
  if (info.Length() < 2 || !Bytes(info[0], &src, &srcLen) || !Bytes(info[1], &dst, &dstLen)) {
    return ThrowType(env, "copyPageCrcSync: expected (source, destination[, seed])");
  }
  if (dstLen < srcLen) return ThrowType(env, "destination is shorter than the source");
  if (src < dst + dstLen && dst < src + srcLen) return ThrowType(env, "source and destination overlap");
  uint32_t seed;
  if (!Seed(info, 2, &seed)) return ThrowType(env, "copyPageCrcSync: seed must be a number");
  return Napi::Number::New(env, CopyCrc(seed, src, dst, srcLen));
}

bool Int64Arg(const Napi::CallbackInfo& info, size_t i, int64_t fallback, int64_t* out) {
  if (info.Length() <= i || info[i].IsUndefined()) {
    *out = fallback;
    return true;
  }
  if (!info[i].IsNumber()) return false;
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<int64_t>(d))) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

// pwritev(fd, buffers, position, writebackOffset?, writebackLength?) → Promise<bytes>.
Napi::Value Pwritev(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsArray()) {
    return ThrowType(env, "pwritev: expected (fd, buffers[], position[, writebackOffset, writebackLength])");
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  int64_t position;
  int64_t wbOffset;
  int64_t wbLength;
  if (fd < 0 || !Int64Arg(info, 2, 0, &position) || !Int64Arg(info, 3, 0, &wbOffset) || !Int64Arg(info, 4, 0, &wbLength)) {
    return ThrowType(env, "pwritev: fd, position and writeback range must be non-negative integers");
  }
  Napi::Array list = info[1].As<Napi::Array>();
  auto* job = new PwritevJob(env, fd, position, wbOffset, wbLength);
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value item = list.Get(i);
    uint8_t* data;
    size_t len;
    if (!Bytes(item, &data, &len)) {
      delete job;
      return ThrowType(env, "pwritev: every buffer must be a Buffer or Uint8Array");
    }
    job->Add(item, data, len);
  }
  return Queue(env, ThreadOf(info), job);
}

// A CopyGroup: copyPageCrc / crc32Async whose jobs cancel() can stop.
class CopyGroup : public Napi::ObjectWrap<CopyGroup> {
 public:
  static Napi::Function Define(Napi::Env env, IoThread* io) {
    return DefineClass(env, "CopyGroup",
                       {InstanceMethod("copyPageCrc", &CopyGroup::Copy), InstanceMethod("crc32Async", &CopyGroup::Crc),
                        InstanceMethod("cancel", &CopyGroup::Cancel),
                        InstanceAccessor("cancelled", &CopyGroup::Cancelled, nullptr),
                        InstanceAccessor("jobsRun", &CopyGroup::JobsRun, nullptr)},
                       io);
  }

  explicit CopyGroup(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<CopyGroup>(info), io_(static_cast<IoThread*>(info.Data())), state_(std::make_shared<GroupState>()) {}

 private:
  Napi::Value Copy(const Napi::CallbackInfo& info) { return QueueCopy(info, io_, state_, true); }
  Napi::Value Crc(const Napi::CallbackInfo& info) { return QueueCopy(info, io_, state_, false); }

  // Jobs not started yet will reject with "cancelled"; returns once none is running.
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    std::unique_lock<std::mutex> lock(state_->mu);
    state_->cancelled = true;
    state_->idle.wait(lock, [this] { return state_->running == 0; });
    return info.Env().Undefined();
  }

  Napi::Value Cancelled(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(state_->mu);
    return Napi::Boolean::New(info.Env(), state_->cancelled);
  }

  Napi::Value JobsRun(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(state_->mu);
    return Napi::Number::New(info.Env(), static_cast<double>(state_->jobs));
  }

  IoThread* io_;
  std::shared_ptr<GroupState> state_;
};

// alignedBuffer(bytes) → a Buffer whose memory starts on a 4096-byte boundary
// (O_DIRECT file I/O needs aligned memory; Node's own Buffers are not). Not
// zeroed, like Buffer.allocUnsafe: touching megabytes of fresh memory here
// would stall the event loop (~0.5 ms per MiB of first touch on the reference
// VM); the page copies that fill it run off the loop.
Napi::Value AlignedBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return ThrowType(env, "alignedBuffer: expected a byte count");
  double bytes = info[0].As<Napi::Number>().DoubleValue();
  if (!(bytes >= 1 && bytes <= 1024.0 * 1024 * 1024) || bytes != static_cast<double>(static_cast<size_t>(bytes))) {
    return ThrowType(env, "alignedBuffer: byte count must be an integer from 1 to 1 GiB");
  }
  void* memory = nullptr;
  if (posix_memalign(&memory, 4096, static_cast<size_t>(bytes)) != 0) {
    Napi::Error::New(env, "alignedBuffer: out of memory").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(memory), static_cast<size_t>(bytes),
                                    [](Napi::Env, uint8_t* data) { std::free(data); });
}

}  // namespace

uint32_t Crc32(uint32_t seed, const uint8_t* data, size_t len) { return CopyCrc(seed, data, nullptr, len); }

uint32_t CopyCrc32(uint32_t seed, const uint8_t* src, uint8_t* dst, size_t len) { return CopyCrc(seed, src, dst, len); }

void InitPageIo(Napi::Env env, Napi::Object exports) {
  Tables();
  auto* io = new IoThread(env);  // freed by its env cleanup hook
  exports.Set("crc32", Napi::Function::New(env, Crc32Js, "crc32"));
  exports.Set("copyPageCrcSync", Napi::Function::New(env, CopyPageCrcSync, "copyPageCrcSync"));
  exports.Set("copyPageCrc", Napi::Function::New(env, CopyPageCrc, "copyPageCrc", io));
  exports.Set("crc32Async", Napi::Function::New(env, Crc32Async, "crc32Async", io));
  exports.Set("pwritev", Napi::Function::New(env, Pwritev, "pwritev", io));
  exports.Set("CopyGroup", CopyGroup::Define(env, io));
  exports.Set("pageIoStats", Napi::Function::New(env, PageIoStats, "pageIoStats", io));
  exports.Set("alignedBuffer", Napi::Function::New(env, AlignedBuffer, "alignedBuffer"));
#ifdef POOLKV_PCLMUL
  exports.Set("crc32Implementation", Napi::String::New(env, HavePclmul() ? "pclmulqdq" : "slicing-by-8"));
#else
  exports.Set("crc32Implementation", Napi::String::New(env, "slicing-by-8"));
#endif
}

}  // namespace poolkv
