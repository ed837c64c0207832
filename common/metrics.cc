#include "common/metrics.h"

#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <dirent.h>
#include <fstream>
#include <sstream>

#include "absl/synchronization/mutex.h"
#include "common/check.h"

namespace tandem::metrics {
namespace {

void AtomicAdd(std::atomic<double>& a, double v) {
  double old = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(old, old + v, std::memory_order_relaxed)) {
  }
}

bool ValidMetricName(const std::string& s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool ValidLabelName(const std::string& s) {
  if (s.empty() || s.rfind("__", 0) == 0) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

const char* TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// Appends `{a="x",b="y"}` (plus an optional extra label such as le) or nothing when empty.
void AppendLabels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                  const char* extra_name, const std::string& extra_value, std::string* out) {
  if (names.empty() && extra_name == nullptr) return;
  out->push_back('{');
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out->push_back(',');
    *out += names[i];
    *out += "=\"";
    *out += EscapeLabelValue(values[i]);
    out->push_back('"');
  }
  if (extra_name != nullptr) {
    if (!names.empty()) out->push_back(',');
    *out += extra_name;
    *out += "=\"";
    *out += extra_value;
    out->push_back('"');
  }
  out->push_back('}');
}

void AppendSample(const std::string& name, const std::vector<std::string>& label_names,
                  const std::vector<std::string>& label_values, double value, std::string* out,
                  const char* extra_name = nullptr, const std::string& extra_value = "") {
  *out += name;
  AppendLabels(label_names, label_values, extra_name, extra_value, out);
  out->push_back(' ');
  *out += FormatValue(value);
  out->push_back('\n');
}

void SerializeChild(const std::string& name, const std::vector<std::string>& label_names,
                    const std::vector<std::string>& values, const Counter& c, std::string* out) {
  AppendSample(name, label_names, values, c.Value(), out);
}
void SerializeChild(const std::string& name, const std::vector<std::string>& label_names,
                    const std::vector<std::string>& values, const Gauge& g, std::string* out) {
  AppendSample(name, label_names, values, g.Value(), out);
}
void SerializeChild(const std::string& name, const std::vector<std::string>& label_names,
                    const std::vector<std::string>& values, const Histogram& h, std::string* out) {
  // Read the buckets first, then count and sum, so that a concurrent Observe can only make
  // _count larger than the +Inf bucket by the in-flight observations, never smaller.
  std::vector<uint64_t> counts = h.BucketCounts();
  uint64_t cumulative = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    std::string le = i < h.bounds().size() ? FormatValue(h.bounds()[i]) : "+Inf";
    AppendSample(name + "_bucket", label_names, values, static_cast<double>(cumulative), out, "le",
                 le);
  }
  AppendSample(name + "_sum", label_names, values, h.Sum(), out);
  // _count must equal the +Inf bucket in a consistent exposition.
  AppendSample(name + "_count", label_names, values, static_cast<double>(cumulative), out);
}

}  // namespace

void Counter::Inc(double v) {
  TANDEM_DCHECK(v >= 0) << "counters only go up";
  AtomicAdd(value_, v);
}

void Gauge::Inc(double v) { AtomicAdd(value_, v); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    TANDEM_CHECK(std::isfinite(bounds_[i])) << "histogram bound " << i;
    if (i > 0) TANDEM_CHECK_LT(bounds_[i - 1], bounds_[i]);
  }
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  // Binary search: first bound >= v (Prometheus buckets are "less than or equal").
  size_t lo = 0, hi = bounds_.size();
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (v <= bounds_[mid]) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  buckets_[lo].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, v);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::BucketCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  TANDEM_CHECK(start > 0 && factor > 1 && count > 0);
  std::vector<double> b(count);
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) b[i] = v;
  return b;
}

std::vector<double> LinearBuckets(double start, double width, int count) {
  TANDEM_CHECK(width > 0 && count > 0);
  std::vector<double> b(count);
  for (int i = 0; i < count; ++i) b[i] = start + width * i;
  return b;
}

std::vector<double> LatencyBuckets() { return ExponentialBuckets(1e-4, 2.0, 21); }

template <typename T>
Family<T>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)) {}

template <typename T>
T* Family<T>::WithLabels(const std::vector<std::string>& label_values) {
  TANDEM_CHECK_EQ(label_values.size(), label_names_.size()) << "metric " << name_;
  absl::MutexLock lock(&mu_);
  auto it = children_.find(label_values);
  if (it != children_.end()) return it->second.get();
  std::unique_ptr<T> child;
  if constexpr (std::is_same_v<T, Histogram>) {
    child = std::make_unique<Histogram>(bounds_);
  } else {
    child = std::make_unique<T>();
  }
  T* raw = child.get();
  children_.emplace(label_values, std::move(child));
  return raw;
}

template <typename T>
void Family<T>::Remove(const std::vector<std::string>& label_values) {
  absl::MutexLock lock(&mu_);
  children_.erase(label_values);
}

template <typename T>
void Family<T>::Serialize(MetricType type, std::string* out) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [values, child] : children_) {
    SerializeChild(name_, label_names_, values, *child, out);
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

struct Registry::Entry {
  std::string name;
  std::string help;
  MetricType type;
  std::vector<std::string> label_names;
  std::unique_ptr<Family<Counter>> counter;
  std::unique_ptr<Family<Gauge>> gauge;
  std::unique_ptr<Family<Histogram>> histogram;
  std::function<double()> callback;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Entry& Registry::Register(const std::string& name, const std::string& help,
                                    MetricType type, const std::vector<std::string>& label_names) {
  TANDEM_CHECK(ValidMetricName(name)) << "invalid metric name '" << name << "'";
  for (const auto& l : label_names) {
    TANDEM_CHECK(ValidLabelName(l)) << "metric " << name << ": invalid label name '" << l << "'";
    TANDEM_CHECK(!(type == MetricType::kHistogram && l == "le")) << "metric " << name;
  }
  auto it = entries_.find(name);
  if (it != entries_.end()) {
    Entry& e = *it->second;
    TANDEM_CHECK(e.type == type && e.label_names == label_names && !e.callback)
        << "metric " << name << " registered twice with different types or labels";
    return e;
  }
  auto e = std::make_unique<Entry>();
  e->name = name;
  e->help = help;
  e->type = type;
  e->label_names = label_names;
  Entry& ref = *e;
  entries_.emplace(name, std::move(e));
  return ref;
}

Family<Counter>& Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  Entry& e = Register(name, help, MetricType::kCounter, label_names);
  if (!e.counter) e.counter.reset(new Family<Counter>(name, help, std::move(label_names), {}));
  return *e.counter;
}

Family<Gauge>& Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  Entry& e = Register(name, help, MetricType::kGauge, label_names);
  if (!e.gauge) e.gauge.reset(new Family<Gauge>(name, help, std::move(label_names), {}));
  return *e.gauge;
}

Family<Histogram>& Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<std::string> label_names,
                                          std::vector<double> bounds) {
  absl::MutexLock lock(&mu_);
  Entry& e = Register(name, help, MetricType::kHistogram, label_names);
  if (!e.histogram) {
    e.histogram.reset(
        new Family<Histogram>(name, help, std::move(label_names), std::move(bounds)));
  }
  return *e.histogram;
}

void Registry::AddCallback(const std::string& name, const std::string& help, MetricType type,
                           std::function<double()> fn) {
  TANDEM_CHECK(type != MetricType::kHistogram) << "metric " << name;
  absl::MutexLock lock(&mu_);
  TANDEM_CHECK(entries_.find(name) == entries_.end()) << "metric " << name << " registered twice";
  Entry& e = Register(name, help, type, {});
  e.callback = std::move(fn);
}

std::string Registry::Serialize() const {
  std::string out;
  out.reserve(4096);
  absl::MutexLock lock(&mu_);
  for (const auto& [name, e] : entries_) {
    out += "# HELP ";
    out += name;
    out.push_back(' ');
    out += EscapeHelp(e->help);
    out += "\n# TYPE ";
    out += name;
    out.push_back(' ');
    out += TypeName(e->type);
    out.push_back('\n');
    if (e->callback) {
      AppendSample(name, {}, {}, e->callback(), &out);
    } else if (e->counter) {
      e->counter->Serialize(e->type, &out);
    } else if (e->gauge) {
      e->gauge->Serialize(e->type, &out);
    } else if (e->histogram) {
      e->histogram->Serialize(e->type, &out);
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  TANDEM_CHECK(ec == std::errc());
  return std::string(buf, end);
}

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string EscapeHelp(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

namespace {

// Fields 14 (utime), 15 (stime), 22 (starttime), 23 (vsize), 24 (rss) of /proc/self/stat.
struct ProcStat {
  double cpu_seconds = 0, start_time = 0, vsize = 0, rss = 0;
};

ProcStat ReadProcStat() {
  ProcStat s;
  std::ifstream f("/proc/self/stat");
  std::string line;
  if (!std::getline(f, line)) return s;
  // The command name (field 2) may contain spaces; fields resume after the last ')'.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return s;
  std::istringstream rest(line.substr(close + 2));
  std::vector<std::string> fields;  // fields[0] is field 3 (state)
  std::string tok;
  while (rest >> tok) fields.push_back(tok);
  if (fields.size() < 22) return s;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  s.cpu_seconds = (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
  double boot = 0;
  std::ifstream st("/proc/stat");
  std::string key;
  while (st >> key) {
    if (key == "btime") {
      st >> boot;
      break;
    }
  }
  s.start_time = boot + std::stod(fields[19]) / ticks;
  s.vsize = std::stod(fields[20]);
  s.rss = std::stod(fields[21]) * page;
  return s;
}

double CountOpenFds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  double n = 0;
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n - 3;  // ".", ".." and the directory's own descriptor
}

}  // namespace

void RegisterProcessMetrics(Registry& registry) {
  registry.AddCallback("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                       MetricType::kCounter, [] { return ReadProcStat().cpu_seconds; });
  registry.AddCallback("process_resident_memory_bytes", "Resident memory size in bytes.",
                       MetricType::kGauge, [] { return ReadProcStat().rss; });
  registry.AddCallback("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                       MetricType::kGauge, [] { return ReadProcStat().vsize; });
  registry.AddCallback("process_open_fds", "Number of open file descriptors.", MetricType::kGauge,
                       [] { return CountOpenFds(); });
  const double start = ReadProcStat().start_time;
  registry.AddCallback("process_start_time_seconds",
                       "Start time of the process since unix epoch in seconds.",
                       MetricType::kGauge, [start] { return start; });
}

Registry& Registry::Default() {
  static Registry* registry = [] {
    auto* r = new Registry();
    RegisterProcessMetrics(*r);
    return r;
  }();
  return *registry;
}

}  // namespace tandem::metrics
