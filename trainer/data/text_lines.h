// Helpers shared by the text formats (libsvm, tokens): numbered lines and number parsing.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace tandem::trainer::data {

// Calls fn(line_number, line) for every line of `text` (1-based; "\r\n" tolerated). Stops early
// when fn returns false.
template <typename Fn>
void ForEachLine(std::string_view text, Fn&& fn) {
  int64_t number = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!fn(++number, line)) return;
    start = end + 1;
  }
}

// Whole-token number parsing: false unless all of `s` is the number.
template <typename T>
bool ParseNumber(std::string_view s, T* out) {
  if (s.empty()) return false;
  if (s.front() == '+') s.remove_prefix(1);
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// Splits off the next whitespace-separated token of `*rest` (empty when none is left).
inline std::string_view NextToken(std::string_view* rest) {
  size_t i = 0;
  while (i < rest->size() && ((*rest)[i] == ' ' || (*rest)[i] == '\t')) ++i;
  size_t j = i;
  while (j < rest->size() && (*rest)[j] != ' ' && (*rest)[j] != '\t') ++j;
  std::string_view token = rest->substr(i, j - i);
  rest->remove_prefix(j);
  return token;
}

// A token shortened for error messages.
inline std::string Quote(std::string_view s) {
  std::string q = "'";
  q.append(s.substr(0, 40));
  if (s.size() > 40) q += "...";
  q += "'";
  return q;
}

}  // namespace tandem::trainer::data
