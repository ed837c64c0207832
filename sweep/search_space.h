// The search space of a Sweep: each parameter seen as the unit interval [0, 1] (on its scale),
// so that the samplers treat linear, log, int and float ranges alike, plus the grid points of
// each parameter. Pure functions of the api::SweepParameter; no state.
//
//   double u = sweep::ToUnit(p, json(0.01));   // log scale 0.001..0.1 -> 0.5
//   nlohmann::json v = sweep::FromUnit(p, 0.5); // -> 0.01
#pragma once

#include <cstdint>
#include <vector>

#include "api/sweep.h"
#include "nlohmann/json.hpp"

namespace tandem::sweep {

// A value of `p` from u in [0, 1] (clamped): uniform u gives values uniform on p's scale; int
// values are whole and every integer of [min, max] is reachable; choice: values[floor(u * n)].
nlohmann::json FromUnit(const api::SweepParameter& p, double u);

// The inverse for ranges (the centre of the value's cell for int and choice); a value outside
// the range is clamped. Choice: the centre of its index' cell; an unknown value gives 0.5.
double ToUnit(const api::SweepParameter& p, const nlohmann::json& value);

// The index of `value` among p.values (choice), or -1.
int ChoiceIndex(const api::SweepParameter& p, const nlohmann::json& value);

// The grid of one parameter: each choice, or gridPoints values evenly spaced on its scale from
// min to max inclusive (int: rounded, duplicates dropped).
std::vector<nlohmann::json> GridValues(const api::SweepParameter& p);

// The number of points of the full grid (product over parameters), saturating at INT64_MAX.
int64_t GridSize(const api::SweepSpec& spec);

}  // namespace tandem::sweep
