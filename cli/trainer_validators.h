// Joins the trainer's validation of spec.model, spec.data and spec.optimizer to the API's, so
// `tandem validate` reports both in one list. Built with the trainer's light spec library
// (tandem_trainer_spec) when the build has it; otherwise a no-op that says so.
#pragma once

namespace tandem::cli {

// Registers the validators with api::RegisterSectionValidator. Returns false when the trainer's
// spec library is not part of this build (the API's own checks still run). Call once.
bool RegisterTrainerValidators();

}  // namespace tandem::cli
