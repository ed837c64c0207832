#include "tests/common/local_run_harness.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/common/test_util.h"

namespace tandem::testing {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TandemRun::TandemRun(const std::string& job, const std::string& run_dir, const std::string& out,
                     const std::vector<std::pair<std::string, std::string>>& env) {
  const std::string bin = BinDir() + "/tandem";
  pid_ = ::fork();
  if (pid_ == 0) {
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::setpgid(0, 0);
    for (const auto& [name, value] : env) ::setenv(name.c_str(), value.c_str(), 1);
    ::execl(bin.c_str(), bin.c_str(), "run", job.c_str(), "--run-dir", run_dir.c_str(), "--grace",
            "10", static_cast<char*>(nullptr));
    ::_exit(127);
  }
}

TandemRun::~TandemRun() {
  if (pid_ > 0 && !exited_) {
    ::kill(-pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

bool TandemRun::Running() {
  if (exited_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    exited_ = true;
    code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return !exited_;
}

int TandemRun::Wait(std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Running() && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return exited_ ? code_ : -1;
}

std::vector<Child> ChildrenOf(pid_t parent) {
  std::vector<Child> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = ReadFile(e.path().string() + "/stat");
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
    if (fields.size() < 2 || fields[0] == "Z" || std::stoi(fields[1]) != parent) continue;
    const std::string cmdline = ReadFile(e.path().string() + "/cmdline");
    Child c{std::stoi(name), "", -1};
    if (absl::StrContains(cmdline, "tandem-trainer")) c.role = "trainer";
    if (absl::StrContains(cmdline, "tandem-pserver")) c.role = "pserver";
    for (absl::string_view kv : absl::StrSplit(ReadFile(e.path().string() + "/environ"), '\0')) {
      if (absl::ConsumePrefix(&kv, "TANDEM_RANK=")) c.rank = std::stoi(std::string(kv));
    }
    if (!c.role.empty()) out.push_back(c);
  }
  return out;
}

pid_t FindChild(pid_t parent, const std::string& role, int rank) {
  for (const Child& c : ChildrenOf(parent))
    if (c.role == role && c.rank == rank) return c.pid;
  return -1;
}

bool Alive(pid_t pid) {
  const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (stat.empty()) return false;
  const size_t close = stat.rfind(')');
  return close != std::string::npos && stat.size() > close + 2 && stat[close + 2] != 'Z';
}

int64_t StepsDone(const std::string& run_dir, int rank) {
  const std::string bytes =
      ReadFile(absl::StrCat(run_dir, "/checkpoints/trainer-", rank, "/last-step"));
  int64_t step = 0;
  if (bytes.size() == sizeof(step)) std::memcpy(&step, bytes.data(), sizeof(step));
  return step;
}

bool HasCheckpoint(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".ckpt") return true;
  return false;
}

std::map<std::string, std::string> SummaryOf(const std::string& output) {
  std::map<std::string, std::string> kv;
  std::istringstream in(output);
  std::string line, last;
  while (std::getline(in, line))
    if (absl::StrContains(line, "lost_steps=") && absl::StrContains(line, "workers=")) last = line;
  for (absl::string_view part : absl::StrSplit(last, ' ', absl::SkipEmpty())) {
    const size_t eq = part.find('=');
    if (eq != absl::string_view::npos)
      kv[std::string(part.substr(0, eq))] = std::string(part.substr(eq + 1));
  }
  return kv;
}

std::vector<nlohmann::json> RunEvents(const std::string& run_dir, const std::string& kind) {
  std::vector<nlohmann::json> out;
  std::istringstream in(ReadFile(run_dir + "/metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    if (kind.empty() || j.value("event", "") == kind) out.push_back(std::move(j));
  }
  return out;
}

std::pair<int, std::string> TandemResize(const std::string& args, const std::string& out) {
  const std::string cmd = absl::StrCat(BinDir(), "/tandem resize ", args, " >", out, " 2>&1");
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ReadFile(out)};
}

}  // namespace tandem::testing
