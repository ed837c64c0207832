// Kubernetes resource quantities ("500m", "2Gi", "1e3", "0.5", "128974848"), parsed exactly.
//
//   absl::StatusOr<Quantity> q = Quantity::Parse("2Gi");   // q->value() == 2147483648
//   Quantity::Parse("500m")->milli() == 500
//
// Grammar (as k8s.io/apimachinery resource.Quantity): [+-] digits [. digits] suffix, where the
// suffix is a binary SI one (Ki Mi Gi Ti Pi Ei), a decimal SI one (n u m "" k M G T P E) or a
// decimal exponent (e3, E-2). The value is held in thousandths of a unit (milli-units), rounded
// up as Kubernetes' MilliValue() does, so "1n" CPU is 1m; the largest value is ~9.2e15 units
// (8 PiB of memory). The text as written is kept so a manifest round-trips unchanged.
#pragma once

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace tandem::api {

class Quantity {
 public:
  Quantity() = default;
  // Errors are InvalidArgument with a message that names the problem ("unknown suffix 'Gb'").
  static absl::StatusOr<Quantity> Parse(absl::string_view text);
  static Quantity FromMilli(int64_t milli);  // text: "1500m", or "2" when whole
  static Quantity FromUnits(int64_t units) { return FromMilli(units * 1000); }

  int64_t milli() const { return milli_; }
  // Whole units, rounded up (Kubernetes' Value()).
  int64_t value() const { return milli_ >= 0 ? (milli_ + 999) / 1000 : milli_ / 1000; }
  bool is_whole() const { return milli_ % 1000 == 0; }
  const std::string& text() const { return text_; }

  // Equal values compare equal whatever their spelling ("1" == "1000m").
  bool operator==(const Quantity& o) const { return milli_ == o.milli_; }
  auto operator<=>(const Quantity& o) const { return milli_ <=> o.milli_; }

 private:
  int64_t milli_ = 0;
  std::string text_ = "0";
};

}  // namespace tandem::api
