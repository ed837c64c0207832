// tandem-operator: the Kubernetes operator for TrainingJob and Queue resources.
//
//   tandem-operator --kubeconfig ~/.kube/config --metrics-port 8080
//   (in a pod: no flags; the in-cluster service account is used)
//
// With --leader-elect (default), replicas campaign for a coordination.k8s.io Lease; only the
// leader runs informers and reconciles. A leader that loses the Lease stops reconciling and exits
// with code 1 so that its pod restarts as a candidate. SIGTERM/SIGINT release the Lease.
// With --default-queue FILE, the leader creates that Queue if none of its name exists
// (operator/controller/default_queue.h: why the operator and not the Helm chart).
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <optional>
#include <thread>

#include "common/cli.h"
#include "common/environment.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/metrics_endpoint.h"
#include "api/manifest.h"
#include "operator/controller/default_queue.h"
#include "operator/controller/controller.h"
#include "operator/controller/operator_metrics.h"
#include "operator/controller/sweep_controller.h"
#include "operator/controller/sweep_metrics.h"
#include "operator/kube/kube_client.h"
#include "operator/kube/kube_config.h"
#include "operator/kube/leader_election.h"

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

std::string Hostname() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "tandem-operator";
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tandem-operator: the Kubernetes operator for TrainingJob, Queue and Sweep resources"};
  app.name("tandem-operator");
  tandem::AddVersionFlag(app, "tandem-operator");
  std::string kubeconfig, context, metrics_host = "0.0.0.0";
  int metrics_port = 8080;
  bool leader_elect = true;
  std::string lease_namespace, lease_name = "tandem-operator", identity = Hostname();
  tandem::controller::ControllerOptions options;
  double lease_duration = 15, renew_deadline = 10, retry_period = 2;
  double tls_cert_hours = 24 * 30, tls_propagation_s = 600;
  app.add_option("--kubeconfig", kubeconfig, "kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)");
  app.add_option("--context", context, "kubeconfig context (default: current-context)");
  app.add_option("--metrics-host", metrics_host, "Address for /metrics, /healthz, /readyz");
  app.add_option("--metrics-port", metrics_port, "Port for /metrics, /healthz, /readyz (-1: off, 0: any)")
      ->check(CLI::Range(-1, 65535));
  app.add_option("--workers", options.workers, "Reconcile worker threads")->check(CLI::Range(1, 64));
  app.add_option("--api-concurrency", options.api_concurrency,
                 "API requests in flight at once (children, workers, status writes and Events of "
                 "all workers together; 0: each worker makes its calls one after another)")
      ->check(CLI::Range(0, 512));
  app.add_option("--schedule-min-interval", options.schedule_min_interval_s,
                 "Seconds at least between the starts of two scheduling passes")->check(CLI::Range(0.0, 60.0));
  app.add_option("--schedule-interval", options.reconciler.schedule_interval_s,
                 "Seconds between scheduling passes while jobs wait")->check(CLI::Range(0.1, 3600.0));
  app.add_option("--elastic-cooldown", options.reconciler.elastic_cooldown_s,
                 "Seconds after an elastic job's last resize before it may grow again")->check(CLI::Range(0.0, 86400.0));
  app.add_option("--termination-grace", options.reconciler.build.termination_grace_s,
                 "Seconds a stopped worker gets to checkpoint (SIGTERM to SIGKILL)")->check(CLI::Range(0, 3600));
  app.add_option("--checkpoint-root", options.reconciler.build.checkpoint_root,
                 "Node directory for jobs with spec.checkpoint.storage: HostPath and no hostPath");
  app.add_option("--run-as-user", options.reconciler.build.run_as_user,
                 "User, group and fsGroup of worker pods (non-root)")->check(CLI::Range(1, 2147483647));
  app.add_option("--queue-status-top", options.reconciler.queue_status_top,
                 "Waiting jobs listed in each Queue's status.waiting (with position and free capacity)")
      ->check(CLI::Range(0, 1000));
  app.add_option("--queue-status-interval", options.reconciler.queue_status_interval_s,
                 "A Queue's status.waiting is rewritten at most this often (seconds)")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--trainer-metrics-port", options.reconciler.build.ports.trainer_metrics,
                 "Port each trainer serves /metrics on (its TANDEM_METRICS_PORT); the operator scrapes "
                 "rank 0 there for status.progress")->check(CLI::Range(1, 65535));
  app.add_option("--tls-cert-lifetime", tls_cert_hours,
                 "Hours a job's TLS certificate is valid; renewed with a third left (docs/operator.md)")
      ->check(CLI::Range(1.0, 24.0 * 3650))
      ->capture_default_str();
  app.add_option("--tls-propagation", tls_propagation_s,
                 "Seconds a new CA is trusted by a job's workers before it signs their certificate "
                 "(kubelet's Secret and ConfigMap refresh plus the workers' 60 s reload)")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  app.add_option("--progress-interval", options.progress.interval_s,
                 "Seconds between scrapes of one job's rank-0 trainer (0: no progress reporting)")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--progress-timeout", options.progress.timeout_s, "Seconds one progress scrape may take")
      ->check(CLI::Range(0.05, 60.0));
  app.add_option("--progress-threads", options.progress.threads, "Concurrent progress scrapes")
      ->check(CLI::Range(1, 64));
  std::string default_queue_file;
  app.add_option("--default-queue", default_queue_file,
                 "A Queue manifest (YAML) to create when leading, if no Queue of its name exists (never updated)");
  tandem::kube::KubeClientOptions client_options;
  app.add_option("--watch-idle-timeout", client_options.watch_idle_timeout_s,
                 "Seconds a watch may carry no byte before it is reopened (kube-apiserver sends a bookmark "
                 "about every minute; raise it for an apiserver run with --watch-cache=false)")
      ->check(CLI::Range(10, 3600));
  app.add_flag("--leader-elect,!--no-leader-elect", leader_elect, "Campaign for a Lease before reconciling");
  app.add_option("--lease-namespace", lease_namespace, "Namespace of the Lease (default: the config's namespace)");
  app.add_option("--lease-name", lease_name, "Name of the Lease");
  app.add_option("--identity", identity, "This replica's identity in the Lease (default: hostname)");
  app.add_option("--lease-duration", lease_duration, "Seconds a Lease is valid without renewal");
  app.add_option("--renew-deadline", renew_deadline, "Seconds a leader may fail to renew before it stops");
  app.add_option("--retry-period", retry_period, "Seconds between Lease attempts");
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;
  options.reconciler.tls_rotation.cert_lifetime = absl::Seconds(tls_cert_hours * 3600);
  options.reconciler.tls_rotation.propagation = absl::Seconds(tls_propagation_s);
  tandem::InitLogging("operator");
  if (renew_deadline >= lease_duration) {
    TANDEM_LOG(error, "--renew-deadline ({}) must be less than --lease-duration ({})", renew_deadline, lease_duration);
    return 2;
  }

  std::optional<tandem::api::Queue> default_queue;
  if (!default_queue_file.empty()) {
    auto q = tandem::api::LoadQueue(default_queue_file, tandem::api::SectionValidators{});
    if (!q.ok()) {
      TANDEM_LOG(error, "--default-queue: {}", std::string(q.status().message()));
      return 2;
    }
    default_queue = *std::move(q);
  }

  auto config = tandem::kube::LoadKubeConfig(tandem::ProcessEnvironment(), kubeconfig, context);
  if (!config.ok()) {
    TANDEM_LOG(error, "no Kubernetes configuration: {}", config.status().ToString());
    return 1;
  }
  TANDEM_LOG(info, "API server {} ({})", config->server, config->source);
  tandem::kube::KubeClient client(*config, client_options);
  tandem::controller::OperatorMetrics::Get();  // register every family before the first scrape
  tandem::controller::SweepMetrics::Get();

  tandem::HealthState health;
  tandem::MetricsEndpoint endpoint(tandem::metrics::Registry::Default(), &health);
  // /pending: every waiting job with its position and the figures behind its reason, as the last
  // scheduling pass saw them (jobs' status holds only the stable reason; Queues the first few).
  std::atomic<tandem::controller::Controller*> pending_source{nullptr};
  endpoint.Handle("GET", "/pending", [&pending_source](const tandem::HttpRequest&, tandem::HttpResponseWriter& w) {
    tandem::controller::Controller* c = pending_source.load();
    if (c == nullptr) {
      w.Respond(503, "text/plain", "not leading: no scheduling pass has run here\n");
      return;
    }
    w.Respond(200, "application/json", c->PendingView().dump() + "\n");
  });
  if (auto s = endpoint.Start(metrics_host, metrics_port); !s.ok()) {
    TANDEM_LOG(error, "metrics endpoint on {}:{}: {}", metrics_host, metrics_port, s.ToString());
    return 1;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);

  options.host = identity;
  tandem::controller::Controller controller(&client, options);
  pending_source = &controller;
  // Before the controller goes: no /pending request may reach it after this.
  struct StopServing {
    std::atomic<tandem::controller::Controller*>& source;
    tandem::MetricsEndpoint& endpoint;
    ~StopServing() {
      source = nullptr;
      endpoint.Stop();
    }
  } stop_serving{pending_source, endpoint};
  tandem::controller::SweepControllerOptions sweep_options;
  sweep_options.informer = options.informer;
  sweep_options.host = identity;
  tandem::controller::SweepController sweeps(&client, sweep_options);
  std::atomic<bool> failed{false};
  std::atomic<bool> leading{false};
  auto start = [&] {
    leading = true;
    absl::Status s = controller.Start();
    if (s.ok()) s = sweeps.Start();
    if (!s.ok()) {
      TANDEM_LOG(error, "controller: {}", s.ToString());
      failed = true;
      g_stop = true;
      return;
    }
    health.SetReady(true);
    tandem::controller::OperatorMetrics::Get().leader->Set(1);
    if (default_queue) {
      // A refusal (RBAC, the API server's schema) is logged, not fatal: jobs of other queues
      // run, and the default queue's jobs wait with reason NoSuchQueue until an admin acts.
      absl::Status q = tandem::controller::EnsureDefaultQueue(&client, *default_queue,
                                                              [&] { return g_stop || !leading; });
      if (!q.ok() && !absl::IsCancelled(q)) TANDEM_LOG(error, "{}", std::string(q.message()));
    }
  };

  if (!leader_elect) {
    start();
    while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    sweeps.Stop();
    controller.Stop();
    return failed ? 1 : 0;
  }
  tandem::kube::LeaderElectionConfig le;
  le.ns = lease_namespace.empty() ? config->default_namespace : lease_namespace;
  le.name = lease_name;
  le.identity = identity;
  le.lease_duration_s = lease_duration;
  le.renew_deadline_s = renew_deadline;
  le.retry_period_s = retry_period;
  le.on_started_leading = [&] { std::thread(start).detach(); };
  le.on_stopped_leading = [&] {
    leading = false;
    health.SetReady(false, "not the leader");
    tandem::controller::OperatorMetrics::Get().leader->Set(0);
    sweeps.Stop();
    controller.Stop();
  };
  le.on_new_leader = [&](const std::string& who) {
    if (who != identity) TANDEM_LOG(info, "leader election: {} leads", who);
  };
  health.SetReady(false, "waiting for the Lease");
  tandem::kube::LeaderElector elector(&client, le);
  std::thread watcher([&] {
    while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    elector.Stop();
  });
  absl::Status result = elector.Run();
  g_stop = true;
  watcher.join();
  sweeps.Stop();
  controller.Stop();
  if (!result.ok()) {
    TANDEM_LOG(error, "{}", result.ToString());
    return 1;
  }
  return failed ? 1 : 0;
}
