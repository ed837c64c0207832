#include "trainer/data/dataset.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "trainer/data/data_metrics.h"
#include "trainer/data/idx_dataset.h"
#include "trainer/data/libsvm_dataset.h"
#include "trainer/data/parallel_text_dataset.h"
#include "trainer/data/synthetic_ctr_dataset.h"
#include "trainer/data/token_dataset.h"

namespace tandem::trainer::data {

absl::StatusOr<std::shared_ptr<const Dataset>> LoadDataset(const SourceConfig& source,
                                                           const LoadOptions& options) {
  absl::StatusOr<std::shared_ptr<const Dataset>> ds;
  switch (source.format) {
    case DataFormat::kIdx: {
      std::vector<std::string> notes;
      ds = IdxDataset::Load(source.images, source.labels, source.limit, options.decoded_cache_dir, &notes);
      if (options.note)
        for (const std::string& n : notes) options.note(n);
      break;
    }
    case DataFormat::kLibsvm:
      ds = LibsvmDataset::Load(source.paths, source.num_fields, source.limit,
                               options.skip_malformed);
      break;
    case DataFormat::kTokens:
      ds = TokenDataset::Load(source.paths, {.sequence_length = source.sequence_length,
                                             .vocab_size = source.vocab_size,
                                             .mode = source.token_mode,
                                             .limit = source.limit,
                                             .skip_malformed = options.skip_malformed});
      break;
    case DataFormat::kParallelText:
      ds = ParallelTextDataset::Load(
          source.paths, {.source_length = source.source_length,
                         .target_length = source.sequence_length,
                         .source_vocab_size = source.source_vocab_size,
                         .target_vocab_size = source.target_vocab_size,
                         .tokenize = source.tokenize_words ? Tokenize::kWords : Tokenize::kChars,
                         .vocab_paths = source.vocab_paths,
                         .limit = source.limit,
                         .skip_malformed = options.skip_malformed});
      break;
    case DataFormat::kSyntheticCtr: {
      auto synth = SyntheticCtrDataset::Generate({.examples = source.limit > 0 ? std::min(source.examples, source.limit)
                                                                    : source.examples,
                                                  .num_fields = source.num_fields,
                                                  .zipf = source.zipf,
                                                  .seed = source.synthetic_seed,
                                                  .test = source.synthetic_test,
                                                  .pairs = source.synthetic_pairs});
      if (synth.ok()) {
        ds = std::shared_ptr<const Dataset>(*std::move(synth));
      } else {
        ds = synth.status();
      }
      break;
    }
  }
  if (!ds.ok()) return ds.status();
  const DataMetrics& m = DataMetrics::For(options.name);
  m.bytes_read->Inc(static_cast<double>((*ds)->bytes_read()));
  m.malformed_skipped->Inc(static_cast<double>((*ds)->malformed_skipped()));
  // An empty source would train for zero steps and report success; refuse it instead.
  if ((*ds)->size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        (*ds)->Describe(), ": no examples",
        (*ds)->malformed_skipped() > 0
            ? absl::StrCat(" (every record was malformed: ", (*ds)->malformed_skipped(),
                           " skipped)")
            : ""));
  }
  return ds;
}

}  // namespace tandem::trainer::data
