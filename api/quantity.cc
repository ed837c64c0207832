#include "api/quantity.h"

#include <cctype>
#include <limits>

#include "absl/strings/str_cat.h"

namespace tandem::api {
namespace {

using i128 = __int128;
constexpr i128 kMaxMilli = std::numeric_limits<int64_t>::max();
// Beyond this the exact arithmetic below could overflow 128 bits; anything this large is
// already far past kMaxMilli.
const i128 kOverflowGuard = i128(1) << 120;

struct Suffix {
  int pow10 = 0;  // value = mantissa * 10^pow10 * 2^pow2
  int pow2 = 0;
};

absl::StatusOr<Suffix> ParseSuffix(absl::string_view s) {
  if (s.empty()) return Suffix{};
  if (s.size() == 2 && s[1] == 'i') {
    switch (s[0]) {
      case 'K': return Suffix{0, 10};
      case 'M': return Suffix{0, 20};
      case 'G': return Suffix{0, 30};
      case 'T': return Suffix{0, 40};
      case 'P': return Suffix{0, 50};
      case 'E': return Suffix{0, 60};
    }
  }
  if (s.size() == 1) {
    switch (s[0]) {
      case 'n': return Suffix{-9, 0};
      case 'u': return Suffix{-6, 0};
      case 'm': return Suffix{-3, 0};
      case 'k': return Suffix{3, 0};
      case 'M': return Suffix{6, 0};
      case 'G': return Suffix{9, 0};
      case 'T': return Suffix{12, 0};
      case 'P': return Suffix{15, 0};
      case 'E': return Suffix{18, 0};
    }
  }
  if (s[0] == 'e' || s[0] == 'E') {
    absl::string_view e = s.substr(1);
    bool negative = false;
    if (!e.empty() && (e[0] == '+' || e[0] == '-')) {
      negative = e[0] == '-';
      e.remove_prefix(1);
    }
    if (e.empty() || e.size() > 4) {
      return absl::InvalidArgumentError(absl::StrCat("bad exponent '", s, "'"));
    }
    int v = 0;
    for (char c : e) {
      if (!std::isdigit(static_cast<unsigned char>(c))) {
        return absl::InvalidArgumentError(absl::StrCat("bad exponent '", s, "'"));
      }
      v = v * 10 + (c - '0');
    }
    return Suffix{negative ? -v : v, 0};
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown suffix '", s, "' (use Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or an exponent like e3)"));
}

}  // namespace

absl::StatusOr<Quantity> Quantity::Parse(absl::string_view text) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("invalid quantity \"", text, "\": ", why));
  };
  if (text.empty()) return bad("empty");
  if (text.size() > 64) return bad("longer than 64 characters");
  size_t i = 0;
  bool negative = false;
  if (text[i] == '+' || text[i] == '-') negative = text[i++] == '-';
  i128 mantissa = 0;
  int digits = 0, fraction_digits = 0;
  bool dot = false;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c == '.') {
      if (dot) return bad("more than one '.'");
      dot = true;
      continue;
    }
    if (!std::isdigit(static_cast<unsigned char>(c))) break;
    // Digits past 30 significant ones cannot change a value held in milli-units.
    if (mantissa == 0 && c == '0') {
      if (dot) ++fraction_digits;
      ++digits;
      continue;
    }
    if (mantissa < i128(1) << 100) {
      mantissa = mantissa * 10 + (c - '0');
      if (dot) ++fraction_digits;
    } else if (!dot) {
      return bad("too large");
    }
    ++digits;
  }
  if (digits == 0) return bad("expected a number, like 500m, 2Gi or 1.5");
  auto suffix = ParseSuffix(text.substr(i));
  if (!suffix.ok()) return bad(suffix.status().message());

  // milli = mantissa * 10^(3 - fraction_digits + pow10) * 2^pow2, rounded up.
  i128 num = mantissa;
  for (int k = 0; k < suffix->pow2 && num != 0; ++k) {
    num *= 2;
    if (num > kOverflowGuard) return bad("too large");
  }
  int pow10 = 3 - fraction_digits + suffix->pow10;
  i128 milli = 0;
  if (num == 0) {
    milli = 0;
  } else if (pow10 >= 0) {
    milli = num;
    for (int k = 0; k < pow10; ++k) {
      milli *= 10;
      if (milli > kOverflowGuard) return bad("too large");
    }
  } else if (-pow10 > 36) {
    milli = 1;  // a positive value smaller than 1e-36 milli-units rounds up to 1m
  } else {
    i128 den = 1;
    for (int k = 0; k < -pow10; ++k) den *= 10;
    milli = (num + den - 1) / den;
  }
  if (milli > kMaxMilli) return bad("too large (the maximum is about 9.2e15)");
  Quantity q;
  q.milli_ = negative ? -static_cast<int64_t>(milli) : static_cast<int64_t>(milli);
  q.text_ = std::string(text);
  return q;
}

Quantity Quantity::FromMilli(int64_t milli) {
  Quantity q;
  q.milli_ = milli;
  q.text_ = milli % 1000 == 0 ? absl::StrCat(milli / 1000) : absl::StrCat(milli, "m");
  return q;
}

}  // namespace tandem::api
