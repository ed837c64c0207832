#include "tests/common/test_util.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "common/socket.h"

namespace tandem::testing {

std::string SourceDir() {
  const char* d = std::getenv("TANDEM_SOURCE_DIR");
  return d != nullptr ? d : ".";
}

std::string BinDir() {
  const char* d = std::getenv("TANDEM_BIN_DIR");
  return d != nullptr ? d : "./bin";
}

ChildResult RunInChild(const std::function<int()>& body) {
  ChildResult r;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return r;  // see RunProgram
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[0]);
    // Never back into the test framework: an exception escaping body() ends the child as one
    // escaping main() would (std::terminate), not as a failure gtest catches and reports.
    try {
      ::_exit(body());
    } catch (...) {
      std::terminate();
    }
  }
  ::close(fds[1]);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof(buf))) > 0) r.output.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  ::waitpid(pid, &r.status, 0);
  return r;
}

CommandResult RunCommand(const std::string& command) {
  CommandResult r;
  std::string full = command + " 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  int status = ::pclose(p);
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.exit_code = 128 + WTERMSIG(status);
  }
  return r;
}

CommandResult RunProgram(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  CommandResult r;
  int out[2];
  // Close-on-exec: tests run several programs at once from threads (the elastic start-up test:
  // three trainers), and a program forked by another thread must not inherit this pipe's write
  // end, or this read would see no end of file until that other program exits too (a trainer
  // waiting for the test's next step: a deadlock, seen once in CI). dup2 onto 1 and 2 clears the
  // flag on the child's own copies.
  if (argv.empty() || ::pipe2(out, O_CLOEXEC) != 0) return r;
  std::vector<char*> args, envp;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    ::close(out[0]);
    ::close(out[1]);
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  ::close(out[1]);
  if (pid < 0) {
    ::close(out[0]);
    return r;
  }
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof(buf))) > 0) r.output.append(buf, static_cast<size_t>(n));
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.exit_code = 128 + WTERMSIG(status);
  }
  return r;
}

HttpResult HttpRequestTo(int port, const std::string& method, const std::string& target,
                         const std::string& body) {
  HttpResult r;
  auto conn = net::ConnectOnce("127.0.0.1", port, net::Clock::now() + std::chrono::seconds(30));
  if (!conn.ok() || !net::SetNonBlocking(conn->get(), false).ok()) return r;
  const int fd = conn->release();
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
  if (!body.empty() || method == "POST" || method == "PUT") {
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n" + body;
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string raw;
  char buf[8192];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) raw.append(buf, static_cast<size_t>(n));
  ::close(fd);
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos || raw.size() < 12) return r;
  r.status = std::atoi(raw.substr(9, 3).c_str());
  r.headers = raw.substr(0, head_end);
  std::string rest = raw.substr(head_end + 4);
  if (r.headers.find("Transfer-Encoding: chunked") != std::string::npos) {
    size_t pos = 0;
    for (;;) {
      size_t eol = rest.find("\r\n", pos);
      if (eol == std::string::npos) break;
      size_t size = std::strtoul(rest.substr(pos, eol - pos).c_str(), nullptr, 16);
      if (size == 0) break;
      r.body += rest.substr(eol + 2, size);
      pos = eol + 2 + size + 2;
    }
  } else {
    r.body = rest;
  }
  return r;
}

}  // namespace tandem::testing
