#include "trainer/collective/ring_collectives.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/socket.h"
#include "common/status.h"
#include "trainer/collective/reduce_kernels.h"

namespace tandem::collective {

using net::Clock;

namespace {

using std::chrono::milliseconds;

constexpr uint32_t kOpMagic = 0x504F4354;  // "TCOP"
enum class OpKind : uint8_t { kAllReduce = 1, kBroadcast = 2, kBarrier = 3 };

// Sent first on channel 0 of every operation and compared with the left neighbour's: catches
// ranks that disagree about which collective runs next before any data is misread.
struct OpHeader {
  uint32_t magic = kOpMagic;
  OpKind kind{};
  ReduceOp op = ReduceOp::kSum;
  Compression compression = Compression::kNone;
  uint8_t pad0 = 0;
  uint64_t sequence = 0;
  uint64_t count = 0;
  int32_t root = 0;
  uint32_t pad1 = 0;
  bool operator==(const OpHeader&) const = default;
};
static_assert(sizeof(OpHeader) == 32);

std::string DescribeOp(const OpHeader& h) {
  switch (h.kind) {
    case OpKind::kAllReduce:
      return absl::StrCat("all-reduce #", h.sequence, " of ", h.count, " floats (",
                          h.op == ReduceOp::kSum ? "sum" : "average",
                          h.compression == Compression::kBf16 ? ", bf16" : "", ")");
    case OpKind::kBroadcast:
      return absl::StrCat("broadcast #", h.sequence, " of ", h.count, " bytes from rank ",
                          h.root);
    case OpKind::kBarrier:
      return absl::StrCat("barrier #", h.sequence);
  }
  return absl::StrCat("unknown operation (kind ", static_cast<int>(h.kind), ")");
}

// One collective as units: what each unit sends and receives, and when a unit may be sent.
class Schedule {
 public:
  virtual ~Schedule() = default;
  virtual size_t SendBytes(size_t u) const = 0;  // 0: this rank sends nothing for u
  virtual size_t RecvBytes(size_t u) const = 0;  // 0: this rank receives nothing for u
  virtual bool SendReady(size_t u, const uint8_t* done) const = 0;
  virtual const char* BeginSend(size_t u, int ch) = 0;
  virtual char* BeginRecv(size_t u, int ch) = 0;
  virtual void EndRecv(size_t u, int ch) = 0;
};

struct Cursor {
  size_t u = 0;
  char* ptr = nullptr;
  size_t left = 0;
};

absl::Status Pump(Transport& t, const RingOptions& o, RingScratch& s, const OpHeader& header,
                  size_t units, Schedule& sched, OpStats* stats) {
  const int k = t.channels();
  const int n = t.world_size();
  const int left = (t.rank() + n - 1) % n, right = (t.rank() + 1) % n;
  auto fail = [&](const absl::Status& st) { return t.Fail(Annotate(st, DescribeOp(header))); };

  s.done.assign(units, 0);
  for (size_t u = 0; u < units; ++u)
    if (sched.RecvBytes(u) == 0) s.done[u] = 1;
  auto next_send = [&](size_t u) {
    while (u < units && sched.SendBytes(u) == 0) u += k;
    return std::min(u, units);
  };
  auto next_recv = [&](size_t u) {
    while (u < units && sched.RecvBytes(u) == 0) u += k;
    return std::min(u, units);
  };
  Cursor snd[64], rcv[64];
  for (int ch = 0; ch < k; ++ch) {
    snd[ch].u = next_send(ch);
    rcv[ch].u = next_recv(ch);
  }
  OpHeader theirs;
  const char* hs = reinterpret_cast<const char*>(&header);
  char* hr = reinterpret_cast<char*>(&theirs);
  size_t hs_left = sizeof(OpHeader), hr_left = sizeof(OpHeader);

  auto last_progress = Clock::now();
  for (;;) {
    bool progressed = false, pending = false;
    uint64_t smask = 0, rmask = 0;
    if (hs_left > 0) {
      auto w = t.SendSome(0, hs, hs_left);
      if (!w.ok()) return fail(w.status());
      hs += *w;
      hs_left -= *w;
      progressed |= *w > 0;
    }
    if (hr_left > 0) {
      auto r = t.RecvSome(0, hr, hr_left);
      if (!r.ok()) return fail(r.status());
      hr += *r;
      hr_left -= *r;
      progressed |= *r > 0;
      if (hr_left == 0 && !(theirs == header))
        return fail(absl::FailedPreconditionError(absl::StrCat(
            "ranks disagree on the next collective: this rank runs it while ", t.Describe(left),
            " runs ", DescribeOp(theirs))));
    }
    for (int ch = 0; ch < k; ++ch) {
      Cursor& c = snd[ch];
      while (c.u < units && !(ch == 0 && hs_left > 0)) {
        if (c.ptr == nullptr) {
          if (!sched.SendReady(c.u, s.done.data())) break;
          c.ptr = const_cast<char*>(sched.BeginSend(c.u, ch));
          c.left = sched.SendBytes(c.u);
        }
        auto w = t.SendSome(ch, c.ptr, c.left);
        if (!w.ok()) return fail(w.status());
        if (*w == 0) {
          smask |= uint64_t{1} << ch;
          break;
        }
        progressed = true;
        stats->bytes_sent += *w;
        c.ptr += *w;
        c.left -= *w;
        if (c.left == 0) {
          c.ptr = nullptr;
          c.u = next_send(c.u + k);
        }
      }
      pending |= c.u < units;
    }
    for (int ch = 0; ch < k; ++ch) {
      Cursor& c = rcv[ch];
      while (c.u < units && !(ch == 0 && hr_left > 0)) {
        if (c.ptr == nullptr) {
          c.ptr = sched.BeginRecv(c.u, ch);
          c.left = sched.RecvBytes(c.u);
        }
        auto r = t.RecvSome(ch, c.ptr, c.left);
        if (!r.ok()) return fail(r.status());
        if (*r == 0) {
          rmask |= uint64_t{1} << ch;
          break;
        }
        progressed = true;
        c.ptr += *r;
        c.left -= *r;
        if (c.left == 0) {
          sched.EndRecv(c.u, ch);
          s.done[c.u] = 1;
          c.ptr = nullptr;
          c.u = next_recv(c.u + k);
        }
      }
      pending |= c.u < units;
    }
    if (!pending && hs_left == 0 && hr_left == 0) return absl::OkStatus();
    const auto now = Clock::now();
    if (progressed) {
      last_progress = now;
      continue;
    }
    if (hs_left > 0) smask |= 1;
    if (hr_left > 0) rmask |= 1;
    if (now - last_progress > o.op_timeout) {
      const int peer = rmask != 0 ? left : right;
      return fail(absl::DeadlineExceededError(absl::StrCat(
          "no progress for ",
          std::chrono::duration_cast<milliseconds>(now - last_progress).count() / 1000.0,
          "s waiting for ", t.Describe(peer), ": the peer is stalled, hung or unreachable")));
    }
    absl::Status st = t.Wait(smask, rmask, std::min(milliseconds(100), o.op_timeout));
    if (smask == 0)
      stats->wait_seconds += std::chrono::duration<double>(Clock::now() - now).count();
    if (!st.ok()) return Annotate(st, DescribeOp(header));
  }
}

void EnsureStaging(RingScratch& s, int channels, size_t bytes) {
  for (auto* v : {&s.send_stage, &s.recv_stage}) {
    if (v->size() < static_cast<size_t>(channels)) v->resize(channels);
    for (auto& b : *v)
      if (b.size() < bytes) b.resize(bytes);
  }
}

// Reduce-scatter then all-gather over N segments, each cut into m chunks. Unit u is step
// k = (u / m) mod (N-1) of phase u / ((N-1) m), chunk j = u mod m.
class AllReduceSchedule final : public Schedule {
 public:
  AllReduceSchedule(RingScratch& s, int n, int rank, float* data, size_t count, size_t chunk_elems,
                    ReduceOp op, Compression compression)
      : s_(s), n_(n), rank_(rank), data_(data), op_(op), bf16_(compression == Compression::kBf16) {
    s.seg_offset.resize(n);
    s.seg_length.resize(n);
    size_t base = count / n, extra = count % n, off = 0;
    for (int i = 0; i < n; ++i) {
      s.seg_offset[i] = off;
      s.seg_length[i] = base + (static_cast<size_t>(i) < extra ? 1 : 0);
      off += s.seg_length[i];
    }
    chunk_elems_ = chunk_elems;
    m_ = std::max<size_t>(1, (base + (extra ? 1 : 0) + chunk_elems - 1) / chunk_elems);
    steps_ = static_cast<size_t>(n - 1);
  }
  size_t units() const { return 2 * steps_ * m_; }

  size_t SendBytes(size_t u) const override { return Range(u, true).second * ElemBytes(); }
  size_t RecvBytes(size_t u) const override { return Range(u, false).second * ElemBytes(); }
  bool SendReady(size_t u, const uint8_t* done) const override {
    return u < m_ || done[u - m_];
  }
  const char* BeginSend(size_t u, int ch) override {
    auto [off, len] = Range(u, true);
    float* p = data_ + off;
    if (u / m_ == steps_) {
      // First all-gather send of a chunk this rank owns: its final value is decided here.
      if (op_ == ReduceOp::kAverage) ScaleInPlace(p, 1.0f / static_cast<float>(n_), len);
      if (bf16_) RoundToBf16InPlace(p, len);  // keep exactly what the others will receive
    }
    if (!bf16_) return reinterpret_cast<const char*>(p);
    auto* stage = reinterpret_cast<uint16_t*>(s_.send_stage[ch].data());
    FloatToBf16(p, stage, len);
    return reinterpret_cast<const char*>(stage);
  }
  char* BeginRecv(size_t u, int ch) override {
    if (u / (steps_ * m_) == 1 && !bf16_) return reinterpret_cast<char*>(data_ + Range(u, false).first);
    return s_.recv_stage[ch].data();
  }
  void EndRecv(size_t u, int ch) override {
    auto [off, len] = Range(u, false);
    const char* stage = s_.recv_stage[ch].data();
    if (u / (steps_ * m_) == 0) {
      if (bf16_)
        AddBf16Into(data_ + off, reinterpret_cast<const uint16_t*>(stage), len);
      else
        AddInto(data_ + off, reinterpret_cast<const float*>(stage), len);
    } else if (bf16_) {
      Bf16ToFloat(reinterpret_cast<const uint16_t*>(stage), data_ + off, len);
    }
  }

 private:
  size_t ElemBytes() const { return bf16_ ? 2 : 4; }
  // (offset, length) in elements of what unit u sends (or receives).
  std::pair<size_t, size_t> Range(size_t u, bool send) const {
    const size_t phase = u / (steps_ * m_);
    const size_t k = (u / m_) % steps_, j = u % m_;
    // Reduce-scatter: send segment r-k, receive r-k-1. All-gather: send r+1-k, receive r-k.
    long seg = static_cast<long>(rank_) - static_cast<long>(k) + (phase == 1 ? 1 : 0) -
               (send ? 0 : 1);
    seg = ((seg % n_) + n_) % n_;
    const size_t len = s_.seg_length[seg];
    const size_t begin = j * chunk_elems_;
    if (begin >= len) return {0, 0};
    return {s_.seg_offset[seg] + begin, std::min(chunk_elems_, len - begin)};
  }

  RingScratch& s_;
  const int n_, rank_;
  float* const data_;
  const ReduceOp op_;
  const bool bf16_;
  size_t chunk_elems_ = 0, m_ = 1, steps_ = 1;
};

class BroadcastSchedule final : public Schedule {
 public:
  BroadcastSchedule(int n, int rank, int root, char* data, size_t bytes, size_t chunk)
      : is_root_(rank == root), sends_((rank + 1) % n != root), data_(data), bytes_(bytes),
        chunk_(chunk) {}
  size_t units() const { return (bytes_ + chunk_ - 1) / chunk_; }
  size_t SendBytes(size_t u) const override { return sends_ ? Len(u) : 0; }
  size_t RecvBytes(size_t u) const override { return is_root_ ? 0 : Len(u); }
  bool SendReady(size_t u, const uint8_t* done) const override { return is_root_ || done[u]; }
  const char* BeginSend(size_t u, int) override { return data_ + u * chunk_; }
  char* BeginRecv(size_t u, int) override { return data_ + u * chunk_; }
  void EndRecv(size_t, int) override {}

 private:
  size_t Len(size_t u) const { return std::min(chunk_, bytes_ - u * chunk_); }
  const bool is_root_, sends_;
  char* const data_;
  const size_t bytes_, chunk_;
};

// Unit 0 goes round the ring from rank 0 (everyone has arrived when it returns to rank 0); unit
// 1 then goes round again to release everyone.
class BarrierSchedule final : public Schedule {
 public:
  explicit BarrierSchedule(int rank) : rank_(rank) {}
  size_t SendBytes(size_t) const override { return sizeof(token_); }
  size_t RecvBytes(size_t) const override { return sizeof(token_); }
  bool SendReady(size_t u, const uint8_t* done) const override {
    return rank_ == 0 ? (u == 0 || done[0]) : done[u];
  }
  const char* BeginSend(size_t, int) override { return reinterpret_cast<const char*>(&token_); }
  char* BeginRecv(size_t, int) override { return reinterpret_cast<char*>(&sink_); }
  void EndRecv(size_t, int) override {}

 private:
  const int rank_;
  uint64_t token_ = 0x5452414942ull, sink_ = 0;
};

}  // namespace

absl::Status RingAllReduce(Transport& t, const RingOptions& o, RingScratch& s, float* data,
                           size_t count, ReduceOp op, Compression compression, OpStats* stats) {
  TANDEM_RETURN_IF_ERROR(t.health());
  const int n = t.world_size();
  if (n == 1 || count == 0) return absl::OkStatus();
  OpHeader h;
  h.kind = OpKind::kAllReduce;
  h.op = op;
  h.compression = compression;
  h.sequence = s.sequence++;
  h.count = count;
  const size_t elem = compression == Compression::kBf16 ? 2 : 4;
  const size_t chunk_elems = std::max<size_t>(1, o.chunk_bytes / elem);
  EnsureStaging(s, t.channels(), chunk_elems * 4);
  AllReduceSchedule sched(s, n, t.rank(), data, count, chunk_elems, op, compression);
  return Pump(t, o, s, h, sched.units(), sched, stats);
}

absl::Status RingBroadcast(Transport& t, const RingOptions& o, RingScratch& s, void* data,
                           size_t bytes, int root, OpStats* stats) {
  TANDEM_RETURN_IF_ERROR(t.health());
  const int n = t.world_size();
  if (root < 0 || root >= n)
    return absl::InvalidArgumentError(absl::StrCat("broadcast root ", root, " is outside [0, ",
                                                   n, ")"));
  if (n == 1 || bytes == 0) return absl::OkStatus();
  OpHeader h;
  h.kind = OpKind::kBroadcast;
  h.sequence = s.sequence++;
  h.count = bytes;
  h.root = root;
  BroadcastSchedule sched(n, t.rank(), root, static_cast<char*>(data), bytes,
                          std::max<size_t>(1, o.chunk_bytes));
  return Pump(t, o, s, h, sched.units(), sched, stats);
}

absl::Status RingBarrier(Transport& t, const RingOptions& o, RingScratch& s, OpStats* stats) {
  TANDEM_RETURN_IF_ERROR(t.health());
  if (t.world_size() == 1) return absl::OkStatus();
  OpHeader h;
  h.kind = OpKind::kBarrier;
  h.sequence = s.sequence++;
  BarrierSchedule sched(t.rank());
  return Pump(t, o, s, h, 2, sched, stats);
}

}  // namespace tandem::collective
