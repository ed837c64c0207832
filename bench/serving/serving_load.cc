// tandem-serving-load: our HTTP load generator for bench/serving. Keep-alive connections to
// 127.0.0.1:PORT, POST /v1/predict with bodies cycled from a file (one per line).
//   closed loop: --concurrency C connections, each sends its next request when the last answered;
//   open loop:   --rate R requests per second on a fixed schedule, served by up to --connections
//                connections; a request's latency counts from its scheduled time, so queueing in
//                the generator (the server falling behind) is measured, not hidden.
// Prints one JSON line: requests, errors (non-200 or broken connections), qps, p50/p99/mean ms.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "nlohmann/json.hpp"

namespace {

using Clock = std::chrono::steady_clock;

class Connection {
 public:
  explicit Connection(int port) : port_(port) {}
  ~Connection() { Close(); }
  // Sends one request and reads the answer; returns the HTTP status (0: connection failure).
  int Post(const std::string& body) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (fd_ < 0 && !Open()) return 0;
      std::string req = "POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      if (!SendAll(req)) { Close(); continue; }
      int status = ReadResponse();
      if (status == 0) { Close(); continue; }
      return status;
    }
    return 0;
  }

 private:
  bool Open() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) { Close(); return false; }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    buf_.clear();
    return true;
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool SendAll(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  bool Fill() {
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int ReadResponse() {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!Fill()) return 0;
    std::string head = buf_.substr(0, end);
    int status = std::atoi(head.c_str() + head.find(' ') + 1);
    std::string lower = head;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    size_t cl = lower.find("content-length:");
    size_t len = cl == std::string::npos ? 0 : std::strtoul(lower.c_str() + cl + 15, nullptr, 10);
    while (buf_.size() < end + 4 + len)
      if (!Fill()) return 0;
    buf_.erase(0, end + 4 + len);
    if (lower.find("connection: close") != std::string::npos) Close();
    return status;
  }
  int port_;
  int fd_ = -1;
  std::string buf_;
};

struct Results {
  std::mutex mu;
  std::vector<double> latencies_ms;
  int64_t errors = 0;
  void Add(double ms, bool ok) {
    std::lock_guard<std::mutex> lock(mu);
    if (ok) latencies_ms.push_back(ms); else ++errors;
  }
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tandem-serving-load: closed- and open-loop HTTP load for bench/serving"};
  int port = 0, concurrency = 8, connections = 64;
  double rate = 0, duration = 10, warmup = 2;
  std::string requests_file, mode = "closed";
  app.add_option("--port", port)->required();
  app.add_option("--requests", requests_file, "One request body per line")->required();
  app.add_option("--mode", mode)->check(CLI::IsMember({"closed", "open"}));
  app.add_option("--concurrency", concurrency, "closed loop: connections");
  app.add_option("--rate", rate, "open loop: requests per second");
  app.add_option("--connections", connections, "open loop: most connections");
  app.add_option("--duration", duration, "Measured seconds");
  app.add_option("--warmup", warmup, "Seconds before measuring");
  CLI11_PARSE(app, argc, argv);
  std::vector<std::string> bodies;
  {
    std::ifstream f(requests_file);
    for (std::string line; std::getline(f, line);)
      if (!line.empty()) bodies.push_back(line);
  }
  if (bodies.empty()) {
    std::cerr << requests_file << ": no request bodies" << std::endl;
    return 1;
  }
  Results results;
  std::atomic<bool> stop{false};
  const Clock::time_point start = Clock::now();
  const Clock::time_point measure_from = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup));
  const Clock::time_point end = measure_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration));
  std::vector<std::thread> threads;
  std::atomic<uint64_t> next{0};
  // Open loop's schedule: outlives the threads (joined below).
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Clock::time_point> due;
  if (mode == "closed") {
    for (int c = 0; c < concurrency; ++c) {
      threads.emplace_back([&, c] {
        Connection conn(port);
        uint64_t i = static_cast<uint64_t>(c) * 7919;
        while (Clock::now() < end) {
          const Clock::time_point t0 = Clock::now();
          int st = conn.Post(bodies[i++ % bodies.size()]);
          const Clock::time_point t1 = Clock::now();
          if (t0 >= measure_from && t1 <= end) results.Add(Ms(t1 - t0), st == 200);
        }
      });
    }
  } else {
    const auto interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate));
    threads.emplace_back([&] {
      for (Clock::time_point t = start; t < end; t += interval) {
        std::this_thread::sleep_until(t);
        std::lock_guard<std::mutex> lock(mu);
        due.push_back(t);
        cv.notify_one();
      }
      stop = true;
      cv.notify_all();
    });
    for (int c = 0; c < connections; ++c) {
      threads.emplace_back([&] {
        Connection conn(port);
        while (true) {
          Clock::time_point t;
          {
            std::unique_lock<std::mutex> lock(mu);
            cv.wait(lock, [&] { return !due.empty() || stop.load(); });
            if (due.empty()) return;
            t = due.front();
            due.pop_front();
          }
          int st = conn.Post(bodies[next++ % bodies.size()]);
          const Clock::time_point t1 = Clock::now();
          if (t >= measure_from && t < end) results.Add(Ms(t1 - t), st == 200);
        }
      });
    }
  }
  for (auto& t : threads) t.join();
  std::vector<double>& l = results.latencies_ms;
  std::sort(l.begin(), l.end());
  auto pct = [&](double q) { return l.empty() ? 0.0 : l[std::min(l.size() - 1, static_cast<size_t>(q * l.size()))]; };
  double sum = 0;
  for (double v : l) sum += v;
  nlohmann::json out = {{"mode", mode}, {"concurrency", concurrency}, {"rate", rate},
                        {"requests", l.size()}, {"errors", results.errors},
                        {"qps", l.size() / duration}, {"p50_ms", pct(0.50)}, {"p99_ms", pct(0.99)},
                        {"mean_ms", l.empty() ? 0.0 : sum / l.size()}};
  std::cout << out.dump() << std::endl;
  return 0;
}
