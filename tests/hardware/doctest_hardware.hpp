// Include first in hardware tests (instead of <doctest/doctest.h>). runrec::hardware has
// toString(ErrorCode) / toString(Mount) returning const char*; doctest finds them by ADL
// when printing `CHECK(code == ErrorCode::k...)` and fails to compile unless it stringifies
// twice (DOCTEST_CONFIG_DOUBLE_STRINGIFY, doctest's documented switch for this case).
#pragma once

#ifndef DOCTEST_CONFIG_DOUBLE_STRINGIFY
#define DOCTEST_CONFIG_DOUBLE_STRINGIFY
#endif
#include <doctest/doctest.h>
