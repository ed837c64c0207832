#include "trainer/engine/decode_evaluator.h"

#include <vector>

#include "trainer/engine/sequence_decoder.h"
#include "trainer/engine/sparse_path.h"

namespace tandem::trainer {

absl::StatusOr<eval::BleuAccumulator> EvaluateDecoding(Network& net, data::BatchReader& reader,
                                                       const DecodeDef& decode,
                                                       SparsePath* sparse) {
  absl::StatusOr<SequenceDecoder> decoder = SequenceDecoder::Create(net);
  if (!decoder.ok()) return decoder.status();
  if (sparse != nullptr) decoder->SetBeforeForward([sparse] { return sparse->PrepareEval(); });
  std::vector<std::vector<int32_t>> sources, references;
  reader.StartPass(0);
  while (const data::Batch* b = reader.Next()) {
    for (int e = 0; e < b->size; ++e) {
      if (decode.limit > 0 && static_cast<int64_t>(sources.size()) >= decode.limit) break;
      const int32_t* s = b->source_tokens.data() + static_cast<int64_t>(e) * b->source_length;
      sources.emplace_back(s, s + b->source_lengths[e]);
      const int32_t* t = b->token_targets.data() + static_cast<int64_t>(e) * b->sequence_length;
      references.emplace_back(t, t + b->lengths[e] - 1);  // without </s>
    }
  }
  eval::BleuAccumulator bleu;
  absl::StatusOr<SequenceDecoder::Sequences> hyps = decoder->Decode(sources, decode.beam);
  if (!hyps.ok()) return hyps.status();
  for (size_t i = 0; i < hyps->size(); ++i) bleu.Add((*hyps)[i], references[i]);
  return bleu;
}

}  // namespace tandem::trainer
