#include "cli/local/local_sweep.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "api/manifest.h"
#include "cli/local/local_run.h"
#include "cli/local/progress.h"
#include "sweep/early_stopping.h"
#include "sweep/planner.h"

namespace tandem::local {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

double ChildrenCpuSeconds() {
  rusage ru{};
  ::getrusage(RUSAGE_CHILDREN, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

std::string FormatValue(const json& v) {
  if (v.is_number_float()) return absl::StrFormat("%.4g", v.get<double>());
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

std::string FormatParameters(const api::Sweep& sweep, const json& parameters) {
  std::vector<std::string> parts;
  for (const api::SweepParameter& p : sweep.spec.parameters)
    if (parameters.contains(p.name)) parts.push_back(absl::StrCat(p.name, "=", FormatValue(parameters[p.name])));
  return absl::StrJoin(parts, " ");
}

// One trial running as a local job on its own thread.
struct TrialRun {
  std::unique_ptr<LocalRun> run;
  std::thread thread;
  std::atomic<bool> done{false};
  absl::StatusOr<LocalRunResult> result = absl::UnknownError("not finished");
  std::FILE* console = nullptr;
  std::string metrics_path;
  std::streamoff offset = 0;
  std::string partial;  // a line not yet ended
  bool stop_requested = false;
  std::string stop_reason;
  // Stopped by the early-stopping rule: the values it reports after that decision (the passes it
  // trains while the stop reaches it) are not recorded, as in ASHA a stopped trial is never
  // promoted past the rung it was stopped at: recorded, they would count at rungs it was never
  // promoted to (where they lower the bar for the others) and rank it, in TPE, above trials
  // stopped promptly. They still count in the passes and CPU the sweep spent.
  bool stopped_early = false;
  int64_t passes_seen = 0;  // the newest pass it reported, recorded or not
  // ASHA: paused at rung `pause_rung` (its processes asked to checkpoint and exit). Values past
  // the rung that arrive while the pause reaches it are held, not recorded: the trial was not
  // promoted past the rung; they are recorded if it is (it resumes past them).
  bool pausing = false;
  int64_t pause_rung = 0;
  std::vector<std::pair<int64_t, double>> held;
  bool resume_when_exited = false;  // promoted while its processes were still exiting
  int64_t stop_after = 0;  // ASHA: its trainers pause by themselves after this pass (its next rung)
};

// What a paused trial keeps between its runs: where its metrics.jsonl was read up to, the values
// held past its rung, and the passes it trained.
struct ParkedTrial {
  std::streamoff offset = 0;
  std::string partial;
  std::vector<std::pair<int64_t, double>> held;
  int64_t passes_seen = 0;
};

// New `eval` events of worker 0 since the last call: (pass, the objective's value).
std::vector<std::pair<int64_t, double>> ReadEvalEvents(TrialRun* t, const std::string& metric) {
  std::vector<std::pair<int64_t, double>> out;
  std::ifstream f(t->metrics_path, std::ios::binary);
  if (!f) return out;
  f.seekg(t->offset);
  std::string chunk((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  t->offset += static_cast<std::streamoff>(chunk.size());
  t->partial += chunk;
  size_t start = 0;
  for (size_t nl; (nl = t->partial.find('\n', start)) != std::string::npos; start = nl + 1) {
    json e = json::parse(t->partial.substr(start, nl - start), nullptr, /*allow_exceptions=*/false);
    if (e.is_discarded() || !e.is_object() || e.value("event", "") != "eval" || e.value("worker", -1) != 0) continue;
    const json* v = e.contains(metric) ? &e[metric] : nullptr;
    if (v != nullptr && v->is_number() && e.contains("pass") && e["pass"].is_number_integer())
      out.push_back({e["pass"].get<int64_t>(), v->get<double>()});
  }
  t->partial.erase(0, start);
  return out;
}

}  // namespace

TrialSlots PlanTrialSlots(int64_t parallelism, int64_t workers, int64_t threads, int cores) {
  cores = std::max(1, cores);
  const int64_t w = std::max<int64_t>(1, workers);
  TrialSlots s;
  if (threads > 0) {
    s.concurrency = static_cast<int>(std::clamp<int64_t>(cores / (w * threads), 1, std::max<int64_t>(1, parallelism)));
    s.trainer_threads = static_cast<int>(threads);
  } else {
    s.concurrency = static_cast<int>(std::clamp<int64_t>(cores / w, 1, std::max<int64_t>(1, parallelism)));
    s.trainer_threads = static_cast<int>(std::max<int64_t>(1, cores / (s.concurrency * w)));
  }
  return s;
}

std::vector<std::string> TrialTable(const api::Sweep& sweep, const std::vector<api::TrialStatus>& trials,
                                    int64_t passes) {
  std::vector<std::string> lines;
  size_t width = 5;
  for (const api::TrialStatus& t : trials) width = std::max(width, t.name.size());
  const int value_width = static_cast<int>(std::max<size_t>(8, sweep.spec.objective.metric.size()));
  lines.push_back(absl::StrFormat("%-*s  %-9s  %-7s  %-*s  %s", static_cast<int>(width), "TRIAL", "PHASE", "PASS",
                                  value_width, absl::AsciiStrToUpper(sweep.spec.objective.metric), "PARAMETERS"));
  for (const api::TrialStatus& t : trials) {
    const int64_t pass = t.intermediate.empty() ? 0 : t.intermediate.back().pass;
    std::string line = absl::StrFormat(
        "%-*s  %-9s  %-7s  %-*s  %s", static_cast<int>(width), t.name, t.phase, absl::StrCat(pass, "/", passes),
        value_width, t.objective ? absl::StrFormat("%.4f", *t.objective) : std::string("-"), FormatParameters(sweep, t.parameters));
    if (!t.reason.empty()) absl::StrAppend(&line, "  (", t.reason, ")");
    lines.push_back(std::move(line));
  }
  if (sweep.spec.budget.cpu_seconds > 0)
    lines.push_back(absl::StrFormat("budget: %.1f of %.0f CPU seconds spent", sweep::SpentCpuSeconds(trials),
                                    sweep.spec.budget.cpu_seconds));
  return lines;
}

std::vector<std::pair<int64_t, double>> FoldTrialValues(const std::vector<std::pair<int64_t, double>>& values,
                                                        bool stopped_early, api::TrialStatus* t,
                                                        int64_t* passes_seen) {
  std::vector<std::pair<int64_t, double>> recorded;
  for (const auto& [pass, value] : values) {
    *passes_seen = std::max(*passes_seen, pass);
    if (!stopped_early && sweep::RecordValue(t, pass, value)) recorded.push_back({pass, value});
  }
  return recorded;
}

LocalSweep::LocalSweep(api::Sweep sweep, LocalSweepOptions options)
    : sweep_(std::move(sweep)), options_(std::move(options)) {}

absl::StatusOr<LocalSweepResult> LocalSweep::Run(std::FILE* out) {
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = ChildrenCpuSeconds();
  const api::SweepSpec& spec = sweep_.spec;
  std::string run_dir = options_.run_dir.empty() ? DefaultRunDir(sweep_.metadata.name) : options_.run_dir;
  std::error_code ec;
  fs::create_directories(fs::path(run_dir) / "trials", ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create run folder ", run_dir, "/trials: ", ec.message()));
  run_dir = fs::absolute(run_dir).lexically_normal().string();
  if (!options_.manifest_path.empty())
    fs::copy_file(options_.manifest_path, fs::path(run_dir) / "sweep.yaml", fs::copy_options::overwrite_existing, ec);

  // The template as every trial gets it, for its passes, workers and threads.
  api::FieldErrors template_errors;
  api::TrainingJob tmpl = api::ParseTrainingJob(
      {{"apiVersion", api::kApiVersion}, {"kind", api::kTrainingJobKind}, {"metadata", {{"name", "t"}}},
       {"spec", spec.trial_template.spec}},
      options_.validators, &template_errors);
  const int64_t passes = tmpl.spec.passes;
  const int cores = options_.cores > 0 ? options_.cores : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const TrialSlots slots = PlanTrialSlots(spec.parallelism, tmpl.spec.workers.count, tmpl.spec.trainer.threads, cores);
  const std::string metric = spec.objective.metric;

  std::fprintf(out,
               "tandem run: sweep %s: %s search%s over %zu parameters, at most %lld trials, %d at a time "
               "(%d cores, %d trainer thread%s per worker); run folder %s\n",
               sweep_.metadata.name.c_str(), spec.algorithm.name.c_str(),
               spec.early_stopping.policy == api::kStoppingNone ? "" : absl::StrCat(" with ", spec.early_stopping.policy, " stopping").c_str(),
               spec.parameters.size(), static_cast<long long>(spec.max_trials), slots.concurrency, cores,
               slots.trainer_threads, slots.trainer_threads == 1 ? "" : "s", run_dir.c_str());
  std::fflush(out);

  std::unique_ptr<sweep::Sampler> sampler = sweep::NewSampler(spec);
  std::vector<api::TrialStatus> trials;
  std::map<int64_t, std::unique_ptr<TrialRun>> runs;  // live trial threads by index
  std::map<int64_t, int64_t> passes_seen;              // finished trials: the newest pass reported
  std::map<int64_t, double> trial_cpu;                 // CPU seconds of each trial's processes, reaped
  sweep::Plan plan;
  std::string end_message;
  size_t table_lines = 0;
  auto last_draw = std::chrono::steady_clock::now() - std::chrono::hours(1);
  auto say = [&](const std::string& line) {
    if (options_.tty && table_lines > 0) {
      std::fprintf(out, "\033[%zuA\033[J", table_lines);  // the table is redrawn below the line
      table_lines = 0;
    }
    std::fprintf(out, "%s\n", line.c_str());
    std::fflush(out);
  };
  auto draw = [&](bool force) {
    if (!options_.tty) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_draw < std::chrono::milliseconds(500)) return;
    last_draw = now;
    std::string text;
    if (table_lines > 0) absl::StrAppend(&text, "\033[", table_lines, "A");
    std::vector<std::string> lines = TrialTable(sweep_, trials, passes);
    for (const std::string& l : lines) absl::StrAppend(&text, "\r\033[K", l, "\n");
    absl::StrAppend(&text, "\033[J");
    std::fputs(text.c_str(), out);
    std::fflush(out);
    table_lines = lines.size();
  };

  std::map<int64_t, ParkedTrial> parked;  // ASHA: paused trials, by index
  // Starts trial `t` (a new one, appended to `trials`), or with `resume`, the paused trial
  // trials[t.index] again in the same run folder: its trainer resumes from the checkpoint it
  // wrote when it paused.
  auto start_trial = [&](api::TrialStatus t, bool resume = false) -> void {
    const std::string manifest = absl::StrCat(run_dir, "/trials/", t.name, ".yaml");
    absl::StatusOr<json> job = api::BuildTrialJob(sweep_, t.parameters, t.name);
    absl::Status started = job.status();
    if (started.ok()) {
      if (!resume) std::ofstream(manifest) << job->dump(2) << '\n';  // JSON is YAML: the trainers read it as any manifest
      absl::StatusOr<api::TrainingJob> loaded = api::LoadTrainingJob(manifest, options_.validators);
      started = loaded.status();
      if (started.ok()) {
        auto r = std::make_unique<TrialRun>();
        LocalJob lj = LocalJobFor(*loaded, manifest, 0);
        lj.trainer_threads = slots.trainer_threads;
        LocalRunOptions lo;
        lo.bin_dir = options_.bin_dir;
        lo.run_dir = absl::StrCat(run_dir, "/trials/", t.name);
        lo.stop_grace_seconds = options_.stop_grace_seconds;
        // ASHA: the trainers checkpoint and exit after the trial's next rung (the paper's job: train
        // to the next rung), so a pause lands exactly there and nothing trains past it.
        if (sweep::UsesRungs(spec.early_stopping)) {
          for (int64_t rung : sweep::AshaRungs(spec.early_stopping, passes)) {
            if (rung <= t.promoted_from) continue;
            r->stop_after = rung;
            lo.trainer_args = {"--stop-after-pass", std::to_string(rung)};
            break;
          }
        }
        r->metrics_path = lo.run_dir + "/metrics.jsonl";
        fs::create_directories(lo.run_dir, ec);
        r->console = std::fopen((lo.run_dir + "/console.log").c_str(), resume ? "a" : "w");
        if (auto p = parked.find(t.index); resume && p != parked.end()) {
          r->offset = p->second.offset;
          r->partial = std::move(p->second.partial);
          r->passes_seen = p->second.passes_seen;
          parked.erase(p);
        }
        r->run = std::make_unique<LocalRun>(lj, lo);
        TrialRun* raw = r.get();
        raw->thread = std::thread([raw] {
          raw->result = raw->run->Run(raw->console != nullptr ? raw->console : stderr);
          raw->done.store(true);
        });
        runs[t.index] = std::move(r);
        t.phase = api::kTrialRunning;
        if (!resume) say(absl::StrCat("trial ", t.name, " started: ", FormatParameters(sweep_, t.parameters)));
      }
    }
    if (!started.ok()) {
      t.phase = api::kTrialFailed;
      t.reason = std::string(started.message());
      say(absl::StrCat("trial ", t.name, resume ? " failed to resume: " : " failed to start: ", t.reason));
    }
    if (resume) trials[static_cast<size_t>(t.index)] = std::move(t);
    else trials.push_back(std::move(t));
  };
  // A promoted trial: the values it held past its rung are recorded (it resumes past them).
  auto resume_trial = [&](int64_t index) {
    api::TrialStatus& t = trials[static_cast<size_t>(index)];
    t.paused_at = 0;
    t.reason.clear();
    if (auto p = parked.find(index); p != parked.end()) {
      FoldTrialValues(p->second.held, false, &t, &p->second.passes_seen);
      p->second.held.clear();
    }
    start_trial(t, /*resume=*/true);
  };

  bool interrupted = false;
  while (true) {
    // Refresh the trials from their events and finished threads (level-based, as the operator).
    for (auto it = runs.begin(); it != runs.end();) {
      TrialRun& r = *it->second;
      api::TrialStatus& t = trials[static_cast<size_t>(it->first)];
      std::vector<std::pair<int64_t, double>> values = ReadEvalEvents(&r, metric);
      if (r.pausing) {  // values past the rung are held (see TrialRun::held)
        auto past = std::stable_partition(values.begin(), values.end(),
                                          [&](const auto& v) { return v.first <= r.pause_rung; });
        for (auto v = past; v != values.end(); ++v) {
          r.held.push_back(*v);
          r.passes_seen = std::max(r.passes_seen, v->first);
        }
        values.erase(past, values.end());
      }
      for (const auto& [pass, value] : FoldTrialValues(values, r.stopped_early, &t, &r.passes_seen)) {
        if (!options_.tty) say(absl::StrFormat("trial %s pass %d/%d: %s %.4f", t.name, pass, passes, metric, value));
      }
      if (!r.done.load()) {
        // What it has used so far, running processes included: spec.budget charges it live.
        t.cpu_seconds = trial_cpu[t.index] + r.run->CpuSecondsSoFar();
        ++it;
        continue;
      }
      r.thread.join();
      if (r.console != nullptr) std::fclose(r.console);
      for (const auto& v : ReadEvalEvents(&r, metric)) {
        if (r.pausing && v.first > r.pause_rung) r.held.push_back(v);
        else FoldTrialValues({v}, r.stopped_early, &t, &r.passes_seen);
        r.passes_seen = std::max(r.passes_seen, v.first);
      }
      passes_seen[t.index] = r.passes_seen;
      // Its measured cost: the CPU its processes used in all its runs, per pass they trained
      // (resumed runs start at the pass they paused after, so the newest pass is the count).
      if (r.result.ok()) trial_cpu[t.index] += r.result->cpu_s;
      t.cpu_seconds = trial_cpu[t.index];
      if (r.passes_seen > 0 && trial_cpu[t.index] > 0)
        t.cost = trial_cpu[t.index] / static_cast<double>(r.passes_seen);
      const bool exited_ok = r.result.ok() && r.result->run.succeeded;
      if (exited_ok && r.stop_after > 0 && r.passes_seen < passes && !r.pausing) {
        // It paused itself at its rung before a look saw its value there (the plan would have).
        r.pausing = true;
        r.pause_rung = r.stop_after;
        t.phase = api::kTrialPaused;
        t.paused_at = r.stop_after;
        if (std::optional<api::MetricPoint> v = sweep::ValueAt(t, r.stop_after))
          t.reason = absl::StrFormat("%s: paused at rung %d (%.4g after pass %d)", spec.early_stopping.policy, r.stop_after,
                                     v->value, v->pass);
        say(absl::StrCat("trial ", t.name, " paused: ", t.reason));
      }
      const bool trained_all = exited_ok && (!r.pausing || r.passes_seen >= passes);
      // A trainer told to pause by itself that failed instead did not pause: it failed.
      if (r.pausing && !trained_all && (exited_ok || r.stop_after != r.pause_rung)) {
        // Paused at its rung: its processes checkpointed and exited; it waits for a promotion.
        parked[t.index] = ParkedTrial{r.offset, r.partial, r.held, r.passes_seen};
        const bool resume = r.resume_when_exited;
        it = runs.erase(it);
        if (resume) resume_trial(t.index);
        continue;
      }
      if (r.pausing) {  // it trained every pass before the pause reached it, or failed
        if (trained_all) FoldTrialValues(r.held, false, &t, &r.passes_seen);
        t.paused_at = 0;
        t.reason.clear();
        r.pausing = false;
      }
      if (r.stop_requested && !r.pausing) {
        t.phase = api::kTrialStopped;
        t.reason = r.stop_reason;
      } else if (trained_all) {
        t.phase = api::kTrialSucceeded;
        // The trainers' summary holds the final evaluation, should its eval event be missing.
        const json& s = r.result->summary;
        if (s.contains(metric) && s[metric].is_number() && (t.intermediate.empty() || t.intermediate.back().pass < passes))
          sweep::RecordValue(&t, passes, s[metric].get<double>());
      } else {
        t.phase = api::kTrialFailed;
        t.reason = r.result.ok() ? r.result->run.failure : std::string(r.result.status().message());
      }
      say(absl::StrCat("trial ", t.name, " ", absl::AsciiStrToLower(t.phase),
                       t.objective ? absl::StrFormat(": %s %.4f after pass %d", metric, *t.objective, t.intermediate.back().pass) : "",
                       t.reason.empty() ? "" : absl::StrCat(" (", t.reason, ")")));
      it = runs.erase(it);
    }
    if (stop_.load() && !interrupted) {
      interrupted = true;
      end_message = "interrupted: every running trial was stopped";
      for (auto& [index, r] : runs) {
        r->resume_when_exited = false;
        r->stop_requested = true;
        r->stop_reason = "interrupted";
        r->run->Stop();
      }
    }
    if (interrupted) {
      if (runs.empty()) break;
    } else {
      // A trial asked to stop stays Running (active) until its processes are gone: it holds its
      // cores while it checkpoints and exits.
      // A trial paused at a rung is not active, but holds its cores until its processes are gone.
      int64_t exiting = 0;
      for (const auto& [index, r] : runs)
        if (r->pausing && !r->resume_when_exited) ++exiting;
      api::SweepSpec local = spec;
      local.parallelism = std::max<int64_t>(0, std::min<int64_t>(spec.parallelism, slots.concurrency) - exiting);
      plan = sweep::PlanSweep(local, passes, trials, *sampler, absl::StrCat(sweep_.metadata.name, "-"));
      if (exiting > 0 && plan.phase != api::kSweepRunning) plan = sweep::Plan{};  // decide once they are gone
      sweep::ApplyRungSteps(plan, &trials);
      for (const sweep::RungStep& p : plan.pause) {
        const api::TrialStatus& t = trials[p.trial];
        auto r = runs.find(t.index);
        if (r != runs.end()) {
          r->second->pausing = true;
          r->second->pause_rung = p.rung;
          // Its trainers pause by themselves after that pass (stop_after); any other: stop them.
          if (r->second->stop_after != p.rung) r->second->run->Stop();
        }
        say(absl::StrCat("trial ", t.name, " paused: ", p.reason));
      }
      for (const sweep::RungStep& p : plan.resume) {
        const api::TrialStatus& t = trials[p.trial];
        auto live = runs.find(t.index);
        const bool restarts = live == runs.end() || live->second->stop_after == p.rung;
        say(absl::StrCat("trial ", t.name, restarts ? " promoted (resumes from its checkpoint): " : " promoted (goes on): ",
                         p.reason));
        if (auto r = live; r != runs.end()) {
          // Promoted in the look that saw it at its rung: its trainers pause there by themselves,
          // so it resumes once they have; a trainer not told to pause there just goes on.
          if (r->second->stop_after == p.rung) {
            r->second->pausing = true;
            r->second->pause_rung = p.rung;
            r->second->resume_when_exited = true;
          } else {
            r->second->pausing = false;
          }
          continue;
        }
        if (p.running) continue;
        else resume_trial(t.index);
      }
      for (const auto& [i, why] : plan.stop) {
        api::TrialStatus& t = trials[i];
        auto r = runs.find(t.index);
        if (r == runs.end() && t.phase == api::kTrialPaused) {  // never promoted: ends where it waits
          t.phase = api::kTrialStopped;
          t.reason = why;
          parked.erase(t.index);
          say(absl::StrCat("trial ", t.name, " stopped: ", why));
          continue;
        }
        if (r == runs.end() || r->second->stop_requested) continue;
        r->second->pausing = r->second->resume_when_exited = false;  // the sweep failed: it ends
        r->second->stop_requested = true;
        r->second->stopped_early = true;
        r->second->stop_reason = why;
        r->second->run->Stop();
        say(absl::StrCat("trial ", t.name, " stopping: ", why));
      }
      for (api::TrialStatus& t : plan.start) start_trial(std::move(t));
      if (plan.phase != api::kSweepRunning && runs.empty()) {
        end_message = plan.message;
        break;
      }
    }
    draw(false);
    std::this_thread::sleep_for(std::chrono::duration<double>(options_.poll_seconds));
  }
  if (interrupted) {
    for (api::TrialStatus& t : trials) {
      if (t.phase != api::kTrialPaused) continue;
      t.phase = api::kTrialStopped;
      t.reason = absl::StrCat("interrupted while paused at rung ", t.paused_at);
    }
  }
  draw(true);
  table_lines = 0;

  LocalSweepResult result;
  result.run_dir = run_dir;
  result.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.cpu_s = ChildrenCpuSeconds() - cpu_start;
  result.concurrency = slots.concurrency;
  result.trainer_threads = slots.trainer_threads;
  result.message = end_message;
  result.status.trials = trials;
  result.status.trial_counts = sweep::CountTrials(trials);
  result.status.best_trial = sweep::FindBestTrial(spec, trials);
  result.status.phase = interrupted ? api::kSweepFailed : plan.phase;
  for (const api::TrialStatus& t : trials) {
    int64_t trained = t.phase == api::kTrialSucceeded ? passes : 0;
    if (!t.intermediate.empty()) trained = std::max(trained, t.intermediate.back().pass);
    if (auto it = passes_seen.find(t.index); it != passes_seen.end()) trained = std::max(trained, it->second);
    result.passes_trained += trained;
  }
  json summary = {{"sweep", sweep_.metadata.name},
                  {"phase", result.status.phase},
                  {"message", result.message},
                  {"algorithm", spec.algorithm.name},
                  {"earlyStopping", spec.early_stopping.policy},
                  {"seed", spec.seed},
                  {"objective", {{"metric", metric}, {"goal", api::ObjectiveGoal(spec.objective)}}},
                  {"passesPerTrial", passes},
                  {"passesTrained", result.passes_trained},
                  {"wall_s", result.wall_s},
                  {"cpu_s", result.cpu_s},
                  {"concurrency", slots.concurrency},
                  {"trainerThreads", slots.trainer_threads}};
  if (spec.budget.cpu_seconds > 0)
    summary["budget"] = {{"cpuSeconds", spec.budget.cpu_seconds}, {"spent", sweep::SpentCpuSeconds(trials)}};
  json status = api::SweepStatusToJson(result.status);
  for (const char* k : {"trialsByPhase", "trials", "bestTrial"})
    if (status.contains(k)) summary[k] = status[k];
  result.summary = summary;
  std::ofstream(run_dir + "/sweep-summary.json") << summary.dump(2) << '\n';
  return result;
}

}  // namespace tandem::local
