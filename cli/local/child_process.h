// One supervised child process: started with its output (stdout and stderr together) on a pipe,
// in its own process group, and tied to our lifetime with PR_SET_PDEATHSIG so that it dies when
// `tandem run` dies, however that happens (even kill -9). No orphan is left behind.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace tandem::local {

struct ProcessSpec {
  std::string name;               // "worker-0/trainer": prefixes every log line
  std::vector<std::string> argv;  // argv[0] is the executable (a path, or looked up in PATH)
  std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing in) ours
  std::string working_dir;        // empty: ours
};

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();  // kills (SIGKILL) and reaps a child still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts the process. A missing executable is reported here, not as a later exit code.
  absl::Status Start(const ProcessSpec& spec);

  // Sends `sig` to the child's whole process group. No-op when not running.
  void Signal(int sig);

  // Non-blocking: true (and *exit_code set) once the child has exited. Exit codes follow the
  // shell's convention: 0..255 for exit(), 128+N for death by signal N.
  bool Poll(int* exit_code);

  // The read end of the output pipe (non-blocking), or -1. Closed by ReadOutput at EOF.
  int output_fd() const { return out_fd_; }

  // Reads what is available; appends complete lines to `lines` (partial lines are kept until
  // their newline or EOF). Returns false at EOF.
  bool ReadOutput(std::vector<std::string>* lines);

  bool running() const { return pid_ > 0; }
  // User + system CPU seconds of every run of this child reaped by Poll (with the descendants it
  // waited for), summed over its restarts.
  double cpu_seconds() const { return cpu_seconds_; }
  // cpu_seconds() plus what the running process has used so far (user + system, from
  // /proc/<pid>/stat; its threads included, its unreaped children not).
  double LiveCpuSeconds() const;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string partial_;
  double cpu_seconds_ = 0;
};

}  // namespace tandem::local
