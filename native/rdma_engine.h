// The RDMA transport's engine (libibverbs + librdmacm), free of N-API so the
// threads that run it never touch JS. rdma.cc wraps it for JS: each
// Connection/Listener hands its events to a callback (`Notifier`) that the
// wrapper turns into a Napi::ThreadSafeFunction call.
//
// Threads: one per Connection (connection set-up, then completion polling and
// posting) and one per Listener (CM events). The JS thread only enqueues work
// and wakes them through an eventfd; all ibv_post_send calls happen on the
// connection's own thread, so ordering is simply queue order.
#pragma once
#ifndef POOLKV_NO_RDMA

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace poolkv {
namespace rdma {

// An eventfd that wakes a thread's poll loop. Other threads may Signal() while
// the owning thread Close()s it at exit, hence the mutex.
class WakeFd {
 public:
  WakeFd();
  ~WakeFd();
  WakeFd(const WakeFd&) = delete;
  WakeFd& operator=(const WakeFd&) = delete;
  int fd() const { return fd_; }  // polled and closed only by the owning thread
  void Signal();
  void Drain();
  void Close();

 private:
  std::mutex mu_;
  int fd_;
};

// Events a native thread queues for JS. Push() says whether to call the
// notifier: only the first event since the last Take(), so one JS call drains
// a whole burst.
template <typename Event>
class EventMailbox {
 public:
  bool Push(Event event) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(event));
    if (notify_pending_) return false;
    notify_pending_ = true;
    return true;
  }
  std::vector<Event> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Event> events;
    events.swap(events_);
    notify_pending_ = false;
    return events;
  }

 private:
  std::mutex mu_;
  std::vector<Event> events_;
  bool notify_pending_ = false;
};

// Largest control message (link.ts LINK_MAX_MESSAGE).
constexpr size_t kMaxMessage = 4096;
// Bulk writes are split into RDMA WRITE work requests of at most this many
// bytes (further capped by the port's max_msg_sz; POOLKV_RDMA_WRITE_CHUNK_BYTES
// can lower it). The bounce buffers are this size too.
constexpr uint64_t kWriteChunkBytes = 1 << 20;
// RDMA WRITE bytes posted and not yet completed, per connection
// (POOLKV_RDMA_WRITE_INFLIGHT_BYTES overrides it).
constexpr uint64_t kMaxWriteBytesInFlight = 16 << 20;
// Registered process-lifetime staging memory per device (acquireStaging).
constexpr size_t kStagingArenaBytes = 32 << 20;

// Why RDMA cannot be used here, or "" when a device and rdma_cm are present.
std::string UnavailableReason();

// ---- devices and memory registration ---------------------------------------

struct Device {
  ibv_context* context = nullptr;
  ibv_pd* pd = nullptr;  // ours, shared by every connection on this device
  std::string name;
  int max_sge = 1;
  int max_qp_wr = 1;
  uint64_t max_msg_sz = 1u << 30;
  // Staging arena (registered, MAP_SHARED, never freed); null until created.
  uint8_t* staging = nullptr;
  size_t staging_bytes = 0;
  std::string staging_error;
  // Its allocation state (guarded by the staging mutex): per 4 KiB granule,
  // whether it is in use; per slice handed out, its granule count and owner.
  std::vector<bool> staging_used;
  std::map<uint64_t, std::pair<uint64_t, const void*>> staging_slices;
};

// The Device for a verbs context (opened by librdmacm, which keeps it open for
// the process). Creates our PD on first use. Never freed.
Device* DeviceFor(ibv_context* context, std::string* error);

// The device that serves `host` (a local address, or a peer it routes to).
Device* DeviceForHost(const std::string& host, std::string* error);

// Creates the device's staging arena if it does not exist yet. False (with
// device->staging_error set) when it cannot be registered.
bool EnsureStagingArena(Device* device);

// Slices of a device's staging arena, shared by every JS environment (main
// thread and workers) of the process, so allocation happens here, under a
// lock. `owner` identifies the environment, whose slices go when it does.
constexpr uint64_t kStagingGranule = 4096;
int64_t StagingAcquire(Device* device, uint64_t bytes, const void* owner);  // offset, or -1 when full
bool StagingRelease(Device* device, uint64_t offset, const void* owner);
void StagingReleaseOwner(const void* owner);
Device* DeviceNamed(const std::string& name);

struct RegistryStats {
  uint64_t registrations = 0;     // ibv_reg_mr calls made for regions
  uint64_t reuse_hits = 0;        // region registrations satisfied by an existing MR
  uint64_t region_mrs = 0;        // live region MRs
  uint64_t region_bytes = 0;      // bytes in live region MRs
  uint64_t pinned_bytes = 0;      // all bytes this process registered and still holds
  uint64_t connections_open = 0;  // Connection objects alive
  uint64_t listeners_open = 0;
  uint64_t staging_bytes = 0;
  uint64_t write_bytes_zero_copy = 0;  // RDMA WRITE bytes sent straight from registered memory
  uint64_t write_bytes_copied = 0;     // bytes first copied into a bounce buffer
};
RegistryStats Stats();

// Finds an MR of `pd` covering [addr, addr+len), or registers the range
// (kept for the process lifetime). `what` names the memory in errors, e.g.
// "pool memory". *registered_now tells whether ibv_reg_mr was called.
ibv_mr* RegisterRegion(Device* device, const uint8_t* addr, uint64_t len, const char* what,
                       bool* registered_now, std::string* error);

// The lkey of an MR of `pd` covering [addr, addr+len), if any.
bool FindLkey(ibv_pd* pd, const uint8_t* addr, uint64_t len, uint32_t* lkey);

// ---- connections ------------------------------------------------------------

struct LinkEvent {
  enum Kind { kEstablished, kMessage, kCompleted, kOpFailed, kClosed };
  explicit LinkEvent(Kind k) : kind(k) {}
  Kind kind;
  uint64_t token = 0;        // kCompleted: every op up to this token is done; kOpFailed: the op
  std::string text;          // kOpFailed: error; kClosed: reason; kEstablished: device name
  std::string local, remote; // kEstablished: "host:port"
  std::vector<uint8_t> data; // kMessage
};

using Notifier = std::function<void()>;

struct RemoteRegion {
  uint64_t addr = 0;
  uint64_t length = 0;
  uint32_t rkey = 0;
};

struct Segment {
  const uint8_t* addr;
  uint64_t len;
};

class Connection {
 public:
  // Active side: Start() resolves, connects and then polls.
  static std::shared_ptr<Connection> Active(const std::string& host, int port, int timeout_ms);
  // Passive side: called on the listener thread for a CONNECT_REQUEST; takes
  // over `id` (migrates it to its own channel, creates the QP, accepts).
  static std::shared_ptr<Connection> Passive(rdma_cm_id* id, std::string* error);
  ~Connection();

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts the connection's thread. `notify` is called (from that thread)
  // when TakeEvents() has something; `on_exit` is the thread's last action.
  void Start(Notifier notify, std::function<void()> on_exit);
  std::vector<LinkEvent> TakeEvents();
  // Closes like the TCP link: operations already asked for, then a CLOSE
  // message carrying `reason`, go out before the disconnect (for at most
  // kGracefulCloseMs); later calls fail. JS thread; idempotent.
  void Close(const std::string& reason);
  // Wakes the thread to disconnect and release everything now; idempotent, any thread.
  void RequestShutdown();
  // Waits for the thread to finish (call once it has run on_exit, or after RequestShutdown).
  void Join();

  // JS-thread operations: each returns a token (ops complete in token order)
  // or 0 with *error set when the call is invalid.
  uint64_t Send(const uint8_t* data, size_t len, std::string* error);
  uint64_t Expose(uint32_t id, const uint8_t* addr, uint64_t len, std::string* error);
  uint64_t Write(uint32_t id, uint64_t offset, std::vector<Segment> parts, std::string* error);
  // The device this connection runs on, once established (null before).
  Device* device() const { return device_.load(); }

 private:
  struct Op {
    enum Kind { kSend, kExpose, kWrite, kClose } kind;
    uint64_t token = 0;
    std::vector<uint8_t> payload;  // kSend
    uint32_t region_id = 0;        // kExpose, kWrite
    const uint8_t* region_addr = nullptr;
    uint64_t region_len = 0;       // kExpose
    std::vector<Segment> parts;    // kWrite
    uint64_t remote_addr = 0;
    uint32_t rkey = 0;
    uint64_t total = 0;
    uint64_t posted = 0;           // bytes of a write already posted
    size_t part_index = 0;         // cursor into parts
    uint64_t part_offset = 0;
  };
  struct InFlight {
    uint64_t token;
    bool last;          // completing this WR completes the op
    int send_slot;      // -1 if none
    int bounce_slot;    // -1 if none
    const char* what;   // "SEND", "RDMA WRITE"
    uint64_t bytes;     // RDMA WRITE payload (counts against the in-flight cap)
    bool closes;        // the CLOSE message: once it completes the thread disconnects
  };

  Connection();
  void Run();
  bool ConnectActive(std::string* error);
  bool WaitEstablished(std::string* error);
  bool WaitCmEvent(rdma_cm_event_type expected, int64_t deadline_ms, const char* step,
                   std::string* error);
  bool SetupResources(std::string* error);
  bool PostRecv(int slot, std::string* error);
  void MainLoop();
  void HandleCmEvents();
  void DrainCompletions();
  bool HandleRecv(int slot, uint32_t byte_len);
  void Pump();
  bool PostNextWrite(Op& op, bool* op_done);
  void Fail(const std::string& reason);
  void ReleaseResources();
  void PushEvent(LinkEvent event);
  uint64_t Enqueue(Op op);
  void Wake();

  // Set up before Start(); owned by the thread afterwards.
  bool active_ = true;
  std::string host_;
  int port_ = 0;
  int timeout_ms_ = 10000;
  rdma_event_channel* channel_ = nullptr;
  rdma_cm_id* id_ = nullptr;
  std::atomic<Device*> device_{nullptr};
  ibv_comp_channel* comp_channel_ = nullptr;
  ibv_cq* cq_ = nullptr;
  bool qp_created_ = false;
  bool connected_ = false;
  WakeFd wake_;  // closed when the thread ends
  unsigned unacked_cq_events_ = 0;
  int send_depth_ = 0;
  int recv_depth_ = 0;
  int max_sge_ = 1;
  uint64_t chunk_bytes_ = kWriteChunkBytes;
  uint64_t max_write_bytes_in_flight_ = kMaxWriteBytesInFlight;
  uint64_t write_bytes_in_flight_ = 0;

  // Registered per-connection buffers (MAP_SHARED so a fork cannot COW them).
  struct Buffers {
    uint8_t* base = nullptr;
    size_t bytes = 0;
    ibv_mr* mr = nullptr;
  };
  Buffers recv_bufs_, send_bufs_, bounce_bufs_;
  std::vector<int> free_send_slots_, free_bounce_slots_;
  std::deque<InFlight> in_flight_;
  std::deque<Op> ops_;  // poll thread's own queue
  bool failed_ = false;
  std::string fail_reason_;
  bool close_sent_ = false;
  bool in_cm_wait_ = false;
  bool peer_disconnected_ = false;
  std::string wc_error_;  // a failed completion awaiting the DISCONNECTED that explains it
  std::atomic<int64_t> close_deadline_ms_{0};  // set by Close(): disconnect by then at the latest

  std::thread thread_;
  Notifier notify_;
  EventMailbox<LinkEvent> events_;
  std::function<void()> on_exit_;
  std::atomic<bool> shutdown_requested_{false};
  std::atomic<bool> started_{false};

  std::mutex mu_;  // guards everything below
  std::vector<Op> incoming_;
  std::map<uint32_t, RemoteRegion> remote_regions_;
  uint64_t next_token_ = 1;
  bool closed_for_ops_ = false;
  bool in_main_loop_ = false;  // set by the thread (under mu_) once established
};

// ---- listener ---------------------------------------------------------------

struct ListenerEvent {
  enum Kind { kListening, kConnection, kError, kClosed };
  explicit ListenerEvent(Kind k) : kind(k) {}
  Kind kind;
  int port = 0;
  std::string text;  // kListening: bound address; kError: message
  std::shared_ptr<Connection> connection;
};

class Listener {
 public:
  Listener(const std::string& host, int port);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  void Start(Notifier notify, std::function<void()> on_exit);
  std::vector<ListenerEvent> TakeEvents();
  void RequestShutdown();
  void Join();

 private:
  void Run();
  bool Bind(std::string* error);
  void PushEvent(ListenerEvent event);

  std::string host_;
  int port_;
  rdma_event_channel* channel_ = nullptr;
  rdma_cm_id* id_ = nullptr;
  WakeFd wake_;
  std::thread thread_;
  Notifier notify_;
  std::function<void()> on_exit_;
  std::atomic<bool> shutdown_requested_{false};
  std::atomic<bool> started_{false};
  EventMailbox<ListenerEvent> events_;
};

}  // namespace rdma
}  // namespace poolkv

#endif  // POOLKV_NO_RDMA
