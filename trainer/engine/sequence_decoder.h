// Greedy and beam-search decoding of a sequence-to-sequence Network, for evaluation.
//
//   TANDEM_ASSIGN_OR_RETURN(SequenceDecoder decoder, SequenceDecoder::Create(net));
//   std::vector<std::vector<int32_t>> out = decoder.Decode(sources, /*beam=*/4);
//
// The model is the one trained with teacher forcing (docs/seq2seq.md): a sourceTokens input, a
// tokens input (the decoder's input <s> y_1 ..), and a softmax_cross_entropy cost whose logits are
// a sequence [T, V] in which step t depends only on decoder inputs 0..t (recurrent and attention
// layers are causal in time; nothing mixes future steps in). Decoding feeds <s>, takes the
// logits at step t for the prefix so far, appends the chosen token and repeats until </s> or T
// steps. The first step runs the whole network; later steps run only the layers that depend on
// the decoder's inputs (Network::ForwardDependents), so the encoder runs once per batch. The
// decoder itself reruns over the whole prefix at each step (exactly the trained computation, at
// O(L^2) recurrent steps for a sequence of length L; a serving path would keep the recurrent
// state between steps).
//
// Beam search keeps the `beam` best prefixes by total log-probability; a hypothesis that emits
// </s> is finished and competes with the live ones by its total; the search stops when the best
// `beam` hypotheses are all finished or after T steps, and returns the best finished one by
// log-probability per token (a live one when none finished). Ties go to the lower token id and
// the earlier hypothesis, as greedy's argmax does, so beam 1 returns exactly greedy's output.
// Not thread-safe; uses the network's input blobs (the caller refills them before training).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/model/network.h"

namespace tandem::trainer {

class SequenceDecoder {
 public:
  // InvalidArgument when `net` is not a sequence-to-sequence model as described above.
  static absl::StatusOr<SequenceDecoder> Create(Network& net);

  // Decodes every source (token ids without specials, at most the source input's length);
  // returns the target ids without <s> and </s>. `max_batch`: examples decoded together (each
  // takes `beam` rows of the network's batch).
  // Errors come only from the before-forward hook.
  using Sequences = std::vector<std::vector<int32_t>>;
  absl::StatusOr<Sequences> Greedy(const Sequences& sources, int max_batch = 64);
  // REQUIRES: beam >= 1 (beam 1 runs the beam search code, and equals Greedy).
  absl::StatusOr<Sequences> BeamSearch(const Sequences& sources, int beam, int max_batch = 64);
  // Greedy for beam 1, else BeamSearch.
  absl::StatusOr<Sequences> Decode(const Sequences& sources, int beam, int max_batch = 64) {
    return beam == 1 ? Greedy(sources, max_batch) : BeamSearch(sources, beam, max_batch);
  }
  // Runs after the inputs are filled and before each forward pass: a model whose embedding
  // tables live on the parameter server pulls the rows of those ids here
  // (SparsePath::PrepareEval). An error stops the decoding and is returned.
  void SetBeforeForward(std::function<absl::Status()> hook) { before_forward_ = std::move(hook); }

  int64_t max_steps() const { return target_steps_; }

 private:
  SequenceDecoder(Network& net) : net_(&net) {}
  absl::StatusOr<Sequences> Run(const Sequences& sources, int beam, bool greedy, int max_batch);
  absl::Status DecodeChunk(const Sequences& sources, size_t first, size_t count, int beam,
                           bool greedy, Sequences* out);
  // Log-softmax of example row r's logits at step t into `logp` (vocab floats).
  void LogProbs(int64_t row, int64_t t, std::vector<float>* logp) const;

  Network* net_;
  std::function<absl::Status()> before_forward_;
  int source_input_ = -1, target_input_ = -1;
  int64_t source_steps_ = 0, target_steps_ = 0, vocab_ = 0;
};

}  // namespace tandem::trainer
