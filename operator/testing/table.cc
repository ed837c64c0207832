#include "operator/testing/table.h"

#include <chrono>
#include <cmath>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "operator/kube/resource.h"

namespace tandem::kube::testing {
namespace {

struct Step {
  std::string field;   // may be empty (e.g. a leading [..])
  enum { kNone, kIndex, kAll, kFilter } sel = kNone;
  int index = 0;
  std::string filter_field;
  std::string filter_value;
};

std::vector<Step> ParsePath(std::string path) {
  path = std::string(absl::StripAsciiWhitespace(path));
  if (!path.empty() && path.front() == '{' && path.back() == '}') path = path.substr(1, path.size() - 2);
  std::vector<Step> steps;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '.') {
      ++i;
      continue;
    }
    Step s;
    while (i < path.size() && path[i] != '.' && path[i] != '[') {
      if (path[i] == '\\' && i + 1 < path.size()) ++i;  // "nvidia\.com/gpu": an escaped dot
      s.field += path[i++];
    }
    if (i < path.size() && path[i] == '[') {
      size_t close = path.find(']', i);
      if (close == std::string::npos) close = path.size();
      std::string inner = path.substr(i + 1, close - i - 1);
      i = close + 1;
      if (inner == "*") {
        s.sel = Step::kAll;
      } else if (!inner.empty() && inner[0] == '?') {
        // ?(@.type=="Ready")
        s.sel = Step::kFilter;
        size_t at = inner.find("@.");
        size_t eq = inner.find("==");
        if (at != std::string::npos && eq != std::string::npos) {
          s.filter_field = inner.substr(at + 2, eq - at - 2);
          std::string v = inner.substr(eq + 2);
          while (!v.empty() && (v.back() == ')' || v.back() == ' ')) v.pop_back();
          if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'')) v = v.substr(1, v.size() - 2);
          s.filter_value = v;
        }
      } else {
        s.sel = Step::kIndex;
        s.index = std::atoi(inner.c_str());
      }
    }
    steps.push_back(std::move(s));
  }
  return steps;
}

std::string Plain(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

nlohmann::json AgeCell(const nlohmann::json& object) {
  const nlohmann::json* ts = FieldAt(object, "metadata.creationTimestamp");
  if (ts == nullptr || !ts->is_string()) return "<unknown>";
  auto t = ParseRfc3339(ts->get<std::string>());
  if (!t.ok()) return "<invalid>";
  return HumanDuration(NowSeconds() - *t);
}

nlohmann::json Column(const std::string& name, const std::string& type, const std::string& format,
                      const std::string& description, int priority = 0) {
  return {{"name", name}, {"type", type}, {"format", format}, {"description", description},
          {"priority", priority}};
}

}  // namespace

std::vector<nlohmann::json> EvalJsonPath(const nlohmann::json& object, const std::string& path) {
  std::vector<nlohmann::json> cur = {object};
  for (const Step& s : ParsePath(path)) {
    std::vector<nlohmann::json> next;
    for (const auto& c : cur) {
      nlohmann::json v = c;
      if (!s.field.empty()) {
        if (!c.is_object() || !c.contains(s.field)) continue;
        v = c[s.field];
      }
      switch (s.sel) {
        case Step::kNone:
          next.push_back(v);
          break;
        case Step::kIndex:
          if (v.is_array()) {
            int idx = s.index < 0 ? static_cast<int>(v.size()) + s.index : s.index;
            if (idx >= 0 && idx < static_cast<int>(v.size())) next.push_back(v[idx]);
          }
          break;
        case Step::kAll:
          if (v.is_array()) {
            for (const auto& e : v) next.push_back(e);
          }
          break;
        case Step::kFilter:
          if (v.is_array()) {
            for (const auto& e : v) {
              const nlohmann::json* f = FieldAt(e, s.filter_field);
              if (f != nullptr && Plain(*f) == s.filter_value) next.push_back(e);
            }
          }
          break;
      }
    }
    cur = std::move(next);
  }
  return cur;
}

std::string HumanDuration(double seconds) {
  if (seconds < 0) seconds = 0;
  long s = static_cast<long>(seconds);
  if (s < 120) return absl::StrCat(s, "s");
  long m = s / 60;
  if (m < 10) return s % 60 == 0 ? absl::StrCat(m, "m") : absl::StrCat(m, "m", s % 60, "s");
  if (m < 180) return absl::StrCat(m, "m");
  long h = s / 3600;
  if (h < 8) return m % 60 == 0 ? absl::StrCat(h, "h") : absl::StrCat(h, "h", m % 60, "m");
  if (h < 48) return absl::StrCat(h, "h");
  if (h < 24 * 8) return h % 24 == 0 ? absl::StrCat(h / 24, "d") : absl::StrCat(h / 24, "d", h % 24, "h");
  if (h < 24 * 365 * 2) return absl::StrCat(h / 24, "d");
  if (h < 24 * 365 * 8) {
    long d = h / 24;
    return d % 365 == 0 ? absl::StrCat(d / 365, "y") : absl::StrCat(d / 365, "y", d % 365, "d");
  }
  return absl::StrCat(h / 24 / 365, "y");
}

nlohmann::json BuildTable(const std::string& kind, const nlohmann::json& printer_columns,
                          const std::vector<nlohmann::json>& objects,
                          const std::string& resource_version, const std::string& include_object) {
  nlohmann::json columns = nlohmann::json::array();
  columns.push_back(Column("Name", "string", "name",
                           "Name must be unique within a namespace."));
  std::vector<std::function<nlohmann::json(const nlohmann::json&)>> cells;
  cells.push_back([](const nlohmann::json& o) { return NameOf(o); });

  if (printer_columns.is_array() && !printer_columns.empty()) {
    for (const auto& pc : printer_columns) {
      std::string type = pc.value("type", "string");
      columns.push_back(Column(pc.value("name", ""), type, pc.value("format", ""),
                               pc.value("description", ""), pc.value("priority", 0)));
      std::string path = pc.value("jsonPath", "");
      cells.push_back([path, type](const nlohmann::json& o) -> nlohmann::json {
        auto values = EvalJsonPath(o, path);
        if (values.empty()) return nullptr;
        const nlohmann::json& v = values[0];
        if (type == "date" && v.is_string()) {
          auto t = ParseRfc3339(v.get<std::string>());
          if (t.ok()) return HumanDuration(NowSeconds() - *t);
          return v;
        }
        if ((type == "integer" || type == "number") && v.is_number()) return v;
        if (type == "boolean" && v.is_boolean()) return v;
        if (values.size() == 1) return Plain(v);
        std::vector<std::string> parts;
        for (const auto& x : values) parts.push_back(Plain(x));
        return absl::StrJoin(parts, ",");
      });
    }
  } else if (kind == "Pod") {
    columns.push_back(Column("Ready", "string", "", "The aggregate readiness state of this pod"));
    columns.push_back(Column("Status", "string", "", "The aggregate status of the containers"));
    columns.push_back(Column("Restarts", "string", "", "The number of times the containers restarted"));
    columns.push_back(Column("Age", "string", "", "CreationTimestamp"));
    columns.push_back(Column("Node", "string", "", "The node the pod is bound to", 1));
    cells.push_back([](const nlohmann::json& o) -> nlohmann::json {
      const nlohmann::json* spec_c = FieldAt(o, "spec.containers");
      const nlohmann::json* st = FieldAt(o, "status.containerStatuses");
      int total = spec_c != nullptr && spec_c->is_array() ? static_cast<int>(spec_c->size()) : 0;
      int ready = 0;
      if (st != nullptr && st->is_array()) {
        for (const auto& c : *st) ready += c.value("ready", false) ? 1 : 0;
      }
      return absl::StrCat(ready, "/", total);
    });
    cells.push_back([](const nlohmann::json& o) -> nlohmann::json {
      if (FieldAt(o, "metadata.deletionTimestamp") != nullptr) return "Terminating";
      const nlohmann::json* p = FieldAt(o, "status.phase");
      return p != nullptr && p->is_string() ? p->get<std::string>() : "Unknown";
    });
    cells.push_back([](const nlohmann::json& o) -> nlohmann::json {
      int restarts = 0;
      const nlohmann::json* st = FieldAt(o, "status.containerStatuses");
      if (st != nullptr && st->is_array()) {
        for (const auto& c : *st) restarts += c.value("restartCount", 0);
      }
      return std::to_string(restarts);
    });
    cells.push_back(AgeCell);
    cells.push_back([](const nlohmann::json& o) -> nlohmann::json {
      const nlohmann::json* n = FieldAt(o, "spec.nodeName");
      return n != nullptr && n->is_string() ? n->get<std::string>() : "<none>";
    });
  } else if (kind == "Service") {
    columns.push_back(Column("Type", "string", "", "The type of the service"));
    columns.push_back(Column("Cluster-IP", "string", "", "The cluster IP of the service"));
    columns.push_back(Column("Age", "string", "", "CreationTimestamp"));
    cells.push_back([](const nlohmann::json& o) -> nlohmann::json {
      const nlohmann::json* t = FieldAt(o, "spec.type");
      return t != nullptr && t->is_string() ? t->get<std::string>() : "ClusterIP";
    });
    cells.push_back([](const nlohmann::json& o) -> nlohmann::json {
      const nlohmann::json* t = FieldAt(o, "spec.clusterIP");
      return t != nullptr && t->is_string() ? t->get<std::string>() : "<none>";
    });
    cells.push_back(AgeCell);
  } else if (kind == "Event") {
    columns.push_back(Column("Last Seen", "string", "", "When the event was last seen"));
    columns.push_back(Column("Type", "string", "", "Normal or Warning"));
    columns.push_back(Column("Reason", "string", "", "Why the event happened"));
    columns.push_back(Column("Object", "string", "", "The object the event is about"));
    columns.push_back(Column("Message", "string", "", "What happened"));
    cells.push_back([](const nlohmann::json& o) -> nlohmann::json {
      const nlohmann::json* ts = FieldAt(o, "lastTimestamp");
      if (ts == nullptr || !ts->is_string()) return "<unknown>";
      auto t = ParseRfc3339(ts->get<std::string>());
      return t.ok() ? HumanDuration(NowSeconds() - *t) : "<invalid>";
    });
    for (const char* f : {"type", "reason"}) {
      cells.push_back([f](const nlohmann::json& o) -> nlohmann::json { return o.value(f, ""); });
    }
    cells.push_back([](const nlohmann::json& o) -> nlohmann::json {
      const nlohmann::json* io = FieldAt(o, "involvedObject");
      if (io == nullptr || !io->is_object()) return "";
      std::string kind = io->value("kind", "");
      for (auto& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return absl::StrCat(kind, "/", io->value("name", ""));
    });
    cells.push_back([](const nlohmann::json& o) -> nlohmann::json { return o.value("message", ""); });
  } else {
    columns.push_back(Column("Age", "string", "", "CreationTimestamp"));
    cells.push_back(AgeCell);
  }
  if (printer_columns.is_array() && !printer_columns.empty()) {
    // CRD columns are exactly Name + additionalPrinterColumns (they usually include an Age).
  }

  nlohmann::json rows = nlohmann::json::array();
  for (const auto& o : objects) {
    nlohmann::json row = {{"cells", nlohmann::json::array()}};
    for (const auto& cell : cells) row["cells"].push_back(cell(o));
    if (include_object == "Object") {
      row["object"] = o;
    } else if (include_object != "None") {
      row["object"] = {{"kind", "PartialObjectMetadata"},
                       {"apiVersion", "meta.k8s.io/v1"},
                       {"metadata", o.value("metadata", nlohmann::json::object())}};
    }
    rows.push_back(std::move(row));
  }
  return {{"kind", "Table"},
          {"apiVersion", "meta.k8s.io/v1"},
          {"metadata", {{"resourceVersion", resource_version}}},
          {"columnDefinitions", columns},
          {"rows", rows}};
}

}  // namespace tandem::kube::testing
