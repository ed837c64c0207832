#include "trainer/collective/tcp_transport.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/status.h"

namespace tandem::collective {

using net::ConnectOnce;
using net::MillisUntil;
using net::ReadFully;
using net::SetNonBlocking;
using net::SocketTuning;
using net::TuneSocket;
using net::WriteFully;
namespace {

using std::chrono::milliseconds;

constexpr uint32_t kHelloMagic = 0x4D444E54;  // "TNDM"
constexpr uint32_t kProtocolVersion = 2;  // 2: the epoch in hellos and answers
constexpr uint32_t kCtrlMagic = 0x4C525443;   // "CTRL"
constexpr int kLeft = 0;
constexpr int kRight = 1;

struct Hello {
  uint32_t magic;
  uint32_t version;
  uint32_t world_size;
  uint32_t from_rank;
  uint32_t index;  // 0..channels-1: data connection; channels: control connection
  uint32_t channels;
  uint64_t job_hash;
  int64_t epoch;   // elastic: the membership epoch of the sender's ring; -1: a fixed job
};
// The answer to a hello: magic kHelloMagic and the rank that accepted it, or kRefuseMagic and
// why (RefuseReason) with the refusing rank's epoch.
struct Ack {
  uint32_t magic;
  uint32_t rank;  // kRefuseMagic: a RefuseReason
  int64_t epoch;
};
constexpr uint32_t kRefuseMagic = 0x46455254;  // "TREF"
enum RefuseReason : uint32_t { kRefusedAnotherJob = 1, kRefusedOlderEpoch = 2 };

constexpr char kNewerEpochPayload[] = "type.tandem.dev/collective/newer-membership-epoch";

enum CtrlType : uint32_t { kHeartbeat = 1, kAbort = 2, kGoodbye = 3 };
struct CtrlRecord {
  uint32_t magic;
  uint32_t type;
  uint32_t code;  // absl::StatusCode of an abort
  uint32_t length;
  char text[240];
};
static_assert(sizeof(CtrlRecord) == 256);

uint64_t JobHash(const std::string& job) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : job) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string Seconds(milliseconds ms) { return absl::StrCat(ms.count() / 1000.0, "s"); }

}  // namespace

absl::Status NewerEpochError(int64_t epoch, const std::string& message) {
  absl::Status s = absl::UnavailableError(message);
  s.SetPayload(kNewerEpochPayload, absl::Cord(std::to_string(epoch)));
  return s;
}

std::optional<int64_t> NewerEpochOf(const absl::Status& status) {
  const auto payload = status.GetPayload(kNewerEpochPayload);
  if (!payload.has_value()) return std::nullopt;
  int64_t epoch = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &epoch)) return std::nullopt;
  return epoch;
}

TcpTransport::TcpTransport(const TcpTransportOptions& options, PeerList peers)
    : options_(options), peers_(std::move(peers)) {}

absl::StatusOr<std::unique_ptr<TcpTransport>> TcpTransport::Connect(
    const TcpTransportOptions& options, const PeerList& peers, Listener listener) {
  if (options.channels < 1 || options.channels > 32)
    return absl::InvalidArgumentError(
        absl::StrCat("channels = ", options.channels, ": must be in 1..32"));
  std::unique_ptr<TcpTransport> t(new TcpTransport(options, peers));
  if (peers.world_size() == 1) return t;
  TANDEM_RETURN_IF_ERROR(t->Rendezvous(std::move(listener)), "rank ", peers.rank,
                         " rendezvous");
  t->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (t->wake_fd_ < 0) return ErrnoToStatus(errno, "eventfd");
  t->monitor_ = std::thread([p = t.get()] { p->MonitorLoop(); });
  return t;
}

absl::Status TcpTransport::Rendezvous(Listener listener) {
  const auto deadline = Clock::now() + options_.rendezvous_timeout;
  const int k = options_.channels;
  const bool elastic = options_.epoch >= 0;
  const PeerEndpoint& me = peers_.endpoints[peers_.rank];
  if (!listener.valid()) {
    auto bound = Listener::Bind(options_.bind_host, me.port);
    if (!bound.ok()) return Annotate(bound.status(), absl::StrCat("listen on port ", me.port));
    listener = *std::move(bound);
  }
  const uint64_t job_hash = JobHash(options_.job_id);
  // Waits are cut into slices so that keep_waiting is asked about every 100 ms.
  const auto slice_end = [&] { return std::min(deadline, Clock::now() + milliseconds(100)); };
  const auto keep_waiting = [&]() -> absl::Status {
    return options_.keep_waiting ? options_.keep_waiting() : absl::OkStatus();
  };
  const PeerEndpoint& right_ep = peers_.endpoints[right()];

  // The left neighbour's side: accepts one connection (waiting until `until`) and checks its
  // hello. Strangers (other jobs, stale ranks, other epochs) are refused; a hello of a newer
  // epoch ends the rendezvous. Returns whether a connection came.
  std::vector<Fd> in(k + 1);
  int filled = 0;
  int64_t refused_epoch = -2;  // logged once
  const auto refuse = [&](Fd& conn, RefuseReason why) {
    Ack no{kRefuseMagic, why, options_.epoch};
    (void)WriteFully(conn.get(), &no, sizeof(no),
                     std::min(deadline, Clock::now() + milliseconds(200)), "refusal");
  };
  const auto accept_one = [&](Clock::time_point until) -> absl::StatusOr<bool> {
    auto conn = listener.Accept(until);
    if (!conn.ok()) {
      if (conn.status().code() == absl::StatusCode::kDeadlineExceeded) return false;
      return conn.status();
    }
    Hello h{};
    auto read = ReadFully(conn->get(), &h, sizeof(h),
                          std::min(deadline, Clock::now() + std::chrono::seconds(5)), "hello");
    if (!read.ok() || h.magic != kHelloMagic || h.version != kProtocolVersion) {
      TANDEM_LOG(warn, "collective rank {}: ignoring a connection that is not a Tandem peer",
                 peers_.rank);
      return true;
    }
    if (h.job_hash != job_hash) {
      TANDEM_LOG(warn, "collective rank {}: refusing rank {} of another job", peers_.rank,
                 h.from_rank);
      // A fixed job just closes it, as it always did (its dialer retries: the stranger may be a
      // stale process about to go); an elastic rank answers, so its dialer fails at once.
      if (elastic) refuse(*conn, kRefusedAnotherJob);
      return true;
    }
    if (h.epoch > options_.epoch)
      return NewerEpochError(h.epoch, absl::StrCat("rank ", h.from_rank,
                                                   " of this job is in the ring of membership epoch ",
                                                   h.epoch, ", this rank in that of epoch ",
                                                   options_.epoch));
    if (h.epoch < options_.epoch) {
      if (h.epoch != refused_epoch)
        TANDEM_LOG(info, "collective rank {}: refusing rank {} of the older membership epoch {} "
                   "(this ring: epoch {})", peers_.rank, h.from_rank, h.epoch, options_.epoch);
      refused_epoch = h.epoch;
      refuse(*conn, kRefusedOlderEpoch);
      return true;
    }
    if (h.world_size != static_cast<uint32_t>(world_size()))
      return absl::InvalidArgumentError(absl::StrCat(Describe(left()), " runs with world size ",
                                                     h.world_size, ", this rank with ",
                                                     world_size()));
    if (h.channels != static_cast<uint32_t>(k))
      return absl::InvalidArgumentError(absl::StrCat(Describe(left()), " uses ", h.channels,
                                                     " channels, this rank ", k));
    if (h.from_rank != static_cast<uint32_t>(left()) || h.index > static_cast<uint32_t>(k)) {
      TANDEM_LOG(warn, "collective rank {}: refusing a connection from rank {} (expected rank {})",
                 peers_.rank, h.from_rank, left());
      return true;
    }
    Ack ack{kHelloMagic, static_cast<uint32_t>(peers_.rank), options_.epoch};
    if (!WriteFully(conn->get(), &ack, sizeof(ack), deadline, "ack").ok()) return true;
    if (!in[h.index].valid()) ++filled;
    in[h.index] = *std::move(conn);
    return true;
  };

  // Connection `idx` to the right neighbour, retried while it starts; the hello waits in its
  // backlog until it accepts. Between tries an elastic rank accepts its left neighbour's
  // connections: a rank whose right neighbour went on to another epoch (and listens no more)
  // still hears the newer epoch from its left.
  const auto dial = [&](int idx) -> absl::StatusOr<Fd> {
    auto backoff = milliseconds(20);
    absl::Status last;
    for (;;) {
      auto fd = ConnectOnce(right_ep.host, right_ep.port,
                            std::min(deadline, Clock::now() + std::chrono::seconds(2)));
      if (fd.ok()) {
        Hello h{kHelloMagic, kProtocolVersion, static_cast<uint32_t>(world_size()),
                static_cast<uint32_t>(peers_.rank), static_cast<uint32_t>(idx),
                static_cast<uint32_t>(k), job_hash, options_.epoch};
        TANDEM_RETURN_IF_ERROR(WriteFully(fd->get(), &h, sizeof(h), deadline, "hello"),
                               "greeting ", Describe(right()));
        return *std::move(fd);
      }
      last = fd.status();
      TANDEM_RETURN_IF_ERROR(keep_waiting());
      if (Clock::now() + backoff >= deadline)
        return absl::DeadlineExceededError(
            absl::StrCat("could not connect to ", Describe(right()), " within ",
                         Seconds(options_.rendezvous_timeout), ": ", last.message()));
      if (elastic) {
        const auto until = Clock::now() + backoff;
        while (Clock::now() < until && filled <= k) {
          TANDEM_ASSIGN_OR_RETURN(const bool came, accept_one(until));
          if (!came) break;
        }
        if (Clock::now() < until) std::this_thread::sleep_until(until);
      } else {
        std::this_thread::sleep_for(backoff);
      }
      backoff = std::min(backoff * 2, milliseconds(500));
    }
  };
  // Reads the right neighbour's answer on connection `idx`, which poll() found readable: OK once
  // it accepted; an error for a refusal; an elastic rank dials a connection closed unanswered
  // again (the neighbour left that rendezvous for another epoch's) and `*answered` stays false.
  std::vector<Fd> out(k + 1);
  std::vector<bool> answered(k + 1, false);
  const auto read_answer = [&](int idx) -> absl::Status {
    Ack ack{};
    absl::Status read = ReadFully(out[idx].get(), &ack, sizeof(ack), deadline, "ack");
    if (!read.ok()) {
      if (!elastic || read.code() == absl::StatusCode::kDeadlineExceeded)
        return Annotate(read, absl::StrCat("waiting for ", Describe(right()), " to accept"));
      TANDEM_ASSIGN_OR_RETURN(out[idx], dial(idx));
      return absl::OkStatus();
    }
    if (ack.magic == kRefuseMagic && ack.rank == kRefusedOlderEpoch)
      return NewerEpochError(
          ack.epoch, absl::StrCat(Describe(right()), " is in the ring of membership epoch ",
                                  ack.epoch, ", this rank in that of epoch ", options_.epoch));
    if (ack.magic == kRefuseMagic)
      return absl::InvalidArgumentError(absl::StrCat(
          Describe(right()), " refused this rank: it belongs to another job (job id '",
          options_.job_id, "' differs): the ranks disagree on TANDEM_PEERS or the job name"));
    if (ack.magic != kHelloMagic || ack.rank != static_cast<uint32_t>(right()))
      return absl::InvalidArgumentError(absl::StrCat(
          "endpoint ", right_ep.ToString(), " answered as rank ", ack.rank, ", expected rank ",
          right(), ": the ranks disagree on TANDEM_PEERS"));
    answered[idx] = true;
    return absl::OkStatus();
  };
  // Whether connection `idx` has something to read within `wait` (an answer, or its close).
  const auto readable = [&](int idx, milliseconds wait) {
    pollfd p{out[idx].get(), POLLIN, 0};
    return poll(&p, 1, static_cast<int>(wait.count())) > 0;
  };

  // 1. Connect to the right neighbour. Hellos wait in its backlog.
  for (int idx = 0; idx <= k; ++idx) {
    TANDEM_ASSIGN_OR_RETURN(out[idx], dial(idx));
  }

  // 2. Accept the rest of the left neighbour's connections; an elastic rank meanwhile reads the
  // answers that came already (a refusal ends it at once).
  while (filled <= k) {
    TANDEM_RETURN_IF_ERROR(keep_waiting());
    if (elastic)
      for (int idx = 0; idx <= k; ++idx)
        if (!answered[idx] && readable(idx, milliseconds(0))) TANDEM_RETURN_IF_ERROR(read_answer(idx));
    TANDEM_ASSIGN_OR_RETURN(const bool came,
                            accept_one(elastic || options_.keep_waiting ? slice_end() : deadline));
    if (!came && Clock::now() >= deadline)
      return absl::DeadlineExceededError(absl::StrCat(
          Describe(left()), " did not connect within ", Seconds(options_.rendezvous_timeout),
          " (not started, or cannot reach ", me.ToString(), ")"));
  }

  // 3. The right neighbour's acks prove it is the rank we expect there.
  for (int idx = 0; idx <= k; ++idx) {
    while (!answered[idx]) {
      // An elastic rank still hears a peer of a newer epoch dialling it (its left neighbour
      // there) while it waits for this answer.
      if (elastic) TANDEM_RETURN_IF_ERROR(accept_one(Clock::now()).status());
      if (readable(idx, milliseconds(100))) {
        TANDEM_RETURN_IF_ERROR(read_answer(idx));
        continue;
      }
      TANDEM_RETURN_IF_ERROR(keep_waiting());
      if (Clock::now() >= deadline)
        return absl::DeadlineExceededError(absl::StrCat(
            "waiting for ", Describe(right()), " to accept: no answer within ",
            Seconds(options_.rendezvous_timeout)));
    }
  }

  SocketTuning data_tuning{options_.socket_buffer_bytes, /*no_delay=*/true};
  SocketTuning ctrl_tuning{0, /*no_delay=*/true};
  for (int idx = 0; idx <= k; ++idx) {
    const SocketTuning& tuning = idx < k ? data_tuning : ctrl_tuning;
    for (Fd* fd : {&out[idx], &in[idx]}) {
      TANDEM_RETURN_IF_ERROR(TuneSocket(fd->get(), tuning));
      TANDEM_RETURN_IF_ERROR(SetNonBlocking(fd->get(), true));
    }
  }
  ctrl_[kRight] = std::move(out[k]);
  ctrl_[kLeft] = std::move(in[k]);
  out.pop_back();
  in.pop_back();
  data_out_ = std::move(out);
  data_in_ = std::move(in);
  return absl::OkStatus();
}

TcpTransport::~TcpTransport() {
  if (monitor_.joinable()) {
    if (!failed_.load() && !crashed_.load()) {
      SendControl(kLeft, kGoodbye, absl::OkStatus());
      SendControl(kRight, kGoodbye, absl::OkStatus());
    }
    stop_.store(true);
    uint64_t one = 1;
    [[maybe_unused]] auto w = write(wake_fd_, &one, sizeof(one));
    monitor_.join();
  }
  // Drain what the neighbours sent last so close() ends with FIN, not a reset.
  char sink[512];
  for (Fd& c : ctrl_) {
    if (!c.valid()) continue;
    while (recv(c.get(), sink, sizeof(sink), MSG_DONTWAIT) > 0) {
    }
    shutdown(c.get(), SHUT_WR);
  }
  if (wake_fd_ >= 0) close(wake_fd_);
}

absl::StatusOr<size_t> TcpTransport::SendSome(int ch, const void* data, size_t n) {
  ssize_t w = send(data_out_[ch].get(), data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (w >= 0) return static_cast<size_t>(w);
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return size_t{0};
  return absl::UnavailableError(absl::StrCat("sending to ", Describe(right()), " failed (",
                                             std::strerror(errno),
                                             "): the peer exited, crashed or was killed"));
}

absl::StatusOr<size_t> TcpTransport::RecvSome(int ch, void* data, size_t n) {
  ssize_t r = recv(data_in_[ch].get(), data, n, MSG_DONTWAIT);
  if (r > 0) return static_cast<size_t>(r);
  if (r == 0)
    return absl::UnavailableError(absl::StrCat(
        Describe(left()), " closed its connection: the peer exited, crashed or was killed"));
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return size_t{0};
  return absl::UnavailableError(absl::StrCat("receiving from ", Describe(left()), " failed (",
                                             std::strerror(errno),
                                             "): the peer exited, crashed or was killed"));
}

absl::Status TcpTransport::Wait(uint64_t send_mask, uint64_t recv_mask, milliseconds max_wait) {
  if (failed_.load(std::memory_order_acquire)) return health();
  pollfd pfds[2 * 32 + 1];
  int n = 0;
  pfds[n++] = {wake_fd_, POLLIN, 0};
  for (int ch = 0; ch < channels(); ++ch) {
    if (send_mask & (uint64_t{1} << ch)) pfds[n++] = {data_out_[ch].get(), POLLOUT, 0};
    if (recv_mask & (uint64_t{1} << ch)) pfds[n++] = {data_in_[ch].get(), POLLIN, 0};
  }
  int rc = poll(pfds, n, static_cast<int>(max_wait.count()));
  if (rc < 0 && errno != EINTR) return ErrnoToStatus(errno, "poll");
  if (failed_.load(std::memory_order_acquire)) return health();
  return absl::OkStatus();
}

absl::Status TcpTransport::health() const {
  if (!failed_.load(std::memory_order_acquire)) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  return failure_;
}

absl::Status TcpTransport::Fail(const absl::Status& why) {
  // A local symptom ("connection closed", "timed out") often follows a neighbour's report of the
  // real cause, which its monitor sent just before closing: give that report a moment to land.
  if (monitor_.joinable() && std::this_thread::get_id() != monitor_.get_id()) {
    // Generous, because on an overloaded host the monitor thread may wait long for a CPU; it is
    // only ever spent on the way to an error.
    const auto until = Clock::now() + milliseconds(1000);
    while (!failed_.load() && Clock::now() < until)
      std::this_thread::sleep_for(milliseconds(2));
  }
  {
    absl::MutexLock lock(&mu_);
    if (failed_.load()) return failure_;
    failure_ = why;
    failed_.store(true, std::memory_order_release);
  }
  TANDEM_LOG(error, "collective rank {}: {}", peers_.rank, why.ToString());
  {
    absl::MutexLock lock(&hook_mu_);
    if (failure_hook_) failure_hook_();
  }
  if (world_size() > 1) {
    SendControl(kLeft, kAbort, why);
    SendControl(kRight, kAbort, why);
    // Closing our half of the data streams makes neighbours blocked on them fail at once.
    for (auto* v : {&data_out_, &data_in_})
      for (Fd& fd : *v) shutdown(fd.get(), SHUT_RDWR);
    uint64_t one = 1;
    [[maybe_unused]] auto w = write(wake_fd_, &one, sizeof(one));
  }
  return why;
}

void TcpTransport::SetFailureHook(std::function<void()> hook) {
  absl::MutexLock lock(&hook_mu_);
  failure_hook_ = std::move(hook);
}

void TcpTransport::SendControl(int side, uint32_t type, const absl::Status& status) {
  if (!ctrl_[side].valid() || crashed_.load()) return;
  CtrlRecord rec{};
  rec.magic = kCtrlMagic;
  rec.type = type;
  rec.code = static_cast<uint32_t>(status.code());
  std::string text(status.message().substr(0, sizeof(rec.text)));
  rec.length = static_cast<uint32_t>(text.size());
  std::memcpy(rec.text, text.data(), text.size());
  absl::MutexLock lock(&ctrl_write_mu_);
  // Best effort: a neighbour that cannot take 256 bytes in 100 ms is caught by its own silence.
  (void)WriteFully(ctrl_[side].get(), &rec, sizeof(rec), Clock::now() + milliseconds(100),
                   "control");
}

void TcpTransport::CrashForTesting() {
  crashed_.store(true);
  stop_.store(true);
  for (auto* v : {&data_out_, &data_in_})
    for (Fd& fd : *v) shutdown(fd.get(), SHUT_RDWR);
  for (Fd& c : ctrl_) shutdown(c.get(), SHUT_RDWR);
  uint64_t one = 1;
  [[maybe_unused]] auto w = write(wake_fd_, &one, sizeof(one));
}

void TcpTransport::MonitorLoop() {
  const milliseconds interval =
      std::max(milliseconds(10), options_.peer_timeout / 5);
  struct Side {
    int peer;
    CtrlRecord rec;
    size_t have = 0;
    bool open = true;
    bool goodbye = false;
    bool heard = false;
    Clock::time_point last;
  } sides[2];
  sides[kLeft].peer = left();
  sides[kRight].peer = right();
  const auto start = Clock::now();
  for (Side& s : sides) s.last = start;
  auto next_beat = start;

  while (!stop_.load() && !failed_.load()) {
    pollfd pfds[3];
    int map[3];
    int n = 0;
    pfds[n] = {wake_fd_, POLLIN, 0};
    map[n++] = -1;
    for (int i = 0; i < 2; ++i)
      if (sides[i].open) {
        pfds[n] = {ctrl_[i].get(), POLLIN, 0};
        map[n++] = i;
      }
    poll(pfds, n, std::max(1, MillisUntil(next_beat)));
    if (stop_.load() || failed_.load()) break;
    const auto now = Clock::now();

    for (int p = 1; p < n; ++p) {
      if (pfds[p].revents == 0) continue;
      Side& s = sides[map[p]];
      for (;;) {
        char* dst = reinterpret_cast<char*>(&s.rec) + s.have;
        ssize_t r = recv(ctrl_[map[p]].get(), dst, sizeof(CtrlRecord) - s.have, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
        if (r <= 0) {
          s.open = false;
          if (!s.goodbye)
            (void)Fail(absl::UnavailableError(absl::StrCat(
                Describe(s.peer),
                " closed its control connection: the process exited, crashed or was killed")));
          break;
        }
        s.have += static_cast<size_t>(r);
        if (s.have < sizeof(CtrlRecord)) continue;
        s.have = 0;
        s.heard = true;
        s.last = now;
        if (s.rec.magic != kCtrlMagic) {
          (void)Fail(absl::DataLossError(
              absl::StrCat("corrupt control record from ", Describe(s.peer))));
          break;
        }
        if (s.rec.type == kGoodbye) s.goodbye = true;
        if (s.rec.type == kAbort) {
          std::string text(s.rec.text, std::min<size_t>(s.rec.length, sizeof(s.rec.text)));
          (void)Fail(absl::Status(static_cast<absl::StatusCode>(s.rec.code), text));
        }
      }
      if (failed_.load()) break;
    }
    if (failed_.load()) break;

    if (now >= next_beat) {
      if (!heartbeats_stopped_.load())
        for (int i = 0; i < 2; ++i)
          if (sides[i].open) SendControl(i, kHeartbeat, absl::OkStatus());
      next_beat = now + interval;
    }
    for (Side& s : sides) {
      if (!s.open || s.goodbye) continue;
      // Until a neighbour's first heartbeat it may still be in rendezvous with its other side.
      auto limit = s.heard ? options_.peer_timeout
                           : options_.peer_timeout + options_.rendezvous_timeout;
      auto silent = std::chrono::duration_cast<milliseconds>(now - s.last);
      if (silent > limit) {
        (void)Fail(absl::UnavailableError(absl::StrCat(
            Describe(s.peer), " sent no heartbeat for ", Seconds(silent),
            " (limit ", Seconds(options_.peer_timeout),
            "): the process is stopped, hung, partitioned or overloaded")));
        break;
      }
    }
  }
}

}  // namespace tandem::collective
