#include "cli/local/supervisor.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "gtest/gtest.h"

namespace tandem::local {
namespace {

SupervisedProcess Sh(const std::string& name, Role role, const std::string& script) {
  SupervisedProcess p;
  p.spec.name = name;
  p.spec.argv = {"/bin/sh", "-c", script};
  p.role = role;
  return p;
}

struct Captured {
  std::vector<std::string> lines;
  std::vector<std::string> events;
};

SupervisorCallbacks Capture(Captured* c) {
  SupervisorCallbacks cb;
  cb.on_line = [c](const SupervisedProcess& p, const std::string& l) {
    c->lines.push_back(p.spec.name + "|" + l);
  };
  cb.on_event = [c](const std::string& e) { c->events.push_back(e); };
  return cb;
}

SupervisorOptions FastOptions() {
  SupervisorOptions o;
  o.restart.backoff_seconds = 0.05;
  o.stop_grace_seconds = 5;
  return o;
}

bool Contains(const std::vector<std::string>& v, const std::string& needle) {
  for (const auto& s : v) {
    if (s.find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST(SupervisorTest, SucceedsWhenTrainersFinishAndStopsPservers) {
  Captured c;
  Supervisor sup({Sh("w0/pserver", Role::kPServer,
                     "trap 'echo checkpointed; exit 0' TERM; while :; do sleep 0.05; done"),
                  Sh("w0/trainer", Role::kTrainer, "echo hello; exit 0"),
                  Sh("w1/trainer", Role::kTrainer, "sleep 0.2; echo bye")},
                 FastOptions(), Capture(&c));
  RunResult r = sup.Run();
  EXPECT_TRUE(r.succeeded) << r.failure;
  EXPECT_EQ(r.restarts, 0);
  EXPECT_TRUE(Contains(c.lines, "w0/trainer|hello"));
  EXPECT_TRUE(Contains(c.lines, "w1/trainer|bye"));
  EXPECT_TRUE(Contains(c.lines, "w0/pserver|checkpointed"));
}

TEST(SupervisorTest, RestartsRetryableFailure) {
  std::string marker = ::testing::TempDir() + "/restart_marker_" + std::to_string(::getpid());
  ::unlink(marker.c_str());
  Captured c;
  Supervisor sup({Sh("w0/trainer", Role::kTrainer,
                     "if [ -e " + marker + " ]; then echo resumed; exit 0; fi; touch " + marker +
                         "; kill -9 $$")},
                 FastOptions(), Capture(&c));
  RunResult r = sup.Run();
  EXPECT_TRUE(r.succeeded) << r.failure;
  EXPECT_EQ(r.restarts, 1);
  EXPECT_EQ(r.charged_restarts, 1);
  EXPECT_TRUE(Contains(c.events, "exited with code 137; restarting"));
  EXPECT_TRUE(Contains(c.lines, "resumed"));
  ::unlink(marker.c_str());
}

TEST(SupervisorTest, PeerFailureIsNotCharged) {
  // w1 is killed once (charged); w0 sees it and exits 75 once: the peer's failure explains it.
  std::string dir = ::testing::TempDir() + "/peer_" + std::to_string(::getpid());
  ASSERT_EQ(::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str()), 0);
  SupervisorOptions o = FastOptions();
  o.restart.backoff_limit = 1;
  Captured c;
  Supervisor sup({Sh("w1/trainer", Role::kTrainer,
                     "if [ -e " + dir + "/killed ]; then exit 0; fi; touch " + dir +
                         "/killed; kill -9 $$"),
                  Sh("w0/trainer", Role::kTrainer,
                     "if [ -e " + dir + "/seen ]; then exit 0; fi; "
                     "while [ ! -e " + dir + "/killed ]; do sleep 0.02; done; sleep 0.1; touch " +
                         dir + "/seen; exit 75")},
                 o, Capture(&c));
  RunResult r = sup.Run();
  EXPECT_TRUE(r.succeeded) << r.failure;
  EXPECT_EQ(r.restarts, 2);
  EXPECT_EQ(r.charged_restarts, 1);
  EXPECT_TRUE(Contains(c.events, "w1/trainer failed")) << ::testing::PrintToString(c.events);
  EXPECT_TRUE(Contains(c.events, "not charged"));
  ::system(("rm -rf " + dir).c_str());
}

TEST(SupervisorTest, PeerFailureAfterRunningIsNotCharged) {
  // Nothing else failed, but it had been running (a link cut while training): not charged.
  std::string marker = ::testing::TempDir() + "/settled_marker_" + std::to_string(::getpid());
  ::unlink(marker.c_str());
  SupervisorOptions o = FastOptions();
  o.restart.backoff_limit = 0;
  o.settled_seconds = 0.2;
  Captured c;
  Supervisor sup({Sh("w0/trainer", Role::kTrainer,
                     "if [ -e " + marker + " ]; then exit 0; fi; sleep 0.4; touch " + marker +
                         "; exit 75")},
                 o, Capture(&c));
  RunResult r = sup.Run();
  EXPECT_TRUE(r.succeeded) << r.failure;
  EXPECT_EQ(r.restarts, 1);
  EXPECT_EQ(r.charged_restarts, 0);
  EXPECT_TRUE(Contains(c.events, "s of running; not charged"))
      << ::testing::PrintToString(c.events);
  ::unlink(marker.c_str());
}

TEST(SupervisorTest, PeerFailureLoopIsChargedAndEnds) {
  // 75 right after every start with nothing else failing: a loop that must end, not go on for
  // ever (the budget is charged and spent).
  SupervisorOptions o = FastOptions();
  o.restart.backoff_limit = 2;
  Captured c;
  Supervisor sup({Sh("w0/trainer", Role::kTrainer, "exit 75")}, o, Capture(&c));
  RunResult r = sup.Run();
  EXPECT_FALSE(r.succeeded);
  EXPECT_EQ(r.charged_restarts, 2);
  EXPECT_NE(r.failure.find("exit code 75 and the restart budget"), std::string::npos) << r.failure;
  EXPECT_TRUE(Contains(c.events, "charged: it exited 75"));
}

TEST(SupervisorTest, NonRetryableFailureStopsEverything) {
  Captured c;
  Supervisor sup({Sh("w0/pserver", Role::kPServer, "while :; do sleep 0.05; done"),
                  Sh("w0/trainer", Role::kTrainer, "echo bad config >&2; exit 3")},
                 FastOptions(), Capture(&c));
  RunResult r = sup.Run();
  EXPECT_FALSE(r.succeeded);
  EXPECT_NE(r.failure.find("w0/trainer failed with exit code 3"), std::string::npos) << r.failure;
  EXPECT_TRUE(Contains(c.lines, "w0/trainer|bad config"));
  EXPECT_EQ(r.last_exit_codes["w0/pserver"], 128 + SIGTERM);
}

TEST(SupervisorTest, BackoffLimitIsHonoured) {
  SupervisorOptions o = FastOptions();
  o.restart.backoff_limit = 2;
  Captured c;
  Supervisor sup({Sh("w0/trainer", Role::kTrainer, "kill -9 $$")}, o, Capture(&c));
  RunResult r = sup.Run();
  EXPECT_FALSE(r.succeeded);
  EXPECT_EQ(r.charged_restarts, 2);
  EXPECT_NE(r.failure.find("backoffLimit = 2"), std::string::npos) << r.failure;
}

TEST(SupervisorTest, StopSendsTermThenKillAfterGrace) {
  SupervisorOptions o = FastOptions();
  o.stop_grace_seconds = 0.3;
  Captured c;
  Supervisor sup({Sh("w0/pserver", Role::kPServer,
                     "trap 'echo saving' TERM; while :; do sleep 0.05; done"),
                  Sh("w0/trainer", Role::kTrainer, "trap 'echo checkpoint; exit 143' TERM; "
                                                    "while :; do sleep 0.05; done")},
                 o, Capture(&c));
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    sup.RequestStop();
  });
  RunResult r = sup.Run();
  stopper.join();
  EXPECT_TRUE(r.interrupted);
  EXPECT_FALSE(r.succeeded);
  EXPECT_TRUE(Contains(c.lines, "w0/trainer|checkpoint"));
  EXPECT_TRUE(Contains(c.lines, "w0/pserver|saving"));
  EXPECT_EQ(r.last_exit_codes["w0/pserver"], 128 + SIGKILL);  // ignored TERM: killed
  EXPECT_TRUE(Contains(c.events, "sending SIGKILL"));
}

TEST(SupervisorTest, MissingExecutableIsAClearError) {
  SupervisedProcess p;
  p.spec.name = "w0/trainer";
  p.spec.argv = {"/nonexistent/tandem-trainer"};
  Captured c;
  Supervisor sup({p}, FastOptions(), Capture(&c));
  RunResult r = sup.Run();
  EXPECT_FALSE(r.succeeded);
  EXPECT_NE(r.failure.find("cannot run '/nonexistent/tandem-trainer'"), std::string::npos)
      << r.failure;
}

TEST(SupervisorTest, ChildrenDieWhenTheSupervisorIsKilled) {
  std::string pidfile = ::testing::TempDir() + "/orphan_pids_" + std::to_string(::getpid());
  ::unlink(pidfile.c_str());
  pid_t sup_pid = ::fork();
  if (sup_pid == 0) {
    Supervisor sup({Sh("w0/pserver", Role::kPServer,
                       "echo $$ >> " + pidfile + "; while :; do sleep 0.05; done"),
                    Sh("w0/trainer", Role::kTrainer,
                       "echo $$ >> " + pidfile + "; while :; do sleep 0.05; done")},
                   FastOptions(), {});
    sup.Run();
    ::_exit(0);
  }
  std::vector<pid_t> pids;
  for (int i = 0; i < 200 && pids.size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    pids.clear();
    std::ifstream in(pidfile);
    pid_t p;
    while (in >> p) pids.push_back(p);
  }
  ASSERT_EQ(pids.size(), 2u);
  ::kill(sup_pid, SIGKILL);
  int status;
  ::waitpid(sup_pid, &status, 0);
  for (pid_t p : pids) {
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
      gone = ::kill(p, 0) != 0;
      if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(gone) << "orphan pid " << p;
  }
  ::unlink(pidfile.c_str());
}

}  // namespace
}  // namespace tandem::local
