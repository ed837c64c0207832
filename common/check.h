// Invariant checks: a failed check is a programmer's error. It prints file, line, the condition
// and any streamed context, then aborts. Never use a check for bad user input: return a Status.
//
//   TANDEM_CHECK(ptr != nullptr) << "layer " << name;
//   TANDEM_CHECK_EQ(grads.size(), params.size());
#pragma once

#include <sstream>

namespace tandem::internal {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition);
  [[noreturn]] ~CheckFailure();
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

// Makes `cond ? (void)0 : CheckFailure(...) << x` type-check: `&` binds looser than `<<`.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace tandem::internal

#define TANDEM_CHECK(cond)                                   \
  (cond) ? (void)0                                           \
         : ::tandem::internal::Voidify() &                   \
               ::tandem::internal::CheckFailure(__FILE__, __LINE__, #cond).stream()

#define TANDEM_CHECK_OP_(a, b, op)                                                          \
  ((a)op(b)) ? (void)0                                                                      \
             : ::tandem::internal::Voidify() &                                              \
                   ::tandem::internal::CheckFailure(__FILE__, __LINE__, #a " " #op " " #b) \
                           .stream()                                                        \
                       << "(" << (a) << " vs " << (b) << ") "

#define TANDEM_CHECK_EQ(a, b) TANDEM_CHECK_OP_(a, b, ==)
#define TANDEM_CHECK_NE(a, b) TANDEM_CHECK_OP_(a, b, !=)
#define TANDEM_CHECK_LT(a, b) TANDEM_CHECK_OP_(a, b, <)
#define TANDEM_CHECK_LE(a, b) TANDEM_CHECK_OP_(a, b, <=)
#define TANDEM_CHECK_GT(a, b) TANDEM_CHECK_OP_(a, b, >)
#define TANDEM_CHECK_GE(a, b) TANDEM_CHECK_OP_(a, b, >=)
#define TANDEM_CHECK_OK(expr)                                              \
  do {                                                                     \
    const auto& _tandem_check_status = (expr);                             \
    TANDEM_CHECK(_tandem_check_status.ok()) << _tandem_check_status.ToString(); \
  } while (0)

#ifdef NDEBUG
#define TANDEM_DCHECK(cond) \
  while (false) TANDEM_CHECK(cond)
#else
#define TANDEM_DCHECK(cond) TANDEM_CHECK(cond)
#endif
