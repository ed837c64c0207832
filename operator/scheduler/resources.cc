#include "operator/scheduler/resources.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tandem::scheduler {

Resources Resources::ExcessOver(const Resources& o) const {
  return {std::max<int64_t>(0, milli_cpu - o.milli_cpu), std::max<int64_t>(0, memory - o.memory),
          std::max<int64_t>(0, gpu - o.gpu)};
}

int64_t Component(const Resources& r, int i) {
  return i == 0 ? r.milli_cpu : i == 1 ? r.memory : r.gpu;
}

std::string FormatComponent(int i, int64_t v) {
  if (v >= Resources::kUnlimited) return "unlimited";
  if (i == 0) return v % 1000 == 0 ? absl::StrCat(v / 1000) : absl::StrCat(v, "m");
  if (i == 1) {
    const char* units[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi"};
    int u = 0;
    while (u < 5 && v != 0 && v % 1024 == 0) {
      v /= 1024;
      ++u;
    }
    return absl::StrCat(v, units[u]);
  }
  return absl::StrCat(v);
}

std::string Resources::ToString() const {
  return absl::StrCat("cpu ", FormatComponent(0, milli_cpu), ", memory ", FormatComponent(1, memory),
                      ", nvidia.com/gpu ", FormatComponent(2, gpu));
}

Resources FromResourceList(const api::ResourceList& list, int64_t unset) {
  auto get = [&](const char* name, bool milli) {
    auto it = list.find(name);
    if (it == list.end()) return unset;
    return milli ? it->second.milli() : it->second.value();
  };
  return {get(api::kResourceCpu, true), get(api::kResourceMemory, false), get(api::kResourceGpu, false)};
}

api::ResourceList ToResourceList(const Resources& r) {
  api::ResourceList out;
  out[api::kResourceCpu] = api::Quantity::FromMilli(r.milli_cpu);
  out[api::kResourceMemory] = *api::Quantity::Parse(FormatComponent(1, r.memory));
  out[api::kResourceGpu] = api::Quantity::FromUnits(r.gpu);
  return out;
}

}  // namespace tandem::scheduler
