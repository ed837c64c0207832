#include "trainer/collective/shm_allreduce.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/socket.h"
#include "common/status.h"
#include "trainer/collective/reduce_kernels.h"

namespace tandem::collective {

using net::Clock;

namespace {

using std::chrono::milliseconds;

constexpr uint64_t kSegmentMagic = 0x4D48534D444E4154ull;  // "TANDMSHM"
constexpr uint32_t kSegmentVersion = 1;
constexpr uint32_t kOfferMagic = 0x52464F53;  // "SOFR"
constexpr size_t kHeaderBytes = 4096;
constexpr size_t kPage = 4096;
constexpr milliseconds kSleepSlice{50};
constexpr auto kSpinFor = std::chrono::microseconds(50);

static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

// What rank 0 broadcasts over TCP: whether it offers a segment, where, and which host it is on.
struct Offer {
  uint32_t magic = kOfferMagic;
  uint32_t offered = 0;
  uint64_t nonce = 0;
  uint64_t bytes = 0;
  uint64_t slot_bytes = 0;
  char name[64] = {};
  char host[320] = {};
};

size_t RoundUp(size_t x, size_t to) { return (x + to - 1) / to * to; }

bool Reached(uint32_t value, uint32_t target) {
  return static_cast<int32_t>(value - target) >= 0;
}

void FutexWait(std::atomic<uint32_t>* word, uint32_t expected, milliseconds timeout) {
  timespec ts{static_cast<time_t>(timeout.count() / 1000),
              static_cast<long>(timeout.count() % 1000) * 1000000L};
  // Not FUTEX_PRIVATE_FLAG: the word is shared between processes.
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

int OnlineCpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

size_t SegmentBytes(int n, size_t slot_bytes, size_t* data_offset);

std::string DescribeAllReduce(uint64_t seq, uint64_t count, uint32_t code) {
  return absl::StrCat("all-reduce #", seq, " of ", count, " floats (",
                      (code & 0xFF) == static_cast<uint32_t>(ReduceOp::kSum) ? "sum" : "average",
                      (code >> 8) == static_cast<uint32_t>(Compression::kBf16) ? ", bf16" : "",
                      ")");
}

}  // namespace

struct ShmAllReducer::Header {
  uint64_t magic;
  uint32_t version;
  uint32_t world_size;
  uint64_t slot_bytes;
  uint64_t nonce;
  alignas(64) std::atomic<uint32_t> abort;  // 0, or 1 + the rank that abandoned the segment
};

// One per rank; only that rank writes the counters and the descriptor. `waiters` (written by the
// others) has its own cache line.
struct ShmAllReducer::Control {
  std::atomic<uint32_t> word[4];  // staged, reduced, consumed: 1 + the last round done; barriers
  std::atomic<uint32_t> op_code;  // ReduceOp | Compression << 8 of the running operation
  std::atomic<uint64_t> op_sequence;
  std::atomic<uint64_t> op_count;
  std::atomic<uint32_t> departed;  // 1 once this rank's communicator is gone
  alignas(64) std::atomic<uint32_t> waiters;  // ranks asleep on one of `word`
};
static_assert(sizeof(ShmAllReducer::Control) % 64 == 0);

namespace {
size_t SegmentBytes(int n, size_t slot_bytes, size_t* data_offset) {
  *data_offset = RoundUp(kHeaderBytes + n * sizeof(ShmAllReducer::Control), kPage);
  return *data_offset + static_cast<size_t>(n) * 2 * slot_bytes;
}
}  // namespace

ShmAllReducer::ShmAllReducer(SharedSegment segment, int rank, int world_size, size_t slot_bytes)
    : segment_(std::move(segment)), rank_(rank), n_(world_size), slot_bytes_(slot_bytes) {
  SegmentBytes(n_, slot_bytes_, &data_offset_);
  spin_ = n_ <= OnlineCpus();
}

ShmAllReducer::~ShmAllReducer() {
  // Ranks still waiting for this one (it left mid-job, say after a local error) fail at once
  // instead of at the operation timeout.
  control(rank_)->departed.store(1, std::memory_order_seq_cst);
  for (auto& w : control(rank_)->word) FutexWakeAll(&w);
}

ShmAllReducer::Header* ShmAllReducer::header() const {
  return reinterpret_cast<Header*>(segment_.data());
}
ShmAllReducer::Control* ShmAllReducer::control(int rank) const {
  return reinterpret_cast<Control*>(segment_.data() + kHeaderBytes) + rank;
}
char* ShmAllReducer::slot(int rank, uint32_t round) const {
  return segment_.data() + data_offset_ + (static_cast<size_t>(rank) * 2 + (round & 1)) * slot_bytes_;
}

std::string ShmHostIdentity(const ShmOptions& options) {
  return options.host.empty() ? HostFingerprint() : absl::StrCat(HostFingerprint(), "/", options.host);
}

absl::StatusOr<std::unique_ptr<ShmAllReducer>> ShmAllReducer::Negotiate(
    Transport& t, const RingOptions& ring, RingScratch& scratch, const ShmOptions& options) {
  const int n = t.world_size(), rank = t.rank();
  if (n == 1) return nullptr;
  const std::string host = ShmHostIdentity(options);
  // The slot holds N slices of at least 32 floats; whole pages keep slots apart.
  const size_t slot_bytes =
      RoundUp(std::max(options.slot_bytes, static_cast<size_t>(n) * 32 * sizeof(float)), kPage);

  Offer offer;
  SharedSegment created;
  if (rank == 0 && options.enabled) {
    size_t data_offset = 0;
    const size_t bytes = SegmentBytes(n, slot_bytes, &data_offset);
    auto seg = SharedSegment::Create(bytes);
    if (seg.ok()) {
      created = *std::move(seg);
      std::random_device rd;
      offer.offered = 1;
      offer.nonce = (uint64_t{rd()} << 32) ^ rd();
      offer.bytes = bytes;
      offer.slot_bytes = slot_bytes;
      std::snprintf(offer.name, sizeof(offer.name), "%s", created.name().c_str());
      auto* h = reinterpret_cast<Header*>(created.data());
      h->magic = kSegmentMagic;
      h->version = kSegmentVersion;
      h->world_size = static_cast<uint32_t>(n);
      h->slot_bytes = slot_bytes;
      h->nonce = offer.nonce;
    } else {
      TANDEM_LOG(warn, "collective rank 0: no shared-memory segment ({}); all-reduce uses TCP",
                 seg.status().ToString());
    }
  }
  std::snprintf(offer.host, sizeof(offer.host), "%s", host.c_str());

  // Whatever happens from here on, nobody leaves the name behind in /dev/shm.
  std::string name;
  auto unlink = [&] {
    if (!name.empty()) (void)SharedSegment::Unlink(name);
  };
  if (rank == 0) name = created.name();
  OpStats stats;
  absl::Status s = RingBroadcast(t, ring, scratch, &offer, sizeof(offer), 0, &stats);
  if (!s.ok()) {
    unlink();
    return s;
  }
  if (rank != 0 && offer.offered && offer.magic == kOfferMagic)
    name.assign(offer.name, strnlen(offer.name, sizeof(offer.name)));

  std::string why_not;
  SharedSegment mine;
  if (!options.enabled) {
    why_not = "disabled on this rank (TANDEM_COLLECTIVE_SHM=0)";
  } else if (!offer.offered || offer.magic != kOfferMagic) {
    why_not = "rank 0 offers no segment";
  } else if (std::string(offer.host, strnlen(offer.host, sizeof(offer.host))) != host) {
    why_not = absl::StrCat("rank 0 runs on another host (", offer.host, ", this is ", host, ")");
  } else if (rank == 0) {
    mine = std::move(created);
  } else {
    auto seg = SharedSegment::Open(name, offer.bytes);
    if (!seg.ok()) {
      why_not = absl::StrCat("cannot map rank 0's segment: ", seg.status().message());
    } else {
      auto* h = reinterpret_cast<const Header*>(seg->data());
      if (h->magic != kSegmentMagic || h->version != kSegmentVersion || h->nonce != offer.nonce ||
          h->world_size != static_cast<uint32_t>(n) || h->slot_bytes != offer.slot_bytes)
        why_not = absl::StrCat(name, " is not the segment rank 0 created");
      else
        mine = *std::move(seg);
    }
  }
  float vote = why_not.empty() ? 1.0f : 0.0f;
  s = RingAllReduce(t, ring, scratch, &vote, 1, ReduceOp::kSum, Compression::kNone, &stats);
  unlink();  // every rank has mapped it, or given up on it
  if (!s.ok()) return s;
  if (!why_not.empty()) {
    TANDEM_LOG(info, "collective rank {}: all-reduce uses TCP: {}", rank, why_not);
    return nullptr;
  }
  if (vote != static_cast<float>(n)) {
    TANDEM_LOG(info,
               "collective rank {}: all-reduce uses TCP: {} of {} ranks cannot share memory "
               "with rank 0",
               rank, n - static_cast<int>(vote), n);
    return nullptr;
  }
  if (rank == 0)
    TANDEM_LOG(info, "collective: all-reduce over shared memory ({} ranks, {} KiB segment)", n,
               mine.size() >> 10);
  return std::unique_ptr<ShmAllReducer>(
      new ShmAllReducer(std::move(mine), rank, n, offer.slot_bytes));
}

void ShmAllReducer::Abort() {
  uint32_t expected = 0;
  header()->abort.compare_exchange_strong(expected, static_cast<uint32_t>(rank_) + 1);
  for (int p = 0; p < n_; ++p)
    for (auto& w : control(p)->word) FutexWakeAll(&w);
}

void ShmAllReducer::Publish(Word w, uint32_t value) {
  Control* c = control(rank_);
  // seq_cst store, then seq_cst load of the sleeper count: paired with the sleeper's increment and
  // re-check in WaitFor, one side always sees the other, so no wake-up is lost.
  c->word[w].store(value, std::memory_order_seq_cst);
  if (c->waiters.load(std::memory_order_seq_cst) != 0) FutexWakeAll(&c->word[w]);
}

absl::Status ShmAllReducer::Aborted(Transport& t) {
  if (absl::Status h = t.health(); !h.ok()) return h;
  const uint32_t who = header()->abort.load() - 1;
  // The rank that abandoned the segment reports why over TCP; Fail waits a moment for that cause.
  return t.Fail(absl::UnavailableError(absl::StrCat(
      t.Describe(static_cast<int>(who)),
      " abandoned the shared-memory collectives (its failure did not reach this rank over TCP)")));
}

absl::Status ShmAllReducer::WaitFor(Transport& t, const RingOptions& o, int peer, Word w,
                                    uint32_t target, OpStats* stats) {
  Control* c = control(peer);
  std::atomic<uint32_t>& word = c->word[w];
  if (Reached(word.load(std::memory_order_acquire), target)) return absl::OkStatus();
  const auto start = Clock::now();
  auto done = [&] {
    stats->wait_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    return absl::OkStatus();
  };
  if (spin_) {
    // Every rank has a CPU: the peer is running and usually microseconds away.
    for (int i = 0;; ++i) {
      if (Reached(word.load(std::memory_order_acquire), target)) return done();
      CpuRelax();
      if ((i & 255) == 255 && Clock::now() - start > kSpinFor) break;
    }
  }
  auto last_progress = start;
  uint32_t last_value = word.load(std::memory_order_acquire);
  for (;;) {
    if (header()->abort.load(std::memory_order_acquire) != 0) return Aborted(t);
    c->waiters.fetch_add(1, std::memory_order_seq_cst);
    uint32_t v = word.load(std::memory_order_seq_cst);
    if (!Reached(v, target) && header()->abort.load() == 0) FutexWait(&word, v, kSleepSlice);
    c->waiters.fetch_sub(1, std::memory_order_seq_cst);
    v = word.load(std::memory_order_acquire);
    if (Reached(v, target)) return done();
    if (absl::Status h = t.health(); !h.ok()) return h;
    if (c->departed.load(std::memory_order_acquire) != 0)
      return t.Fail(absl::UnavailableError(absl::StrCat(
          t.Describe(peer), " closed its communicator while this rank waits for it in a "
          "shared-memory collective: the peer exited or gave up")));
    const auto now = Clock::now();
    if (v != last_value) {
      last_value = v;
      last_progress = now;
    } else if (now - last_progress > o.op_timeout) {
      stats->wait_seconds += std::chrono::duration<double>(now - start).count();
      return t.Fail(absl::DeadlineExceededError(absl::StrCat(
          "no progress for ",
          std::chrono::duration_cast<milliseconds>(now - last_progress).count() / 1000.0,
          "s waiting for ", t.Describe(peer),
          " in a shared-memory collective: the peer is stalled, hung or in another operation")));
    }
  }
}

absl::Status ShmAllReducer::Barrier(Transport& t, const RingOptions& o, RingScratch& s,
                                    OpStats* stats) {
  TANDEM_RETURN_IF_ERROR(t.health());
  if (header()->abort.load(std::memory_order_acquire) != 0) return Aborted(t);
  const uint64_t sequence = s.sequence++;
  const uint32_t b = ++barriers_;
  Publish(kBarrier, b);
  for (int k = 1; k < n_; ++k) {
    absl::Status st = WaitFor(t, o, (rank_ + k) % n_, kBarrier, b, stats);
    if (!st.ok()) {
      if (t.health().ok()) (void)t.Fail(st);
      return Annotate(t.health(), absl::StrCat("barrier #", sequence));
    }
  }
  return absl::OkStatus();
}

absl::Status ShmAllReducer::AllReduce(Transport& t, const RingOptions& o, RingScratch& s,
                                      float* data, size_t count, ReduceOp op,
                                      Compression compression, OpStats* stats) {
  TANDEM_RETURN_IF_ERROR(t.health());
  if (header()->abort.load(std::memory_order_acquire) != 0) return Aborted(t);
  const int n = n_, me = rank_;
  if (count == 0) return absl::OkStatus();
  const bool bf16 = compression == Compression::kBf16;
  const size_t esz = bf16 ? sizeof(uint16_t) : sizeof(float);
  const size_t S = slot_bytes_ / (static_cast<size_t>(n) * esz) / 32 * 32;  // slice elements
  const size_t per_round = S * static_cast<size_t>(n);
  const uint32_t rounds = static_cast<uint32_t>((count + per_round - 1) / per_round);
  const uint64_t sequence = s.sequence++;
  const uint32_t code =
      static_cast<uint32_t>(op) | static_cast<uint32_t>(compression) << 8;
  const uint32_t base = round_;

  Control* ctl = control(me);
  ctl->op_sequence.store(sequence, std::memory_order_relaxed);
  ctl->op_count.store(count, std::memory_order_relaxed);
  ctl->op_code.store(code, std::memory_order_relaxed);

  // Round r: elements [begin, begin + len) of `data`; slice i is [i*L, min((i+1)*L, len)).
  struct Geometry {
    size_t begin, len, L;
    size_t Offset(int i) const { return std::min(len, static_cast<size_t>(i) * L); }
    size_t Length(int i) const { return std::min(len, static_cast<size_t>(i + 1) * L) - Offset(i); }
  };
  auto geometry = [&](uint32_t r) {
    Geometry g;
    g.begin = static_cast<size_t>(r) * per_round;
    g.len = std::min(per_round, count - g.begin);
    g.L = g.len == per_round ? S : std::min(S, RoundUp((g.len + n - 1) / n, 16));
    return g;
  };
  auto annotate = [&](const absl::Status& st) {
    return Annotate(st, DescribeAllReduce(sequence, count, code));
  };

  auto stage = [&](uint32_t r) -> absl::Status {
    const uint32_t g = base + r;
    // The slot held round g-2: every rank must have gathered it.
    for (int k = 1; k < n; ++k)
      TANDEM_RETURN_IF_ERROR(WaitFor(t, o, (me + k) % n, kConsumed, g - 1, stats));
    const Geometry geo = geometry(r);
    char* dst = slot(me, g);
    for (int i = 0; i < n; ++i) {
      if (i == me) continue;
      const float* src = data + geo.begin + geo.Offset(i);
      const size_t len = geo.Length(i);
      if (bf16)
        FloatToBf16(src, reinterpret_cast<uint16_t*>(dst) + i * S, len);
      else
        std::memcpy(reinterpret_cast<float*>(dst) + i * S, src, len * sizeof(float));
      stats->bytes_sent += len * esz;
    }
    Publish(kStaged, g + 1);
    return absl::OkStatus();
  };

  auto reduce = [&](uint32_t r) -> absl::Status {
    const uint32_t g = base + r;
    const Geometry geo = geometry(r);
    float* mine = data + geo.begin + geo.Offset(me);
    const size_t len = geo.Length(me);
    for (int k = 1; k < n; ++k) {
      const int peer = (me + k) % n;
      TANDEM_RETURN_IF_ERROR(WaitFor(t, o, peer, kStaged, g + 1, stats));
      if (r == 0) {
        const Control* pc = control(peer);
        const uint64_t their_seq = pc->op_sequence.load(std::memory_order_relaxed),
                       their_count = pc->op_count.load(std::memory_order_relaxed);
        const uint32_t their_code = pc->op_code.load(std::memory_order_relaxed);
        if (their_seq != sequence || their_count != count || their_code != code)
          return t.Fail(absl::FailedPreconditionError(absl::StrCat(
              "ranks disagree on the next collective: this rank runs it while ",
              t.Describe(peer), " runs ", DescribeAllReduce(their_seq, their_count, their_code))));
      }
    }
    // Block by block, so that the block of this rank's slice stays in L1 while every peer's
    // contribution is added to it, and is then published from there.
    constexpr size_t kBlock = 4096;
    char* dst = slot(me, g);
    for (size_t b = 0; b < len; b += kBlock) {
      const size_t bl = std::min(kBlock, len - b);
      float* block = mine + b;
      for (int k = 1; k < n; ++k) {
        const char* src = slot((me + k) % n, g);
        if (bf16)
          AddBf16Into(block, reinterpret_cast<const uint16_t*>(src) + me * S + b, bl);
        else
          AddInto(block, reinterpret_cast<const float*>(src) + me * S + b, bl);
      }
      if (op == ReduceOp::kAverage) ScaleInPlace(block, 1.0f / static_cast<float>(n), bl);
      if (bf16) {
        RoundToBf16InPlace(block, bl);  // keep exactly what the others will receive
        FloatToBf16(block, reinterpret_cast<uint16_t*>(dst) + me * S + b, bl);
      } else {
        std::memcpy(reinterpret_cast<float*>(dst) + me * S + b, block, bl * sizeof(float));
      }
    }
    stats->bytes_sent += len * esz;
    Publish(kReduced, g + 1);
    return absl::OkStatus();
  };

  auto gather = [&](uint32_t r) -> absl::Status {
    const uint32_t g = base + r;
    const Geometry geo = geometry(r);
    for (int k = 1; k < n; ++k) {
      const int peer = (me + k) % n;
      TANDEM_RETURN_IF_ERROR(WaitFor(t, o, peer, kReduced, g + 1, stats));
      const char* src = slot(peer, g);
      float* out = data + geo.begin + geo.Offset(peer);
      const size_t len = geo.Length(peer);
      if (bf16)
        Bf16ToFloat(reinterpret_cast<const uint16_t*>(src) + peer * S, out, len);
      else
        std::memcpy(out, reinterpret_cast<const float*>(src) + peer * S, len * sizeof(float));
    }
    Publish(kConsumed, g + 1);
    return absl::OkStatus();
  };

  auto run = [&]() -> absl::Status {
    TANDEM_RETURN_IF_ERROR(stage(0));
    for (uint32_t r = 0; r < rounds; ++r) {
      TANDEM_RETURN_IF_ERROR(reduce(r));
      if (r + 1 < rounds) TANDEM_RETURN_IF_ERROR(stage(r + 1));  // overlaps the slower ranks
      TANDEM_RETURN_IF_ERROR(gather(r));
    }
    return absl::OkStatus();
  };
  absl::Status st = run();
  round_ = base + rounds;
  if (!st.ok()) {
    // Fail() (normally already called by the failing step) wakes every rank on the segment.
    if (t.health().ok()) (void)t.Fail(annotate(st));
    return annotate(t.health());
  }
  return absl::OkStatus();
}

}  // namespace tandem::collective
