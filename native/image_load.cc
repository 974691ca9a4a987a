// Loading a pool image file at start-up (src/snapshot/load.ts): read blocks
// straight into the pool's pages and CRC32 each payload while it is still in
// cache, on several threads, off the event loop.
//
// Why native and parallel: most of a load is the kernel allocating the
// pool's fresh shared-memory pages on first touch, and that work scales with
// the threads that touch them (two threads load a 1.2 GiB image in about half
// the time one does on a 2-core machine). Reading into the final page avoids
// a second copy; CRC-ing each 256 KiB piece right after its read hashes it
// from L2 instead of memory.
//
// With `direct` (the JS side opened the file with O_DIRECT), groups of
// blocks are read by the device straight into an aligned buffer per thread,
// then each payload is copied, and CRC'd in the same pass, into its page: no
// page cache is filled. BGSAVE writes images with O_DIRECT, so they are not in
// the page cache when a restart reads them, and buffered reads of an uncached
// file cost the kernel a page-cache page per 4 KiB on top of the copy.
//
// The checks here only decide whether a block may be written at all (tag,
// length, page in range). Every block header and computed CRC goes back to JS,
// which runs the image verifier over them in order, so the messages, the page
// order rule and the whole-image checksum stay in one place. A block this code
// refuses stops its batch; blocks before it are complete.
#include "modules.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace poolkv {
namespace {

constexpr uint32_t kBlockTag = 0x4b4c4250;  // "PBLK" (src/snapshot/image.ts)
constexpr size_t kHeaderBytes = 16;
constexpr size_t kPiece = 256 * 1024;  // read, then hash while in L2
constexpr unsigned kMaxThreads = 8;
constexpr uint32_t kDirectGroup = 8;  // blocks per O_DIRECT read (~8 MiB)
constexpr int64_t kAlign = 4096;

uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

// Reads from `offset` into dst (room for `room` bytes) until at least `need` bytes are in;
// false with errno (0 = end of file). With O_DIRECT (align > 1) a read that ends off an
// alignment boundary before `need` is an error: only the end of the file may do that.
bool ReadAtLeast(int fd, uint8_t* dst, size_t room, int64_t offset, size_t need, size_t align = 1) {
  size_t done = 0;
  while (done < need) {
    ssize_t n = pread(fd, dst + done, room - done, offset + static_cast<int64_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) {
      errno = 0;
      return false;
    }
    done += static_cast<size_t>(n);
    if (align > 1 && done % align != 0 && done < need) {
      errno = EIO;
      return false;
    }
  }
  return true;
}

struct View {
  uint8_t* data;
  size_t length;
};

// An AsyncWorker whose Execute() runs Work() on `threads` threads at once (the
// libuv thread plus helpers), resolving a promise; the JS values it uses are
// held until it settles.
class ParallelWorker : public Napi::AsyncWorker {
 public:
  ParallelWorker(Napi::Env env, const char* name, unsigned threads)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), threads_(threads) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Hold(const Napi::Value& v) { refs_.push_back(Napi::Persistent(v.As<Napi::Object>())); }

 protected:
  virtual void Work() = 0;
  void Execute() override {
    std::vector<std::thread> helpers;
    for (unsigned i = 1; i < threads_; i++) helpers.emplace_back([this] { Work(); });
    Work();
    for (std::thread& t : helpers) t.join();
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

  Napi::Promise::Deferred deferred_;

 private:
  std::vector<Napi::ObjectReference> refs_;
  const unsigned threads_;
};

class ReadBlocksWorker : public ParallelWorker {
 public:
  ReadBlocksWorker(Napi::Env env, int fd, int64_t first, int64_t stride, uint32_t count, uint32_t pageSize,
                   uint32_t pageCount, std::vector<View> views, size_t viewBytes, uint8_t* headers, uint32_t* crcs,
                   unsigned threads, bool direct)
      : ParallelWorker(env, "poolkv.readImageBlocks", threads),
        fd_(fd), first_(first), stride_(stride), count_(count), pageSize_(pageSize), pageCount_(pageCount),
        views_(std::move(views)), viewBytes_(viewBytes), headers_(headers), crcs_(crcs),
        direct_(direct), stopAt_(count) {}

 protected:

  void OnOK() override {
    Napi::Env env = Env();
    if (!ioError_.empty() && ioBlock_ == stopAt_.load()) {  // a read failed before any header did
      Napi::Error error = Napi::Error::New(env, ioError_);
      error.Set("errno", Napi::Number::New(env, ioErrno_));
      error.Set("block", Napi::Number::New(env, ioBlock_));
      deferred_.Reject(error.Value());
      return;
    }
    deferred_.Resolve(Napi::Number::New(env, stopAt_.load()));
  }

  // Lowers stopAt_ to `block`: no thread starts a later block.
  void StopAt(uint32_t block) {
    uint32_t seen = stopAt_.load();
    while (block < seen && !stopAt_.compare_exchange_weak(seen, block)) {
    }
  }

  void Work() override {
    if (direct_) {
      WorkDirect();
      return;
    }
    for (;;) {
      uint32_t block = next_.fetch_add(1);
      // Blocks are claimed in order, so every block before a problem is claimed, and finished, by someone.
      if (block >= count_ || block >= stopAt_.load()) return;
      if (!ReadBlock(block)) return;
    }
  }

  // O_DIRECT: claim kDirectGroup blocks at a time, read their aligned span in one pread.
  void WorkDirect() {
    const size_t span = static_cast<size_t>(kDirectGroup) * stride_ + 2 * kAlign;
    void* memory = nullptr;
    if (posix_memalign(&memory, kAlign, span) != 0) {
      IoFailure(next_.load(), first_, ENOMEM);
      return;
    }
    std::unique_ptr<uint8_t, decltype(&std::free)> bounce(static_cast<uint8_t*>(memory), &std::free);
    for (;;) {
      uint32_t group = next_.fetch_add(kDirectGroup);
      if (group >= count_ || group >= stopAt_.load()) return;
      uint32_t end = std::min(count_, group + kDirectGroup);
      const int64_t from = first_ + static_cast<int64_t>(group) * stride_;
      const int64_t to = first_ + static_cast<int64_t>(end) * stride_;
      const int64_t alignedFrom = from - from % kAlign;
      const int64_t alignedTo = (to + kAlign - 1) / kAlign * kAlign;
      // The file may end before alignedTo (it ends right after the trailer): a short read there is fine.
      if (!ReadAtLeast(fd_, bounce.get(), static_cast<size_t>(alignedTo - alignedFrom), alignedFrom,
                       static_cast<size_t>(to - alignedFrom), kAlign)) {
        IoFailure(group, alignedFrom, errno);
        return;
      }
      for (uint32_t block = group; block < end; block++) {
        if (block >= stopAt_.load()) return;
        const uint8_t* src = bounce.get() + (from - alignedFrom) + static_cast<int64_t>(block - group) * stride_;
        if (!PlaceBlock(block, src)) return;
      }
    }
  }

  // A block whose bytes are at `src`: check its header, copy the payload into its page with its CRC.
  bool PlaceBlock(uint32_t block, const uint8_t* src) {
    uint8_t* header = headers_ + static_cast<size_t>(block) * kHeaderBytes;
    std::memcpy(header, src, kHeaderBytes);
    uint8_t* dst = Destination(block, header);
    if (dst == nullptr) return false;
    crcs_[block] = CopyCrc32(Crc32(0, header, 12), src + kHeaderBytes, dst, pageSize_);
    return true;
  }

  // Where block `block`'s payload goes, or null (stopping at it) when its header must not be trusted that far.
  uint8_t* Destination(uint32_t block, const uint8_t* header) {
    const uint32_t page = Le32(header + 4);
    if (Le32(header) != kBlockTag || Le32(header + 8) != pageSize_ || page >= pageCount_) {
      StopAt(block);  // JS names what is wrong with this header
      return nullptr;
    }
    const size_t offset = static_cast<size_t>(page) * pageSize_;
    const View& view = views_[offset / viewBytes_];
    const size_t inView = offset % viewBytes_;
    if (inView + pageSize_ > view.length) {
      StopAt(block);
      return nullptr;
    }
    return view.data + inView;
  }

  bool ReadBlock(uint32_t block) {
    const int64_t at = first_ + static_cast<int64_t>(block) * stride_;
    uint8_t* header = headers_ + static_cast<size_t>(block) * kHeaderBytes;
    if (!ReadAtLeast(fd_, header, kHeaderBytes, at, kHeaderBytes)) return IoFailure(block, at, errno);
    uint8_t* dst = Destination(block, header);
    if (dst == nullptr) return false;
    uint32_t crc = Crc32(0, header, 12);  // the block's fields, then its payload
    for (size_t done = 0; done < pageSize_; done += kPiece) {
      const size_t len = std::min(kPiece, pageSize_ - done);
      if (!ReadAtLeast(fd_, dst + done, len, at + static_cast<int64_t>(kHeaderBytes + done), len)) {
        return IoFailure(block, at + static_cast<int64_t>(kHeaderBytes + done), errno);
      }
      crc = Crc32(crc, dst + done, len);
    }
    crcs_[block] = crc;
    return true;
  }

  bool IoFailure(uint32_t block, int64_t at, int err) {
    std::lock_guard<std::mutex> lock(mu_);
    StopAt(block);
    if (ioError_.empty() || block < ioBlock_) {
      ioBlock_ = block;
      ioErrno_ = err;
      ioError_ = err == 0 ? "unexpected end of file reading at byte " + std::to_string(at)
                          : "read at byte " + std::to_string(at) + ": " + std::strerror(err);
    }
    return false;
  }

  const int fd_;
  const int64_t first_;
  const int64_t stride_;
  const uint32_t count_;
  const size_t pageSize_;
  const uint32_t pageCount_;
  const std::vector<View> views_;
  const size_t viewBytes_;
  uint8_t* const headers_;
  uint32_t* const crcs_;
  const bool direct_;
  std::atomic<uint32_t> next_{0};
  std::atomic<uint32_t> stopAt_;
  std::mutex mu_;
  std::string ioError_;  // the first read failure in block order (guarded by mu_)
  int ioErrno_ = 0;
  uint32_t ioBlock_ = 0;
};

bool Number(const Napi::Value& v, double min, double max, double* out) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= min && d <= max) || d != static_cast<double>(static_cast<int64_t>(d))) return false;
  *out = d;
  return true;
}

bool Uint8(const Napi::Value& v, uint8_t** data, size_t* len) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) return false;
  Napi::Uint8Array u8 = v.As<Napi::Uint8Array>();
  *data = u8.Data();
  *len = u8.ByteLength();
  return true;
}

// readImageBlocks({fd, first, stride, count, pageSize, pageCount, views, viewBytes, headers, crcs, threads, direct})
//   → Promise<number>: how many blocks from the first are in place with their header in
//   headers[16 i..] and the CRC of (fields, payload) in crcs[i]; less than count when block
//   [result] has a header that must not be written (JS reports why). Rejects on a read error.
Napi::Value ReadImageBlocks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto fail = [&](const char* message) {
    Napi::TypeError::New(env, std::string("readImageBlocks: ") + message).ThrowAsJavaScriptException();
    return env.Undefined();
  };
  if (info.Length() < 1 || !info[0].IsObject()) return fail("expected an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  double fd, first, stride, count, pageSize, pageCount, viewBytes, threads;
  const double kMaxSafe = 9007199254740991.0;
  if (!Number(o.Get("fd"), 0, INT32_MAX, &fd) || !Number(o.Get("first"), 0, kMaxSafe, &first) ||
      !Number(o.Get("stride"), 1, kMaxSafe, &stride) || !Number(o.Get("count"), 0, UINT32_MAX - 1, &count) ||
      !Number(o.Get("pageSize"), 1, 1 << 30, &pageSize) || !Number(o.Get("pageCount"), 0, UINT32_MAX, &pageCount) ||
      !Number(o.Get("viewBytes"), 1, kMaxSafe, &viewBytes) || !Number(o.Get("threads"), 1, kMaxThreads, &threads)) {
    return fail("fd, first, stride, count, pageSize, pageCount, viewBytes and threads must be in-range integers");
  }
  if (stride < kHeaderBytes + pageSize) return fail("stride is shorter than a block");
  Napi::Value viewsValue = o.Get("views");
  if (!viewsValue.IsArray()) return fail("views must be an array of Buffers");
  Napi::Array viewList = viewsValue.As<Napi::Array>();
  std::vector<View> views;
  for (uint32_t i = 0; i < viewList.Length(); i++) {
    View view;
    if (!Uint8(viewList.Get(i), &view.data, &view.length)) return fail("views must be an array of Buffers");
    views.push_back(view);
  }
  // Every page index below pageCount must land inside a view.
  if (pageCount > 0 && (pageCount - 1) * pageSize / viewBytes >= views.size()) return fail("the views do not cover pageCount pages");
  uint8_t* headers;
  uint8_t* crcBytes;
  size_t headersLen, crcLen;
  Napi::Value headersValue = o.Get("headers");
  Napi::Value crcsValue = o.Get("crcs");
  if (!Uint8(headersValue, &headers, &headersLen) || headersLen < count * kHeaderBytes) {
    return fail("headers must be a Buffer of at least 16 * count bytes");
  }
  if (!crcsValue.IsTypedArray() || crcsValue.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
      crcsValue.As<Napi::Uint32Array>().ElementLength() < count) {
    return fail("crcs must be a Uint32Array of at least count elements");
  }
  Napi::Uint32Array crcs = crcsValue.As<Napi::Uint32Array>();
  crcBytes = reinterpret_cast<uint8_t*>(crcs.Data());
  crcLen = crcs.ByteLength();
  (void)crcLen;
  auto* worker = new ReadBlocksWorker(env, static_cast<int>(fd), static_cast<int64_t>(first), static_cast<int64_t>(stride),
                                      static_cast<uint32_t>(count), static_cast<uint32_t>(pageSize),
                                      static_cast<uint32_t>(pageCount), std::move(views), static_cast<size_t>(viewBytes),
                                      headers, reinterpret_cast<uint32_t*>(crcBytes), static_cast<unsigned>(threads),
                                      o.Get("direct").ToBoolean().Value());
  for (uint32_t i = 0; i < viewList.Length(); i++) worker->Hold(viewList.Get(i));
  worker->Hold(headersValue);
  worker->Hold(crcsValue);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// populatePages(views, threads) → Promise<boolean>: fault every page of the views in for writing
// (MADV_POPULATE_WRITE) on `threads` threads, 64 MiB at a time. For RDMA: ibv_reg_mr faults in and
// zeroes a fresh pool's pages on one thread, which in the soft-RoCE VM took ~2.5 s for 384 MiB; done
// here first, the work is shared between CPUs and the registration finds the pages present. Resolves
// false (having done nothing) where the kernel lacks MADV_POPULATE_WRITE (before Linux 5.14).
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

class PopulateWorker : public ParallelWorker {
 public:
  PopulateWorker(Napi::Env env, std::vector<View> views, unsigned threads)
      : ParallelWorker(env, "poolkv.populatePages", threads), views_(std::move(views)) {
    for (const View& v : views_) {
      for (size_t at = 0; at < v.length; at += kStep) pieces_.push_back({v.data + at, std::min(kStep, v.length - at)});
    }
  }

 protected:
  void OnOK() override {
    if (!error_.empty()) {
      deferred_.Reject(Napi::Error::New(Env(), error_).Value());
      return;
    }
    deferred_.Resolve(Napi::Boolean::New(Env(), !unsupported_.load()));
  }

 private:
  static constexpr size_t kStep = 64 * 1024 * 1024;
  struct Piece {
    uint8_t* data;
    size_t length;
  };

  void Work() override {
    for (;;) {
      size_t i = next_.fetch_add(1);
      if (i >= pieces_.size() || unsupported_.load() || failed_.load()) return;
      // madvise wants a page-aligned start; the views are (they come from one mmap).
      if (madvise(pieces_[i].data, pieces_[i].length, MADV_POPULATE_WRITE) != 0) {
        if (errno == EINVAL) {
          unsupported_ = true;  // an older kernel: leave the faulting to whoever comes next
          return;
        }
        std::lock_guard<std::mutex> lock(mu_);
        if (error_.empty()) error_ = std::string("madvise(MADV_POPULATE_WRITE): ") + std::strerror(errno);
        failed_ = true;
        return;
      }
    }
  }

  const std::vector<View> views_;
  std::vector<Piece> pieces_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> unsupported_{false};
  std::atomic<bool> failed_{false};
  std::mutex mu_;
  std::string error_;
};

Napi::Value PopulatePages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double threads;
  if (info.Length() < 2 || !info[0].IsArray() || !Number(info[1], 1, kMaxThreads, &threads)) {
    Napi::TypeError::New(env, "populatePages: expected (views: Buffer[], threads 1..8)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array list = info[0].As<Napi::Array>();
  std::vector<View> views;
  for (uint32_t i = 0; i < list.Length(); i++) {
    View view;
    if (!Uint8(list.Get(i), &view.data, &view.length) || reinterpret_cast<uintptr_t>(view.data) % 4096 != 0) {
      Napi::TypeError::New(env, "populatePages: every view must be a page-aligned Buffer").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    views.push_back(view);
  }
  auto* worker = new PopulateWorker(env, std::move(views), static_cast<unsigned>(threads));
  for (uint32_t i = 0; i < list.Length(); i++) worker->Hold(list.Get(i));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace

void InitImageLoad(Napi::Env env, Napi::Object exports) {
  exports.Set("readImageBlocks", Napi::Function::New(env, ReadImageBlocks, "readImageBlocks"));
  exports.Set("populatePages", Napi::Function::New(env, PopulatePages, "populatePages"));
}

}  // namespace poolkv
