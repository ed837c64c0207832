// The CTR job the pserver restart tests kill parts of: 2 workers, each a trainer and a pserver,
// embeddings on the pservers, dense gradients over the ring in sync mode, one trainer thread, a
// checkpoint every 20 steps (kCheckpointInterval), worker exits 75, 137 and 143 retried.
#pragma once

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tandem::testing {

inline constexpr int kCheckpointInterval = 20;

// `examples` training examples in all (batch 128, split over the 2 trainers), `backoff_limit`
// restarts allowed.
inline std::string CtrRestartJob(absl::string_view name, int examples, int backoff_limit) {
  return absl::StrCat(R"(apiVersion: tandem.dev/v1alpha1
kind: TrainingJob
metadata: {name: )", name, R"(, namespace: default}
spec:
  queue: default
  image: tandem/tandem:0.1.0
  workers: {count: 2}
  trainer: {threads: 1}
  passes: 1
  data:
    train: {format: synthetic-ctr, examples: )", examples, R"(, numFields: 26, zipf: 1.2, seed: 5}
    test: {format: synthetic-ctr, examples: 2000, numFields: 26, zipf: 1.2, seed: 5}
    batchSize: 128
  model:
    inputs:
      - {name: ids, source: fields, shape: [26]}
      - {name: click, source: targets}
    layers:
      - {name: emb, type: embedding, input: ids, vocabSize: 1451594, size: 8, pooling: sum}
      - {name: fc1, type: fc, input: emb, size: 32}
      - {name: relu1, type: relu, input: fc1}
      - {name: logit, type: fc, input: relu1, size: 1}
      - {name: cost, type: binary_cross_entropy, inputs: [logit, click]}
  optimizer: {type: adagrad, learningRate: 0.05}
  sync: {dense: ring, mode: sync}
  checkpoint: {intervalSteps: )", kCheckpointInterval, R"(, keep: 3}
  restartPolicy: {backoffLimit: )", backoff_limit, R"(, backoffSeconds: 1, retryableExitCodes: [75, 137, 143]}
)");
}

}  // namespace tandem::testing
