#include "cli/local/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status.h"

extern char** environ;

namespace tandem::local {

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
  if (out_fd_ >= 0) ::close(out_fd_);
}

absl::Status ChildProcess::Start(const ProcessSpec& spec) {
  if (spec.argv.empty()) return absl::InvalidArgumentError(spec.name + ": empty command");
  // Build argv and envp before fork: only async-signal-safe calls are allowed in the child.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    std::string key = kv.substr(0, kv.find('='));
    bool overridden = false;
    for (const auto& [k, v] : spec.env) overridden |= (k == key);
    if (!overridden) env_strings.push_back(std::move(kv));
  }
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, argv;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = spec.argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);

  int out[2];
  int err_pipe[2];  // reports a failed exec back to us (closed on successful exec)
  if (::pipe2(out, O_CLOEXEC) != 0) return ErrnoToStatus(errno, spec.name + ": pipe");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return ErrnoToStatus(errno, spec.name + ": pipe");
  }
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(out[0]);
    ::close(out[1]);
    ::close(err_pipe[0]);
    ::close(err_pipe[1]);
    return ErrnoToStatus(e, spec.name + ": fork");
  }
  if (pid == 0) {
    // Child: die with the parent; own process group; output to the pipe.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent already died
    ::setpgid(0, 0);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGPIPE, SIG_DFL);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(out[1], STDERR_FILENO);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    if (!spec.working_dir.empty() && ::chdir(spec.working_dir.c_str()) != 0) {
      int e = errno;
      (void)!::write(err_pipe[1], &e, sizeof(e));
      ::_exit(127);
    }
    ::execvpe(argv[0], argv.data(), envp.data());
    int e = errno;
    (void)!::write(err_pipe[1], &e, sizeof(e));
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from the parent, so Signal() cannot race the child's setpgid
  ::close(out[1]);
  ::close(err_pipe[1]);
  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(err_pipe[0], &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  ::close(err_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof(exec_errno))) {
    int status;
    ::waitpid(pid, &status, 0);
    ::close(out[0]);
    return ErrnoToStatus(exec_errno, absl::StrCat(spec.name, ": cannot run '", spec.argv[0], "'"));
  }
  ::fcntl(out[0], F_SETFL, ::fcntl(out[0], F_GETFL) | O_NONBLOCK);
  pid_ = pid;
  out_fd_ = out[0];
  partial_.clear();
  return absl::OkStatus();
}

void ChildProcess::Signal(int sig) {
  if (pid_ <= 0) return;
  ::kill(-pid_, sig);
}

bool ChildProcess::Poll(int* exit_code) {
  if (pid_ <= 0) return false;
  int status = 0;
  rusage ru{};
  pid_t r = ::wait4(pid_, &status, WNOHANG, &ru);
  if (r != pid_) return false;
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  cpu_seconds_ += seconds(ru.ru_utime) + seconds(ru.ru_stime);
  if (WIFEXITED(status)) {
    *exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    *exit_code = 128 + WTERMSIG(status);
  } else {
    return false;
  }
  // Make sure nothing of its group lingers (a grandchild it started).
  ::kill(-pid_, SIGKILL);
  pid_ = -1;
  return true;
}

bool ChildProcess::ReadOutput(std::vector<std::string>* lines) {
  if (out_fd_ < 0) return false;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(out_fd_, buf, sizeof(buf));
    if (n > 0) {
      partial_.append(buf, static_cast<size_t>(n));
      size_t start = 0, nl;
      while ((nl = partial_.find('\n', start)) != std::string::npos) {
        lines->push_back(partial_.substr(start, nl - start));
        start = nl + 1;
      }
      partial_.erase(0, start);
      if (partial_.size() > (1 << 20)) {  // a runaway line without newline: flush it
        lines->push_back(std::move(partial_));
        partial_.clear();
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    // EOF or error.
    if (!partial_.empty()) lines->push_back(std::move(partial_));
    partial_.clear();
    ::close(out_fd_);
    out_fd_ = -1;
    return false;
  }
}

double ChildProcess::LiveCpuSeconds() const {
  if (pid_ <= 0) return cpu_seconds_;
  std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return cpu_seconds_;
  // "pid (comm) state ppid ...": the name may hold spaces and parentheses; fields after the
  // last ')' start at field 3 (state); utime and stime are fields 14 and 15, in clock ticks.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return cpu_seconds_;
  std::istringstream fields(line.substr(close + 1));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int n = 3; n <= 15 && fields >> field; ++n) {
    if (n == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (n == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  const long ticks = ::sysconf(_SC_CLK_TCK);
  if (ticks <= 0) return cpu_seconds_;
  return cpu_seconds_ + static_cast<double>(utime + stime) / static_cast<double>(ticks);
}

}  // namespace tandem::local
