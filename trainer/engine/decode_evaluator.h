// Exact match and BLEU of a sequence-to-sequence model on a rank's share of the test set: the
// sources of the test batches are decoded (SequenceDecoder: greedy, or beam search) and compared
// with their references (the targets without </s>). The evaluation behind spec.model.decode.
//
//   TANDEM_ASSIGN_OR_RETURN(eval::BleuAccumulator bleu,
//                           EvaluateDecoding(net, test_reader, *spec.model.decode));
//   // data-parallel: sum bleu's state across ranks (BleuAccumulator::AppendState)
#pragma once

#include "absl/status/statusor.h"
#include "trainer/data/batch_reader.h"
#include "trainer/eval/bleu_accumulator.h"
#include "trainer/model/model_def.h"
#include "trainer/model/network.h"

namespace tandem::trainer {

class SparsePath;

// Reads one pass of `reader` (from its start), decodes up to decode.limit examples (0: all).
// `sparse` (may be null): the parameter-server path of a model with remote embedding tables,
// asked for the rows before every forward pass.
absl::StatusOr<eval::BleuAccumulator> EvaluateDecoding(Network& net, data::BatchReader& reader,
                                                       const DecodeDef& decode,
                                                       SparsePath* sparse = nullptr);

}  // namespace tandem::trainer
