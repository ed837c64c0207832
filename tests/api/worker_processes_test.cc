// The worker contract across the process boundary: what each producer renders (the operator's
// pod spec, container by container: command, args, env; `tandem run`'s process table) is run
// through the real tandem-trainer and tandem-pserver binaries' parse path (--check-contract:
// the same code their mains run before training), for sync, async, hybrid, dense-only and sparse
// jobs. A pod is started as the kubelet would: the ConfigMap's manifest at the container's mount
// path (here a temporary folder the args are pointed to), TANDEM_JOB_TOKEN resolved from the
// Secret the operator builds, and no other environment.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "api/manifest.h"
#include "cli/local/local_run.h"
#include "common/socket.h"
#include "common/yaml_json.h"
#include "gtest/gtest.h"
#include "operator/controller/worker_builder.h"
#include "tests/common/test_util.h"
#include "trainer/model/trainer_spec.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct JobCase {
  const char* name;
  bool sparse_model;  // an embedding table (its rows live on the pservers)
  const char* sync;   // spec.sync
  const char* mode;
  int staleness;
};

const JobCase kCases[] = {
    {"sync", false, "{dense: pserver, mode: sync}", "sync", 4},
    {"async", false, "{dense: pserver, mode: async, staleness: 2}", "async", 2},
    {"hybrid", true, "{dense: pserver, mode: sync}", "sync", 4},
    {"dense-only", false, "{dense: ring}", "sync", 4},
    {"sparse", true, "{dense: ring, mode: sync, staleness: 3}", "sync", 3},
};

class WorkerProcessesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / ("worker_processes_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    std::ofstream(root_ / "images.idx");
    std::ofstream(root_ / "labels.idx");
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string WriteManifest(const JobCase& c) {
    const std::string data =
        c.sparse_model
            ? "  data:\n"
              "    train: {format: synthetic-ctr, examples: 100, numFields: 4, seed: 1}\n"
              "    test: {format: synthetic-ctr, examples: 20, numFields: 4, seed: 1}\n"
              "    batchSize: 10\n"
              "  model:\n"
              "    inputs: [{name: ids, source: fields, shape: [4]}, {name: click, source: targets}]\n"
              "    layers:\n"
              "      - {name: emb, type: embedding, input: ids, vocabSize: 1000, size: 4, pooling: sum}\n"
              "      - {name: logit, type: fc, input: emb, size: 1}\n"
              "      - {name: cost, type: binary_cross_entropy, inputs: [logit, click]}\n"
            : "  data:\n"
              "    train: {format: idx, images: " + (root_ / "images.idx").string() +
                  ", labels: " + (root_ / "labels.idx").string() + "}\n"
              "    batchSize: 16\n"
              "  model:\n"
              "    inputs: [{name: image, source: features, shape: [1, 28, 28]}, {name: label, source: labels}]\n"
              "    layers:\n"
              "      - {name: fc1, type: fc, input: image, size: 10}\n"
              "      - {name: cost, type: softmax_cross_entropy, inputs: [fc1, label]}\n";
    const std::string path = (root_ / (std::string(c.name) + ".yaml")).string();
    std::ofstream(path) << "apiVersion: tandem.dev/v1alpha1\n"
                           "kind: TrainingJob\n"
                           "metadata: {name: " << c.name << ", namespace: team, uid: u-1}\n"
                           "spec:\n"
                           "  workers: {count: 2}\n"
                           "  trainer: {threads: 1}\n"
                           "  passes: 1\n"
                        << data
                        << "  optimizer: {type: sgd, learningRate: 0.05}\n"
                           "  sync: " << c.sync << "\n"
                           "  checkpoint: {intervalSteps: 50, keep: 2}\n";
    return path;
  }

  // A process as a producer rendered it.
  struct Process {
    std::string who;  // "pod team/sync-worker-1 container pserver", ...
    std::string role;
    int rank = 0;
    std::vector<std::string> argv;
    std::vector<std::pair<std::string, std::string>> env;
  };

  // The operator's worker pods, one Process per container, started as the kubelet would.
  std::vector<Process> FromOperator(const std::string& manifest) {
    auto docs = YamlFileToJson(manifest);
    EXPECT_TRUE(docs.ok()) << docs.status();
    const json object = (*docs)[0];
    auto job = api::TrainingJobFromJson(object, trainer::TrainerSectionValidators());
    EXPECT_TRUE(job.ok()) << job.status();
    const controller::BuildOptions options;
    const json secret = controller::BuildTokenSecret(object, *job, "operator-token");
    const json config = controller::BuildConfigMap(object, *job);
    // The ConfigMap volume, as the kubelet mounts it.
    const fs::path mount = root_ / ("mount-" + job->metadata.name);
    fs::create_directories(mount);
    for (const auto& [key, value] : config["data"].items())
      std::ofstream(mount / key) << value.get<std::string>();
    std::vector<Process> out;
    for (int rank = 0; rank < job->spec.workers.count; ++rank) {
      const json pod = controller::BuildWorkerPod(object, *job, rank, "n1", 0, options);
      // Every volume mount of the manifest's volume is at the path the args refer to.
      std::string mount_path;
      for (const json& m : pod["spec"]["containers"][0]["volumeMounts"])
        if (m["name"] == "job") mount_path = m["mountPath"];
      EXPECT_FALSE(mount_path.empty());
      for (const json& c : pod["spec"]["containers"]) {
        Process p;
        p.who = "pod " + pod["metadata"]["name"].get<std::string>() + " container " + c["name"].get<std::string>();
        p.role = c["name"];
        p.rank = rank;
        EXPECT_EQ(c["command"].size(), 1u) << p.who;
        const std::string binary = c["command"][0];
        EXPECT_EQ(binary.find('/'), std::string::npos) << p.who << ": the image has it on PATH";
        p.argv.push_back(testing::BinDir() + "/" + binary);
        for (const json& a : c.value("args", json::array())) {
          std::string arg = a.get<std::string>();
          if (absl::StartsWith(arg, mount_path + "/")) arg = mount.string() + arg.substr(mount_path.size());
          p.argv.push_back(arg);
        }
        for (const json& e : c["env"]) {
          std::string value;
          if (e.contains("valueFrom")) {
            const json& ref = e["valueFrom"]["secretKeyRef"];
            EXPECT_EQ(ref["name"], secret["metadata"]["name"]) << p.who << " " << e.dump();
            EXPECT_TRUE(absl::Base64Unescape(secret["data"][ref["key"].get<std::string>()].get<std::string>(), &value));
          } else {
            value = e["value"];
          }
          p.env.emplace_back(e["name"], value);
        }
        out.push_back(std::move(p));
      }
    }
    return out;
  }

  // `tandem run`'s process table for the same manifest (with `placement`: --placement).
  std::vector<Process> FromTandemRun(const std::string& manifest,
                                     const local::Placement* placement = nullptr) {
    auto job = api::LoadTrainingJob(manifest, trainer::TrainerSectionValidators());
    EXPECT_TRUE(job.ok()) << job.status();
    const local::LocalJob lj = local::LocalJobFor(*job, manifest, 0);
    local::LocalRunOptions options;
    options.bin_dir = testing::BinDir();
    if (placement) options.placement = *placement;
    auto ports = net::PickFreeLoopbackPorts(4 * lj.workers);
    EXPECT_TRUE(ports.ok());
    auto tls = local::WriteJobCertificates((root_ / "run" / "tls").string(), lj.name);
    EXPECT_TRUE(tls.ok()) << tls.status();
    std::vector<Process> out;
    for (const local::SupervisedProcess& sp :
         local::BuildProcesses(lj, options, (root_ / "run").string(), *ports, "run-token", *tls)) {
      Process p;
      p.who = "tandem run " + sp.spec.name;
      p.role = sp.role == local::Role::kTrainer ? "trainer" : "pserver";
      p.rank = sp.worker;
      p.argv = sp.spec.argv;
      p.env = sp.spec.env;
      out.push_back(std::move(p));
    }
    return out;
  }

  // Runs `p` through its binary's contract parser; the parsed contract, or null (with a failure).
  json Check(const Process& p) {
    std::vector<std::string> argv = p.argv;
    argv.push_back("--check-contract");
    std::vector<std::string> env;
    for (const auto& [k, v] : p.env) env.push_back(k + "=" + v);
    testing::CommandResult r = testing::RunProgram(argv, env);
    EXPECT_EQ(r.exit_code, 0) << p.who << " is refused by its binary:\n" << r.output;
    if (r.exit_code != 0) return nullptr;
    const size_t line = r.output.rfind('{');
    json parsed = json::parse(r.output.substr(line), nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(parsed.is_object()) << p.who << ": " << r.output;
    return parsed;
  }

  // What every worker of `c` must have understood.
  void ExpectUnderstood(const JobCase& c, const std::vector<Process>& procs,
                        std::map<std::string, json>* parsed_by_key) {
    std::set<std::string> trainer_pservers;
    std::map<int, int> pserver_port_of_rank;
    std::map<int, int> trainer_view_port;
    const bool with_pservers =
        std::any_of(procs.begin(), procs.end(), [](const Process& p) { return p.role == "pserver"; });
    for (const Process& p : procs) {
      SCOPED_TRACE(std::string(c.name) + ": " + p.who);
      json got = Check(p);
      if (got.is_null()) continue;
      EXPECT_EQ(got["role"], p.role);
      EXPECT_EQ(got["syncMode"], std::string(c.mode)) << got.dump();
      EXPECT_EQ(got["staleness"], c.staleness) << got.dump();
      EXPECT_GT(got["tokenBytes"].get<int>(), 0);
      // Mutual TLS on the pservers' gRPC, from both producers (docs/pserver.md).
      for (const char* f : {"tlsCa", "tlsCert", "tlsKey"})
        EXPECT_FALSE(got.value(f, "").empty()) << f << " " << got.dump();
      if (p.role == "trainer") {
        EXPECT_EQ(got["rank"], p.rank);
        EXPECT_EQ(got["worldSize"], 2);
        EXPECT_EQ(got["jobName"], c.name);
        trainer_pservers.insert(got["pservers"].get<std::string>());
        if (!with_pservers) {
          EXPECT_EQ(got["pservers"], "") << got.dump();
          continue;
        }
        auto list = ParseEndpointList(got["pservers"].get<std::string>());
        ASSERT_TRUE(list.ok()) << got.dump();
        ASSERT_EQ(list->size(), 2u) << got.dump();
        trainer_view_port[p.rank] = (*list)[p.rank].port;
      } else {
        EXPECT_EQ(got["shard"], p.rank) << got.dump();
        EXPECT_EQ(got["numShards"], 2) << got.dump();
        EXPECT_EQ(got["trainers"], 2) << got.dump();
        EXPECT_EQ(got["checkpointInterval"], 50) << got.dump();
        EXPECT_EQ(got["checkpointKeep"], 2) << got.dump();
        pserver_port_of_rank[p.rank] = got["port"];
      }
      (*parsed_by_key)[p.role + "-" + std::to_string(p.rank)] = got;
    }
    EXPECT_EQ(trainer_pservers.size(), 1u) << c.name << ": every trainer sees the same pservers";
    // Each trainer finds its co-located shard where that shard listens.
    for (const auto& [rank, port] : pserver_port_of_rank) EXPECT_EQ(trainer_view_port[rank], port) << c.name;
  }

  fs::path root_;
};

TEST_F(WorkerProcessesTest, TheOperatorsPodsAreUnderstoodByTheBinaries) {
  for (const JobCase& c : kCases) {
    std::map<std::string, json> parsed;
    std::vector<Process> procs = FromOperator(WriteManifest(c));
    // The same rule as `tandem run` (api::UsesPServers): no pserver container where nothing
    // lives on it.
    const bool no_pservers = !c.sparse_model && std::string(c.sync).find("pserver") == std::string::npos;
    EXPECT_EQ(procs.size(), no_pservers ? 2u : 4u) << c.name;
    for (const Process& p : procs) {
      if (no_pservers) EXPECT_EQ(p.role, "trainer") << p.who;
    }
    ExpectUnderstood(c, procs, &parsed);
  }
}

TEST_F(WorkerProcessesTest, TandemRunsProcessesAreUnderstoodByTheBinaries) {
  for (const JobCase& c : kCases) {
    std::map<std::string, json> parsed;
    std::vector<Process> procs = FromTandemRun(WriteManifest(c));
    // A dense job synchronised over the ring has nothing on a pserver: `tandem run` starts none
    // and its trainers get no TANDEM_PSERVERS, like the operator's pods (above).
    const bool no_pservers = !c.sparse_model && std::string(c.sync).find("pserver") == std::string::npos;
    EXPECT_EQ(procs.size(), no_pservers ? 2u : 4u) << c.name;
    for (const Process& p : procs) {
      if (no_pservers) EXPECT_EQ(p.role, "trainer") << p.who;
    }
    ExpectUnderstood(c, procs, &parsed);
  }
}

// `tandem run --placement`: every process starts through its host's prefix (here /usr/bin/env, which
// execs the rest as the network namespaces' `ip netns exec` does), is told its host's name, and
// sees its peers and pservers at their hosts' addresses.
TEST_F(WorkerProcessesTest, TandemRunsPlacedProcessesAreUnderstoodByTheBinaries) {
  auto placement = local::ParsePlacement(json::parse(R"({"hosts": [
      {"name": "host-a", "address": "10.213.9.1", "exec": ["/usr/bin/env"]},
      {"name": "host-b", "address": "10.213.9.2", "exec": ["/usr/bin/env"]}],
      "pservers": ["host-b", "host-a"]})"),
                                         2, "placement");
  ASSERT_TRUE(placement.ok()) << placement.status();
  const JobCase& c = kCases[4];  // sparse: trainers use the pservers
  std::vector<Process> procs = FromTandemRun(WriteManifest(c), &*placement);
  ASSERT_EQ(procs.size(), 4u);
  for (const Process& p : procs) {
    SCOPED_TRACE(p.who);
    EXPECT_EQ(p.argv[0], "/usr/bin/env");
    json got = Check(p);
    if (got.is_null()) continue;
    const bool trainer = p.role == "trainer";
    const std::string host = (trainer ? p.rank == 0 : p.rank == 1) ? "host-a" : "host-b";
    EXPECT_EQ(got["host"], host) << got.dump();
    if (trainer) {
      EXPECT_TRUE(absl::StartsWith(got["peers"].get<std::string>(), "10.213.9.1:")) << got.dump();
      EXPECT_TRUE(absl::StrContains(got["peers"].get<std::string>(), ",10.213.9.2:")) << got.dump();
      EXPECT_TRUE(absl::StartsWith(got["pservers"].get<std::string>(), "10.213.9.2:")) << got.dump();
    }
  }
}

// `tandem run` and the operator give a worker the same environment: the same variables, and,
// once parsed by the binaries, the same values for everything but where things are (addresses,
// ports, folders, the token, the manifest's path) and TANDEM_EVENTS (only `tandem run` reads the
// event lines).
TEST_F(WorkerProcessesTest, TandemRunAndTheOperatorGiveTheSameEnvironment) {
  const std::set<std::string> placement = {"manifest", "peers", "pservers", "port", "checkpointDir",
                                           "outputDir", "metricsPort", "tokenBytes", "events",
                                           "tlsCa", "tlsCert", "tlsKey"};
  for (const JobCase& c : kCases) {
    SCOPED_TRACE(c.name);
    const std::string manifest = WriteManifest(c);
    std::vector<Process> pods = FromOperator(manifest), local = FromTandemRun(manifest);
    // The same processes: pservers on both sides or on neither (api::UsesPServers).
    ASSERT_EQ(pods.size(), local.size());
    auto names = [](const Process& p) {
      std::set<std::string> n;
      for (const auto& [k, v] : p.env) n.insert(k);
      return n;
    };
    std::map<std::string, const Process*> by_key;
    for (const Process& p : local) by_key[p.role + "-" + std::to_string(p.rank)] = &p;
    for (const Process& pod : pods) {
      const Process* mine = by_key[pod.role + "-" + std::to_string(pod.rank)];
      ASSERT_NE(mine, nullptr) << pod.who;
      EXPECT_EQ(names(pod), names(*mine)) << pod.who << " vs " << mine->who;
      EXPECT_EQ(pod.argv.size(), mine->argv.size()) << pod.who;
      EXPECT_EQ(fs::path(pod.argv[0]).filename(), fs::path(mine->argv[0]).filename()) << pod.who;
      json a = Check(pod), b = Check(*mine);
      if (a.is_null() || b.is_null()) continue;
      for (const std::string& k : placement) {
        a.erase(k);
        b.erase(k);
      }
      EXPECT_EQ(a, b) << pod.who << " vs " << mine->who;
    }
  }
}

}  // namespace
}  // namespace tandem
