// The RDMA transport's engine: see rdma_engine.h.
#ifndef POOLKV_NO_RDMA

#include "rdma_engine.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace poolkv {
namespace rdma {
namespace {

// ---- wire format -------------------------------------------------------------
// Every SEND carries an 8-byte header {type u8, version u8, 0 u16, length u32
// little-endian} and `length` bytes of payload.
constexpr uint8_t kWireVersion = 1;
constexpr uint8_t kWireMessage = 1;  // a Link message
constexpr uint8_t kWireExpose = 2;   // {id u32, rkey u32, addr u64, length u64}
constexpr uint8_t kWireClose = 3;    // the closing side's reason (UTF-8), its last message
constexpr size_t kWireHeader = 8;
constexpr size_t kWireExposeBytes = 24;
constexpr size_t kSlotBytes = 4096 + 64;  // >= kWireHeader + kMaxMessage, cache-line multiple
static_assert(kSlotBytes >= kWireHeader + kMaxMessage, "slot too small");

constexpr int kSendDepth = 256;   // SQ depth: control SENDs and WRITE work requests in flight
constexpr int kRecvDepth = 128;   // RECVs kept posted
constexpr int kSendSlots = 64;    // registered control-message send buffers
constexpr int kBounceSlots = 8;   // registered 1 MiB buffers for writes from unregistered memory
constexpr int kMaxSge = 16;
constexpr uint64_t kRecvBit = 1ull << 63;
// ACK timeout exponent: 4.096 us * 2^17 ~ 0.54 s per try; with retry_count 7 a
// dead peer is detected in ~4 s unless its kernel already sent a DREQ.
constexpr uint8_t kAckTimeout = 17;
constexpr int kPassiveEstablishMs = 15000;
// close() lets what was already asked for (and its CLOSE message) go out for at
// most this long before it disconnects anyway (as the TCP link does).
constexpr int64_t kGracefulCloseMs = 2000;
constexpr size_t kMaxCloseReason = 1000;

void PutLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void PutLe64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t GetLe32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
uint64_t GetLe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Errno(int err) { return std::strerror(err); }

bool SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

std::string AddressString(const sockaddr* sa, uint16_t port_be) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa == nullptr) return "?";
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(port_be));
  }
  if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(port_be));
  }
  return "?";
}

// Resolves host:port to one socket address (numeric or DNS name).
bool ResolveHost(const std::string& host, int port, bool passive, sockaddr_storage* out,
                 std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* result = nullptr;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &result);
  if (rc != 0 || result == nullptr) {
    *error = "cannot resolve host " + host + ": " + gai_strerror(rc);
    return false;
  }
  std::memset(out, 0, sizeof *out);
  std::memcpy(out, result->ai_addr, std::min<size_t>(result->ai_addrlen, sizeof *out));
  freeaddrinfo(result);
  return true;
}

const char* WcStatusName(ibv_wc_status status) {
  switch (status) {
    case IBV_WC_SUCCESS: return "IBV_WC_SUCCESS";
    case IBV_WC_LOC_LEN_ERR: return "IBV_WC_LOC_LEN_ERR";
    case IBV_WC_LOC_QP_OP_ERR: return "IBV_WC_LOC_QP_OP_ERR";
    case IBV_WC_LOC_EEC_OP_ERR: return "IBV_WC_LOC_EEC_OP_ERR";
    case IBV_WC_LOC_PROT_ERR: return "IBV_WC_LOC_PROT_ERR";
    case IBV_WC_WR_FLUSH_ERR: return "IBV_WC_WR_FLUSH_ERR";
    case IBV_WC_MW_BIND_ERR: return "IBV_WC_MW_BIND_ERR";
    case IBV_WC_BAD_RESP_ERR: return "IBV_WC_BAD_RESP_ERR";
    case IBV_WC_LOC_ACCESS_ERR: return "IBV_WC_LOC_ACCESS_ERR";
    case IBV_WC_REM_INV_REQ_ERR: return "IBV_WC_REM_INV_REQ_ERR";
    case IBV_WC_REM_ACCESS_ERR: return "IBV_WC_REM_ACCESS_ERR";
    case IBV_WC_REM_OP_ERR: return "IBV_WC_REM_OP_ERR";
    case IBV_WC_RETRY_EXC_ERR: return "IBV_WC_RETRY_EXC_ERR";
    case IBV_WC_RNR_RETRY_EXC_ERR: return "IBV_WC_RNR_RETRY_EXC_ERR";
    case IBV_WC_LOC_RDD_VIOL_ERR: return "IBV_WC_LOC_RDD_VIOL_ERR";
    case IBV_WC_REM_INV_RD_REQ_ERR: return "IBV_WC_REM_INV_RD_REQ_ERR";
    case IBV_WC_REM_ABORT_ERR: return "IBV_WC_REM_ABORT_ERR";
    case IBV_WC_INV_EECN_ERR: return "IBV_WC_INV_EECN_ERR";
    case IBV_WC_INV_EEC_STATE_ERR: return "IBV_WC_INV_EEC_STATE_ERR";
    case IBV_WC_FATAL_ERR: return "IBV_WC_FATAL_ERR";
    case IBV_WC_RESP_TIMEOUT_ERR: return "IBV_WC_RESP_TIMEOUT_ERR";
    case IBV_WC_GENERAL_ERR: return "IBV_WC_GENERAL_ERR";
    default: return "IBV_WC_?";
  }
}

std::string WcFailure(const char* what, const ibv_wc& wc) {
  std::string reason = std::string(what) + " failed: " + ibv_wc_status_str(wc.status) + " (" +
                       WcStatusName(wc.status) + ", vendor error " + std::to_string(wc.vendor_err) + ")";
  switch (wc.status) {
    case IBV_WC_RETRY_EXC_ERR:
      reason += ": the peer stopped acknowledging (it died or became unreachable)";
      break;
    case IBV_WC_RNR_RETRY_EXC_ERR:
      reason += ": the peer posted no receive buffers";
      break;
    case IBV_WC_REM_ACCESS_ERR:
      reason += ": the peer refused the access (region no longer registered?)";
      break;
    case IBV_WC_WR_FLUSH_ERR:
      reason += ": the connection went into the error state";
      break;
    default:
      break;
  }
  return reason;
}

std::string RejectReason(int status) {
  // IB CM reject reasons (rdma_cm on RoCE reports these as the event status).
  switch (status) {
    case 8: return "invalid service ID: nothing listens on that port";
    case 28: return "rejected by the listener";
    default: return "reject reason " + std::to_string(status);
  }
}

// ---- global state (leaked on purpose: connection threads may still run while
// static destructors do at process exit) ---------------------------------------

struct RegisteredRange {
  ibv_pd* pd;
  uintptr_t start;
  uintptr_t end;
  ibv_mr* mr;
};

struct Globals {
  std::mutex mu;  // guards devices, ranges, stats counters below
  std::vector<Device*> devices;
  std::vector<RegisteredRange> ranges;
  uint64_t registrations = 0;
  uint64_t reuse_hits = 0;
  std::mutex staging_mu;  // serializes staging arena creation
  std::atomic<uint64_t> pinned_bytes{0};
  std::atomic<uint64_t> connections_open{0};
  std::atomic<uint64_t> listeners_open{0};
  std::atomic<uint64_t> write_bytes_zero_copy{0};
  std::atomic<uint64_t> write_bytes_copied{0};
};

Globals& G() {
  static Globals* globals = new Globals();
  return *globals;
}

// CAP_IPC_LOCK lifts the memlock limit for ibv_reg_mr.
bool HasCapIpcLock() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) {
      unsigned long long caps = std::strtoull(line.c_str() + 7, nullptr, 16);
      return (caps >> 14) & 1;  // CAP_IPC_LOCK
    }
  }
  return false;
}

std::string MemlockMessage(uint64_t bytes, const char* what, uint64_t limit, uint64_t needed) {
  char text[512];
  std::snprintf(text, sizeof text,
                "cannot register %" PRIu64 " bytes of %s for RDMA: memlock limit (ulimit -l) is %" PRIu64
                " KiB; raise it to at least %" PRIu64
                " KiB (e.g. LimitMEMLOCK=infinity in systemd, or ulimit -l unlimited)",
                bytes, what, limit / 1024, (needed + 1023) / 1024);
  return text;
}

// Checks RLIMIT_MEMLOCK before pinning `bytes` more (what ibv_reg_mr would fail on).
bool MemlockAllows(uint64_t bytes, const char* what, std::string* error) {
  rlimit limit{};
  if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return true;
  uint64_t needed = G().pinned_bytes.load() + bytes;
  if (needed <= limit.rlim_cur || HasCapIpcLock()) return true;
  *error = MemlockMessage(bytes, what, limit.rlim_cur, needed);
  return false;
}

// ibv_reg_mr with the memlock check and a clear error. Counts pinned bytes.
ibv_mr* RegisterPinned(ibv_pd* pd, void* addr, uint64_t len, const char* what, std::string* error) {
  if (!MemlockAllows(len, what, error)) return nullptr;
  ibv_mr* mr = ibv_reg_mr(pd, addr, len, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
  if (mr == nullptr) {
    int err = errno;
    rlimit limit{};
    if ((err == ENOMEM || err == EPERM) && getrlimit(RLIMIT_MEMLOCK, &limit) == 0 &&
        limit.rlim_cur != RLIM_INFINITY) {
      *error = MemlockMessage(len, what, limit.rlim_cur, G().pinned_bytes.load() + len) +
               " [ibv_reg_mr: " + Errno(err) + "]";
    } else {
      *error = "ibv_reg_mr of " + std::to_string(len) + " bytes of " + what + " failed: " + Errno(err);
    }
    return nullptr;
  }
  G().pinned_bytes += len;
  return mr;
}

void DeregisterPinned(ibv_mr* mr) {
  uint64_t len = mr->length;
  ibv_dereg_mr(mr);
  G().pinned_bytes -= len;
}

}  // namespace

// ---- availability ------------------------------------------------------------

std::string UnavailableReason() {
  int count = 0;
  errno = 0;
  ibv_device** list = ibv_get_device_list(&count);
  if (list == nullptr) {
    return "no RDMA device: ibv_get_device_list: " + Errno(errno ? errno : ENODEV) +
           " \u2014 load rdma_rxe / check /dev/infiniband";
  }
  ibv_free_device_list(list);
  if (count == 0) {
    return "no RDMA device: ibv_get_device_list found none \u2014 install rdma-core ibverbs-providers "
           "and load a driver (e.g. rdma_rxe: rdma link add rxe0 type rxe netdev <netdev>) / check "
           "/dev/infiniband";
  }
  rdma_event_channel* channel = rdma_create_event_channel();
  if (channel == nullptr) {
    return "rdma_cm unavailable: rdma_create_event_channel: " + Errno(errno) +
           " \u2014 load rdma_ucm / check /dev/infiniband/rdma_cm";
  }
  rdma_destroy_event_channel(channel);
  return "";
}

// ---- devices and registration -------------------------------------------------

Device* DeviceFor(ibv_context* context, std::string* error) {
  if (context == nullptr) {
    *error = "no RDMA device is bound to this address";
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(G().mu);
  for (Device* device : G().devices) {
    if (device->context == context) return device;
  }
  ibv_device_attr attr{};
  if (ibv_query_device(context, &attr) != 0) {
    *error = "ibv_query_device failed: " + Errno(errno);
    return nullptr;
  }
  ibv_pd* pd = ibv_alloc_pd(context);
  if (pd == nullptr) {
    *error = "ibv_alloc_pd failed: " + Errno(errno);
    return nullptr;
  }
  Device* device = new Device();
  device->context = context;
  device->pd = pd;
  device->name = ibv_get_device_name(context->device);
  device->max_sge = attr.max_sge;
  device->max_qp_wr = attr.max_qp_wr;
  ibv_port_attr port{};
  if (ibv_query_port(context, 1, &port) == 0 && port.max_msg_sz > 0) device->max_msg_sz = port.max_msg_sz;
  G().devices.push_back(device);
  return device;
}

Device* DeviceForHost(const std::string& host, std::string* error) {
  sockaddr_storage addr{};
  if (!ResolveHost(host, 0, false, &addr, error)) return nullptr;
  std::string bind_error, resolve_error;
  ibv_context* context = nullptr;
  rdma_cm_id* id = nullptr;
  // A synchronous id (no channel): bind works for a local address...
  if (rdma_create_id(nullptr, &id, nullptr, RDMA_PS_TCP) != 0) {
    std::string reason = UnavailableReason();
    *error = reason.empty() ? "rdma_create_id failed: " + Errno(errno) : reason;
    return nullptr;
  }
  if (rdma_bind_addr(id, reinterpret_cast<sockaddr*>(&addr)) == 0 && id->verbs != nullptr) {
    context = id->verbs;
  } else {
    bind_error = "rdma_bind_addr: " + Errno(errno);
  }
  rdma_destroy_id(id);
  // ...and address resolution finds the device that routes to a peer's address.
  if (context == nullptr && rdma_create_id(nullptr, &id, nullptr, RDMA_PS_TCP) == 0) {
    if (rdma_resolve_addr(id, nullptr, reinterpret_cast<sockaddr*>(&addr), 2000) == 0 && id->verbs != nullptr) {
      context = id->verbs;
    } else {
      resolve_error = "rdma_resolve_addr: " + Errno(errno);
    }
    rdma_destroy_id(id);
  }
  if (context == nullptr) {
    *error = "cannot find the RDMA device for " + host + " (" + bind_error +
             (resolve_error.empty() ? "" : "; " + resolve_error) +
             "); give the address of an RDMA device's netdev (rdma_cm cannot use 127.0.0.1)";
    return nullptr;
  }
  return DeviceFor(context, error);
}

bool EnsureStagingArena(Device* device) {
  std::lock_guard<std::mutex> lock(G().staging_mu);
  if (device->staging != nullptr) return true;
  if (!device->staging_error.empty()) return false;
  void* base = mmap(nullptr, kStagingArenaBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    device->staging_error = "mmap of the RDMA staging arena failed: " + Errno(errno);
    return false;
  }
  std::string error;
  bool registered_now = false;
  // Registered through the region registry so writes from it are found zero-copy.
  if (RegisterRegion(device, static_cast<uint8_t*>(base), kStagingArenaBytes, "staging memory", &registered_now,
                     &error) == nullptr) {
    munmap(base, kStagingArenaBytes);
    device->staging_error = error;
    return false;
  }
  device->staging_used.assign(kStagingArenaBytes / kStagingGranule, false);
  device->staging = static_cast<uint8_t*>(base);
  device->staging_bytes = kStagingArenaBytes;
  return true;
}

int64_t StagingAcquire(Device* device, uint64_t bytes, const void* owner) {
  std::lock_guard<std::mutex> lock(G().staging_mu);
  if (device->staging == nullptr || bytes == 0) return -1;
  uint64_t need = (bytes + kStagingGranule - 1) / kStagingGranule;
  std::vector<bool>& used = device->staging_used;
  uint64_t run = 0;
  for (uint64_t granule = 0; granule < used.size(); granule++) {
    run = used[granule] ? 0 : run + 1;
    if (run == need) {
      uint64_t first = granule + 1 - need;
      for (uint64_t i = first; i <= granule; i++) used[i] = true;
      device->staging_slices[first * kStagingGranule] = {need, owner};
      return static_cast<int64_t>(first * kStagingGranule);
    }
  }
  return -1;
}

bool StagingRelease(Device* device, uint64_t offset, const void* owner) {
  std::lock_guard<std::mutex> lock(G().staging_mu);
  auto found = device->staging_slices.find(offset);
  if (found == device->staging_slices.end() || found->second.second != owner) return false;
  uint64_t first = offset / kStagingGranule;
  for (uint64_t i = first; i < first + found->second.first; i++) device->staging_used[i] = false;
  device->staging_slices.erase(found);
  return true;
}

void StagingReleaseOwner(const void* owner) {
  std::vector<Device*> devices;
  {
    std::lock_guard<std::mutex> lock(G().mu);
    devices = G().devices;
  }
  std::lock_guard<std::mutex> lock(G().staging_mu);
  for (Device* device : devices) {
    for (auto it = device->staging_slices.begin(); it != device->staging_slices.end();) {
      if (it->second.second != owner) {
        ++it;
        continue;
      }
      uint64_t first = it->first / kStagingGranule;
      for (uint64_t i = first; i < first + it->second.first; i++) device->staging_used[i] = false;
      it = device->staging_slices.erase(it);
    }
  }
}

Device* DeviceNamed(const std::string& name) {
  std::lock_guard<std::mutex> lock(G().mu);
  for (Device* device : G().devices) {
    if (device->name == name) return device;
  }
  return nullptr;
}

ibv_mr* RegisterRegion(Device* device, const uint8_t* addr, uint64_t len, const char* what, bool* registered_now,
                       std::string* error) {
  *registered_now = false;
  uintptr_t start = reinterpret_cast<uintptr_t>(addr);
  {
    std::lock_guard<std::mutex> lock(G().mu);
    for (const RegisteredRange& range : G().ranges) {
      if (range.pd == device->pd && range.start <= start && start + len <= range.end) {
        G().reuse_hits++;
        return range.mr;
      }
    }
  }
  // Outside the lock: pinning gigabytes takes a while and must not stall lookups.
  ibv_mr* mr = RegisterPinned(device->pd, const_cast<uint8_t*>(addr), len, what, error);
  if (mr == nullptr) return nullptr;
  std::lock_guard<std::mutex> lock(G().mu);
  G().ranges.push_back(RegisteredRange{device->pd, start, start + len, mr});
  G().registrations++;
  *registered_now = true;
  return mr;
}

bool FindLkey(ibv_pd* pd, const uint8_t* addr, uint64_t len, uint32_t* lkey) {
  uintptr_t start = reinterpret_cast<uintptr_t>(addr);
  std::lock_guard<std::mutex> lock(G().mu);
  for (const RegisteredRange& range : G().ranges) {
    if (range.pd == pd && range.start <= start && start + len <= range.end) {
      *lkey = range.mr->lkey;
      return true;
    }
  }
  return false;
}

RegistryStats Stats() {
  RegistryStats stats;
  std::lock_guard<std::mutex> lock(G().mu);
  stats.registrations = G().registrations;
  stats.reuse_hits = G().reuse_hits;
  stats.region_mrs = G().ranges.size();
  for (const RegisteredRange& range : G().ranges) stats.region_bytes += range.end - range.start;
  stats.pinned_bytes = G().pinned_bytes.load();
  stats.connections_open = G().connections_open.load();
  stats.listeners_open = G().listeners_open.load();
  for (Device* device : G().devices) stats.staging_bytes += device->staging_bytes;
  stats.write_bytes_zero_copy = G().write_bytes_zero_copy.load();
  stats.write_bytes_copied = G().write_bytes_copied.load();
  return stats;
}

// ---- WakeFd --------------------------------------------------------------------

WakeFd::WakeFd() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

WakeFd::~WakeFd() { Close(); }

void WakeFd::Signal() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return;
  uint64_t one = 1;
  ssize_t ignored = write(fd_, &one, sizeof one);
  (void)ignored;
}

void WakeFd::Drain() {
  uint64_t count;
  ssize_t ignored = read(fd_, &count, sizeof count);
  (void)ignored;
}

void WakeFd::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

// ---- Connection ---------------------------------------------------------------

Connection::Connection() {
  G().connections_open++;
}

Connection::~Connection() {
  if (thread_.joinable()) {
    RequestShutdown();
    thread_.join();
  }
  ReleaseResources();
  G().connections_open--;
}

std::shared_ptr<Connection> Connection::Active(const std::string& host, int port, int timeout_ms) {
  std::shared_ptr<Connection> conn(new Connection());
  conn->active_ = true;
  conn->host_ = host;
  conn->port_ = port;
  conn->timeout_ms_ = timeout_ms > 0 ? timeout_ms : 10000;
  return conn;
}

std::shared_ptr<Connection> Connection::Passive(rdma_cm_id* id, std::string* error) {
  std::shared_ptr<Connection> conn(new Connection());
  conn->active_ = false;
  conn->id_ = id;
  conn->host_ = AddressString(rdma_get_peer_addr(id), rdma_get_dst_port(id));
  bool accepted = false;
  do {
    // Its own channel, so its events (ESTABLISHED, DISCONNECTED) reach its own thread.
    conn->channel_ = rdma_create_event_channel();
    if (conn->channel_ == nullptr) {
      *error = "rdma_create_event_channel: " + Errno(errno);
      break;
    }
    if (!SetNonBlocking(conn->channel_->fd)) {
      *error = "fcntl(O_NONBLOCK) on the rdma_cm channel: " + Errno(errno);
      break;
    }
    if (rdma_migrate_id(id, conn->channel_) != 0) {
      *error = "rdma_migrate_id: " + Errno(errno);
      break;
    }
    id->context = conn.get();
    uint8_t timeout = kAckTimeout;
    rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &timeout, sizeof timeout);
    if (!conn->SetupResources(error)) break;
    rdma_conn_param param{};
    param.responder_resources = 1;
    param.initiator_depth = 1;
    param.retry_count = 7;
    param.rnr_retry_count = 7;  // 7 = retry forever: a momentary lack of RECVs backpressures
    if (rdma_accept(id, &param) != 0) {
      *error = "rdma_accept: " + Errno(errno);
      break;
    }
    accepted = true;
  } while (false);
  if (!accepted) {
    rdma_reject(id, nullptr, 0);
    return nullptr;  // the destructor releases the QP, buffers, id and channel
  }
  conn->connected_ = true;  // accepted: disconnect on teardown even if never established
  return conn;
}

void Connection::Start(Notifier notify, std::function<void()> on_exit) {
  notify_ = std::move(notify);
  on_exit_ = std::move(on_exit);
  started_ = true;
  // Captures `this`, not a shared_ptr: the owner keeps the object alive until Join().
  thread_ = std::thread([this] { Run(); });
}

void Connection::Join() {
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void Connection::Close(const std::string& reason) {
  bool graceful;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_for_ops_) return;
    closed_for_ops_ = true;
    graceful = in_main_loop_;
    if (graceful) {
      // Last in the queue: everything asked for before close() goes out first.
      Op op;
      op.kind = Op::kClose;
      op.token = next_token_++;
      op.payload.assign(reason.begin(), reason.begin() + std::min(reason.size(), kMaxCloseReason));
      incoming_.push_back(std::move(op));
      close_deadline_ms_ = NowMs() + kGracefulCloseMs;
    }
  }
  if (graceful) {
    Wake();
  } else {
    RequestShutdown();  // still connecting: nothing to flush
  }
}

void Connection::RequestShutdown() {
  shutdown_requested_ = true;
  Wake();
}

void Connection::Wake() { wake_.Signal(); }

std::vector<LinkEvent> Connection::TakeEvents() { return events_.Take(); }

void Connection::PushEvent(LinkEvent event) {
  if (events_.Push(std::move(event)) && notify_) notify_();
}

uint64_t Connection::Enqueue(Op op) {
  uint64_t token;
  {
    std::lock_guard<std::mutex> lock(mu_);
    token = next_token_++;
    op.token = token;
    incoming_.push_back(std::move(op));
  }
  Wake();
  return token;
}

uint64_t Connection::Send(const uint8_t* data, size_t len, std::string* error) {
  if (len > kMaxMessage) {
    *error = "message of " + std::to_string(len) + " bytes exceeds LINK_MAX_MESSAGE (" +
             std::to_string(kMaxMessage) + " bytes)";
    return 0;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_for_ops_) {
      *error = "the RDMA link is closed";
      return 0;
    }
  }
  Op op;
  op.kind = Op::kSend;
  op.payload.assign(data, data + len);
  return Enqueue(std::move(op));
}

uint64_t Connection::Expose(uint32_t id, const uint8_t* addr, uint64_t len, std::string* error) {
  if (len == 0) {
    *error = "cannot expose an empty region";
    return 0;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_for_ops_) {
      *error = "the RDMA link is closed";
      return 0;
    }
  }
  Op op;
  op.kind = Op::kExpose;
  op.region_id = id;
  op.region_addr = addr;
  op.region_len = len;
  return Enqueue(std::move(op));
}

uint64_t Connection::Write(uint32_t id, uint64_t offset, std::vector<Segment> parts, std::string* error) {
  uint64_t total = 0;
  for (const Segment& part : parts) total += part.len;
  Op op;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_for_ops_) {
      *error = "the RDMA link is closed";
      return 0;
    }
    auto found = remote_regions_.find(id);
    if (found == remote_regions_.end()) {
      *error = "the peer has not exposed region " + std::to_string(id);
      return 0;
    }
    const RemoteRegion& region = found->second;
    if (offset > region.length || total > region.length - offset) {
      *error = "write of " + std::to_string(total) + " bytes at offset " + std::to_string(offset) +
               " does not fit region " + std::to_string(id) + " (" + std::to_string(region.length) + " bytes)";
      return 0;
    }
    op.remote_addr = region.addr + offset;
    op.rkey = region.rkey;
  }
  if (total == 0) return 0;  // nothing to move; the caller resolves at once
  op.kind = Op::kWrite;
  op.region_id = id;
  op.parts = std::move(parts);
  op.total = total;
  return Enqueue(std::move(op));
}

// ---- the connection's thread ----------------------------------------------------

void Connection::Run() {
  std::string error;
  bool ok = active_ ? ConnectActive(&error) : WaitEstablished(&error);
  if (ok) {
    LinkEvent established{LinkEvent::kEstablished};
    Device* device = device_.load();
    established.text = device ? device->name : "?";
    established.local = AddressString(rdma_get_local_addr(id_), rdma_get_src_port(id_));
    established.remote = AddressString(rdma_get_peer_addr(id_), rdma_get_dst_port(id_));
    PushEvent(std::move(established));
    MainLoop();
  } else {
    Fail(error);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_for_ops_ = true;
  }
  ReleaseResources();
  wake_.Close();  // every descriptor goes with the thread, not with the (garbage-collected) JS wrapper
  LinkEvent closed{LinkEvent::kClosed};
  closed.text = failed_ ? fail_reason_ : "closed";
  PushEvent(std::move(closed));
  if (on_exit_) on_exit_();
}

bool Connection::WaitCmEvent(rdma_cm_event_type expected, int64_t deadline_ms, const char* step,
                             std::string* error) {
  std::string where = host_ + ":" + std::to_string(port_);
  if (!active_) where = "from " + host_;
  for (;;) {
    if (shutdown_requested_) {
      *error = "closed while connecting (" + std::string(step) + ")";
      return false;
    }
    int64_t remaining = deadline_ms - NowMs();
    if (remaining <= 0) {
      *error = "timed out after " + std::to_string(timeout_ms_) + " ms " + step + " (" + where + ")";
      return false;
    }
    pollfd fds[2] = {{channel_->fd, POLLIN, 0}, {wake_.fd(), POLLIN, 0}};
    int rc = poll(fds, 2, static_cast<int>(std::min<int64_t>(remaining, 1000)));
    if (rc < 0 && errno != EINTR) {
      *error = "poll: " + Errno(errno);
      return false;
    }
    rdma_cm_event* event = nullptr;
    if (rdma_get_cm_event(channel_, &event) != 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      *error = "rdma_get_cm_event: " + Errno(errno);
      return false;
    }
    rdma_cm_event_type type = event->event;
    int status = event->status;
    rdma_ack_cm_event(event);
    if (type == expected) return true;
    std::string name = rdma_event_str(type);
    switch (type) {
      case RDMA_CM_EVENT_ADDR_ERROR:
        *error = "cannot resolve the RDMA address of " + where + " (" + name + ", status " + std::to_string(status) +
                 ": " + Errno(status < 0 ? -status : status) +
                 "); use the address of an RDMA device's netdev (rdma_cm cannot use 127.0.0.1)";
        return false;
      case RDMA_CM_EVENT_ROUTE_ERROR:
        *error = "cannot resolve an RDMA route to " + where + " (" + name + ", status " + std::to_string(status) +
                 ": " + Errno(status < 0 ? -status : status) +
                 "); use the address of an RDMA device's netdev (rdma_cm cannot use 127.0.0.1)";
        return false;
      case RDMA_CM_EVENT_REJECTED:
        *error = "RDMA connection to " + where + " refused (" + name + ", " + RejectReason(status) + ")";
        return false;
      case RDMA_CM_EVENT_UNREACHABLE:
        *error = "RDMA peer " + where + " unreachable (" + name + ", status " + std::to_string(status) + ")";
        return false;
      case RDMA_CM_EVENT_CONNECT_ERROR:
        *error = "RDMA connection to " + where + " failed (" + name + ", status " + std::to_string(status) + ")";
        return false;
      case RDMA_CM_EVENT_DISCONNECTED:
        *error = "RDMA peer " + where + " disconnected while connecting (" + name + ")";
        return false;
      case RDMA_CM_EVENT_DEVICE_REMOVAL:
        *error = "RDMA device removed while connecting (" + name + ")";
        return false;
      default:
        break;  // e.g. TIMEWAIT_EXIT of an earlier attempt: not ours to act on
    }
  }
}

bool Connection::ConnectActive(std::string* error) {
  std::string where = host_ + ":" + std::to_string(port_);
  int64_t deadline = NowMs() + timeout_ms_;
  channel_ = rdma_create_event_channel();
  if (channel_ == nullptr) {
    std::string reason = UnavailableReason();
    *error = "cannot connect over RDMA to " + where + ": " +
             (reason.empty() ? "rdma_create_event_channel: " + Errno(errno) : reason);
    return false;
  }
  if (!SetNonBlocking(channel_->fd)) {
    *error = "fcntl(O_NONBLOCK) on the rdma_cm channel: " + Errno(errno);
    return false;
  }
  if (rdma_create_id(channel_, &id_, this, RDMA_PS_TCP) != 0) {
    id_ = nullptr;
    *error = "rdma_create_id: " + Errno(errno);
    return false;
  }
  sockaddr_storage addr{};
  if (!ResolveHost(host_, port_, false, &addr, error)) return false;
  auto step_timeout = [&] { return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(deadline - NowMs(), 5000))); };
  if (rdma_resolve_addr(id_, nullptr, reinterpret_cast<sockaddr*>(&addr), step_timeout()) != 0) {
    *error = "rdma_resolve_addr " + where + ": " + Errno(errno) +
             " (use the address of an RDMA device's netdev; rdma_cm cannot use 127.0.0.1)";
    return false;
  }
  if (!WaitCmEvent(RDMA_CM_EVENT_ADDR_RESOLVED, deadline, "resolving the address", error)) return false;
  uint8_t timeout = kAckTimeout;
  rdma_set_option(id_, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &timeout, sizeof timeout);
  if (rdma_resolve_route(id_, step_timeout()) != 0) {
    *error = "rdma_resolve_route " + where + ": " + Errno(errno) +
             " (use the address of an RDMA device's netdev; rdma_cm cannot use 127.0.0.1)";
    return false;
  }
  if (!WaitCmEvent(RDMA_CM_EVENT_ROUTE_RESOLVED, deadline, "resolving the route", error)) return false;
  if (!SetupResources(error)) return false;
  rdma_conn_param param{};
  param.responder_resources = 1;
  param.initiator_depth = 1;
  param.retry_count = 7;
  param.rnr_retry_count = 7;  // 7 = retry forever: a momentary lack of RECVs backpressures
  if (rdma_connect(id_, &param) != 0) {
    *error = "rdma_connect " + where + ": " + Errno(errno);
    return false;
  }
  if (!WaitCmEvent(RDMA_CM_EVENT_ESTABLISHED, deadline, "waiting for the peer to accept", error)) return false;
  connected_ = true;
  return true;
}

bool Connection::WaitEstablished(std::string* error) {
  return WaitCmEvent(RDMA_CM_EVENT_ESTABLISHED, NowMs() + kPassiveEstablishMs,
                     "waiting for the connection to be established", error);
}

namespace {
bool AllocRegistered(ibv_pd* pd, size_t bytes, const char* what, uint8_t** base, ibv_mr** mr, std::string* error) {
  void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    *error = std::string("mmap of ") + what + " failed: " + Errno(errno);
    return false;
  }
  *mr = RegisterPinned(pd, memory, bytes, what, error);
  if (*mr == nullptr) {
    munmap(memory, bytes);
    return false;
  }
  *base = static_cast<uint8_t*>(memory);
  return true;
}
}  // namespace

bool Connection::SetupResources(std::string* error) {
  Device* device = DeviceFor(id_->verbs, error);
  if (device == nullptr) return false;
  ibv_context* context = id_->verbs;
  comp_channel_ = ibv_create_comp_channel(context);
  if (comp_channel_ == nullptr) {
    *error = "ibv_create_comp_channel: " + Errno(errno);
    return false;
  }
  if (!SetNonBlocking(comp_channel_->fd)) {
    *error = "fcntl(O_NONBLOCK) on the completion channel: " + Errno(errno);
    return false;
  }
  send_depth_ = std::min(kSendDepth, device->max_qp_wr);
  recv_depth_ = std::min(kRecvDepth, device->max_qp_wr);
  max_sge_ = std::max(1, std::min(kMaxSge, device->max_sge));
  cq_ = ibv_create_cq(context, send_depth_ + recv_depth_, this, comp_channel_, 0);
  if (cq_ == nullptr) {
    *error = "ibv_create_cq: " + Errno(errno);
    return false;
  }
  if (ibv_req_notify_cq(cq_, 0) != 0) {
    *error = "ibv_req_notify_cq: " + Errno(errno);
    return false;
  }
  ibv_qp_init_attr attr{};
  attr.send_cq = cq_;
  attr.recv_cq = cq_;
  attr.qp_type = IBV_QPT_RC;
  attr.sq_sig_all = 1;  // every WR completes visibly: completions free slots and finish ops
  attr.cap.max_send_wr = send_depth_;
  attr.cap.max_recv_wr = recv_depth_;
  attr.cap.max_send_sge = max_sge_;
  attr.cap.max_recv_sge = 1;
  if (rdma_create_qp(id_, device->pd, &attr) != 0) {
    *error = "rdma_create_qp: " + Errno(errno);
    return false;
  }
  qp_created_ = true;
  send_depth_ = std::min<int>(send_depth_, attr.cap.max_send_wr);
  max_sge_ = std::max(1, std::min<int>(max_sge_, attr.cap.max_send_sge));
  ibv_port_attr port{};
  uint64_t max_msg = device->max_msg_sz;
  if (ibv_query_port(context, id_->port_num ? id_->port_num : 1, &port) == 0 && port.max_msg_sz > 0) {
    max_msg = port.max_msg_sz;
  }
  chunk_bytes_ = std::min<uint64_t>(kWriteChunkBytes, max_msg);
  // Tuning knobs for benchmarks on real hardware (read once per connection).
  if (const char* knob = getenv("POOLKV_RDMA_WRITE_CHUNK_BYTES")) {
    uint64_t value = strtoull(knob, nullptr, 10);
    if (value >= 4096) chunk_bytes_ = std::min<uint64_t>(value, chunk_bytes_);
  }
  if (const char* knob = getenv("POOLKV_RDMA_WRITE_INFLIGHT_BYTES")) {
    uint64_t value = strtoull(knob, nullptr, 10);
    if (value > 0) max_write_bytes_in_flight_ = value;
  }

  recv_bufs_.bytes = static_cast<size_t>(recv_depth_) * kSlotBytes;
  if (!AllocRegistered(device->pd, recv_bufs_.bytes, "RDMA receive buffers", &recv_bufs_.base, &recv_bufs_.mr, error)) {
    recv_bufs_.bytes = 0;
    return false;
  }
  send_bufs_.bytes = static_cast<size_t>(kSendSlots) * kSlotBytes;
  if (!AllocRegistered(device->pd, send_bufs_.bytes, "RDMA send buffers", &send_bufs_.base, &send_bufs_.mr, error)) {
    send_bufs_.bytes = 0;
    return false;
  }
  for (int slot = kSendSlots - 1; slot >= 0; slot--) free_send_slots_.push_back(slot);
  for (int slot = 0; slot < recv_depth_; slot++) {
    if (!PostRecv(slot, error)) return false;
  }
  EnsureStagingArena(device);  // failure only means acquireStaging() hands out nothing
  device_ = device;
  return true;
}

bool Connection::PostRecv(int slot, std::string* error) {
  ibv_sge sge{};
  sge.addr = reinterpret_cast<uintptr_t>(recv_bufs_.base + static_cast<size_t>(slot) * kSlotBytes);
  sge.length = kSlotBytes;
  sge.lkey = recv_bufs_.mr->lkey;
  ibv_recv_wr wr{};
  wr.wr_id = kRecvBit | static_cast<uint64_t>(slot);
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  int rc = ibv_post_recv(id_->qp, &wr, &bad);
  if (rc != 0) {
    *error = "ibv_post_recv: " + Errno(rc);
    return false;
  }
  return true;
}

void Connection::Fail(const std::string& reason) {
  if (!failed_) {
    failed_ = true;
    fail_reason_ = reason;
  }
}

void Connection::MainLoop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_main_loop_ = true;
  }
  Pump();
  while (!failed_ && !shutdown_requested_ && !close_sent_) {
    int timeout = -1;
    int64_t close_deadline = close_deadline_ms_.load();
    if (close_deadline != 0) {
      int64_t remaining = close_deadline - NowMs();
      if (remaining <= 0) break;  // the peer is not taking what is left; disconnect anyway
      timeout = static_cast<int>(remaining);
    }
    pollfd fds[3] = {{wake_.fd(), POLLIN, 0}, {comp_channel_->fd, POLLIN, 0}, {channel_->fd, POLLIN, 0}};
    int rc = poll(fds, 3, timeout);
    if (rc < 0) {
      if (errno == EINTR) continue;
      Fail("poll: " + Errno(errno));
      break;
    }
    if (fds[0].revents) wake_.Drain();
    if (shutdown_requested_) break;
    // Completions first: messages that arrived before a disconnect are delivered.
    if (fds[1].revents) DrainCompletions();
    if (fds[2].revents) HandleCmEvents();
    // An error condition on a verbs/CM descriptor would wake poll() forever.
    constexpr short kBroken = POLLERR | POLLHUP | POLLNVAL;
    if ((fds[1].revents & kBroken) || (fds[2].revents & kBroken)) {
      Fail("the RDMA device reported an error on the link's completion or rdma_cm channel");
    }
    if (!failed_) Pump();
  }
}

void Connection::HandleCmEvents() {
  rdma_cm_event* event = nullptr;
  while (rdma_get_cm_event(channel_, &event) == 0) {
    rdma_cm_event_type type = event->event;
    rdma_ack_cm_event(event);
    switch (type) {
      case RDMA_CM_EVENT_DISCONNECTED:
        // Deliver what completed before the peer went (its CLOSE message names the reason);
        // the flushed work requests that follow are expected now.
        peer_disconnected_ = true;
        DrainCompletions();
        Fail("peer disconnected (RDMA_CM_EVENT_DISCONNECTED)" + (wc_error_.empty() ? "" : " after " + wc_error_));
        break;
      case RDMA_CM_EVENT_DEVICE_REMOVAL:
        Fail("RDMA device removed (RDMA_CM_EVENT_DEVICE_REMOVAL)");
        break;
      default:
        break;
    }
  }
}

void Connection::DrainCompletions() {
  ibv_cq* event_cq = nullptr;
  void* event_context = nullptr;
  while (ibv_get_cq_event(comp_channel_, &event_cq, &event_context) == 0) unacked_cq_events_++;
  if (unacked_cq_events_ >= 64) {
    ibv_ack_cq_events(cq_, unacked_cq_events_);
    unacked_cq_events_ = 0;
  }
  // Re-arm before polling, so a completion that lands after the last poll still wakes us.
  ibv_req_notify_cq(cq_, 0);
  uint64_t completed_upto = 0;
  // The whole CQ is drained even after an error completion: successful RECVs
  // queued with it still carry messages the peer sent before things went wrong.
  std::string error;        // the first error completion's description
  bool only_flushes = true; // flushes follow the real cause; prefer that one
  ibv_wc wcs[32];
  int n = 0;
  while (!failed_ && (n = ibv_poll_cq(cq_, 32, wcs)) > 0) {
    for (int i = 0; i < n && !failed_; i++) {
      const ibv_wc& wc = wcs[i];
      const char* what = "RECV";
      if (wc.wr_id & kRecvBit) {
        if (wc.status == IBV_WC_SUCCESS) {
          HandleRecv(static_cast<int>(wc.wr_id & ~kRecvBit), wc.byte_len);
          continue;
        }
      } else {
        if (in_flight_.empty()) {
          Fail("internal error: a send completion with no work request in flight");
          break;
        }
        InFlight done = in_flight_.front();
        in_flight_.pop_front();
        if (done.send_slot >= 0) free_send_slots_.push_back(done.send_slot);
        if (done.bounce_slot >= 0) free_bounce_slots_.push_back(done.bounce_slot);
        write_bytes_in_flight_ -= done.bytes;
        if (done.closes) close_sent_ = true;  // sent or not, there is nothing left to wait for
        if (wc.status == IBV_WC_SUCCESS) {
          if (done.last) completed_upto = done.token;
          continue;
        }
        what = done.what;
      }
      bool flush = wc.status == IBV_WC_WR_FLUSH_ERR;
      if (error.empty() || (only_flushes && !flush)) error = WcFailure(what, wc);
      only_flushes = only_flushes && flush;
    }
  }
  if (n < 0 && !failed_) Fail("ibv_poll_cq failed");
  if (completed_upto != 0) {
    LinkEvent event{LinkEvent::kCompleted};
    event.token = completed_upto;
    PushEvent(std::move(event));
  }
  if (!error.empty() && !failed_ && !peer_disconnected_) {
    if (!in_cm_wait_) {
      // A peer that died shows up as flushed or refused work requests first
      // (its MRs may go before its QP); the DISCONNECTED that says what
      // really happened is usually about to arrive: give it a moment.
      in_cm_wait_ = true;
      wc_error_ = only_flushes ? std::string() : error;
      pollfd pfd{channel_->fd, POLLIN, 0};
      if (poll(&pfd, 1, 300) > 0) HandleCmEvents();
      in_cm_wait_ = false;
    }
    Fail(error);
  }
}

bool Connection::HandleRecv(int slot, uint32_t byte_len) {
  const uint8_t* p = recv_bufs_.base + static_cast<size_t>(slot) * kSlotBytes;
  if (byte_len < kWireHeader || p[1] != kWireVersion || GetLe32(p + 4) != byte_len - kWireHeader) {
    Fail("protocol error: malformed control message (" + std::to_string(byte_len) + " bytes)");
    return false;
  }
  uint32_t length = byte_len - kWireHeader;
  LinkEvent event{LinkEvent::kMessage};
  bool deliver = false;
  if (p[0] == kWireMessage) {
    event.data.assign(p + kWireHeader, p + kWireHeader + length);
    deliver = true;
  } else if (p[0] == kWireClose) {
    std::string reason(reinterpret_cast<const char*>(p + kWireHeader), length);
    Fail("peer closed the link: " + (reason.empty() ? std::string("no reason given") : reason));
    return false;
  } else if (p[0] == kWireExpose && length == kWireExposeBytes) {
    const uint8_t* body = p + kWireHeader;
    RemoteRegion region;
    uint32_t id = GetLe32(body);
    region.rkey = GetLe32(body + 4);
    region.addr = GetLe64(body + 8);
    region.length = GetLe64(body + 16);
    // Recorded here, before any later message is handed to JS, so a write()
    // made in reaction to that message already finds the region.
    std::lock_guard<std::mutex> lock(mu_);
    remote_regions_[id] = region;
  } else {
    Fail("protocol error: unknown control message type " + std::to_string(p[0]));
    return false;
  }
  std::string error;
  if (!PostRecv(slot, &error)) {
    Fail(error);
    return false;
  }
  if (deliver) PushEvent(std::move(event));
  return true;
}

void Connection::Pump() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Op& op : incoming_) ops_.push_back(std::move(op));
    incoming_.clear();
  }
  Device* device = device_.load();
  while (!failed_ && !ops_.empty() && static_cast<int>(in_flight_.size()) < send_depth_) {
    Op& op = ops_.front();
    if (op.kind == Op::kWrite) {
      bool done = false;
      if (!PostNextWrite(op, &done)) break;
      if (done) ops_.pop_front();
      continue;
    }
    if (free_send_slots_.empty()) break;
    uint8_t type = kWireMessage;
    const uint8_t* payload = op.payload.data();
    size_t length = op.payload.size();
    uint8_t expose[kWireExposeBytes];
    if (op.kind == Op::kClose) type = kWireClose;
    if (op.kind == Op::kExpose) {
      std::string error;
      bool registered_now = false;
      ibv_mr* mr = RegisterRegion(device, op.region_addr, op.region_len, "exposed region memory", &registered_now,
                                  &error);
      if (mr == nullptr) {
        LinkEvent failed{LinkEvent::kOpFailed};
        failed.token = op.token;
        failed.text = error;
        PushEvent(std::move(failed));
        ops_.pop_front();
        continue;
      }
      PutLe32(expose, op.region_id);
      PutLe32(expose + 4, mr->rkey);
      PutLe64(expose + 8, reinterpret_cast<uintptr_t>(op.region_addr));
      PutLe64(expose + 16, op.region_len);
      type = kWireExpose;
      payload = expose;
      length = kWireExposeBytes;
    }
    int slot = free_send_slots_.back();
    free_send_slots_.pop_back();
    uint8_t* buffer = send_bufs_.base + static_cast<size_t>(slot) * kSlotBytes;
    buffer[0] = type;
    buffer[1] = kWireVersion;
    buffer[2] = buffer[3] = 0;
    PutLe32(buffer + 4, static_cast<uint32_t>(length));
    if (length > 0) std::memcpy(buffer + kWireHeader, payload, length);
    ibv_sge sge{};
    sge.addr = reinterpret_cast<uintptr_t>(buffer);
    sge.length = static_cast<uint32_t>(kWireHeader + length);
    sge.lkey = send_bufs_.mr->lkey;
    ibv_send_wr wr{};
    wr.wr_id = op.token;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.opcode = IBV_WR_SEND;
    wr.send_flags = IBV_SEND_SIGNALED;
    ibv_send_wr* bad = nullptr;
    int rc = ibv_post_send(id_->qp, &wr, &bad);
    if (rc != 0) {
      free_send_slots_.push_back(slot);
      Fail("ibv_post_send (SEND): " + Errno(rc));
      break;
    }
    in_flight_.push_back(InFlight{op.token, true, slot, -1, "SEND", 0, op.kind == Op::kClose});
    ops_.pop_front();
  }
}

// Posts the next RDMA WRITE (at most chunk_bytes_) of `op`. Parts in registered
// memory go out by reference; the rest is gathered into a bounce buffer.
// False when nothing could be posted (no bounce buffer free, or failure).
bool Connection::PostNextWrite(Op& op, bool* op_done) {
  Device* device = device_.load();
  // Bounded bytes in flight: soft-RoCE (and real NICs' responders) slow down
  // badly when hundreds of MiB are outstanding; a few MiB keep the pipe full.
  if (write_bytes_in_flight_ >= max_write_bytes_in_flight_) return false;
  uint64_t chunk = std::min<uint64_t>(chunk_bytes_, op.total - op.posted);
  ibv_sge sges[kMaxSge];
  int nsge = 0;
  int bounce = -1;
  uint64_t bounce_used = 0;
  uint64_t taken = 0;
  size_t part_index = op.part_index;
  uint64_t part_offset = op.part_offset;
  while (taken < chunk && part_index < op.parts.size()) {
    const Segment& part = op.parts[part_index];
    if (part_offset >= part.len) {
      part_index++;
      part_offset = 0;
      continue;
    }
    uint64_t n = std::min<uint64_t>(part.len - part_offset, chunk - taken);
    const uint8_t* src = part.addr + part_offset;
    uint32_t lkey = 0;
    if (FindLkey(device->pd, src, n, &lkey)) {
      if (nsge == max_sge_) break;
      sges[nsge++] = ibv_sge{reinterpret_cast<uintptr_t>(src), static_cast<uint32_t>(n), lkey};
    } else {
      if (bounce < 0) {
        if (bounce_bufs_.base == nullptr) {
          std::string error;
          bounce_bufs_.bytes = static_cast<size_t>(kBounceSlots) * kWriteChunkBytes;
          if (!AllocRegistered(device->pd, bounce_bufs_.bytes, "RDMA bounce buffers", &bounce_bufs_.base,
                               &bounce_bufs_.mr, &error)) {
            bounce_bufs_.bytes = 0;
            Fail("cannot write from unregistered memory: " + error);
            return false;
          }
          for (int slot = kBounceSlots - 1; slot >= 0; slot--) free_bounce_slots_.push_back(slot);
        }
        if (free_bounce_slots_.empty()) break;  // post what we have, or wait for a completion
        bounce = free_bounce_slots_.back();
        free_bounce_slots_.pop_back();
      }
      uint8_t* dst = bounce_bufs_.base + static_cast<size_t>(bounce) * kWriteChunkBytes + bounce_used;
      bool extends_last = nsge > 0 && sges[nsge - 1].lkey == bounce_bufs_.mr->lkey &&
                          sges[nsge - 1].addr + sges[nsge - 1].length == reinterpret_cast<uintptr_t>(dst);
      if (!extends_last && nsge == max_sge_) break;
      std::memcpy(dst, src, n);
      if (extends_last) {
        sges[nsge - 1].length += static_cast<uint32_t>(n);
      } else {
        sges[nsge++] = ibv_sge{reinterpret_cast<uintptr_t>(dst), static_cast<uint32_t>(n), bounce_bufs_.mr->lkey};
      }
      bounce_used += n;
    }
    taken += n;
    part_offset += n;
    if (part_offset >= part.len) {
      part_index++;
      part_offset = 0;
    }
  }
  if (taken == 0) {
    if (bounce >= 0) free_bounce_slots_.push_back(bounce);
    return false;
  }
  ibv_send_wr wr{};
  wr.wr_id = op.token;
  wr.sg_list = sges;
  wr.num_sge = nsge;
  wr.opcode = IBV_WR_RDMA_WRITE;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.rdma.remote_addr = op.remote_addr + op.posted;
  wr.wr.rdma.rkey = op.rkey;
  ibv_send_wr* bad = nullptr;
  int rc = ibv_post_send(id_->qp, &wr, &bad);
  if (rc != 0) {
    if (bounce >= 0) free_bounce_slots_.push_back(bounce);
    Fail("ibv_post_send (RDMA WRITE): " + Errno(rc));
    return false;
  }
  G().write_bytes_copied += bounce_used;
  G().write_bytes_zero_copy += taken - bounce_used;
  op.posted += taken;
  op.part_index = part_index;
  op.part_offset = part_offset;
  *op_done = op.posted == op.total;
  write_bytes_in_flight_ += taken;
  in_flight_.push_back(InFlight{op.token, *op_done, -1, bounce, "RDMA WRITE", taken, false});
  return true;
}

void Connection::ReleaseResources() {
  if (id_ != nullptr && connected_) rdma_disconnect(id_);
  connected_ = false;
  if (qp_created_) {
    rdma_destroy_qp(id_);
    qp_created_ = false;
  }
  if (cq_ != nullptr) {
    if (unacked_cq_events_ > 0) ibv_ack_cq_events(cq_, unacked_cq_events_);
    unacked_cq_events_ = 0;
    ibv_destroy_cq(cq_);
    cq_ = nullptr;
  }
  if (comp_channel_ != nullptr) {
    ibv_destroy_comp_channel(comp_channel_);
    comp_channel_ = nullptr;
  }
  for (Buffers* buffers : {&recv_bufs_, &send_bufs_, &bounce_bufs_}) {
    if (buffers->mr != nullptr) DeregisterPinned(buffers->mr);
    if (buffers->base != nullptr) munmap(buffers->base, buffers->bytes);
    *buffers = Buffers();
  }
  free_send_slots_.clear();
  free_bounce_slots_.clear();
  in_flight_.clear();
  write_bytes_in_flight_ = 0;
  ops_.clear();
  if (id_ != nullptr) {
    rdma_destroy_id(id_);
    id_ = nullptr;
  }
  if (channel_ != nullptr) {
    rdma_destroy_event_channel(channel_);
    channel_ = nullptr;
  }
}

// ---- Listener -------------------------------------------------------------------

Listener::Listener(const std::string& host, int port) : host_(host), port_(port) {
  G().listeners_open++;
}

Listener::~Listener() {
  if (thread_.joinable()) {
    RequestShutdown();
    thread_.join();
  }
  if (id_ != nullptr) rdma_destroy_id(id_);
  if (channel_ != nullptr) rdma_destroy_event_channel(channel_);
  G().listeners_open--;
}

void Listener::Start(Notifier notify, std::function<void()> on_exit) {
  notify_ = std::move(notify);
  on_exit_ = std::move(on_exit);
  started_ = true;
  thread_ = std::thread([this] { Run(); });
}

void Listener::Join() {
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void Listener::RequestShutdown() {
  shutdown_requested_ = true;
  wake_.Signal();
}

std::vector<ListenerEvent> Listener::TakeEvents() { return events_.Take(); }

void Listener::PushEvent(ListenerEvent event) {
  if (events_.Push(std::move(event)) && notify_) notify_();
}

bool Listener::Bind(std::string* error) {
  std::string where = host_ + ":" + std::to_string(port_);
  channel_ = rdma_create_event_channel();
  if (channel_ == nullptr) {
    std::string reason = UnavailableReason();
    *error = "cannot listen for RDMA on " + where + ": " +
             (reason.empty() ? "rdma_create_event_channel: " + Errno(errno) : reason);
    return false;
  }
  if (!SetNonBlocking(channel_->fd)) {
    *error = "fcntl(O_NONBLOCK) on the rdma_cm channel: " + Errno(errno);
    return false;
  }
  if (rdma_create_id(channel_, &id_, this, RDMA_PS_TCP) != 0) {
    id_ = nullptr;
    *error = "rdma_create_id: " + Errno(errno);
    return false;
  }
  sockaddr_storage addr{};
  if (!ResolveHost(host_, port_, true, &addr, error)) return false;
  if (rdma_bind_addr(id_, reinterpret_cast<sockaddr*>(&addr)) != 0) {
    *error = "cannot listen for RDMA on " + where + ": rdma_bind_addr: " + Errno(errno) +
             (errno == EADDRINUSE ? "" : " (is " + host_ + " an address of an RDMA device's netdev?)");
    return false;
  }
  if (rdma_listen(id_, 64) != 0) {
    *error = "cannot listen for RDMA on " + where + ": rdma_listen: " + Errno(errno);
    return false;
  }
  port_ = ntohs(rdma_get_src_port(id_));
  // Open the device and register its staging arena now rather than at the first connection (~0.5 s on a
  // slow machine, which the first transfer would otherwise pay). Failure here only means it happens later.
  std::string ignored;
  if (Device* device = DeviceForHost(host_, &ignored)) EnsureStagingArena(device);
  return true;
}

void Listener::Run() {
  std::string error;
  if (!Bind(&error)) {
    ListenerEvent failed{ListenerEvent::kError};
    failed.text = error;
    PushEvent(std::move(failed));
  } else {
    ListenerEvent listening{ListenerEvent::kListening};
    listening.port = port_;
    listening.text = AddressString(rdma_get_local_addr(id_), rdma_get_src_port(id_));
    PushEvent(std::move(listening));
    while (!shutdown_requested_) {
      pollfd fds[2] = {{wake_.fd(), POLLIN, 0}, {channel_->fd, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (shutdown_requested_) break;
      rdma_cm_event* event = nullptr;
      while (rdma_get_cm_event(channel_, &event) == 0) {
        rdma_cm_event_type type = event->event;
        rdma_cm_id* incoming = event->id;
        // Acked before the new id is touched: that event counts against the listening id.
        rdma_ack_cm_event(event);
        if (type != RDMA_CM_EVENT_CONNECT_REQUEST) continue;
        if (shutdown_requested_) {
          rdma_reject(incoming, nullptr, 0);
          rdma_destroy_id(incoming);
          continue;
        }
        std::string setup_error;
        std::shared_ptr<Connection> conn = Connection::Passive(incoming, &setup_error);
        if (conn == nullptr) {
          ListenerEvent failed{ListenerEvent::kError};
          failed.text = "incoming RDMA connection failed: " + setup_error;
          PushEvent(std::move(failed));
          continue;
        }
        ListenerEvent accepted{ListenerEvent::kConnection};
        accepted.connection = std::move(conn);
        PushEvent(std::move(accepted));
      }
    }
  }
  if (id_ != nullptr) {
    rdma_destroy_id(id_);
    id_ = nullptr;
  }
  if (channel_ != nullptr) {
    rdma_destroy_event_channel(channel_);
    channel_ = nullptr;
  }
  wake_.Close();
  PushEvent(ListenerEvent{ListenerEvent::kClosed});
  if (on_exit_) on_exit_();
}

}  // namespace rdma
}  // namespace poolkv

#endif  // POOLKV_NO_RDMA
