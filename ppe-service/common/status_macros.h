#pragma once

// Abseil 20220623 has no public RETURN_IF_ERROR / ASSIGN_OR_RETURN.
#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define PPE_RETURN_IF_ERROR(expr)                           \
  do {                                                      \
    if (::absl::Status _st = (expr); !_st.ok()) return _st; \
  } while (0)

#define PPE_CONCAT_INNER(a, b) a##b
#define PPE_CONCAT(a, b) PPE_CONCAT_INNER(a, b)
#define PPE_ASSIGN_OR_RETURN(lhs, expr) \
  PPE_ASSIGN_OR_RETURN_IMPL(PPE_CONCAT(_statusor_, __LINE__), lhs, expr)
#define PPE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return std::move(tmp).status();  \
  lhs = std::move(tmp).value()
